"""Stored campaigns from the command line, as real subprocesses: SIGKILL and resume, status,
TOML configs, bad stores, and the HTML report in headless Chromium."""

import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SLOW_ORACLE = textwrap.dedent("""
    import time
    from botorch.test_functions import Branin

    _branin = Branin()


    def branin(X):
        time.sleep(0.15)  # an experiment that takes a while, so that kills land inside it too
        return _branin.evaluate_true(X)
""")


def env(extra=None):
    paths = [str(ROOT)] + ([str(extra)] if extra else []) + [os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def bayesal(*args, extra_path=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "bayesal", *args], capture_output=True, text=True,
                          env=env(extra_path), timeout=timeout)


def cli(*args):
    """``bayesal ARGS`` in this process (the same ``main`` as the command): (status, stdout, stderr)."""
    from bayesal.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def popen(*args, extra_path=None):
    return subprocess.Popen([sys.executable, "-m", "bayesal", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env(extra_path))


def experiments(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT step, slot, state, x, pool_index, y, attempts FROM experiments ORDER BY id").fetchall()
    finally:
        conn.close()


def records(path):
    conn = sqlite3.connect(path)
    try:
        return [json.loads(r[0]) for r in conn.execute("SELECT record FROM records ORDER BY n_labels")]
    finally:
        conn.close()


def n_claims(path):
    if not os.path.exists(path):
        return -1
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM claims").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # not created yet
        return -1


@pytest.mark.slow
def test_campaign_killed_at_20_random_moments_equals_the_uninterrupted_run(tmp_path):
    (tmp_path / "slow_oracle.py").write_text(SLOW_ORACLE)
    args = ["--problem", "branin", "--oracle", "slow_oracle:branin", "--strategy", "joint-information",
            "--budget", "20", "-q", "2", "--initial", "4", "--seed", "3", "--quiet", "--out", str(tmp_path / "out")]
    reference = tmp_path / "reference.db"
    proc = bayesal("run", "--store", str(reference), *args, extra_path=tmp_path)
    assert proc.returncode == 0, proc.stderr

    path = tmp_path / "killed.db"
    rng = random.Random(20261121)
    kills, finished = 0, False
    while kills < 20 and not finished:
        before = n_claims(path)
        command = ("resume", "--store", str(path), "--quiet") if path.exists() else ("run", "--store", str(path), *args)
        proc = popen(*command, extra_path=tmp_path)
        if rng.random() < 0.2:  # now and then a moment during start-up and recovery
            time.sleep(rng.uniform(0.0, 2.5))
        else:  # mostly while it works: a random moment after its first claim
            deadline = time.monotonic() + 60
            while n_claims(path) <= before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        else:
            finished = proc.returncode == 0
        proc.wait(timeout=60)
        proc.stderr.close()
    assert kills == 20, "the campaign finished before it was killed 20 times"
    assert len([e for e in experiments(path) if e[2] == "done"]) < 20  # every kill landed before the end
    proc = bayesal("resume", "--store", str(path), "--quiet", extra_path=tmp_path)
    assert proc.returncode == 0, proc.stderr

    got, want = experiments(path), experiments(reference)
    done = [e for e in got if e[2] == "done"]
    assert len(done) == 20 and all(e[2] == "done" for e in got)
    assert len({(e[0], e[1]) for e in got}) == len(got) and len({e[3] for e in done}) == 20  # no duplicates
    assert [e[:6] for e in got] == [e[:6] for e in want]  # the same points and labels, in the same order
    assert any(e[6] > 1 for e in got)  # some kills did land while an experiment was running
    key = [(r["n_labels"], r["rmse"], r["nlpd"]) for r in records(path)]
    assert key == [(r["n_labels"], r["rmse"], r["nlpd"]) for r in records(reference)]


SLOW_FORRESTER = textwrap.dedent("""
    import time
    from bayesal.problems.analytic import forrester


    def f(X):
        time.sleep(0.3)
        return forrester(X)
""")


@pytest.mark.slow
def test_a_worker_process_shares_the_queue_with_the_campaign_process(tmp_path):
    from bayesal import Campaign

    (tmp_path / "slow_forrester.py").write_text(SLOW_FORRESTER)
    path = tmp_path / "shared.db"
    Campaign.create(path, problem="forrester", strategy="max-variance", budget=12, q=4, initial=4,
                    oracle="slow_forrester:f").close()
    worker = popen("work", "--store", str(path), "--verbose", extra_path=tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and worker.poll() is None:  # until its heartbeat shows it is up
        with contextlib.closing(sqlite3.connect(path)) as conn:
            if conn.execute("SELECT count(*) FROM workers").fetchone()[0]:
                break
        time.sleep(0.02)
    campaign = popen("resume", "--store", str(path), "--quiet", extra_path=tmp_path)
    assert campaign.wait(timeout=300) == 0, campaign.stderr.read()
    assert worker.wait(timeout=120) == 0, worker.stderr.read()  # it stops by itself when the campaign is done
    log = worker.stderr.read()
    campaign.stderr.close()
    worker.stderr.close()
    conn = sqlite3.connect(path)
    claims = conn.execute("SELECT experiment, attempt, worker FROM claims").fetchall()
    states = conn.execute("SELECT state FROM experiments").fetchall()
    conn.close()
    assert states == [("done",)] * 12
    assert sorted(e for e, _, _ in claims) == list(range(1, 13))  # each experiment claimed once, by one process
    kinds = {w.split("-")[0] for _, _, w in claims}
    assert kinds == {"campaign", "worker"}, (claims, log)
    assert re.search(r"this worker completed [1-9]\d* experiment", log), log


@pytest.mark.slow
def test_a_worker_killed_mid_experiment_has_it_requeued_after_the_lease_and_finished_elsewhere(tmp_path):
    """A real `bayesal work` process, SIGKILLed while its oracle call runs, stops beating; once its
    heartbeat is older than the campaign's --lease (4 s here) the campaign process requeues the
    experiment, another process completes it, and no label is lost or changed."""
    import torch

    from bayesal import Campaign, CampaignStore
    from bayesal.problems.analytic import forrester

    tests, lease = Path(__file__).resolve().parent, 4.0
    path = tmp_path / "shared.db"
    Campaign.create(path, problem="forrester", strategy="max-variance", budget=6, q=2, initial=3,
                    oracle="campaign_oracles:hangs_where_told").close()

    def start(*args, hang=False):
        extra = {"BAYESAL_TEST_HANG": "1"} if hang else {}
        return subprocess.Popen([sys.executable, "-m", "bayesal", *args, "--store", str(path), "--lease", str(lease)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**env(tests), **extra})

    def query(sql, *params):
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            return conn.execute(sql, params).fetchall()

    doomed = start("work", "--verbose", hang=True)  # its oracle call never returns
    processes = [doomed]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and doomed.poll() is None and not query("SELECT name FROM workers"):
            time.sleep(0.02)  # until its first heartbeat shows it is up
        processes.append(start("resume", "--quiet"))
        held = []
        while time.monotonic() < deadline and doomed.poll() is None and not held:
            held = query("SELECT id, worker FROM experiments WHERE state = 'running' AND worker LIKE 'worker-%'")
            time.sleep(0.02)
        assert held, "the worker never claimed an experiment"
        (victim, name), = held
        doomed.send_signal(signal.SIGKILL)
        killed_at = time.time()
        assert doomed.wait(timeout=30) == -signal.SIGKILL
        # silent for less than the lease: still its experiment
        assert query("SELECT state, worker FROM experiments WHERE id = ?", victim) == [("running", name)]
        processes.append(start("work", "--quiet"))  # a second worker, to share what is left
        campaign, helper = processes[1:]
        while time.time() < killed_at + 15 * lease and campaign.poll() is None:
            if query("SELECT attempts FROM experiments WHERE id = ? AND attempts > 1", victim):
                break
            time.sleep(0.1)
        assert query("SELECT attempts FROM experiments WHERE id = ?", victim) == [(2,)], \
            f"not taken again within {15 * lease:g} s of the kill"
        assert campaign.wait(timeout=150) == 0, campaign.stderr.read()
        assert helper.wait(timeout=120) == 0, helper.stderr.read()
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
    with CampaignStore.open(path) as store:
        exps = store.experiments()
        claims = [c for c in store.claims() if c[0] == victim]
    assert [e.state for e in exps] == ["done"] * 6
    for e in exps:  # every label is the oracle's, none lost, none duplicated
        assert e.y == pytest.approx(forrester(torch.tensor([e.x], dtype=torch.float64)).reshape(-1).tolist())
    (requeued,) = [e for e in exps if e.id == victim]
    assert requeued.attempts == 2 and requeued.worker != name and "stopped answering" in requeued.error
    assert [(a, w == name) for _, a, w in claims] == [(1, True), (2, False)]
    assert all(e.attempts == 1 for e in exps if e.id != victim)
    (retaken,) = query("SELECT time FROM claims WHERE experiment = ? AND attempt = 2", victim)
    # not requeued before the lease could lapse: the last beat was at most lease/4 before the kill
    assert retaken[0] - killed_at > 0.5 * lease


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("campaign") / "run.db"
    code, out, err = cli("run", "--store", path, "--problem", "branin", "--budget", "8", "-q", "2", "--initial", "3",
                         "--seed", "1", "--verbose", "--out", path.parent / "out")
    assert code == 0, err
    assert "experiment 8 done" in err and "rmse" in out
    return path


def test_status_table_and_json(finished_store):
    proc = bayesal("status", "--store", str(finished_store), "--json")  # the real command, once
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert {k: status[k] for k in ("done", "failed", "pending", "running", "budget")} == {
        "done": 8, "failed": 0, "pending": 0, "running": 0, "budget": 8}
    assert status["complete"] and status["campaign"]["problem"] == "branin" and status["last"]["n_labels"] == 8
    code, table, _ = cli("status", "--store", finished_store)
    assert code == 0 and re.search(r"done\s+8", table) and "complete" in table


def test_quiet_run_prints_nothing_and_resume_of_a_finished_campaign_is_a_no_op(tmp_path, finished_store):
    assert cli("run", "--store", tmp_path / "q.db", "--problem", "forrester", "--budget", "4", "--quiet") == (0, "", "")
    before = experiments(finished_store)
    assert cli("resume", "--store", finished_store, "--quiet") == (0, "", "")
    assert experiments(finished_store) == before


def test_toml_config_with_flags_winning(tmp_path):
    config = tmp_path / "campaign.toml"
    config.write_text('problem = "forrester"\nstrategy = "max-variance"\nbudget = 5\nbatch-size = 2\n'
                      'initial = 3\nretries = 2\nasync = true\n')
    code, _, err = cli("run", "--config", config, "--store", tmp_path / "s.db", "--budget", "4", "--quiet")
    assert code == 0, err
    status = json.loads(cli("status", "--store", tmp_path / "s.db", "--json")[1])
    c = status["campaign"]
    assert (c["problem"], c["strategy"], c["budget"], c["q"], c["retries"], c["asynchronous"]) == (
        "forrester", "max-variance", 4, 2, 2, True)
    assert status["done"] == 4


def _foreign_sqlite(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    conn.close()


def test_bad_store_from_the_real_command_is_one_line_and_exit_status_2(tmp_path):
    path = tmp_path / "store.db"
    path.write_text("not a database\n")
    proc = bayesal("resume", "--store", str(path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("bayesal: error:") and "not an SQLite database" in lines[0]


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.write_text("not a database\n"), "not an SQLite database"),
    (_foreign_sqlite, "another program"),
    (lambda p: None, "no campaign store"),
])
@pytest.mark.parametrize("command", ["status", "resume", "report", "run"])
def test_bad_store_is_one_line_and_exit_status_2(tmp_path, make, needle, command):
    path = tmp_path / "store.db"
    make(path)
    before = path.read_bytes() if path.exists() else None
    args = [command, "--store", path] + {"report": ["--out", tmp_path / "r"],
                                         "run": ["--problem", "forrester", "--budget", "3", "--quiet"]}.get(command, [])
    code, _, err = cli(*args)
    if command == "run":  # a new campaign is refused on any existing file, and a missing one is created
        needle = "refusing to overwrite" if before is not None else None
    if needle is None:
        assert code == 0
        return
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("bayesal: error:") and needle in lines[0] and "Traceback" not in err
    assert (path.read_bytes() if path.exists() else None) == before


def test_truncated_store_is_refused(tmp_path, finished_store):
    path = tmp_path / "cut.db"
    data = finished_store.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, _, err = cli("status", "--store", path)
    assert code == 2 and "corrupt" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("toml, args, needle", [
    ("budget = ", [], "not valid TOML"),
    ('colour = "red"\n', [], "unknown setting 'colour'"),
    ('budget = "ten"\n', [], "setting 'budget' expected an integer"),
    ('executor = "cloud"\n', [], "expected one of inprocess, process, dask"),
    (None, ["--config", "/nonexistent/c.toml"], "no such file"),
    (None, ["--async"], "--async: needs a campaign store"),
    (None, ["--retries", "2"], "--retries: needs a campaign store"),
    (None, ["--store", "{tmp}/x.db", "--timeout", "0"], "--timeout"),
    (None, ["--store", "{tmp}/x.db", "--cluster", "tcp://127.0.0.1:1"], "--cluster: needs --executor dask"),
    (None, ["--store", "{tmp}/x.db", "--workers", "0"], "--workers"),
    (None, ["--store", "{tmp}/x.db", "--strategy", "ucb"], "invalid strategy"),
    (None, ["--store", "{tmp}/x.db", "--baseline", "random"], "--baseline"),
    (None, ["--store", "{tmp}/x.db", "--quiet", "--verbose"], "not allowed with argument"),
])
def test_bad_config_is_one_line_and_exit_status_2(tmp_path, toml, args, needle):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if toml is not None:
        (tmp_path / "c.toml").write_text(toml)
        args = ["--config", tmp_path / "c.toml", "--store", tmp_path / "s.db"] + args
    code, _, err = cli("run", "--problem", "forrester", *args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "x.db").exists() and not (tmp_path / "s.db").exists()


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_images_are_displayed_in_headless_chromium(tmp_path, finished_store):
    out = tmp_path / "report"
    code, _, err = cli("report", "--store", finished_store, "--out", out)
    assert code == 0, err
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["acquisition_map.png", "calibration.png", "cost_curve.png", "learning_curve.png"]
    for name in pngs:
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    page = (out / "index.html").read_text()
    assert all(f'src="{name}"' in page for name in pngs)
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    profile = tmp_path / "chromium-profile"
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                          "--dump-dom", (out / "index.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-ready="yes"' in dom.stdout, dom.stdout[:2000]
    images = re.findall(r"<img [^>]*>", dom.stdout)
    assert len(images) == 4
    for img in images:
        assert 'data-displayed="yes"' in img, img
        assert int(re.search(r'data-width="(\d+)"', img).group(1)) > 300
