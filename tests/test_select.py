"""Selectors: greedy conditioning against brute force, chunking invariance, box constraints."""


import pytest
import torch

from bayesal import BALD, Box, ExactGP, JointInformation, MaxVariance, Pool, Random
from bayesal.selection import select, select_continuous, select_greedy, select_topk
from bayesal.settings import memory_budget


def _pool(n, d, seed):
    return Pool(torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64),
                bounds=[[0.0] * d, [1.0] * d])


def _brute_force_greedy_logdet(gp, X, q):
    """Greedy on ½ log det(I + Σ_S / σ²) recomputed from scratch for every candidate set."""
    C = gp.covariance(X, X)  # [m, N, N]
    noise = gp.noise_variance
    chosen = []
    for _ in range(q):
        best, best_i = -float("inf"), None
        for i in range(X.shape[0]):
            if i in chosen:
                continue
            S = chosen + [i]
            value = sum(0.5 * torch.logdet(torch.eye(len(S), dtype=torch.float64) + C[o][S][:, S] / noise[o])
                        for o in range(C.shape[0]))
            if value > best:
                best, best_i = float(value), i
        chosen.append(best_i)
    return chosen


def test_greedy_logdet_equals_brute_force(gp_2d):
    pool = _pool(70, 2, 11)
    selection = select_greedy(gp_2d, JointInformation(), pool, 6)
    assert selection.indices.tolist() == _brute_force_greedy_logdet(gp_2d, pool.X, 6)
    # the greedy gains add up to the joint objective of the chosen batch
    S = selection.indices
    joint = JointInformation().joint_score(None, gp_2d.covariance(pool.X[S], pool.X[S])[None], gp_2d.noise_variance)
    assert torch.isclose(selection.scores.sum(), joint.squeeze())


