"""Stored campaigns: resume, failing oracles, timeouts, retries, process pools, asynchronous mode."""

import pytest
import torch

from bayesal import ActiveLearner, Campaign, InvalidInput, OracleFailed, Pool, StoreError, run_campaign
from bayesal.loop import ProcessExecutor
from bayesal.problems.analytic import forrester

import campaign_oracles

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SETTINGS = dict(problem="forrester", model="exact-gp", strategy="max-variance", budget=10, q=2, initial=3, seed=4)


def trace(store):
    """What must not depend on interruptions: each experiment's step, slot, inputs and outputs."""
    return [(e.step, e.slot, e.state, e.x, e.pool_index, e.y) for e in store.experiments()]


def curve(store):
    return [(r["n_labels"], r["rmse"], r["nlpd"]) for r in store.records()]


def test_an_interrupted_campaign_resumes_to_the_uninterrupted_result(tmp_path):
    with Campaign.create(tmp_path / "a.db", **SETTINGS) as whole:
        records = whole.run()
        reference, reference_curve = trace(whole.store), curve(whole.store)
    assert [r["n_labels"] for r in records] == [3, 5, 7, 9, 10]

    calls = {"n": 0}

    def interrupted(X):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt  # not an oracle failure: the process stops mid-experiment
        return forrester(X)

    with Campaign.create(tmp_path / "b.db", oracle=interrupted, **SETTINGS) as first:
        with pytest.raises(KeyboardInterrupt):
            first.run()
        assert first.store.counts()["running"] == 1 and first.store.counts()["done"] == 5
    with pytest.raises(StoreError, match="Python oracle"):
        Campaign.resume(tmp_path / "b.db")
    with Campaign.resume(tmp_path / "b.db", oracle=forrester) as resumed:
        resumed.run()
        assert trace(resumed.store) == reference
        assert curve(resumed.store) == reference_curve
        assert [a for e, a, _ in resumed.store.claims() if e == 6] == [1, 2]  # the interrupted one ran again


@pytest.fixture(autouse=True)
def fresh_call_counter():
    """The in-process oracles of campaign_oracles count their calls: every test starts at 0,
    whatever ran before it (the counts below are of this test's calls)."""
    campaign_oracles._calls["n"] = 0
    yield


def test_an_oracle_failing_one_call_in_five_still_completes_the_budget(tmp_path):
    with Campaign.create(tmp_path / "s.db", oracle=campaign_oracles.every_fifth_call_fails, **SETTINGS) as c:
        c.run()
        counts = c.store.counts()
        failed = c.store.experiments("failed")
    assert counts["done"] == 10 and counts["pending"] == counts["running"] == 0
    assert len(failed) == 2  # calls 5 and 10 of 12
    assert all("RuntimeError: simulated failure on call" in e.error for e in failed)
    campaign_oracles._calls["n"] = 0
    with Campaign.create(tmp_path / "r.db", oracle=campaign_oracles.every_fifth_call_fails, retries=1,
                         **SETTINGS) as c:
        c.run()
        assert c.store.counts()["done"] == 10 and c.store.counts()["failed"] == 0
        retried = [e for e in c.store.experiments() if e.attempts == 2]
        assert len(retried) == 2 and all("simulated failure" in e.error for e in retried)


def test_nan_hang_and_bad_shape_are_recorded_as_failures(tmp_path):
    with Campaign.create(tmp_path / "s.db", oracle=campaign_oracles.misbehaves, timeout=1.0,
                         **{**SETTINGS, "budget": 6}) as c:
        c.run()
        failed = {e.id: e.error for e in c.store.experiments("failed")}
        assert c.store.counts()["done"] == 6
    assert "NaN output" in failed[3]
    assert "timed out after 1 s" in failed[5]
    assert "unusable label: 2 rows of labels for one point" in failed[7]


def test_too_many_failures_stop_with_the_data_kept(tmp_path):
    def always(X):
        raise ValueError("sensor offline")

    with Campaign.create(tmp_path / "s.db", oracle=always, max_failures=4, **SETTINGS) as c:
        with pytest.raises(OracleFailed, match="4 experiments failed .*sensor offline"):
            c.run()
        assert c.store.counts()["failed"] == 4


