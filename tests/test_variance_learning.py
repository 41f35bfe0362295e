"""Integrated variance reduction (IVR) against Random, judged by a paired one-sided sign test
over seeds (tests/paired.py): an acquisition no better than Random would pass with the
probability stated in the test's docstring, below 5 %.

The real-data comparisons (UCI concrete and airfoil, Hartmann-6, 100 labels) are in
benchmarks/learning_curves.py with paired log-RMSE ratios over many seeds: their effect (about
10 % in RMSE) needs more paired seeds than a test can afford (about 12 s per run).
"""

import pytest

from bayesal import ActiveLearner, IntegratedVarianceReduction, make_problem

from paired import assert_wins

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _final_rmse(problem_name, strategy, seed, budget, pool_size):
    problem = make_problem(problem_name, seed=seed)
    space = problem.space.to_pool(pool_size, seed=seed)
    acquisition = IntegratedVarianceReduction(seed=seed) if strategy == "ivr" else strategy
    learner = ActiveLearner(space, acquisition=acquisition, seed=seed, test_set=problem.test_set())
    return learner.run(problem, budget=budget, q=5, initial=10, progress=False)[-1]["rmse"]


def test_branin_pool_integrated_variance_beats_random():
    """Greedy IVR batches (q = 5) against Random on a 500-point Branin pool, 30 labels: lower
    final RMSE on at least 10 of 12 paired seeds; false-pass rate for an acquisition no better
    than Random 79/4096 = 1.9 %. Measured when written: 12 of 12 (mean RMSE 4.8 against 11.8).
    About 20 s."""
    seeds = range(12)
    ivr = [_final_rmse("branin", "ivr", s, 30, 500) for s in seeds]
    random = [_final_rmse("branin", "random", s, 30, 500) for s in seeds]
    assert_wins(ivr, random, 10, "IVR vs Random on a Branin pool")
