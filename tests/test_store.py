"""The SQLite campaign store: states and transactions, several processes, SIGKILL, foreign files."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bayesal import CampaignStore, InvalidInput, StoreError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"problem": "forrester", "budget": 5, "seed": 0}


def env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1"}


def test_experiment_life_cycle(tmp_path):
    with CampaignStore.create(tmp_path / "s.db", CONFIG) as store:
        assert store.config == CONFIG and store.counts() == {"pending": 0, "running": 0, "done": 0, "failed": 0}
        ids = store.add_experiments(0, [[0.1], [0.2], [0.3]], seed=7, scores=[1.0, float("nan"), 0.5], acq_s=0.01)
        assert ids == [1, 2, 3] and store.next_step() == 1
        assert store.steps() == [{"step": 0, "seed": 7, "size": 3, "acq_s": 0.01}]
        first, second = store.claim("w1", limit=2)
        assert (first.id, first.state, first.attempts, first.worker) == (1, "running", 1, "w1")
        assert second.score is None  # NaN scores (random designs) are stored as missing
        assert store.complete(1, [2.5], cost=0.25)
        assert not store.complete(1, [9.0])  # a late duplicate answer changes nothing
        assert store.fail(2, "boom", max_attempts=2) == "pending"  # one attempt left: back in the queue
        [again] = store.claim("w2")
        assert again.id == 2 and again.attempts == 2 and again.error == "boom"
        assert store.fail(2, "boom again", max_attempts=2) == "failed"
        assert store.fail(2, "not running") is None
        [third] = store.claim("w1")
        assert store.requeue_running() == 1 and store.get([third.id])[0].state == "pending"
        done = store.get([1])[0]
        assert done.y == [2.5] and done.cost == 0.25 and done.finished >= done.started >= done.created
        assert store.counts() == {"pending": 1, "running": 0, "done": 1, "failed": 1}
        assert [(e, a) for e, a, _ in store.claims()] == [(1, 1), (2, 1), (2, 2), (3, 1)]
        with pytest.raises(StoreError, match="step 0 .* already proposed"):
            store.add_experiments(0, [[0.4]], seed=7)
        with pytest.raises(InvalidInput, match="finite"):
            store.complete(3, [float("nan")])
        assert store.add_record({"n_labels": 1, "rmse": 0.5}) and not store.add_record({"n_labels": 1, "rmse": 9.0})
        assert store.records() == [{"n_labels": 1, "rmse": 0.5}]


def test_values_round_trip_exactly(tmp_path):
    x = [0.1 + 1e-17, 1 / 3, -2.718281828459045e-300]
    with CampaignStore.create(tmp_path / "s.db", CONFIG) as store:
        [i] = store.add_experiments(0, [x], seed=0)
        store.claim("w")
        store.complete(i, [1 / 7])
    with CampaignStore.open(tmp_path / "s.db") as store:
        [e] = store.experiments("done")
        assert e.x == x and e.y == [1 / 7]


_WORKER = textwrap.dedent("""
    import json, os, sys, time
    from bayesal.loop.store import CampaignStore
    path, go, name = sys.argv[1:4]
    store = CampaignStore.open(path)
    open(go + "." + name, "w").close()  # ready
    while not os.path.exists(go):
        time.sleep(0.001)
    mine = []
    while True:
        claimed = store.claim(name, limit=1 + len(mine) % 3)
        if not claimed:
            break
        for e in claimed:
            mine.append(e.id)
            time.sleep(0.002)  # the experiment itself, outside any transaction
            store.complete(e.id, [float(e.id)], cost=0.0)
    print(json.dumps(mine))
""")


@pytest.mark.slow
def test_two_processes_sharing_a_store_never_claim_the_same_experiment(tmp_path):
    path, go = tmp_path / "shared.db", tmp_path / "go"
    with CampaignStore.create(path, CONFIG) as store:
        ids = store.add_experiments(0, [[i / 300] for i in range(300)], seed=0)
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(path), str(go), f"worker{k}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()) for k in range(2)]
    deadline = time.monotonic() + 120
    while not all(Path(f"{go}.worker{k}").exists() for k in range(2)) and time.monotonic() < deadline:
        time.sleep(0.01)  # until both have imported bayesal and wait at the barrier
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    claimed = [json.loads(o[0]) for o in outs]
    assert claimed[0] and claimed[1], "both processes should have taken part"
    assert not set(claimed[0]) & set(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == ids
    with CampaignStore.open(path) as store:
        log = store.claims()
        assert sorted(e for e, _, _ in log) == ids and {a for _, a, _ in log} == {1}
        assert all(e.y == [float(e.id)] and e.worker == f"worker{0 if e.id in claimed[0] else 1}"
                   for e in store.experiments())


_HOLD_TRANSACTION = textwrap.dedent("""
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE experiments SET state = 'done', y = '[1.0]' WHERE id = 1")
    conn.execute("INSERT INTO records (n_labels, record, created) VALUES (1, '{}', 0)")
    print("inside", flush=True)
    time.sleep(60)
