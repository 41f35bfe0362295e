"""ExactGP: agreement with BoTorch's own posterior, conditioning, kernels, noise."""

import pytest
import torch
from gpytorch.kernels import MaternKernel, RBFKernel, ScaleKernel

from bayesal import ExactGP, InvalidInput, NotFitted, UnknownName
from bayesal.settings import memory_budget


def _points(n, d, seed):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_posterior_equals_botorch_posterior(gp_2d):
    X = _points(40, 2, 5)
    ours = gp_2d.posterior(X)
    theirs = gp_2d.model.posterior(X)
    assert torch.allclose(ours.mean, theirs.mean.detach(), atol=1e-10)
    assert torch.allclose(ours.variance, theirs.variance.detach(), atol=1e-10)
    cov = gp_2d.covariance(X, X)[0]
    assert torch.allclose(cov, theirs.mvn.covariance_matrix.detach(), atol=1e-10)


def test_multi_output_posterior_and_joint_posterior_equal_botorch():
    X = _points(30, 3, 0)
    Y = torch.stack([torch.sin(4 * X).sum(-1), torch.cos(2 * X[:, 0]) * 5 + 3], -1)
    gp = ExactGP(kernel="matern32").fit(X, Y)
    Xs = _points(9, 3, 1)
    ours, theirs = gp.posterior(Xs), gp.model.posterior(Xs)
    assert ours.mean.shape == (9, 2)
    assert torch.allclose(ours.mean, theirs.mean.detach(), atol=1e-9)
    assert torch.allclose(ours.variance, theirs.variance.detach(), atol=1e-9)
    assert gp.noise_variance.shape == (2,)
    mean, cov = gp.joint_posterior(Xs.reshape(3, 3, 3))
    assert mean.shape == (3, 3, 2) and cov.shape == (3, 2, 3, 3)
    assert torch.allclose(mean.detach().reshape(9, 2), ours.mean, atol=1e-9)
    block = gp.covariance(Xs[3:6], Xs[3:6])
    assert torch.allclose(cov[1].detach(), block, atol=1e-9)


def test_chunked_posterior_equals_one_chunk(gp_2d):
    X = _points(500, 2, 7)
    whole = gp_2d.posterior(X, chunk_size=10_000)
    with memory_budget(4096):
        chunked = gp_2d.posterior(X)
    assert torch.allclose(whole.mean, chunked.mean) and torch.allclose(whole.variance, chunked.variance)


def test_condition_on_keeps_mean_and_shrinks_variance_by_rank_one_formula(gp_1d):
    X = torch.linspace(0, 1, 50, dtype=torch.float64).unsqueeze(-1)
    xp = torch.tensor([[0.37]], dtype=torch.float64)
    before = gp_1d.posterior(X)
    after = gp_1d.condition_on(xp).posterior(X)
    assert torch.allclose(after.mean, before.mean, atol=1e-9)
    # Independent rank-1 update: var'(x) = var(x) - cov(x, xp)^2 / (var(xp) + noise).
    c = gp_1d.covariance(X, xp)[0, :, 0]
    var_p = gp_1d.posterior(xp).variance[0, 0]
    expected = before.variance[:, 0] - c**2 / (var_p + gp_1d.noise_variance[0])
    assert torch.allclose(after.variance[:, 0], expected, atol=1e-10)
    assert bool((after.variance <= before.variance + 1e-12).all())
    # the original model is untouched
    assert torch.allclose(gp_1d.posterior(X).variance, before.variance)


def test_condition_on_several_points_equals_joint_gaussian_update(gp_2d):
    X, Xp = _points(20, 2, 3), _points(3, 2, 4)
    after = gp_2d.condition_on(Xp).posterior(X)
    C_xp = gp_2d.covariance(X, Xp)[0]
    S = gp_2d.covariance(Xp, Xp)[0] + gp_2d.noise_variance[0] * torch.eye(3, dtype=torch.float64)
    expected = gp_2d.posterior(X).variance[:, 0] - (C_xp @ torch.linalg.solve(S, C_xp.T)).diagonal()
    assert torch.allclose(after.variance[:, 0], expected, atol=1e-10)


@pytest.mark.parametrize("name, cls, nu", [("matern52", MaternKernel, 2.5), ("matern32", MaternKernel, 1.5),
                                            ("matern12", MaternKernel, 0.5), ("rbf", RBFKernel, None)])
def test_kernel_is_selectable(name, cls, nu):
    X = _points(15, 2, 0)
    gp = ExactGP(kernel=name).fit(X, X.sum(-1))
    assert isinstance(gp.model.covar_module, cls)
    if nu is not None:
        assert gp.model.covar_module.nu == nu
    custom = ExactGP(kernel=ScaleKernel(RBFKernel(ard_num_dims=2)), outputscale=False).fit(X, X.sum(-1))
    assert isinstance(custom.model.covar_module, ScaleKernel)


def test_default_kernel_is_matern52_with_normalised_inputs_and_standardised_outputs(gp_2d):
    model = gp_2d.model
    assert isinstance(model.covar_module, MaternKernel) and model.covar_module.nu == 2.5
    assert type(model.input_transform).__name__ == "Normalize"
    assert type(model.outcome_transform).__name__ == "Standardize"


def test_fixed_noise_is_respected():
    X = _points(20, 1, 0)
    y = 100 * torch.sin(6 * X[:, 0])
    gp = ExactGP(noise=0.25).fit(X, y)
    assert torch.allclose(gp.noise_variance, torch.tensor([0.25], dtype=torch.float64), rtol=1e-6)