def test_an_oracle_may_report_its_own_cost(tmp_path):
    with Campaign.create(tmp_path / "s.db", oracle=campaign_oracles.with_cost, **{**SETTINGS, "budget": 4}) as c:
        c.run()
        exps = c.store.experiments("done")
    assert all(e.cost == pytest.approx(10 * e.x[0]) for e in exps)


@pytest.mark.slow
def test_process_pool_survives_a_dying_worker_and_failing_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("BAYESAL_TEST_MARKER", str(tmp_path / "died"))
    with ProcessExecutor(workers=2) as pool:
        with Campaign.create(tmp_path / "s.db", oracle=campaign_oracles.dies_once, executor=pool,
                             **SETTINGS) as c:
            c.run()
            exps = c.store.experiments()
        assert (tmp_path / "died").exists()
        assert sum(e.state == "done" for e in exps) == 10
        assert any(e.attempts >= 2 and "worker died" in (e.error or "") for e in exps)
        with Campaign.create(tmp_path / "f.db", oracle=campaign_oracles.every_fifth_call_fails, executor=pool,
                             **SETTINGS) as c:
            c.run()
            assert c.store.counts()["done"] == 10
            workers = {e.worker for e in c.store.experiments()}
    assert len({w for w in workers if w}) == 1  # the campaign process claims; workers run the tasks


def test_asynchronous_campaign_conditions_on_pending_points(tmp_path):
    with ProcessExecutor(workers=2) as pool:
        with Campaign.create(tmp_path / "s.db", executor=pool, asynchronous=True, **SETTINGS) as c:
            c.run()
            exps = c.store.experiments()
            steps = c.store.steps()
    assert sum(e.state == "done" for e in exps) == 10 and len(exps) == 10
    assert steps[0]["size"] == 3 and all(s["size"] == 1 for s in steps[1:])
    xs = [e.x[0] for e in exps]
    assert len(set(xs)) == len(xs)


def test_ask_with_pending_points_equals_the_greedy_batch():
    """Conditioning the surrogate on pending points is the same rank-1 update the greedy selector
    makes, so asking one point at a time with the others pending rebuilds the greedy batch."""
    X = torch.linspace(0, 1, 200, dtype=torch.float64)[:, None]
    gen = torch.Generator().manual_seed(0)
    train = torch.randperm(200, generator=gen)[:6]

    def learner():
        lr = ActiveLearner(Pool(X), acquisition="max-variance", seed=0)
        lr.tell(None, forrester(X[train]), indices=train)
        return lr

    batch = learner().ask(3)
    one = learner()
    chosen = []
    for _ in range(3):
        pending = X[torch.tensor(chosen, dtype=torch.long)] if chosen else None
        sel = one.ask(1, pending=pending)
        chosen.append(int(sel.indices[0]))
        one.space.mark_labelled(sel.indices)
    assert chosen == batch.indices.tolist()


def test_run_campaign_with_a_store_resumes(tmp_path):
    path = tmp_path / "s.db"
    learner, records = run_campaign("forrester", budget=5, q=2, initial=3, store=path, progress=False)
    assert learner.n_labels == 5 and [r["n_labels"] for r in records] == [3, 5]
    learner, again = run_campaign("forrester", budget=5, store=path, progress=False)  # already complete
    assert again == records


@pytest.mark.parametrize("settings, needle", [
    ({"budget": 0}, "budget"),
    ({"strategy": "ucb"}, "strategy"),
    ({"colour": "red"}, "colour"),
    ({"initial": 50}, "initial"),
    ({"timeout": -1}, "timeout"),
    ({"problem": "nope"}, "problem"),
])
def test_bad_settings_fail_before_a_store_is_written(tmp_path, settings, needle):
    with pytest.raises(InvalidInput, match=needle):
        Campaign.create(tmp_path / "s.db", **{**SETTINGS, **settings})
    assert not (tmp_path / "s.db").exists()