""")


def test_sigkill_in_the_middle_of_a_write_leaves_the_last_committed_state(tmp_path):
    path = tmp_path / "s.db"
    with CampaignStore.create(path, CONFIG) as store:
        store.add_experiments(0, [[0.5], [0.6]], seed=0)
        store.claim("w", limit=1)
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_TRANSACTION, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "inside"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with CampaignStore.open(path, timeout=5) as store:
        assert store.counts() == {"pending": 1, "running": 1, "done": 0, "failed": 0}
        assert store.records() == []
        assert store.complete(1, [3.0])  # the dead writer's lock is gone


def test_running_experiments_of_a_silent_claimant_are_requeued(tmp_path):
    with CampaignStore.create(tmp_path / "s.db", CONFIG) as store:
        store.add_experiments(0, [[0.1], [0.2], [0.3]], seed=0)
        store.claim("worker-dead")
        store.claim("worker-alive")
        store.claim("campaign-1")
        store._conn.execute("UPDATE workers SET heartbeat = heartbeat - 100 WHERE name != 'worker-alive'")
        assert store.requeue_stale(lease=50, exclude="campaign-1") == 1
        assert [e.state for e in store.experiments()] == ["pending", "running", "running"]
        store.heartbeat("worker-dead")
        assert store.requeue_running(prefix="campaign-") == 1
        assert [e.state for e in store.experiments()] == ["pending", "running", "pending"]


_COUNT = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(c.execute('SELECT count(*) FROM experiments').fetchone()[0]); c.close()"


def test_a_second_handle_in_one_process_keeps_the_first_ones_locks(tmp_path):
    """Opening the same store twice in a process (the heartbeat thread does) must not release the
    first connection's file locks: another process would then take itself for the last
    connection, checkpoint and reset the write-ahead log under a live writer."""
    path = tmp_path / "s.db"

    def count():
        return int(subprocess.run([sys.executable, "-c", _COUNT, str(path)], capture_output=True, text=True,
                                  check=True).stdout)

    with CampaignStore.create(path, CONFIG) as first:
        first.add_experiments(0, [[0.1]], seed=0)
        with CampaignStore.open(path) as second:
            assert count() == 1
            first.add_experiments(1, [[0.2], [0.3]], seed=1)
            assert count() == 3
            second.add_experiments(2, [[0.4]], seed=2)
            first.add_experiments(3, [[0.5]], seed=3)
            assert count() == 5
        first.add_experiments(4, [[0.6]], seed=4)
        assert count() == 6
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM experiments").fetchone()[0] == 6
    conn.close()


def _store_with_data(path):
    with CampaignStore.create(path, CONFIG) as store:
        store.add_experiments(0, [[i / 500] for i in range(500)], seed=0)
        for e in store.claim("w", limit=500):
            store.complete(e.id, [e.x[0] ** 2])


@pytest.mark.parametrize("kind, message", [
    ("text", "not an SQLite database"),
    ("empty", "the file is empty"),
    ("foreign", "another program"),
    ("truncated", "corrupt"),
    ("newer", "newer bayesal"),
    ("missing", "no campaign store"),
    ("directory", "not a file"),
])
def test_foreign_or_corrupt_files_are_refused(tmp_path, kind, message):
    path = tmp_path / "store.db"
    if kind == "text":
        path.write_text("name,value\nx,1\n")
    elif kind == "empty":
        path.touch()
    elif kind == "foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
        conn.execute("INSERT INTO orders (item) VALUES ('tea')")
        conn.commit()
        conn.close()
    elif kind == "truncated":
        _store_with_data(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "newer":
        _store_with_data(path)
        conn = sqlite3.connect(path)
        conn.execute("UPDATE bayesal_meta SET value = '99' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
    elif kind == "directory":
        path.mkdir()
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(StoreError, match=message):
        CampaignStore.open(path)
    if before is not None:
        assert path.read_bytes() == before  # a refused file is never modified
        assert not Path(str(path) + "-wal").exists()
    if kind in ("text", "foreign"):
        with pytest.raises(StoreError, match="refusing to overwrite"):
            CampaignStore.create(path, CONFIG)
        assert path.read_bytes() == before


def test_create_refuses_an_existing_campaign(tmp_path):
    CampaignStore.create(tmp_path / "s.db", CONFIG).close()
    with pytest.raises(StoreError, match="already holds a campaign.*bayesal resume"):
        CampaignStore.create(tmp_path / "s.db", CONFIG)
    with pytest.raises(InvalidInput, match="JSON"):
        CampaignStore.create(tmp_path / "t.db", {"f": object()})
