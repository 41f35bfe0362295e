"""Co-kriging and BoTorch's multi-fidelity GP as bayesal surrogates."""

import pytest
import torch

from bayesal.errors import InvalidInput, NotFitted
from bayesal.models import ExactGP
from bayesal.models.multifidelity import BoTorchMultiFidelityGP, CoKriging, augment
from bayesal.problems.multifidelity import forrester_mf

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _forrester_data():
    XL = torch.linspace(0, 1, 11, dtype=torch.float64).reshape(-1, 1)
    XH = torch.tensor([[0.0], [0.4], [0.6], [1.0]], dtype=torch.float64)
    X = torch.cat([augment(XL, 0), augment(XH, 1)])
    y = torch.cat([torch.tensor(forrester_mf(XL.numpy(), 0)), torch.tensor(forrester_mf(XH.numpy(), 1))])
    return X, y, XH


def test_cokriging_with_unit_rho_and_no_discrepancy_is_the_single_fidelity_gp():
    gen = torch.Generator().manual_seed(3)
    X0 = torch.rand(9, 2, generator=gen, dtype=torch.float64)
    X1 = torch.rand(5, 2, generator=gen, dtype=torch.float64)
    f = lambda X: torch.sin(3 * X[:, 0]) + X[:, 1] ** 2  # noqa: E731
    X = torch.cat([augment(X0, 0), augment(X1, 1)])
    y = torch.cat([f(X0), f(X1)])
    noise = 1e-3
    ck = CoKriging(2, rho=1.0, delta_variance=0.0, noise=noise).fit(X, y, bounds=[[0, 0], [1, 1]])
    # the single-fidelity GP with the level-0 kernel on all 14 points, by the textbook formulas
    model = ck.levels[0]
    stdv2 = model.outcome_transform.stdvs.reshape(-1)[0] ** 2
    c0 = ck._c[0]
    Xall = torch.cat([X0, X1])
    k = lambda A, B: (model.covar_module(A, B).to_dense() * stdv2).detach()  # noqa: E731
    Xs = torch.rand(30, 2, generator=gen, dtype=torch.float64)
    K = k(Xall, Xall) + noise * torch.eye(14, dtype=torch.float64)
    Ks = k(Xall, Xs)
    mean = c0 + Ks.T @ torch.linalg.solve(K, y - c0)
    cov = k(Xs, Xs) - Ks.T @ torch.linalg.solve(K, Ks)
    post = ck.at_target().posterior(Xs)
    torch.testing.assert_close(post.mean[:, 0], mean, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(post.variance[:, 0], cov.diagonal(), rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(post.covariance()[0], cov, rtol=1e-5, atol=1e-9)
    # ... and the two fidelities are the same function: identical posteriors, perfect correlation
    low = ck.at_fidelity(0).posterior(Xs)
    torch.testing.assert_close(low.mean, post.mean)
    cross = ck.covariance(augment(Xs, 1), augment(Xs, 0))[0]
    torch.testing.assert_close(cross, cov, rtol=1e-5, atol=1e-9)
    assert ck.target_fidelity == 1 and ck.rho[1] == 1.0


def test_cokriging_joint_covariance_is_consistent():
    X, y, _ = _forrester_data()
    ck = CoKriging(2).fit(X, y, bounds=[[0.0], [1.0]])
    Xs = torch.linspace(0, 1, 7, dtype=torch.float64).reshape(-1, 1)
    A = torch.cat([augment(Xs, 0), augment(Xs, 1)])
    C = ck.covariance(A, A)[0]
    torch.testing.assert_close(C, C.T)
    assert torch.linalg.eigvalsh(C).min() > -1e-8 * C.diagonal().max()
    post = ck.posterior(A)
    torch.testing.assert_close(post.variance[:, 0], C.diagonal(), rtol=1e-6, atol=1e-10)
    # differentiable joint posterior through the target view agrees with the chunked one
    mean, cov = ck.at_target().joint_posterior(Xs.unsqueeze(0))
    torch.testing.assert_close(mean[0, :, 0], post.mean[7:, 0])
    torch.testing.assert_close(cov[0, 0], C[7:, 7:], rtol=1e-6, atol=1e-10)
    assert ck.rho[1] > 1.0  # the high fidelity is about twice the low one here


def test_cokriging_beats_the_high_fidelity_gp_on_forrester():
    # the classic demonstration of Forrester et al. (2007): 11 cheap + 4 expensive points
    X, y, XH = _forrester_data()
    Xt = torch.linspace(0, 1, 201, dtype=torch.float64).reshape(-1, 1)
    yt = torch.tensor(forrester_mf(Xt.numpy(), 1))
    ck = CoKriging(2).fit(X, y, bounds=[[0.0], [1.0]])
    gp = ExactGP().fit(XH, y[11:], bounds=[[0.0], [1.0]])
    rmse_ck = (ck.at_target().posterior(Xt).mean[:, 0] - yt).pow(2).mean().sqrt()
    rmse_gp = (gp.posterior(Xt).mean[:, 0] - yt).pow(2).mean().sqrt()
    assert rmse_ck < 0.5 * rmse_gp


def test_cokriging_recovers_rho_on_a_scaled_function():
    gen = torch.Generator().manual_seed(0)
    X0 = torch.rand(25, 1, generator=gen, dtype=torch.float64)
    X1 = torch.rand(10, 1, generator=gen, dtype=torch.float64)
    low = lambda X: torch.sin(8 * X[:, 0])  # noqa: E731
    X = torch.cat([augment(X0, 0), augment(X1, 1)])
    y = torch.cat([low(X0), 2.0 * low(X1) + 0.1 * X1[:, 0]])
    ck = CoKriging(2).fit(X, y, bounds=[[0.0], [1.0]])
    assert ck.rho[1] == pytest.approx(2.0, rel=0.1)


def test_three_levels_and_bad_input():
    gen = torch.Generator().manual_seed(1)
    parts, ys = [], []
    for s, n in enumerate([12, 6, 3]):
        Xs = torch.rand(n, 1, generator=gen, dtype=torch.float64)
        parts.append(augment(Xs, s))
        ys.append(torch.sin(6 * Xs[:, 0]) * (1 + 0.1 * s))
    ck = CoKriging(3).fit(torch.cat(parts), torch.cat(ys), bounds=[[0.0], [1.0]])
    assert ck.posterior(augment(torch.rand(4, 1, dtype=torch.float64), 2)).mean.shape == (4, 1)
    assert ck.observation_noise(torch.tensor([0, 1, 2])).shape == (3,)
    with pytest.raises(InvalidInput, match="two observations"):
        CoKriging(3).fit(torch.cat(parts[:2]), torch.cat(ys[:2]))
    with pytest.raises(InvalidInput, match="fidelity levels"):
        ck.posterior(augment(torch.rand(4, 1, dtype=torch.float64), 3))
    with pytest.raises(NotFitted):
        CoKriging(2).at_target().posterior(torch.rand(3, 1))
    with pytest.raises(InvalidInput, match="rho"):
        CoKriging(3, rho=[1.0])


def test_botorch_multifidelity_gp_agrees_with_botorch():
    X, y, _ = _forrester_data()
    model = BoTorchMultiFidelityGP(2).fit(X, y, bounds=[[0.0], [1.0]])
    Xs = torch.linspace(0, 1, 9, dtype=torch.float64).reshape(-1, 1)
    ours = model.at_target().posterior(Xs)
    with torch.no_grad():
        ref = model.model.posterior(torch.cat([Xs, torch.ones(9, 1, dtype=torch.float64)], -1))
    torch.testing.assert_close(ours.mean, ref.mean, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(ours.variance, ref.variance, rtol=1e-6, atol=1e-10)
    A, B = augment(Xs, 1), augment(Xs, 0)
    with torch.no_grad():
        joint = model.model.posterior(torch.cat([model._to_values(A), model._to_values(B)])).mvn.covariance_matrix
    torch.testing.assert_close(model.covariance(A, B)[0], joint[:9, 9:], rtol=1e-5, atol=1e-8)
    cond = model.condition_on(augment(Xs[:2], 0))
    assert bool((cond.posterior(augment(Xs, 1)).variance <= model.posterior(augment(Xs, 1)).variance + 1e-12).all())


def test_target_view_conditions_on_pending_points():
    X, y, _ = _forrester_data()
    target = CoKriging(2).fit(X, y, bounds=[[0.0], [1.0]]).at_target()
    Xs = torch.linspace(0, 1, 9, dtype=torch.float64).reshape(-1, 1)
    P = torch.tensor([[0.2], [0.8]], dtype=torch.float64)
    cond = target.condition_on(P)
    before, after = target.posterior(Xs), cond.posterior(Xs)
    torch.testing.assert_close(after.mean, before.mean)
    # the exact update: Σ(x,x) − Σ(x,P)(Σ_PP + σ²I)⁻¹Σ(P,x)
    S = target.covariance(P, P)[0] + target.noise_variance * torch.eye(2, dtype=torch.float64)
    C = target.covariance(Xs, P)[0]
    expect = before.variance[:, 0] - (C * torch.linalg.solve(S, C.T).T).sum(-1)
    torch.testing.assert_close(after.variance[:, 0], expect, rtol=1e-6, atol=1e-10)
