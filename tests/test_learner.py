"""ActiveLearner: ask/tell, the run loop, its records, reproducibility and failing oracles."""

import math

import numpy as np
import pytest
import torch

from bayesal import ActiveLearner, Box, InvalidInput, OracleFailed, Pool, make_problem

FIELDS = {"step", "n_labels", "batch_size", "rmse", "nlpd", "mean_std", "fit_s", "acq_s", "oracle_s"}


def f(X):
    return torch.sin(3 * X[:, 0]) + X[:, 1] ** 2


def test_ask_tell_on_a_box():
    box = Box([0.0, 0.0], [2.0, 1.0])
    learner = ActiveLearner(box, acquisition="joint-information", seed=1)
    first = learner.ask(4)  # no data yet: a space-filling design
    assert first.X.shape == (4, 2) and first.indices is None and bool(box.contains(first.X).all())
    learner.tell(first.X, f(first.X))
    batch = learner.ask(3)
    assert batch.X.shape == (3, 2) and bool(box.contains(batch.X).all())
    learner.tell(batch.X.numpy(), f(batch.X).numpy())  # numpy accepted too
    assert learner.n_labels == 7


def test_ask_tell_on_a_pool_by_index_and_by_point():
    X = np.random.default_rng(0).random((50, 2))
    pool = Pool(X)
    learner = ActiveLearner(pool, acquisition="bald", seed=0)
    batch = learner.ask(3)
    learner.tell(None, f(batch.X), indices=batch.indices)
    assert pool.n_available == 47
    batch = learner.ask(2)
    assert not set(batch.indices.tolist()) & set(torch.nonzero(pool.labelled).flatten().tolist())
    learner.tell(batch.X, f(batch.X))  # indices found from the points
    assert pool.n_available == 45
    with pytest.raises(InvalidInput, match="already labelled"):
        learner.tell(None, [0.0], indices=batch.indices[:1])


def test_run_records_every_step():
    problem = make_problem("forrester")
    learner = ActiveLearner(problem.space, seed=0, test_set=problem.test_set())
    seen = []
    records = learner.run(problem, budget=10, q=3, initial=4, callback=seen.append, progress=False)
    assert [r["n_labels"] for r in records] == [4, 7, 10]
    assert [r["batch_size"] for r in records] == [4, 3, 3]
    assert seen == records == learner.history
    for r in records:
        assert FIELDS <= set(r) and all(math.isfinite(r[k]) for k in FIELDS)
    assert records[-1]["rmse"] < records[0]["rmse"]


def test_budget_is_exact_and_last_batch_is_cut():
    learner = ActiveLearner(Box([0.0], [1.0]), seed=0)
    records = learner.run(lambda X: X.sum(-1), budget=9, q=4, initial=2, progress=False)
    assert learner.n_labels == 9 and [r["batch_size"] for r in records] == [2, 4, 3]
    assert records[0]["rmse"] is None  # no test set, no metrics


def test_callback_returning_false_stops():
    learner = ActiveLearner(Box([0.0], [1.0]), seed=0)
    learner.run(lambda X: X.sum(-1), budget=20, q=2, initial=2, callback=lambda r: r["n_labels"] < 6, progress=False)
    assert learner.n_labels == 6


def test_same_seed_same_batches():
    def run(seed):
        problem = make_problem("branin")
        learner = ActiveLearner(problem.space.to_pool(300, seed=0), acquisition="joint-information", seed=seed)
        learner.run(problem, budget=12, q=4, progress=False)
        return learner.X

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_pool_with_hidden_labels_needs_no_oracle():
    rng = np.random.default_rng(0)
    X = rng.random((80, 2))
    pool = Pool(X, y=np.sin(4 * X[:, 0]))
    learner = ActiveLearner(pool, acquisition="max-variance", seed=0)
    learner.run(budget=10, q=5, progress=False)
    assert learner.n_labels == 10 and pool.n_available == 70
    idx = torch.nonzero(pool.labelled).flatten()
    assert torch.allclose(torch.sort(learner.y[:, 0]).values, torch.sort(pool.reveal(idx)[:, 0]).values)


def test_a_raising_oracle_keeps_the_data_collected():
    calls = {"n": 0}

    def flaky(X):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulator diverged")
        return f(X)

    learner = ActiveLearner(Box([0.0, 0.0], [1.0, 1.0]), seed=0)
    with pytest.raises(OracleFailed, match="RuntimeError: simulator diverged") as info:
        learner.run(flaky, budget=20, q=2, initial=3, progress=False)
    assert learner.n_labels == 5 and len(info.value.history) == 2
    assert "5 labels collected so far are kept" in str(info.value)
    learner.run(f, budget=2, q=2, progress=False)  # the campaign can continue
    assert learner.n_labels == 7