def test_fit_learns_the_noise_level():
    X = _points(200, 1, 0)
    gen = torch.Generator().manual_seed(1)
    y = torch.sin(6 * X[:, 0]) + 0.1 * torch.randn(200, generator=gen, dtype=torch.float64)
    gp = ExactGP().fit(X, y)
    assert 0.005 < float(gp.noise_variance) < 0.02  # true noise variance 0.01


def test_errors():
    with pytest.raises(NotFitted):
        ExactGP().posterior(torch.zeros(1, 1))
    with pytest.raises(UnknownName, match="matern52"):
        ExactGP(kernel="cosine")
    with pytest.raises(InvalidInput, match="noise"):
        ExactGP(noise=-1.0)
    gp = ExactGP().fit(_points(5, 2, 0), torch.arange(5.0))
    with pytest.raises(InvalidInput, match="invalid X: expected a 2-D array of shape \\[N, 2\\]"):
        gp.posterior(torch.zeros(3, 3))


def test_love_variances_approximate_the_exact_ones():
    gen = torch.Generator().manual_seed(3)
    X = torch.rand(700, 2, generator=gen, dtype=torch.float64)
    y = torch.sin(6 * X[:, 0]) + torch.cos(4 * X[:, 1]) + 0.1 * torch.randn(700, generator=gen, dtype=torch.float64)
    gp = ExactGP(love=False).fit(X, y)
    assert not gp.uses_love and ExactGP(love_threshold=10).fit(X[:20], y[:20]).uses_love
    Xs = torch.rand(300, 2, generator=gen, dtype=torch.float64)
    a = gp.posterior(Xs)
    gp.love = True  # same fitted model, LOVE variances
    b = gp.posterior(Xs)
    assert torch.allclose(a.mean, b.mean, atol=1e-6)
    rel = ((a.variance - b.variance).abs() / a.variance).max()
    assert rel < 0.05, f"LOVE variances off by {float(rel):.3g} relative"


def test_restarts_keep_the_best_of_several_fits(monkeypatch):
    """``restarts=k`` asks BoTorch for k fits from different starts and the best marginal
    likelihood; the default fits once; a fixed noise refuses restarts (they would redraw it)."""
    import bayesal.models.gp as gp_module

    seen = []
    real = gp_module.fit_gpytorch_mll

    def recording(mll, **kwargs):
        seen.append(kwargs)
        return real(mll, **kwargs)

    monkeypatch.setattr(gp_module, "fit_gpytorch_mll", recording)
    g = torch.Generator().manual_seed(0)
    X = torch.rand(10, 1, generator=g, dtype=torch.float64)
    y = torch.sin(25 * X[:, 0]) + 0.05 * torch.randn(10, generator=g, dtype=torch.float64)
    ExactGP().fit(X, y)
    ExactGP(restarts=4).fit(X, y)
    assert seen == [{}, {"max_attempts": 4, "pick_best_of_all_attempts": True}]
    with pytest.raises(InvalidInput, match="restarts"):
        ExactGP(noise=0.1, restarts=3)


def test_input_warping_is_learned_and_the_algebra_uses_it():
    """``input_warping=True``: on f(x) = sin(12 x⁴) (fast at the right end only) the fitted
    Kumaraswamy CDF w(x) = 1 − (1 − x^a)^b moves away from the identity and raises the marginal
    likelihood; our exact algebra (posterior, covariance, conditioning) agrees with BoTorch's
    posterior of the warped model; a point outside the box is predicted as its projection."""
    from botorch.models.transforms.input import Warp
    from gpytorch.mlls import ExactMarginalLogLikelihood

    X = torch.linspace(0, 1, 30, dtype=torch.float64).unsqueeze(-1)
    y = torch.sin(12 * X[:, 0] ** 4)
    box = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    plain, warped = ExactGP().fit(X, y, bounds=box), ExactGP(input_warping=True).fit(X, y, bounds=box)
    tf = warped.model.input_transform
    assert isinstance(tf, Warp) and not isinstance(plain.model.input_transform, Warp)
    a, b = float(tf.concentration1), float(tf.concentration0)
    assert abs(a - 1) + abs(b - 1) > 0.2  # the data ask for a warping

    def mll(gp):
        gp.model.train()
        value = ExactMarginalLogLikelihood(gp.model.likelihood, gp.model)(
            gp.model(*gp.model.train_inputs), gp.model.train_targets)
        gp.model.eval()
        return float(value)

    assert mll(warped) > mll(plain)
    Xs = torch.rand(25, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ours, theirs = warped.posterior(Xs), warped.model.posterior(Xs)
    assert torch.allclose(ours.mean, theirs.mean.detach(), atol=1e-9)
    assert torch.allclose(ours.variance, theirs.variance.detach(), atol=1e-9)
    assert torch.allclose(warped.covariance(Xs, Xs)[0], theirs.mvn.covariance_matrix.detach(), atol=1e-9)
    cond = warped.condition_on(Xs[:3]).posterior(Xs)
    assert torch.allclose(cond.mean, ours.mean, atol=1e-8) and bool((cond.variance <= ours.variance + 1e-12).all())
    assert bool((cond.variance[:3] < ours.variance[:3]).all())
    outside = warped.posterior(torch.tensor([[1.5], [-0.5]], dtype=torch.float64))
    faces = warped.posterior(torch.tensor([[1.0], [0.0]], dtype=torch.float64))
    assert torch.allclose(outside.mean, faces.mean, atol=1e-6)
    with pytest.raises(InvalidInput, match="input_warping"):
        ExactGP(input_warping="yes")
