"""BALD, BatchBALD and the uncertainty scores on class probabilities [K, N, C]: brute-force
references on tiny hand-made tensors, and agreement with baal and batchbald_redux where installed."""

import itertools
import math

import pytest
import torch

from bayesal import settings
from bayesal.acquisition import (
    BALD, BatchBALD, Entropy, LeastConfidence, Margin, VariationRatios, joint_entropy_exact, mutual_information,
)
from bayesal.errors import InvalidInput
from bayesal.posteriors import GaussianPosterior, SamplePosterior

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _probs(K, N, C, seed=0, scale=2.0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(scale * torch.randn(K, N, C, generator=gen, dtype=dtype), -1)


def _entropy(p):
    return -sum(x * math.log(x) for x in p if x > 0)


def _bald_brute(probs):
    K, N, C = probs.shape
    out = []
    for n in range(N):
        mean = [sum(float(probs[k, n, c]) for k in range(K)) / K for c in range(C)]
        cond = sum(_entropy([float(v) for v in probs[k, n]]) for k in range(K)) / K
        out.append(_entropy(mean) - cond)
    return torch.tensor(out, dtype=torch.float64)


def _joint_mi_brute(probs):
    """I(y_1..y_b; θ) by enumerating every label configuration with plain Python floats."""
    K, b, C = probs.shape
    h = 0.0
    for config in itertools.product(range(C), repeat=b):
        p = sum(math.prod(float(probs[k, i, c]) for i, c in enumerate(config)) for k in range(K)) / K
        h -= p * math.log(p) if p > 0 else 0.0
    cond = sum(_entropy([float(v) for v in probs[k, i]]) for k in range(K) for i in range(b)) / K
    return h - cond


HAND = torch.tensor([  # K = 2 model samples, N = 4 points, C = 3 classes
    [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.9, 0.05, 0.05]],
    [[0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.3, 0.2], [0.9, 0.05, 0.05]],
], dtype=torch.float64)


def test_bald_equals_brute_force_on_a_hand_made_tensor():
    scores = BALD().score(SamplePosterior(HAND, "classification"))
    assert torch.allclose(scores, _bald_brute(HAND), atol=1e-12)
    # full disagreement of two confident samples: log 2; agreement: zero
    assert scores[0] == pytest.approx(math.log(2), abs=1e-12)
    assert scores[1] == pytest.approx(0.0, abs=1e-12) and scores[3] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bald_matches_brute_force_in_chunks_and_both_dtypes(dtype):
    probs = _probs(7, 300, 5, dtype=dtype)
    probs[:, :10, 0] = 0.0  # exact zeros go through the safe path
    probs = probs / probs.sum(-1, keepdim=True)
    with settings.memory_budget(7 * 5 * 8 * 16):  # a few rows per chunk
        chunked = mutual_information(probs)
    whole = mutual_information(probs)
    assert chunked.dtype == dtype
    assert torch.allclose(chunked, whole, atol=1e-6)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(whole.double(), _bald_brute(probs.double()), atol=tol)


def test_bald_agrees_with_baal():
    heuristics = pytest.importorskip("baal.active.heuristics")
    probs = _probs(20, 500, 10, seed=3, dtype=torch.float32)
    theirs = heuristics.BALD().compute_score(probs.permute(1, 2, 0).numpy())  # baal: [N, C, K]
    ours = BALD().score(SamplePosterior(probs, "classification"))
    assert torch.allclose(ours.double(), torch.as_tensor(theirs).double(), atol=1e-5)


