"""SparseGP: the chunked posterior equals GPyTorch's, conditioning is exact, it learns, it selects."""

import pytest
import torch

from bayesal import InvalidInput, IntegratedVarianceReduction, NotFitted, Pool, SparseGP
from bayesal.models import ConditionedSurrogate
from bayesal.selection import select_greedy


@pytest.fixture(scope="module")
def sparse_fit():
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(800, 2, generator=gen, dtype=torch.float64)
    y = torch.sin(5 * X[:, 0]) * torch.cos(3 * X[:, 1]) + 0.05 * torch.randn(800, generator=gen, dtype=torch.float64)
    gp = SparseGP(num_inducing=40, batch_size=400, max_epochs=150, lr=0.05, patience=15, seed=0).fit(
        X, y, bounds=[[0, 0], [1, 1]])
    return gp, X, y


def _rand(n, seed):
    return torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_posterior_equals_gpytorch_predictions(sparse_fit):
    gp, _, _ = sparse_fit
    Xs = _rand(50, 1)
    post = gp.posterior(Xs)
    with torch.no_grad():
        out = gp.model(gp._transform(Xs).unsqueeze(0))
        cov = gp.model(gp._transform(Xs[:6]).unsqueeze(0)).covariance_matrix[0] * gp.y_std**2
    assert torch.allclose(post.mean[:, 0], out.mean[0] * gp.y_std + gp.y_mean, atol=1e-10)
    # GPyTorch adds a 1e-6 jitter to the predictive covariance of the data points
    assert torch.allclose(post.variance[:, 0], out.variance[0] * gp.y_std**2, atol=1e-5)
    assert torch.allclose(gp.covariance(Xs[:6], Xs[:6])[0], cov, atol=1e-5)


def test_it_learns_the_function_and_the_noise(sparse_fit):
    gp, _, _ = sparse_fit
    Xs = _rand(500, 2)
    truth = torch.sin(5 * Xs[:, 0]) * torch.cos(3 * Xs[:, 1])
    rmse = float((gp.posterior(Xs).mean[:, 0] - truth).pow(2).mean().sqrt())
    assert rmse < 0.05  # the signal's standard deviation is about 0.45, the noise 0.05
    assert 0.0015 < float(gp.noise_variance) < 0.006


def test_condition_on_is_the_exact_gaussian_update(sparse_fit):
    gp, _, _ = sparse_fit
    Xs, Xp = _rand(30, 3), _rand(3, 4)
    conditioned = gp.condition_on(Xp)
    assert isinstance(conditioned, ConditionedSurrogate)
    before, after = gp.posterior(Xs), conditioned.posterior(Xs)
    assert torch.allclose(after.mean, before.mean)
    C = gp.covariance(Xs, Xp)[0]
    S = gp.covariance(Xp, Xp)[0] + gp.noise_variance[0] * torch.eye(3, dtype=torch.float64)
    expected = before.variance[:, 0] - (C @ torch.linalg.solve(S, C.T)).diagonal()
    assert torch.allclose(after.variance[:, 0], expected, atol=1e-10)
    # conditioning twice equals conditioning on both at once
    twice = gp.condition_on(Xp[:1]).condition_on(Xp[1:])
    assert torch.allclose(twice.posterior(Xs).variance, after.variance, atol=1e-10)
    mean, cov = conditioned.joint_posterior(Xs[:4].unsqueeze(0))
    assert torch.allclose(cov[0, 0].diagonal(), after.variance[:4, 0], atol=1e-10)


def test_greedy_integrated_variance_runs_on_the_sparse_model(sparse_fit):
    gp, _, _ = sparse_fit
    pool = Pool(_rand(2000, 5), bounds=[[0, 0], [1, 1]])
    selection = select_greedy(gp, IntegratedVarianceReduction(n_reference=256), pool, 5)
    assert len(set(selection.indices.tolist())) == 5
    assert bool((selection.scores[:-1] >= selection.scores[1:] - 1e-12).all())  # submodular gains shrink


