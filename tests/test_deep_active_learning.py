"""End to end, over 5 seeds at equal labels: MC dropout with BALD and with BatchBALD reaches a
higher test accuracy than Random on scikit-learn's digits; a deep kernel GP with BALD reaches a
lower test RMSE than Random on the UCI yacht set (skipped when the data folder is absent).

Sizes are kept small (a 64-unit MLP, 120 labels; yacht with 60 labels) so each test stays
within about a minute on one thread; the measured means are printed with ``-s``.
"""

import numpy as np
import pytest
import torch

from bayesal import BALD, ActiveLearner, BatchBALD, DeepKernelGP, MCDropoutNet, Pool, Random
from bayesal.problems.data import load_uci, uci_available

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SEEDS = range(5)


def _digits_run(acquisition, seed):
    sklearn = pytest.importorskip("sklearn.datasets")
    X, y = sklearn.load_digits(return_X_y=True)
    X = X / 16.0
    perm = np.random.default_rng(1000 + seed).permutation(len(X))
    test, pool_idx = perm[:500], perm[500:]
    pool = Pool(X[pool_idx], y[pool_idx].astype(float), bounds=[[0.0] * 64, [1.0] * 64])
    net = MCDropoutNet(num_classes=10, hidden=(64,), dropout=0.25, num_samples=20, max_epochs=150,
                       batch_size=256, holdout=0.0, lr=3e-3, seed=seed)
    learner = ActiveLearner(pool, surrogate=net, acquisition=acquisition, seed=seed, test_set=(X[test], y[test]))
    records = learner.run(budget=120, q=10, initial=20, progress=False)
    assert records[-1]["n_labels"] == 120
    return records[-1]["accuracy"]


@pytest.fixture(scope="module")
def digits_random():
    return np.mean([_digits_run(Random(), s) for s in SEEDS])


@pytest.mark.parametrize("make", [BALD, BatchBALD], ids=["bald", "batchbald"])
def test_digits_mc_dropout_beats_random(make, digits_random):
    ours = np.mean([_digits_run(make(), s) for s in SEEDS])
    print(f"digits, 120 labels, mean test accuracy over 5 seeds: {ours:.3f} vs Random {digits_random:.3f}")
    assert ours > digits_random


def _yacht_run(acquisition, seed):
    problem = load_uci("yacht", split=seed)
    X_test, y_test = problem.test_set()
    model = DeepKernelGP(hidden=(32, 32), features=4, max_epochs=150, holdout=0.0, seed=seed)
    learner = ActiveLearner(problem.space, surrogate=model, acquisition=acquisition, seed=seed,
                            test_set=(X_test, y_test))
    records = learner.run(budget=60, q=5, initial=10, progress=False)
    return np.mean([r["rmse"] for r in records[-3:]])  # the last three steps, 50 to 60 labels


@pytest.mark.skipif(not uci_available("yacht"), reason="UCI data folder not found")
def test_uci_yacht_deep_kernel_gp_with_bald_beats_random():
    torch.manual_seed(0)
    ours = np.mean([_yacht_run(BALD(), s) for s in SEEDS])
    random = np.mean([_yacht_run(Random(), s) for s in SEEDS])
    print(f"yacht, 50-60 labels, mean test RMSE over 5 splits: BALD {ours:.3f} vs Random {random:.3f}")
    assert ours < random