def test_regression_samples_bald_is_the_gaussian_bound_of_the_sample_variance():
    draws = torch.randn(50, 6, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    post = SamplePosterior(draws, "regression", noise_variance=torch.tensor([0.3], dtype=torch.float64))
    expected = 0.5 * torch.log1p(draws.var(0)[:, 0] / 0.3)
    assert torch.allclose(BALD().score(post), expected)


def test_batchbald_of_one_point_is_bald():
    probs = _probs(10, 40, 4, seed=1)
    idx, gains = BatchBALD().select_from_samples(probs, 1)
    bald = mutual_information(probs)
    assert int(idx[0]) == int(torch.argmax(bald))
    assert gains[0] == pytest.approx(float(bald.max()), abs=1e-12)


def test_batchbald_exact_joint_information_equals_enumeration():
    probs = _probs(6, 12, 3, seed=2)
    idx, gains = BatchBALD(max_configs=10**6).select_from_samples(probs, 4)
    assert len(set(idx.tolist())) == 4
    for t in range(1, 5):
        brute = _joint_mi_brute(probs[:, idx[:t]])
        assert float(gains[:t].sum()) == pytest.approx(brute, abs=1e-10)
    # and joint_entropy_exact agrees with the pure-Python enumeration
    sub = probs[:, idx[:3]]
    cond = sum(_entropy([float(v) for v in sub[k, i]]) for k in range(6) for i in range(3)) / 6
    assert float(joint_entropy_exact(sub)) - cond == pytest.approx(_joint_mi_brute(sub), abs=1e-10)


def test_batchbald_greedy_gain_is_the_best_increment():
    """Each chosen point maximises I(y_{A∪x}; θ) − I(y_A; θ) over the remaining candidates."""
    probs = _probs(5, 7, 3, seed=4)
    idx, gains = BatchBALD(max_configs=10**6).select_from_samples(probs, 3)
    for t in range(3):
        chosen = idx[:t].tolist()
        base = _joint_mi_brute(probs[:, chosen]) if chosen else 0.0
        best = max(_joint_mi_brute(probs[:, chosen + [j]]) - base for j in range(7) if j not in chosen)
        assert float(gains[t]) == pytest.approx(best, abs=1e-10)


def test_sampled_joint_entropy_converges_to_the_exact_value():
    """With enumeration switched off after one point, the sampled estimate of I(y_B; θ) over a
    batch of all five points approaches the exact value as the number of samples grows."""
    probs = _probs(8, 5, 3, seed=5, scale=1.5)
    exact = _joint_mi_brute(probs)
    errors = {}
    for m in (50, 5000):
        errs = []
        for seed in range(8):
            _, gains = BatchBALD(num_samples=m, max_configs=3, seed=seed).select_from_samples(probs, 5)
            errs.append(abs(float(gains.sum()) - exact))
        errors[m] = sum(errs) / len(errs)
    assert errors[5000] < 0.01
    assert errors[5000] < errors[50] / 3


def test_batchbald_respects_available_and_rejects_too_large_batches():
    probs = _probs(4, 6, 3, seed=6)
    free = torch.tensor([True, False, True, False, True, True])
    idx, _ = BatchBALD().select_from_samples(probs, 4, available=free)
    assert set(idx.tolist()) == {0, 2, 4, 5}
    with pytest.raises(InvalidInput, match="q"):
        BatchBALD().select_from_samples(probs, 5, available=free)
    with pytest.raises(InvalidInput, match="classification SamplePosterior"):
        BatchBALD().score(GaussianPosterior(torch.zeros(3, 1), torch.ones(3, 1)))


def test_batchbald_agrees_with_batchbald_redux_while_exact():
    redux = pytest.importorskip("batchbald_redux.batchbald")
    probs = _probs(10, 60, 4, seed=7)
    ours_idx, ours_gain = BatchBALD(max_configs=10**6).select_from_samples(probs, 4)
    theirs = redux.get_batchbald_batch(probs.permute(1, 0, 2).log(), 4, 10**6, dtype=torch.double)
    assert ours_idx.tolist() == list(theirs.indices)
    # redux reports I(y_{1:t}; θ) after each step
    assert torch.allclose(ours_gain.cumsum(0), torch.tensor(theirs.scores, dtype=torch.float64), atol=1e-5)


def test_uncertainty_scores_on_hand_made_probabilities():
    post = SamplePosterior(HAND, "classification")
    mean = HAND.mean(0)
    assert torch.allclose(Entropy().score(post), torch.tensor([_entropy(r.tolist()) for r in mean], dtype=torch.float64))
    top2 = mean.sort(-1, descending=True).values[:, :2]
    assert torch.allclose(Margin().score(post), top2[:, 1] - top2[:, 0])
    assert torch.allclose(LeastConfidence().score(post), 1 - mean.max(-1).values)
    # votes: points 0 and 2 split one-one between two classes (1 - 1/2); points 1 and 3 agree
    assert torch.allclose(VariationRatios().score(post), torch.tensor([0.5, 0.0, 0.5, 0.0], dtype=torch.float64))


def test_variation_ratios_counts_votes():
    K, C = 5, 3
    votes = torch.tensor([0, 0, 1, 2, 0])  # mode 0 with 3 of 5 votes
    probs = torch.full((K, 1, C), 0.1, dtype=torch.float64)
    probs[torch.arange(K), 0, votes] = 0.8
    assert float(VariationRatios().score(SamplePosterior(probs, "classification"))) == pytest.approx(1 - 3 / 5)


def test_gaussian_entropy_and_bad_posteriors():
    post = GaussianPosterior(torch.zeros(2, 1), torch.tensor([[1.0], [4.0]]), torch.tensor([0.0]))
    assert torch.allclose(Entropy().score(post), 0.5 * torch.log(2 * math.pi * math.e * torch.tensor([1.0, 4.0])))
    with pytest.raises(InvalidInput, match="classification SamplePosterior"):
        Margin().score(post)
    with pytest.raises(InvalidInput, match="summing to one"):
        SamplePosterior(torch.rand(3, 4, 2) + 1, "classification")


def test_lazy_greedy_picks_the_same_batch_as_full_evaluation():
    probs = _probs(8, 600, 4, seed=8)
    lazy = BatchBALD(max_configs=10**6, lazy_block=16).select_from_samples(probs, 5)
    full = BatchBALD(max_configs=10**6, lazy=False).select_from_samples(probs, 5)
    assert torch.equal(lazy[0], full[0])
    assert torch.allclose(lazy[1], full[1], atol=1e-12)