def test_greedy_logdet_equals_brute_force_multi_output():
    X = torch.rand(25, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    Y = torch.stack([torch.sin(5 * X[:, 0]), torch.cos(3 * X[:, 1]) + 0.1 * X[:, 0]], -1)
    gp = ExactGP().fit(X, Y, bounds=[[0.0, 0.0], [1.0, 1.0]])
    pool = _pool(40, 2, 3)
    assert select_greedy(gp, JointInformation(), pool, 4).indices.tolist() == _brute_force_greedy_logdet(gp, pool.X, 4)


def test_greedy_max_variance_equals_refitting_free_recomputation_with_condition_on(gp_2d):
    """Each greedy pick is the max-variance point of the model conditioned on the earlier picks."""
    pool = _pool(50, 2, 8)
    selection = select_greedy(gp_2d, MaxVariance(), pool, 5)
    model, expected = gp_2d, []
    for _ in range(5):
        var = model.posterior(pool.X).variance[:, 0]
        var[expected] = -1.0
        expected.append(int(torch.argmax(var)))
        model = gp_2d.condition_on(pool.X[expected])
    assert selection.indices.tolist() == expected


def test_greedy_never_repeats_and_skips_labelled(gp_2d):
    pool = _pool(30, 2, 1)
    pool.mark_labelled(list(range(0, 30, 2)))
    selection = select_greedy(gp_2d, MaxVariance(), pool, 15)
    chosen = selection.indices.tolist()
    assert len(set(chosen)) == 15 and all(i % 2 == 1 for i in chosen)


def test_greedy_without_cached_features_gives_the_same_batch(gp_2d):
    pool = _pool(300, 2, 4)
    cached = select_greedy(gp_2d, BALD(), pool, 8)
    with memory_budget(2048):  # too small to cache W: columns are recomputed chunk by chunk
        streamed = select_greedy(gp_2d, BALD(), pool, 8)
    assert cached.indices.tolist() == streamed.indices.tolist()
    assert torch.allclose(cached.scores, streamed.scores)


def test_topk_is_chunk_invariant_and_sorted(gp_2d):
    pool = _pool(1000, 2, 2)
    whole = select_topk(gp_2d, MaxVariance(), pool, 7, chunk_size=5000)
    parts = select_topk(gp_2d, MaxVariance(), pool, 7, chunk_size=13)
    assert whole.indices.tolist() == parts.indices.tolist()
    var = gp_2d.posterior(pool.X).variance[:, 0]
    assert whole.indices.tolist() == torch.topk(var, 7).indices.tolist()
    assert bool((whole.scores[:-1] >= whole.scores[1:]).all())


def test_random_topk_is_seeded_and_distinct():
    pool = _pool(100, 1, 0)
    a = select_topk(None, Random(), pool, 10, seed=5, chunk_size=17)
    b = select_topk(None, Random(), pool, 10, seed=5, chunk_size=17)
    assert a.indices.tolist() == b.indices.tolist() and len(set(a.indices.tolist())) == 10


@pytest.mark.parametrize("acquisition, q", [(MaxVariance(), 1), (MaxVariance(), 3), (JointInformation(), 3),
                                            (BALD(), 2), (Random(), 4)])
def test_continuous_selection_is_inside_the_box(gp_2d, acquisition, q, monkeypatch):
    """The optimiser's own points, before the final clamp (a guard against rounding), are inside
    the box the selection was asked for, not the box the model was fitted on."""
    import bayesal.selection.continuous as continuous

    raw = []

    def recording(*args, **kwargs):
        X, v = optimize_acqf_botorch(*args, **kwargs)
        raw.append(X.detach().reshape(-1, 2).clone())
        return X, v

    optimize_acqf_botorch = continuous.optimize_acqf
    monkeypatch.setattr(continuous, "optimize_acqf", recording)
    box = Box([0.2, -1.0], [0.9, 0.5])  # deliberately not the box the model was fitted on
    selection = select_continuous(gp_2d, acquisition, box, q, seed=0, num_restarts=4, raw_samples=64)
    assert selection.X.shape == (q, 2)
    if acquisition.needs_posterior:
        assert raw, "the box was not optimised"
        lo, hi = box.bounds[0], box.bounds[1]
        for X in raw:
            assert bool(((X >= lo - 1e-12) & (X <= hi + 1e-12)).all()), X
    assert bool(box.contains(selection.X).all())


@pytest.mark.parametrize("acquisition", [MaxVariance(), BALD()])
def test_one_continuous_point_is_the_grid_maximum(gp_2d, acquisition):
    """With q = 1 both criteria increase with the posterior variance: the point chosen on a box
    that is not the model's has a variance at least the largest on a 61 × 61 grid of that box
    (up to 0.1 %: the optimiser may land between grid points, never far below them)."""
    box = Box([0.2, -1.0], [0.9, 0.5])
    x = select_continuous(gp_2d, acquisition, box, 1, seed=0, num_restarts=4, raw_samples=64).X
    g0, g1 = torch.meshgrid(torch.linspace(0.2, 0.9, 61, dtype=torch.float64),
                            torch.linspace(-1.0, 0.5, 61, dtype=torch.float64), indexing="ij")
    grid = torch.stack([g0.reshape(-1), g1.reshape(-1)], -1)
    best = float(gp_2d.posterior(grid).variance.max())
    assert float(gp_2d.posterior(x).variance) >= best * (1 - 1e-3)


def test_continuous_joint_batch_beats_random_batches(gp_2d):
    box = Box([0.0, 0.0], [1.0, 1.0])
    best = select_continuous(gp_2d, JointInformation(), box, 3, seed=0)
    value = lambda X: JointInformation().joint_score(None, gp_2d.covariance(X, X)[None], gp_2d.noise_variance)  # noqa: E731
    randoms = [float(value(box.sample(3, seed=s, method="uniform"))) for s in range(50)]
    assert float(value(best.X)) >= max(randoms) - 1e-6


def test_continuous_single_point_finds_the_pool_maximum_or_better(gp_1d):
    box = Box([0.0], [1.0])
    grid = torch.linspace(0, 1, 2001, dtype=torch.float64).unsqueeze(-1)
    best_on_grid = float(gp_1d.posterior(grid).variance.max())
    x = select_continuous(gp_1d, MaxVariance(), box, 1, seed=0).X
    assert float(gp_1d.posterior(x).variance) >= best_on_grid - 1e-9


def test_auto_selector_dispatch(gp_2d):
    pool = _pool(40, 2, 9)
    assert select(gp_2d, MaxVariance(), pool, 4).indices.tolist() == select_greedy(gp_2d, MaxVariance(), pool, 4).indices.tolist()
    assert select(gp_2d, MaxVariance(), pool, 4, selector="topk").indices.tolist() == select_topk(gp_2d, MaxVariance(), pool, 4).indices.tolist()
    assert select(gp_2d, MaxVariance(), Box([0, 0], [1, 1]), 2).indices is None
