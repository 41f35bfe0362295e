import pytest
import torch
from gpytorch.kernels import RBFKernel

from bayesal import InvalidInput, NotFitted
from bayesal.models import KernelGP


def _rand(n, d, seed):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def rbf(A, B, ell=0.3):
    return torch.exp(-0.5 * torch.cdist(A, B).pow(2) / ell**2)


def test_posterior_equals_the_kernel_regression_formulas():
    X, Xs = _rand(15, 2, 0), _rand(7, 2, 1)
    y = torch.sin(4 * X[:, 0]) + X[:, 1]
    gp = KernelGP(rbf, noise=0.05, mean=0.5).fit(X, y)
    K = rbf(X, X) + 0.05 * torch.eye(15, dtype=torch.float64)
    ks = rbf(Xs, X)
    post = gp.posterior(Xs)
    assert torch.allclose(post.mean[:, 0], 0.5 + ks @ torch.linalg.solve(K, y - 0.5), atol=1e-10)
    var = 1.0 - (ks @ torch.linalg.solve(K, ks.T)).diagonal()
    assert torch.allclose(post.variance[:, 0], var, atol=1e-10)
    assert torch.allclose(gp.noise_variance, torch.tensor([0.05], dtype=torch.float64))


def test_gpytorch_kernel_and_callable_agree_and_labels_do_not_change_variance():
    X, Xs = _rand(12, 3, 2), _rand(5, 3, 3)
    k = RBFKernel().double()
    k.lengthscale = 0.3
    a = KernelGP(k, noise=0.1).fit(X)
    b = KernelGP(lambda A, B: rbf(A, B, 0.3), noise=0.1).fit(X, torch.randn(12, dtype=torch.float64))
    assert torch.allclose(a.posterior(Xs).variance, b.posterior(Xs).variance, atol=1e-8)
    assert torch.allclose(a.covariance(Xs, Xs), b.covariance(Xs, Xs), atol=1e-8)


def test_condition_on_is_refitting_on_the_pending_inputs():
    X, Xp, Xs = _rand(10, 2, 4), _rand(3, 2, 5), _rand(6, 2, 6)
    gp = KernelGP(rbf, noise=0.02).fit(X)
    direct = KernelGP(rbf, noise=0.02).fit(torch.cat([X, Xp]))
    assert torch.allclose(gp.condition_on(Xp).posterior(Xs).variance, direct.posterior(Xs).variance)


def test_errors():
    with pytest.raises(NotFitted):
        KernelGP(rbf).posterior(_rand(2, 2, 0))
    with pytest.raises(InvalidInput, match="noise"):
        KernelGP(rbf, noise=0.0)
    with pytest.raises(InvalidInput, match="kernel"):
        KernelGP(3.0)
