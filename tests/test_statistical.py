"""End-to-end statistical checks with fixed seeds (5 seeds each, batches of q = 5).

Branin: uncertainty sampling and greedy joint-information (D-optimal) batches reach a lower
test RMSE than Random at equal budget.

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

pytestmark = pytest.mark.slow
SEEDS = range(5)


def _campaign(problem_name, strategy, seed, budget, pool_size=None, initial=None):
    problem = make_problem(problem_name, seed=seed)
    space = problem.space if pool_size is None else problem.space.to_pool(pool_size, seed=seed)
    learner = ActiveLearner(space, acquisition=strategy, seed=seed, test_set=problem.test_set())
    records = learner.run(problem, budget=budget, q=5, initial=initial, progress=False)
    return learner, records


@pytest.fixture(scope="module")
def branin_final_rmse():
    return {s: [_campaign("branin", s, seed, budget=30)[1][-1]["rmse"] for seed in SEEDS]
            for s in ("random", "max-variance", "joint-information")}


@pytest.mark.parametrize("strategy", ["max-variance", "joint-information"])
def test_branin_variance_strategies_beat_random_on_rmse(branin_final_rmse, strategy):
    ours, random = np.mean(branin_final_rmse[strategy]), np.mean(branin_final_rmse["random"])
    assert ours < random, f"{strategy}: mean RMSE {ours:.3f} vs Random {random:.3f}"
    # and not by luck of one seed: better on most seeds
    wins = sum(o < r for o, r in zip(branin_final_rmse[strategy], branin_final_rmse["random"]))
    assert wins >= 4


@pytest.fixture(scope="module")
def hartmann_runs():
    problem = make_problem("hartmann6")
    X_test = problem.test_set()[0]
    out = {}
    for strategy in ("random", "max-variance", "joint-information"):
        rows = []
        for seed in SEEDS:
            learner, records = _campaign("hartmann6", strategy, seed, budget=60, pool_size=2000, initial=10)
            std = learner.posterior(X_test).variance.sqrt()
            boundary = float(((learner.X < 0.1) | (learner.X > 0.9)).any(-1).double().mean())
            rows.append({"max_std": float(std.max()), "mean_std": records[-1]["mean_std"], "boundary": boundary})
        out[strategy] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return out


@pytest.mark.parametrize("strategy", ["max-variance", "joint-information"])
def test_hartmann6_variance_strategies_reduce_test_uncertainty_faster_than_random(hartmann_runs, strategy):
    ours, random = hartmann_runs[strategy], hartmann_runs["random"]
    assert ours["max_std"] < random["max_std"]
    assert ours["mean_std"] < random["mean_std"]


def test_hartmann6_uncertainty_sampling_is_drawn_to_the_boundary(hartmann_runs):
    assert hartmann_runs["max-variance"]["boundary"] > hartmann_runs["random"]["boundary"] + 0.1


def test_greedy_joint_information_equals_greedy_max_variance_on_a_pool():
    """With homoskedastic noise, ½ log(1 + σ²/σ_n²) is monotone in σ², so the two greedy batches coincide."""
    a, _ = _campaign("branin", "max-variance", 0, budget=20, pool_size=500)
    b, _ = _campaign("branin", "joint-information", 0, budget=20, pool_size=500)
    assert torch.equal(a.X, b.X)
