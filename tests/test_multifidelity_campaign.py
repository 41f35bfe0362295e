"""Multi-fidelity campaigns through the campaign store: settings, the cost budget, the fidelity
column, resume after an interruption and after SIGKILL, status and the report's cost curve."""

import json
import os
import random
import re
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from bayesal import Campaign, InvalidInput
from bayesal.loop import InProcessExecutor
from bayesal.loop.config import check_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli_campaign import bayesal, cli, n_claims, popen  # noqa: E402  (the same subprocess helpers)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HEAT_COSTS = [1 / 64, 1 / 8, 1.0]


def stored(path):
    """Every experiment as ``(step, slot, state, x, fidelity, y, cost)``, in proposal order."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT step, slot, state, x, fidelity, y, cost FROM experiments ORDER BY id").fetchall()
    finally:
        conn.close()


def check_spending(path, cost_budget, costs):
    """The nominal cost spent is at most the budget and within one cheapest evaluation of it; no
    (x, fidelity) pair was evaluated twice; the store is intact. Returns the experiments."""
    exps = stored(path)
    assert exps and all(e[2] == "done" for e in exps)
    spent = sum(costs[int(e[4])] for e in exps)
    assert spent <= cost_budget + 1e-9
    assert spent > cost_budget - min(costs) - 1e-9, (spent, cost_budget)
    assert all(abs(e[6] - costs[int(e[4])]) < 1e-12 for e in exps)  # each stores its nominal cost
    assert len({(e[3], e[4]) for e in exps}) == len(exps)  # no duplicate (x, fidelity)
    assert len({(e[0], e[1]) for e in exps}) == len(exps)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    return exps


def test_settings_defaults_and_refusals_of_a_multifidelity_campaign():
    cfg = check_config({"problem": "heat-mf", "cost_budget": 3})
    assert (cfg["model"], cfg["strategy"], cfg["budget"], cfg["cost_budget"]) == (
        "co-kriging", "mf-integrated-variance", None, 3.0)
    single = check_config({"problem": "branin"})
    assert (single["model"], single["strategy"], single["budget"]) == ("exact-gp", "auto", 40)
    refused = [
        ({"problem": "heat-mf"}, "cost_budget"),  # required
        ({"problem": "heat-mf", "cost_budget": 0.0}, "cost_budget"),
        ({"problem": "heat-mf", "cost_budget": 1.0}, "cost_budget"),  # less than the initial design's 2.28
        ({"problem": "heat-mf", "cost_budget": 3, "model": "exact-gp"}, "model"),
        ({"problem": "heat-mf", "cost_budget": 3, "strategy": "joint-information"}, "strategy"),
        ({"problem": "heat-mf", "cost_budget": 3, "budget": 10}, "budget"),
        ({"problem": "heat-mf", "cost_budget": 3, "initial": 3}, "initial"),
        ({"problem": "heat-mf", "cost_budget": 3, "pool_size": 100}, "pool_size"),
        ({"problem": "heat-mf", "cost_budget": 3, "asynchronous": True}, "asynchronous"),
        ({"problem": "heat-mf", "cost_budget": 3, "oracle": "m:f"}, "oracle"),
        ({"problem": "branin", "cost_budget": 3}, "cost_budget"),  # single-fidelity problems
        ({"problem": "branin", "n_candidates": 64}, "n_candidates"),
    ]
    for settings, argument in refused:
        with pytest.raises(InvalidInput) as info:
            check_config(settings)
        assert info.value.argument == argument, (settings, str(info.value))


class _Interrupt(InProcessExecutor):
    """Stops the campaign process (as a kill would, leaving its experiment running) at the n-th task."""

    def __init__(self, n):
        self.n = n

    def submit(self, fn, *args):
        self.n -= 1
        if self.n < 0:
            raise KeyboardInterrupt
        return super().submit(fn, *args)


def test_an_interrupted_multifidelity_campaign_resumes_to_the_uninterrupted_result(tmp_path):
    settings = dict(problem="forrester-mf", cost_budget=3.6, q=2, n_candidates=64, seed=2)
    with Campaign.create(tmp_path / "reference.db", **settings) as campaign:
        records = campaign.run()
    costs = [0.1, 1.0]
    reference = check_spending(tmp_path / "reference.db", 3.6, costs)
    assert {int(e[4]) for e in reference} == {0, 1}  # both levels bought
    last = records[-1]
    assert last["n_labels"] == len(reference) and abs(last["cumulative_cost"] - sum(costs[int(e[4])] for e in reference)) < 1e-9
    assert last["counts"] == [sum(int(e[4]) == s for e in reference) for s in (0, 1)] and last["rmse"] is not None
    assert [r["cost"] for r in records] == sorted(r["cost"] for r in records)

    path = tmp_path / "interrupted.db"
    with Campaign.create(path, executor=_Interrupt(3), **settings) as campaign, pytest.raises(KeyboardInterrupt):
        campaign.run()  # during the initial design
    for n in (4, 4):  # ... and twice later on
        with Campaign.resume(path, executor=_Interrupt(n)) as campaign, pytest.raises(KeyboardInterrupt):
            campaign.run()
    assert len(stored(path)) < len(reference)
    with Campaign.resume(path) as campaign:
        resumed = campaign.run()
        status = campaign.status()
    got = check_spending(path, 3.6, costs)
    assert got == reference  # the same points, fidelities, labels and costs, in the same order
    assert [(r["n_labels"], r["rmse"]) for r in resumed] == [(r["n_labels"], r["rmse"]) for r in records]
    assert status["complete"] and status["multifidelity"] and status["budget"] is None
    assert status["fidelity_counts"] == last["counts"] and abs(status["cost_spent"] - last["cost"]) < 1e-9
    assert status["cost_reserved"] == 0.0 and status["cost_budget"] == 3.6


def test_heat_mf_through_the_command_line_run_status_and_report(tmp_path):
    path = tmp_path / "heat.db"
    code, out, err = cli("run", "--store", path, "--problem", "heat-mf", "--cost-budget", "2.6", "-q", "2",
                         "--n-candidates", "64", "--seed", "1", "--verbose", "--out", tmp_path / "out")
    assert code == 0, err
    assert "cost budget 2.6" in err and re.search(r"level 0, cost 0\.0156", err)
    exps = check_spending(path, 2.6, HEAT_COSTS)
    assert {int(e[4]) for e in exps} == {0, 1, 2}

    code, text, _ = cli("status", "--store", path, "--json")
    status = json.loads(text)
    assert code == 0 and status["complete"] and status["campaign"]["model"] == "co-kriging"
    assert status["campaign"]["strategy"] == "mf-integrated-variance" and status["cost_budget"] == 2.6
    assert sum(status["fidelity_counts"]) == status["done"] == len(exps)
    assert status["last"]["n_labels"] == len(exps) and status["last"]["counts"] == status["fidelity_counts"]
    code, table, _ = cli("status", "--store", path)
    assert code == 0 and re.search(r"of a cost budget of 2\.6", table) and "16 cells" in table and "complete" in table

    code, _, err = cli("resume", "--store", path, "--quiet")  # a finished campaign: nothing more is bought
    assert code == 0, err
    assert stored(path) == [tuple(e) for e in exps]

    code, _, err = cli("report", "--store", path, "--out", tmp_path / "report", "--quiet")
    assert code == 0, err
    page = (tmp_path / "report" / "index.html").read_text()
    assert '<img src="cost_curve.png"' in page and (tmp_path / "report" / "cost_curve.png").stat().st_size > 1000
    assert "nominal cost" in page and "@ level 2" in page

    code, text, _ = cli("list")
    assert code == 0 and "heat-mf" in text and "co-kriging" in text and "mf-integrated-variance" in text


def test_multifidelity_bad_input_from_the_real_command_is_one_line(tmp_path):
    for args, needle in [(["--model", "exact-gp", "--cost-budget", "3"], "invalid --model"),
                         (["--budget", "10", "--cost-budget", "3"], "invalid --budget"),
                         ([], "invalid --cost-budget"),
                         (["--cost-budget", "1"], "initial design")]:
        proc = bayesal("run", "--store", str(tmp_path / "s.db"), "--problem", "heat-mf", *args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("bayesal: error:"), proc.stderr
        assert needle in lines[0] and "Traceback" not in proc.stderr
        assert not (tmp_path / "s.db").exists()


def test_in_memory_multifidelity_run_spends_the_cost_budget():
    from bayesal import run_campaign

    learner, records = run_campaign("forrester-mf", cost_budget=2.6, q=2, n_candidates=32, progress=False)
    assert 2.6 - 0.1 - 1e-9 < records[-1]["cumulative_cost"] <= 2.6 + 1e-9
    assert records[-1]["counts"] == learner.counts() and records[-1]["rmse"] is not None


@pytest.mark.slow
def test_heat_mf_campaign_killed_several_times_spends_exactly_its_cost_budget(tmp_path):
    args = ["--problem", "heat-mf", "--cost-budget", "2.8", "-q", "2", "--n-candidates", "64", "--seed", "3",
            "--quiet"]
    reference = tmp_path / "reference.db"
    proc = bayesal("run", "--store", str(reference), *args)
    assert proc.returncode == 0, proc.stderr

    path = tmp_path / "killed.db"
    rng = random.Random(20261122)
    kills = 0
    while kills < 4:
        before = n_claims(path)
        command = ("resume", "--store", str(path), "--quiet") if path.exists() else ("run", "--store", str(path), *args)
        proc = popen(*command)
        deadline = time.monotonic() + 120
        while n_claims(path) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.4))  # a random moment after its first claim: fitting, choosing, storing
        assert proc.poll() is None, "the campaign finished before it was killed four times"
        os.kill(proc.pid, signal.SIGKILL)
        kills += 1
        proc.wait(timeout=60)
        proc.stderr.close()
    assert len([e for e in stored(path) if e[2] == "done"]) < len(stored(reference))
    proc = bayesal("resume", "--store", str(path), "--quiet")
    assert proc.returncode == 0, proc.stderr

    got = check_spending(path, 2.8, HEAT_COSTS)
    assert got == check_spending(reference, 2.8, HEAT_COSTS)  # the uninterrupted run, experiment for experiment
    proc = bayesal("report", "--store", str(path), "--out", str(tmp_path / "report"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "report" / "index.html").read_text()
    assert '<img src="cost_curve.png"' in page and (tmp_path / "report" / "cost_curve.png").is_file()
