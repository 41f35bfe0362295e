"""End-to-end statistical checks with fixed seeds, judged by paired one-sided sign tests over
seeds (tests/paired.py): a method no better than its baseline would pass each one with the
probability stated in its docstring, always below 5 %.

Branin: uncertainty sampling and greedy joint-information (D-optimal) batches reach a lower
test RMSE than Random at equal budget, on the box; on a pool, greedy joint-information batches
beat the top-k of the same marginal score (which crowds a batch into one region).

Hartmann-6: both criteria reduce the model's uncertainty over the test distribution faster than
Random (what they optimise), but *not* its RMSE: in six dimensions they put almost every point
on the boundary of the cube, where the function is flat (MacKay's ALM boundary bias; Cohn 1996,
"Neural network exploration using optimal experiment design"). We measured this with learned
and with fixed good hyperparameters alike; the RMSE comparison on Hartmann-6 belongs to the
integrated-variance criteria, which weigh uncertainty by the test distribution.
"""

import numpy as np
import pytest
import torch

from bayesal import ActiveLearner, make_problem

from paired import assert_wins

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _campaign(problem_name, strategy, seed, budget, pool_size=None, initial=None, q=5, selector="auto"):
    problem = make_problem(problem_name, seed=seed)
    space = problem.space if pool_size is None else problem.space.to_pool(pool_size, seed=seed)
    learner = ActiveLearner(space, acquisition=strategy, selector=selector, seed=seed, test_set=problem.test_set())
    records = learner.run(problem, budget=budget, q=q, initial=initial, progress=False)
    return learner, records


BRANIN_SEEDS = range(8)


@pytest.fixture(scope="module")
def branin_box_rmse():
    return {s: [_campaign("branin", s, seed, budget=30)[1][-1]["rmse"] for seed in BRANIN_SEEDS]
            for s in ("random", "max-variance", "joint-information")}


@pytest.mark.parametrize("strategy", ["max-variance", "joint-information"])
def test_branin_box_variance_strategies_beat_random_on_rmse(branin_box_rmse, strategy):
    """Lower final RMSE than Random (30 labels, q = 5, on the box) on at least 7 of 8 paired
    seeds: false-pass rate for a method no better than Random 9/256 = 3.5 %. Measured when
    written: 8 of 8, mean RMSE about 3 against about 13 for Random. About 50 s for the fixture."""
    assert_wins(branin_box_rmse[strategy], branin_box_rmse["random"], 7, f"{strategy} vs Random on the Branin box")


def test_greedy_joint_information_batches_beat_topk_max_variance():
    """Greedy joint-information batches (q = 10) against the top-k of the posterior variance, on
    a 500-point Branin pool, 40 labels: lower final RMSE on at least 10 of 12 paired seeds;
    false-pass rate for a selector no better than top-k 79/4096 = 1.9 %. Measured when written:
    12 of 12 (mean RMSE 1.9 against 4.1). About 25 s."""
    ours, topk = [], []
    for seed in range(12):
        ours.append(_campaign("branin", "joint-information", seed, 40, pool_size=500, initial=10, q=10)[1][-1]["rmse"])
        topk.append(_campaign("branin", "max-variance", seed, 40, pool_size=500, initial=10, q=10,
                              selector="topk")[1][-1]["rmse"])
    assert_wins(ours, topk, 10, "greedy joint information vs top-k max variance")


HARTMANN_SEEDS = range(5)


@pytest.fixture(scope="module")
def hartmann_runs():
    problem = make_problem("hartmann6")
    X_test = problem.test_set()[0]
    out = {}
    for strategy in ("random", "max-variance", "joint-information"):
        rows = []
        for seed in HARTMANN_SEEDS:
            learner, records = _campaign("hartmann6", strategy, seed, budget=60, pool_size=2000, initial=10)
            std = learner.posterior(X_test).variance.sqrt()
            boundary = float(((learner.X < 0.1) | (learner.X > 0.9)).any(-1).double().mean())
            rows.append({"max_std": float(std.max()), "mean_std": records[-1]["mean_std"], "boundary": boundary})
        out[strategy] = {k: [r[k] for r in rows] for k in rows[0]}
    return out


@pytest.mark.parametrize("strategy", ["max-variance", "joint-information"])
def test_hartmann6_variance_strategies_reduce_test_uncertainty_faster_than_random(hartmann_runs, strategy):
    """Lower maximum and lower mean posterior standard deviation over the test set than Random
    on all 5 paired seeds (60 labels, 2,000-point pool): false-pass rate for a method no better
    than Random 1/32 = 3.1 % for each of the two criteria. About 100 s for the fixture."""
    ours, random = hartmann_runs[strategy], hartmann_runs["random"]
    assert_wins(ours["max_std"], random["max_std"], 5, f"{strategy} vs Random, max test std")
    assert_wins(ours["mean_std"], random["mean_std"], 5, f"{strategy} vs Random, mean test std")


def test_hartmann6_uncertainty_sampling_is_drawn_to_the_boundary(hartmann_runs):
    """More labelled points within 0.1 of the cube's boundary than Random, by more than 0.1 in
    the mean and on all 5 paired seeds (false-pass rate 1/32 = 3.1 %)."""
    ours, random = hartmann_runs["max-variance"]["boundary"], hartmann_runs["random"]["boundary"]
    assert np.mean(ours) > np.mean(random) + 0.1
    assert_wins([-b for b in ours], [-b for b in random], 5, "boundary share, max variance vs Random")


def test_greedy_joint_information_equals_greedy_max_variance_on_a_pool():
    """With homoskedastic noise, ½ log(1 + σ²/σ_n²) is monotone in σ², so the two greedy batches coincide."""
    a, _ = _campaign("branin", "max-variance", 0, budget=20, pool_size=500)
    b, _ = _campaign("branin", "joint-information", 0, budget=20, pool_size=500)
    assert torch.equal(a.X, b.X)
