"""EPIG against brute-force computations: classification on tiny hand-made tensors, Gaussian
EPIG from the surrogate's covariances (with greedy conditioning), and sample-based regression."""

import itertools
import math

import pytest
import torch

from bayesal import Pool, settings
from bayesal.acquisition import EPIG, epig_classification
from bayesal.errors import InvalidInput
from bayesal.models.base import ConditionedSurrogate
from bayesal.posteriors import SamplePosterior
from bayesal.selection import select_greedy, select_topk

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _probs(K, N, C, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(2 * torch.randn(K, N, C, generator=gen, dtype=torch.float64), -1)


def _epig_brute(probs, target):
    """Mean over targets of Σ_{c,d} p(c,d) log p(c,d) / (p(c) p*(d)), with plain Python floats."""
    K, N, C = probs.shape
    M, Ct = target.shape[1], target.shape[2]
    out = []
    for n in range(N):
        total = 0.0
        for m in range(M):
            pc = [sum(float(probs[k, n, c]) for k in range(K)) / K for c in range(C)]
            pd = [sum(float(target[k, m, d]) for k in range(K)) / K for d in range(Ct)]
            for c, d in itertools.product(range(C), range(Ct)):
                joint = sum(float(probs[k, n, c]) * float(target[k, m, d]) for k in range(K)) / K
                if joint > 0:
                    total += joint * math.log(joint / (pc[c] * pd[d]))
        out.append(total / M)
    return torch.tensor(out, dtype=torch.float64)


def test_classification_epig_equals_brute_force():
    probs, target = _probs(4, 6, 3, 0), _probs(4, 5, 3, 1)
    ours = EPIG(target_posterior=SamplePosterior(target, "classification")).score(SamplePosterior(probs, "classification"))
    assert torch.allclose(ours, _epig_brute(probs, target), atol=1e-12)
    with settings.memory_budget(3 * 3 * 5 * 8 * 4):  # one or two rows per chunk
        assert torch.allclose(epig_classification(probs, target), ours, atol=1e-12)


def test_epig_of_a_hand_made_case():
    # two model samples, each certain and disagreeing; the candidate and the target flip together,
    # so observing y determines y*: I(y; y*) = H(y*) = log 2
    probs = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], dtype=torch.float64)
    target = probs.clone()
    assert float(epig_classification(probs, target)) == pytest.approx(math.log(2), abs=1e-12)
    # a target every sample agrees on gains nothing
    sure = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]], dtype=torch.float64)
    assert float(epig_classification(probs, sure)) == pytest.approx(0.0, abs=1e-12)


def _gaussian_epig_brute(model, X, R):
    noise = model.noise_variance.reshape(())
    cross = model.covariance(R, X)[0]  # [M, N]
    vx = model.posterior(X).variance[:, 0] + noise
    vr = model.posterior(R).variance[:, 0] + noise
    rho2 = cross.pow(2) / (vr[:, None] * vx[None, :])
    return (-0.5 * torch.log1p(-rho2)).mean(0)


def test_gaussian_epig_and_its_greedy_conditioning_equal_brute_force(gp_2d):
    gen = torch.Generator().manual_seed(0)
    pool = Pool(torch.rand(40, 2, generator=gen, dtype=torch.float64))
    R = torch.rand(15, 2, generator=gen, dtype=torch.float64)
    acq = EPIG(reference_points=R)
    brute = _gaussian_epig_brute(gp_2d, pool.X, R)
    top = select_topk(gp_2d, acq, pool, 1)
    assert int(top.indices[0]) == int(torch.argmax(brute))
    assert float(top.scores[0]) == pytest.approx(float(brute.max()), rel=1e-8)
    greedy = select_greedy(gp_2d, acq, pool, 2)
    first = int(greedy.indices[0])
    assert first == int(torch.argmax(brute))
    conditioned = ConditionedSurrogate(gp_2d, pool.X[first:first + 1])
    brute2 = _gaussian_epig_brute(conditioned, pool.X, R)
    brute2[first] = -math.inf
    assert int(greedy.indices[1]) == int(torch.argmax(brute2))
    assert float(greedy.scores[1]) == pytest.approx(float(brute2.max()), rel=1e-6)


def test_sample_regression_epig_uses_the_sample_covariances():
    gen = torch.Generator().manual_seed(2)
    K = 400
    z = torch.randn(K, 1, generator=gen, dtype=torch.float64)
    # candidates: f = a_i z + independent parts; target f* = z
    a = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    f = (a * z + 0.3 * torch.randn(K, 4, generator=gen, dtype=torch.float64)).unsqueeze(-1)
    g = z.unsqueeze(-1)
    noise = torch.tensor([0.1], dtype=torch.float64)
    post = SamplePosterior(f, "regression", noise_variance=noise)
    ours = EPIG(target_posterior=SamplePosterior(g, "regression")).score(post)
    fc, gc = f[..., 0] - f[..., 0].mean(0), g[..., 0] - g[..., 0].mean(0)
    cov = (fc * gc).sum(0) / (K - 1)
    rho2 = cov.pow(2) / ((fc.pow(2).sum(0) / (K - 1) + 0.1) * (gc.pow(2).sum(0) / (K - 1) + 0.1))
    assert torch.allclose(ours, -0.5 * torch.log1p(-rho2), atol=1e-12)
    assert torch.all(ours.diff() > 0)  # more strongly tied to the target -> more information


def test_epig_needs_targets_and_matching_samples():
    probs = _probs(4, 3, 2, 0)
    with pytest.raises(InvalidInput, match="target posterior"):
        EPIG().score(SamplePosterior(probs, "classification"))
    with pytest.raises(InvalidInput, match="same model samples"):
        epig_classification(probs, _probs(5, 3, 2, 1))
    with pytest.raises(InvalidInput, match="target"):
        EPIG(reference_points="everywhere")