def test_an_oracle_returning_nan_is_a_clear_failure():
    learner = ActiveLearner(Box([0.0], [1.0]), seed=0)
    learner.run(lambda X: X.sum(-1), budget=3, progress=False)
    with pytest.raises(OracleFailed, match="unusable labels .*NaN"):
        learner.run(lambda X: torch.full((X.shape[0],), float("nan")), budget=2, progress=False)
    assert learner.n_labels == 3
    with pytest.raises(OracleFailed, match="expected 2 rows"):
        learner.run(lambda X: torch.zeros(5), budget=2, q=2, progress=False)


def test_oracle_may_take_indices():
    pool = Pool(np.linspace(0, 1, 30).reshape(-1, 1))
    got = []

    def label(X, indices):
        got.extend(indices.tolist())
        return X[:, 0] * 2

    ActiveLearner(pool, seed=0).run(label, budget=6, q=3, progress=False)
    assert sorted(got) == sorted(set(got)) and len(got) == 6


def test_bad_constructor_arguments():
    with pytest.raises(InvalidInput, match="space"):
        ActiveLearner([[0.0, 1.0]])
    with pytest.raises(InvalidInput, match="selector"):
        ActiveLearner(Box([0.0], [1.0]), selector="best")
    with pytest.raises(InvalidInput, match="model"):
        ActiveLearner(Box([0.0], [1.0]), surrogate="svm")
    with pytest.raises(InvalidInput, match="oracle"):
        ActiveLearner(Box([0.0], [1.0])).run(budget=2, progress=False)


def test_pending_pool_rows_are_not_proposed_and_can_be_told_later():
    """``ask(q, pending=rows)`` on a pool: the pending rows are not proposed again, the batch is
    chosen from the surrogate conditioned on them, and they are told later as usual."""
    gen = torch.Generator().manual_seed(2)
    X = torch.rand(60, 2, generator=gen, dtype=torch.float64)
    y = torch.sin(4 * X[:, 0]) + X[:, 1]
    learner = ActiveLearner(Pool(X, y), acquisition="max-variance", seed=0)
    learner.tell(None, y[:5], indices=torch.arange(5))
    first = learner.ask(3)
    second = learner.ask(3, pending=first.X)
    assert not set(first.indices.tolist()) & set(second.indices.tolist())
    # conditioning on the pending rows is what a greedy batch of 6 does: the same six points
    greedy = learner.ask(6)
    assert set(first.indices.tolist()) | set(second.indices.tolist()) == set(greedy.indices.tolist())
    assert not learner.space.labelled[first.indices].any()  # pending, not labelled
    learner.tell(first.X, y[first.indices], indices=first.indices)
    assert learner.n_labels == 8
    with pytest.raises(InvalidInput, match="pool"):
        learner.ask(2, pending=torch.full((1, 2), 5.0, dtype=torch.float64))  # not a pool row


def test_a_sample_surrogate_conditions_on_pending_points():
    """Regression (--async with sample surrogates ignored pending points): the same step asked
    with a pending point is chosen from the ensemble conditioned on it, so the proposal moves
    away from the pending point, whose conditioned variance has dropped."""
    from bayesal import DeepEnsemble

    gen = torch.Generator().manual_seed(0)
    X = torch.rand(16, 2, generator=gen, dtype=torch.float64)
    y = torch.sin(3 * X[:, 0]) * torch.cos(2 * X[:, 1])
    learner = ActiveLearner(Box([0.0, 0.0], [1.0, 1.0]), seed=0, acquisition="max-variance",
                            surrogate=DeepEnsemble(task="regression", num_members=6, hidden=(16, 16), max_epochs=60))
    learner.tell(X, y)
    first = learner.ask(1, step=3).X
    assert torch.allclose(learner.ask(1, step=3).X, first)  # the same step gives the same point
    moved = learner.ask(1, pending=first, step=3).X
    assert float((moved - first).norm()) > 0.05
    # at the pending point itself the conditioned variance is the Gaussian update v σ² / (v + σ²)
    v = learner.surrogate.posterior(first).variance
    noise = learner.surrogate.noise_variance
    conditioned = learner.surrogate.condition_on(first).posterior(first).variance
    assert torch.allclose(conditioned.double(), (v * noise / (v + noise)).double(), rtol=1e-4)