def test_deterministic_given_seed():
    X = _rand(300, 6)
    y = X.sum(-1)
    a = SparseGP(num_inducing=16, max_epochs=3, seed=1).fit(X, y).posterior(X[:5]).mean
    b = SparseGP(num_inducing=16, max_epochs=3, seed=1).fit(X, y).posterior(X[:5]).mean
    assert torch.equal(a, b)


def test_errors():
    with pytest.raises(NotFitted):
        SparseGP().posterior(_rand(2, 0))
    with pytest.raises(InvalidInput, match="holdout"):
        SparseGP(holdout=0.7)
    with pytest.raises(InvalidInput, match="num_inducing"):
        SparseGP(num_inducing=0)


def test_with_every_point_inducing_it_equals_the_exact_gp_it_took_its_hyperparameters_from():
    # Z = X and the optimal q(u): the variational posterior is the exact posterior (Titsias 2009)
    from bayesal import ExactGP

    gen = torch.Generator().manual_seed(3)
    X = torch.rand(120, 2, generator=gen, dtype=torch.float64)
    y = torch.sin(4 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * torch.randn(120, generator=gen, dtype=torch.float64)
    box = [[0, 0], [1, 1]]
    sparse = SparseGP(num_inducing=120, subset_size=120, seed=5).fit(X, y, bounds=box)
    exact = ExactGP(outputscale=True, seed=5).fit(X, y, bounds=box)
    Xs = _rand(40, 7)
    a, b = sparse.posterior(Xs), exact.posterior(Xs)
    assert torch.allclose(a.mean, b.mean, atol=1e-4)
    assert torch.allclose(a.variance, b.variance, atol=1e-4)
    assert torch.allclose(sparse.noise_variance, exact.noise_variance, rtol=1e-8)


def test_the_closed_form_variational_distribution_maximises_the_elbo(sparse_fit):
    import gpytorch

    gp, X, y = sparse_fit
    U, Y = gp._transform(X), ((y.reshape(-1, 1) - gp.y_mean) / gp.y_std).T
    dist = gp.model.variational_strategy._variational_distribution
    elbo = gpytorch.mlls.VariationalELBO(gp.likelihood, gp.model, num_data=X.shape[0])

    def value():
        gp.model.train()
        gp.likelihood.train()
        with torch.no_grad():
            v = float(elbo(gp.model(U.unsqueeze(0)), Y).sum())
        gp.model.eval()
        gp.likelihood.eval()
        return v

    best = value()
    gen = torch.Generator().manual_seed(0)
    for param in (dist.variational_mean, dist.chol_variational_covar):
        saved = param.detach().clone()
        with torch.no_grad():
            param.add_(1e-3 * torch.randn(param.shape, generator=gen, dtype=param.dtype))
        assert value() < best
        with torch.no_grad():
            param.copy_(saved)
    assert abs(value() - best) < 1e-9


def test_elbo_training_learns_the_function_too():
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(600, 2, generator=gen, dtype=torch.float64)
    f = lambda Z: torch.sin(5 * Z[:, 0]) * torch.cos(3 * Z[:, 1])  # noqa: E731
    y = f(X) + 0.05 * torch.randn(600, generator=gen, dtype=torch.float64)
    gp = SparseGP(num_inducing=40, hyperparameters="elbo", inducing="random", batch_size=300, max_epochs=120,
                  lr=0.05, patience=15, seed=0).fit(X, y, bounds=[[0, 0], [1, 1]])
    Xs = _rand(300, 2)
    assert float((gp.posterior(Xs).mean[:, 0] - f(Xs)).pow(2).mean().sqrt()) < 0.06
    assert any("holdout_loglik" in record for record in gp.history)


def test_bad_fitting_options():
    with pytest.raises(InvalidInput, match="hyperparameters"):
        SparseGP(hyperparameters="mle")
    with pytest.raises(InvalidInput, match="inducing"):
        SparseGP(inducing="grid")
