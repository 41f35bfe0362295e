"""The command line against hostile input (issue 17): unwritable places, read-only and hand-edited
stores, oracles that exit, return huge labels or cannot be imported, abbreviated flags, and two
proposers on one store."""

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli_campaign import cli, env, experiments, n_claims  # noqa: E402  (the same helpers)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ORACLES = textwrap.dedent("""
    import argparse
    import os
    import sys
    import time

    import torch
    from bayesal.problems.analytic import forrester

    _calls = {"n": 0}


    def _count():
        _calls["n"] += 1
        return _calls["n"]


    def exits_on_third(X):
        if _count() == 3:
            sys.exit(3)
        return forrester(X)


    def argparse_on_third(X):
        if _count() == 3:
            argparse.ArgumentParser(prog="mysim").parse_args(["--bogus"])
        return forrester(X)


    def huge_after_two(X):
        return forrester(X) * (1e200 if _count() > 2 else 1.0)


    def huger_after_two(X):
        return forrester(X) * (1e300 if _count() > 2 else 1.0)


    def two_outputs(X):
        return torch.zeros(2)


    def wrong_dimension(X):
        return forrester(X[:, :2].reshape(-1, 2))  # a two-input simulator given a one-input problem


    def counted_held(X):
        # Forrester, counting its calls in a file; after the first call (the check) it waits
        # while the file BAYESAL_HOLD exists
        with open(os.environ["BAYESAL_CALLS"], "a") as fh:
            fh.write(f"{X.tolist()}\\n")
        deadline = time.monotonic() + 60
        while _count() > 1 and os.path.exists(os.environ["BAYESAL_HOLD"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        return forrester(X)
""")


@pytest.fixture
def oracles(tmp_path):
    (tmp_path / "fz_oracles.py").write_text(ORACLES)
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in [m for m in sys.modules if m == "fz_oracles"]:
        del sys.modules[name]


def one_error_line(code, err, needle=None, status=2):
    lines = err.strip().splitlines()
    assert code == status and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("bayesal: error:" if status == 2 else "bayesal:"), err
    if needle is not None:
        assert re.search(needle, lines[0]), lines[0]
    return lines[0]


RUN = ["run", "--problem", "forrester", "--budget", "4", "-q", "2", "--initial", "2", "--quiet"]


# -- unwritable places, read-only and hand-edited stores --------------------------------------------
def test_out_and_store_under_a_file_are_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = cli(*RUN, "--out", blocker / "sub")
    one_error_line(code, err, r"--out: cannot write to .*a-file/sub \(Not a directory\)")
    code, _, err = cli(*RUN, "--store", blocker / "sub" / "s.db", "--out", tmp_path / "o")
    one_error_line(code, err, r"cannot create a campaign store .* is a file, not a folder")
    code, _, err = cli(*RUN, "--store", tmp_path / "s.db", "--out", blocker / "sub")
    one_error_line(code, err, "--out: cannot write")
    assert not (tmp_path / "s.db").exists()  # refused before the store was made
    code, _, err = cli(*RUN, "--store", tmp_path)  # a folder
    one_error_line(code, err, "not a bayesal campaign store")


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "run.db"
    code, _, err = cli(*RUN, "--store", path, "--out", path.parent / "out")
    assert code == 0, err
    return path


def test_read_only_store_is_read_by_status_and_report_and_refused_by_resume(tmp_path, small_store, monkeypatch):
    """Root ignores permissions, so the store's folder is made read-only by os.access; the connection
    that status opens is a real read-only one (mode=ro), and nothing is written."""
    import bayesal.loop.store as store_module

    path = tmp_path / "ro" / "run.db"
    path.parent.mkdir()
    path.write_bytes(small_store.read_bytes())
    real = os.access
    folder = path.parent.resolve()

    def access(p, mode, **kw):  # the folder, and the -wal and -shm files SQLite would create in it
        p = Path(p).resolve()
        if mode & os.W_OK and (p == folder or p.parent == folder and p.name.endswith(("-wal", "-shm"))):
            return False
        return real(p, mode, **kw)

    monkeypatch.setattr(store_module.os, "access", access)
    before = path.read_bytes()
    code, out, err = cli("status", "--store", path)
    assert code == 0 and "corrupt" not in err + out and re.search(r"done\s+4", out), err
    code, _, err = cli("report", "--store", path, "--out", tmp_path / "report", "--quiet")
    assert code == 0, err
    for command in (["resume"], ["work"], ["resume", "--out", tmp_path / "o"]):
        code, _, err = cli(*command, "--store", path, "--quiet")
        one_error_line(code, err, r"cannot write the campaign store .*: its folder .* is read-only")
    assert path.read_bytes() == before


def test_new_store_in_a_read_only_folder_and_a_read_only_store_file_are_one_line(tmp_path, small_store, monkeypatch):
    """``run --store`` in a read-only folder says so (not SQLite's "unable to open database file"),
    and ``resume`` of a store file that is itself read-only names the file."""
    import bayesal.loop.store as store_module

    folder = (tmp_path / "ro").resolve()
    folder.mkdir()
    copy = tmp_path / "copy.db"
    copy.write_bytes(small_store.read_bytes())
    real = os.access

    def access(p, mode, **kw):
        p = Path(p).resolve()
        if mode & os.W_OK and (p == folder or p.parent == folder or p == copy.resolve()):
            return False
        return real(p, mode, **kw)

    monkeypatch.setattr(store_module.os, "access", access)
    code, _, err = cli(*RUN, "--store", folder / "s.db", "--out", tmp_path / "o")
    one_error_line(code, err, rf"cannot create a campaign store at .*s\.db: its folder {re.escape(str(folder))} "
                              r"is read-only")
    assert not (folder / "s.db").exists()
    before = copy.read_bytes()
    code, _, err = cli("resume", "--store", copy, "--quiet")
    one_error_line(code, err, r"cannot write the campaign store .*copy\.db: the file is read-only")
    code, out, err = cli("status", "--store", copy)
    assert code == 0 and re.search(r"done\s+4", out), err
    assert copy.read_bytes() == before


def test_read_only_database_error_is_one_line(tmp_path, small_store, monkeypatch):
    """Where SQLite itself says "readonly database" at a write (a read-only mount), one line."""
    import bayesal.loop.store as store_module

    path = tmp_path / "run.db"
    path.write_bytes(small_store.read_bytes())
    real_connect = store_module.CampaignStore._connect

    def read_only_connect(self, mode=None):
        return real_connect(self, "mode=ro" if mode is None else mode)

    monkeypatch.setattr(store_module.CampaignStore, "_connect", read_only_connect)
    code, _, err = cli("resume", "--store", path, "--quiet")
    one_error_line(code, err, "readonly database")


@pytest.mark.parametrize("sql, needle", [
    ("UPDATE experiments SET x = '[0.1, ' WHERE id = 2", "experiment 2 is unreadable"),
    ("UPDATE experiments SET y = '\"high\"' WHERE id = 3", "experiment 3 is unreadable .*y is not a list"),
    ("UPDATE experiments SET y = '[1e999]' WHERE id = 1", "experiment 1 is unreadable"),
    ("UPDATE experiments SET attempts = 'many' WHERE id = 1", "attempts is not an integer"),
    ("UPDATE records SET record = '{oops' WHERE n_labels = 2", "record for 2 labels is unreadable"),
    ("UPDATE campaign SET config = '[1, 2]'", "unreadable campaign settings"),
    ("UPDATE campaign SET config = '{\"problem\": \"forrester\", \"budget\": \"ten\"}'", "unusable settings"),
])
@pytest.mark.parametrize("command", ["status", "resume", "report"])
def test_hand_edited_store_is_refused_in_one_line(tmp_path, small_store, sql, needle, command):
    path = tmp_path / "edited.db"
    path.write_bytes(small_store.read_bytes())
    with sqlite3.connect(path) as conn:
        conn.execute(sql)
    conn.close()
    before = path.read_bytes()
    extra = ["--out", tmp_path / "r"] if command == "report" else []
    code, _, err = cli(command, "--store", path, "--quiet", *extra) if command != "status" else cli(
        "status", "--store", path)
    one_error_line(code, err, needle)
    assert path.read_bytes() == before


# -- flags -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, needle", [
    (["--pool", "5"], "unrecognized arguments: --pool 5"),
    (["--bud", "5"], "unrecognized arguments: --bud 5"),
    (["--noise-std", "nan"], "invalid --noise-std: expected a non-negative number, got nan"),
    (["--noise-std", "inf"], "invalid --noise-std: expected a non-negative number, got inf"),
    (["--store", "{tmp}/s.db", "--timeout", "inf"], "invalid --timeout"),
    (["--store", "{tmp}/s.db", "--timeout", "nan"], "invalid --timeout"),
    (["--store", "{tmp}/s.db", "--lease", "nan"], "--lease: expected a positive number"),
    (["--store", "{tmp}/s.db", "--lease", "0"], "--lease: expected a positive number"),
    (["--lease", "5"], "--lease: needs a campaign store"),
    (["--store", "{tmp}/s.db", "--pool-size", "5", "--budget", "8"], r"invalid budget: expected at most 5"),
    (["--store", "{tmp}/s.db", "--oracle", "nosuchmodule_xyz:f"], "No module named 'nosuchmodule_xyz'"),
    (["--store", "{tmp}/s.db", "--oracle", "math:nosuchfunction"], "has no attribute 'nosuchfunction'"),
    (["--store", "{tmp}/s.db", "--oracle", "math.exp"], r"expected 'package.module:function', got 'math.exp'"),
])
def test_bad_flags_are_refused_before_anything_is_stored(tmp_path, args, needle):
    args = [str(a).replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = cli("run", "--problem", "forrester", "--budget", "4", "--quiet", "--out", tmp_path / "o", *args)
    one_error_line(code, err, re.escape(needle) if "expected at most" not in needle else needle)
    assert not (tmp_path / "s.db").exists()


def test_lease_flag_is_the_proposer_and_worker_lease(tmp_path, monkeypatch):
    """``--lease S`` is the lease the proposer takes and the silence after which a claimant's
    running experiments are requeued, for ``run`` and for ``resume``."""
    import bayesal.loop.store as store_module

    seen = []
    real_take, real_requeue = store_module.CampaignStore.take_lease, store_module.CampaignStore.requeue_stale

    def take_lease(self, holder, lease, *args, **kwargs):
        seen.append(("take", lease))
        return real_take(self, holder, lease, *args, **kwargs)

    def requeue_stale(self, lease, *args, **kwargs):
        seen.append(("requeue", lease))
        return real_requeue(self, lease, *args, **kwargs)

    monkeypatch.setattr(store_module.CampaignStore, "take_lease", take_lease)
    monkeypatch.setattr(store_module.CampaignStore, "requeue_stale", requeue_stale)
    code, _, err = cli(*RUN, "--store", tmp_path / "s.db", "--lease", "7.5", "--out", tmp_path / "o")
    assert code == 0, err
    assert ("take", 7.5) in seen and ("requeue", 7.5) in seen and {v for _, v in seen} == {7.5}, seen
    seen.clear()
    with sqlite3.connect(tmp_path / "s.db") as conn:  # something left to do, so resume proposes
        conn.execute("UPDATE experiments SET state = 'pending', y = NULL WHERE id = 4")
        conn.execute("DELETE FROM records WHERE n_labels > 2")
    conn.close()
    code, _, err = cli("resume", "--store", tmp_path / "s.db", "--lease", "3", "--quiet")
    assert code == 0, err
    assert ("take", 3.0) in seen and {v for _, v in seen} == {3.0}, seen


def test_config_file_nan_is_refused(tmp_path):
    (tmp_path / "c.toml").write_text("noise_std = nan\n")
    code, _, err = cli("run", "--config", tmp_path / "c.toml", "--problem", "forrester", "--budget", "3", "--quiet",
                       "--out", tmp_path / "o")
    one_error_line(code, err, "invalid --noise-std")


# -- oracles -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("target, needle", [
    ("fz_oracles:two_outputs", "2 rows of labels for one point"),
    ("fz_oracles:wrong_dimension", "oracle raised"),
])
def test_oracle_checked_once_before_the_campaign(tmp_path, oracles, target, needle):
    start = time.perf_counter()
    code, _, err = cli(*RUN, "--store", tmp_path / "s.db", "--oracle", target, "--out", tmp_path / "o")
    line = one_error_line(code, err, "invalid oracle: expected an oracle that labels a valid point")
    assert needle in line and not (tmp_path / "s.db").exists()
    assert time.perf_counter() - start < 10  # not after max(10, 2 x budget) failed experiments


@pytest.mark.parametrize("target, needle", [
    ("fz_oracles:exits_on_third", r"oracle exited \(SystemExit with status 3\)"),
    ("fz_oracles:argparse_on_third", r"oracle exited \(SystemExit with status 2\)"),
    ("fz_oracles:huge_after_two", "beyond the largest usable label magnitude 1e\\+100"),
    ("fz_oracles:huger_after_two", "beyond the largest usable label magnitude"),
])
def test_oracle_that_exits_or_returns_huge_labels_is_a_failed_experiment(tmp_path, oracles, target, needle):
    """Call 1 is the check, calls 2 and 3 the initial design: the third call fails (and every later
    one for the huge labels). The campaign goes on (or stops with status 1), and nothing is left running."""
    path = tmp_path / "s.db"
    code, out, err = cli(*RUN, "--store", path, "--oracle", target, "--max-failures", "2", "--out", tmp_path / "o")
    assert "Traceback" not in err and code in (0, 1), err
    states = [e[2] for e in experiments(path)]
    assert "running" not in states and "pending" not in states or code == 1
    assert "running" not in states
    status = json.loads(cli("status", "--store", path, "--json")[1])
    assert any(re.search(needle, e["error"]) for e in status["errors"]), status["errors"]
    assert status["done"] >= 1
    if code == 1:
        assert "too many" in err or "experiments failed" in err
    else:
        last = status["last"]
        assert last["rmse"] is not None and status["done"] == 4


def test_lambda_for_the_process_executor_is_refused_at_once(tmp_path):
    from bayesal import Campaign, InvalidInput
    from bayesal.loop.executors import ProcessExecutor

    executor = ProcessExecutor(1)
    with pytest.raises(InvalidInput, match="picklable callable .* for the process executor"):
        Campaign.create(tmp_path / "s.db", oracle=lambda X: X.sum(-1), executor=executor, problem="forrester",
                        budget=3)
    assert not (tmp_path / "s.db").exists() and executor._pool is None  # no worker was started


# -- two proposers -----------------------------------------------------------------------------------
def test_second_proposer_is_refused_while_the_first_runs(tmp_path, oracles):
    calls, hold = tmp_path / "calls.txt", tmp_path / "hold"
    hold.write_text("")  # the run's experiments wait until the second proposer has been refused
    path = tmp_path / "s.db"
    oracle_env = {**env(oracles), "BAYESAL_CALLS": str(calls), "BAYESAL_HOLD": str(hold)}
    run = subprocess.Popen([sys.executable, "-m", "bayesal", *RUN, "--budget", "6", "--store", str(path),
                            "--oracle", "fz_oracles:counted_held", "--out", str(tmp_path / "o")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           env=oracle_env)
    try:
        deadline = time.monotonic() + 120
        while n_claims(path) < 1 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert run.poll() is None, run.stderr.read()
        second = subprocess.run([sys.executable, "-m", "bayesal", "resume", "--store", str(path), "--quiet"],
                                capture_output=True, text=True, timeout=120,
                                env=oracle_env)
        one_error_line(second.returncode, second.stderr,
                       rf"held by another proposer: campaign-{run.pid} \(pid {run.pid} on {re.escape(socket.gethostname())}\) "
                       r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
        hold.unlink()
        assert run.wait(timeout=120) == 0, run.stderr.read()
    finally:
        if run.poll() is None:
            run.kill()
        run.wait()
        run.stderr.close()
    lines = calls.read_text().splitlines()
    rows = experiments(path)
    assert [e[2] for e in rows] == ["done"] * 6 and all(e[6] == 1 for e in rows)  # each claimed once
    assert n_claims(path) == 6 and len(lines) == 6 + 1  # once per experiment, plus the documented check
    # released on exit: a later resume is a no-op, not refused
    done = subprocess.run([sys.executable, "-m", "bayesal", "resume", "--store", str(path), "--quiet"],
                          capture_output=True, text=True, timeout=120, env=oracle_env)
    assert done.returncode == 0, done.stderr
    assert len(calls.read_text().splitlines()) == 7


def test_lease_is_taken_over_only_from_a_dead_or_silent_holder(tmp_path):
    from bayesal import CampaignStore, StoreError

    with CampaignStore.create(tmp_path / "s.db", {"problem": "forrester", "budget": 3}) as store:
        store.take_lease("campaign-a", lease=60)
        store.take_lease("campaign-a", lease=60)  # renewing one's own lease
        assert store.lease_holder()["holder"] == "campaign-a"
        with pytest.raises(StoreError, match=rf"held by another proposer: campaign-a \(pid {os.getpid()} on "):
            store.take_lease("campaign-b", lease=60)  # alive on this host
        store.release_lease("campaign-a")
        # alive on another host (its heartbeat is fresh): refused, naming it
        store.take_lease("campaign-far", lease=60, pid=1, host="elsewhere")
        with pytest.raises(StoreError, match=r"held by another proposer: campaign-far \(pid 1 on elsewhere\)"):
            store.take_lease("campaign-b", lease=60)
        # silent for longer than its lease: taken over
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE workers SET heartbeat = heartbeat - 120 WHERE name = 'campaign-far'")
            conn.execute("UPDATE proposer SET since = since - 120")
        conn.close()
        store.take_lease("campaign-b", lease=60)
        assert store.lease_holder()["holder"] == "campaign-b"
        store.release_lease("campaign-b")
        # on this host with a fresh heartbeat but a process that is gone: taken over at once
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        store.take_lease("campaign-dead", lease=60, pid=dead.pid)
        store.take_lease("campaign-c", lease=60)
        assert store.lease_holder()["holder"] == "campaign-c"
        store.release_lease("campaign-other")  # not the holder: nothing changes
        assert store.lease_holder()["holder"] == "campaign-c"
        store.release_lease("campaign-c")
        assert store.lease_holder() is None
