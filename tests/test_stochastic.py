"""Stochastic batch acquisition: sampling frequencies match the target distribution (chi-square,
fixed seeds), batches are drawn without replacement, and partial pool scoring maps indices back."""

import itertools

import pytest
import torch
from scipy import stats

from bayesal import Pool, select
from bayesal.acquisition import BALD, MaxVariance, Random
from bayesal.selection import StochasticBatch, gumbel_top_k, sampling_log_weights
from bayesal.errors import InvalidInput
from bayesal.selection import select_stochastic, select_topk

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SCORES = torch.tensor([0.05, 0.2, 0.4, 0.8, 1.6], dtype=torch.float64)


def _target(mode, beta):
    s = SCORES
    if mode == "power":
        w = s**beta
    elif mode == "softmax":
        w = torch.exp(beta * s)
    else:
        ranks = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64)
        w = ranks ** (-beta)
    return w / w.sum()


@pytest.mark.parametrize("mode,beta", [("power", 1.0), ("power", 2.0), ("softmax", 3.0), ("softrank", 1.0)])
def test_first_draw_frequencies_match_the_target_distribution(mode, beta):
    gen = torch.Generator().manual_seed(123)
    logw = sampling_log_weights(SCORES, mode, beta)
    draws = 6000
    counts = torch.bincount(torch.stack([gumbel_top_k(logw, 1, gen)[0] for _ in range(draws)]), minlength=5)
    expected = _target(mode, beta) * draws
    p = stats.chisquare(counts.numpy(), expected.numpy()).pvalue
    assert p > 1e-3, (counts, expected)
    # the same distribution through the wrapper
    assert torch.allclose(StochasticBatch(BALD(), mode, beta).probabilities(SCORES), _target(mode, beta))


def test_pairs_follow_sequential_sampling_without_replacement():
    """P(first i, then j) = p_i p_j / (1 − p_i), for every ordered pair."""
    gen = torch.Generator().manual_seed(7)
    p = _target("power", 1.0)
    logw = sampling_log_weights(SCORES, "power", 1.0)
    draws = 8000
    pairs = list(itertools.permutations(range(5), 2))
    where = {pair: i for i, pair in enumerate(pairs)}
    counts = torch.zeros(len(pairs))
    for _ in range(draws):
        i, j = gumbel_top_k(logw, 2, gen).tolist()
        assert i != j
        counts[where[(i, j)]] += 1
    expected = torch.tensor([float(p[i] * p[j] / (1 - p[i])) for i, j in pairs]) * draws
    assert stats.chisquare(counts.numpy(), expected.numpy()).pvalue > 1e-3


def test_temperature_limits_and_scale_invariance_of_softrank():
    uniform = torch.softmax(sampling_log_weights(SCORES, "power", 0.0), 0)
    assert torch.allclose(uniform, torch.full((5,), 0.2, dtype=torch.float64))
    gen = torch.Generator().manual_seed(0)
    assert set(gumbel_top_k(sampling_log_weights(SCORES, "softmax", 1e4), 2, gen).tolist()) == {3, 4}
    assert torch.allclose(sampling_log_weights(SCORES, "softrank", 1.5), sampling_log_weights(10 * SCORES + 3, "softrank", 1.5))


def test_bad_stochastic_inputs_are_rejected():
    with pytest.raises(InvalidInput, match="non-negative"):
        sampling_log_weights(torch.tensor([0.5, -1.0]), "power", 1.0)
    with pytest.raises(InvalidInput, match="mode"):
        StochasticBatch(BALD(), mode="boltzmann")
    with pytest.raises(InvalidInput, match="temperature"):
        StochasticBatch(BALD(), temperature=-1.0)
    with pytest.raises(InvalidInput, match="finite score"):
        gumbel_top_k(torch.tensor([0.0, -float("inf")]), 2)


def _pool_and_gp(gp_2d):
    gen = torch.Generator().manual_seed(3)
    pool = Pool(torch.rand(300, 2, generator=gen, dtype=torch.float64))
    pool.mark_labelled(torch.arange(0, 300, 7))
    return pool


def test_partial_pool_scoring_maps_indices_back(gp_2d):
    pool = _pool_and_gp(gp_2d)
    sampler = StochasticBatch(mode="softmax", temperature=1e6, subset_size=40)
    sel = select(gp_2d, MaxVariance(), pool, 5, selector=sampler, seed=11)
    assert len(set(sel.indices.tolist())) == 5
    assert not bool(pool.labelled[sel.indices].any())
    assert torch.equal(sel.X, pool.X[sel.indices])
    # the reported scores are the scores of exactly those pool points
    direct = MaxVariance().score(gp_2d.posterior(pool.X[sel.indices]))
    assert torch.allclose(sel.scores, direct, rtol=1e-10)
    # at a huge temperature the batch is the top 5 of the scored subset, not of the whole pool
    full_top = select_topk(gp_2d, MaxVariance(), pool, 5)
    assert set(sel.indices.tolist()) != set(full_top.indices.tolist())
    # the same seed gives the same batch, another seed another subset
    assert torch.equal(select(gp_2d, MaxVariance(), pool, 5, selector=sampler, seed=11).indices, sel.indices)
    assert not torch.equal(select(gp_2d, MaxVariance(), pool, 5, selector=sampler, seed=12).indices, sel.indices)
    # the deprecated form, StochasticBatch(acquisition) as the acquisition, gives the same batch
    with pytest.warns(DeprecationWarning, match="selector"):
        old = select(gp_2d, StochasticBatch(MaxVariance(), mode="softmax", temperature=1e6, subset_size=40), pool, 5,
                     seed=11)
    assert torch.equal(old.indices, sel.indices)


def test_whole_pool_at_huge_temperature_is_top_k(gp_2d):
    pool = _pool_and_gp(gp_2d)
    sel = select_stochastic(gp_2d, MaxVariance(), pool, 4, seed=0, selector=StochasticBatch(mode="softmax", temperature=1e6))
    top = select_topk(gp_2d, MaxVariance(), pool, 4)
    assert set(sel.indices.tolist()) == set(top.indices.tolist())
    # selector="stochastic" wraps a plain acquisition with power sampling; Random needs no model
    assert len(select(gp_2d, MaxVariance(), pool, 4, selector="stochastic", seed=0)) == 4
    assert len(select(None, Random(), pool, 4, selector=StochasticBatch(), seed=0)) == 4


def test_stochastic_selection_frequencies_on_a_pool(gp_2d):
    """q = 1 from a 6-point pool: the frequency of each point matches p ∝ variance^β."""
    gen = torch.Generator().manual_seed(5)
    pool = Pool(torch.rand(6, 2, generator=gen, dtype=torch.float64))
    var = MaxVariance().score(gp_2d.posterior(pool.X))
    p = var**2 / (var**2).sum()
    sampler = StochasticBatch(mode="power", temperature=2.0)
    draws = 1500
    counts = torch.bincount(torch.cat([select(gp_2d, MaxVariance(), pool, 1, selector=sampler, seed=s).indices
                                       for s in range(draws)]), minlength=6)
    assert stats.chisquare(counts.numpy(), (p * draws).numpy()).pvalue > 1e-3
