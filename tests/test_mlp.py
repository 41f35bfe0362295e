"""MLPRegressor: bmdal_reg-style training and the neural-linear Gaussian posterior."""

from __future__ import annotations

import math

import pytest
import torch

from bayesal import ActiveLearner, InvalidInput, MLPRegressor, NotFitted, Pool, UnknownName
from bayesal.kernels import batch_kernel
from bayesal.models import MODELS, make_model
from bayesal.models.nets import evidence_fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _f(X):
    return torch.sin(3 * X[:, 0]) * torch.cos(2 * X[:, 1]) + 0.5 * X[:, 1]


def _data(n=300, seed=0, noise=0.05):
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    return X, _f(X) + noise * torch.randn(n, generator=gen, dtype=torch.float64)


_CACHE = {}


def _small(kernel="ll"):
    """A small MLPRegressor (64 × 64, 120 epochs) fitted on the shared data, once per session."""
    if kernel not in _CACHE:
        X, y = _data()
        _CACHE[kernel] = MLPRegressor(hidden=(64, 64), epochs=120, posterior_kernel=kernel, n_features=128,
                                      seed=0).fit(X, y)
    return _CACHE[kernel]


def test_default_network_learns_a_smooth_function():
    """The paper's network (2 × 512, 256 epochs) on 400 noisy points of a smooth 2-D function."""
    X, y = _data(400)
    Xt, _ = _data(1000, seed=1)
    model = MLPRegressor(seed=0).fit(X, y)
    rmse = float((model.predict(Xt)[:, 0] - _f(Xt)).pow(2).mean().sqrt())
    assert rmse < 0.25 * float(_f(Xt).std()), rmse


def test_small_network_learns_and_is_seeded():
    model = _small()
    Xt, _ = _data(500, seed=1)
    pred = model.predict(Xt)[:, 0]
    assert float((pred - _f(Xt)).pow(2).mean().sqrt()) < 0.3 * float(_f(Xt).std())
    X, y = _data()
    again = MLPRegressor(hidden=(64, 64), epochs=120, n_features=128, seed=0).fit(X, y)
    assert torch.equal(again.predict(Xt)[:, 0], pred)
    other = MLPRegressor(hidden=(64, 64), epochs=120, n_features=128, seed=1).fit(X, y)
    assert not torch.equal(other.predict(Xt)[:, 0], pred)
    assert len(model.history) == 120 and "holdout_rmse" in model.history[0]


def test_training_schedule_and_best_epoch_are_bmdal_regs():
    """Adam's learning rate decays linearly to zero over all steps (the rate of each epoch's last
    step is recorded), and the kept network is the
    epoch with the lowest held-out RMSE (the held-out rows: the first 10 % of the seeded permutation)."""
    model = _small()
    lrs = [r["lr"] for r in model.history]
    n_batches = (300 - 30) // 256
    steps = 120 * n_batches
    assert lrs == pytest.approx([0.375 * (1 - ((e + 1) * n_batches - 1) / steps) for e in range(120)], abs=1e-12)
    X, y = _data()
    hold = torch.randperm(300, generator=torch.Generator().manual_seed(0))[:30]
    z = (y[hold] - model.y_mean) / model.y_std
    rmse = float(((model.predict(X[hold])[:, 0] - model.y_mean) / model.y_std - z).pow(2).mean().sqrt())
    assert rmse == pytest.approx(min(r["holdout_rmse"] for r in model.history), rel=1e-4)


@pytest.mark.parametrize("kernel", ["ll", "grad"])
def test_posterior_variance_small_at_data_large_far_away_finite_everywhere(kernel):
    model = _small(kernel)
    X, _ = _data()
    at_data = model.posterior(X).variance
    far = model.posterior(torch.tensor([[4.0, 4.0], [-3.0, 5.0], [10.0, -10.0]], dtype=torch.float64)).variance
    assert float(far.min()) > 10 * float(at_data.mean()), (far, at_data.mean())
    # at the data, Σ_ii = σ² h_ii with the ridge leverages h_ii, whose mean is below F / n
    F = 65 if kernel == "ll" else 128
    assert float(at_data.mean()) < float(model.noise_variance) * F / len(X)
    huge = model.posterior(torch.tensor([[1e200, -1e200], [0.5, 1e300]], dtype=torch.float64))
    assert bool(torch.isfinite(huge.mean).all() and torch.isfinite(huge.variance).all())
    # the fitted noise is of the order of the true one (0.05² = 0.0025)
    assert 0.0005 < float(model.noise_variance) < 0.02, model.noise_variance


def test_posterior_is_s2_times_the_posterior_kernel():
    """Σ = s² [k(a,b) − k(a,T)(K_TT + λI)⁻¹k(T,b)] with k the ll kernel, λ = σ²/s², in y units."""
    model = _small()
    X, _ = _data()
    A = torch.rand(7, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 1.5
    fmap = model.feature_map("ll")
    PhiT, PhiA = fmap(X).double(), fmap(A).double()
    s2, sigma2 = model.prior_scale, model._sigma2
    lam = float(sigma2 / s2)
    KTT, KAT, KAA = PhiT @ PhiT.T, PhiA @ PhiT.T, PhiA @ PhiA.T
    post = KAA - KAT @ torch.linalg.solve(KTT + lam * torch.eye(len(X), dtype=torch.float64), KAT.T)
    expected = float(s2) * post * float(model.y_std) ** 2
    got = model.covariance(A, A)
    assert got.shape == (1, 7, 7)
    assert torch.allclose(got[0], expected, rtol=1e-4, atol=1e-9 * float(expected.diagonal().max()))
    assert torch.allclose(model.posterior(A).variance[:, 0], got[0].diagonal(), rtol=1e-8, atol=1e-14)
    assert torch.allclose(model.noise_variance, sigma2 * model.y_std ** 2)
    columns = model.covariance_columns(A)
    assert columns(2).shape == (1, 7) and torch.allclose(columns(2)[0], got[0, :, 2], rtol=1e-8, atol=1e-14)


def _log_evidence(Phi, y, s2, sigma2):
    n = Phi.shape[0]
    C = s2 * Phi @ Phi.T + sigma2 * torch.eye(n, dtype=torch.float64)
    return float(torch.distributions.MultivariateNormal(torch.zeros(n, dtype=torch.float64), C).log_prob(y))


@pytest.mark.parametrize("n,F", [(12, 30), (40, 6)])
def test_evidence_fit_maximises_the_evidence(n, F):
    """Both eigen-forms (n ≤ F: the Gram matrix; n > F: ΦᵀΦ with a residual) reach the maximum of
    the exact log evidence on a fine 2-D grid of (s², σ²)."""
    gen = torch.Generator().manual_seed(n)
    Phi = torch.randn(n, F, generator=gen, dtype=torch.float64)
    w = torch.randn(F, generator=gen, dtype=torch.float64) * 0.7
    y = Phi @ w + 0.5 * torch.randn(n, generator=gen, dtype=torch.float64)
    if n <= F:
        evals, U = torch.linalg.eigh(Phi @ Phi.T)
        z = U.T @ y.unsqueeze(-1)
        resid = torch.zeros(1, dtype=torch.float64)
    else:
        evals, V = torch.linalg.eigh(Phi.T @ Phi)
        z = (Phi @ V).T @ y.unsqueeze(-1) / evals.sqrt().unsqueeze(-1)
        resid = (y.pow(2).sum() - z.pow(2).sum()).reshape(1)
    s2, sigma2 = evidence_fit(evals, z.pow(2), resid, n)
    best = _log_evidence(Phi, y, float(s2), float(sigma2))
    grid = [(a, b) for a in torch.logspace(-3, 2, 60).tolist() for b in torch.logspace(-4, 1, 60).tolist()]
    assert best >= max(_log_evidence(Phi, y, a, b) for a, b in grid) - 1e-3


def test_active_learning_on_a_pool_with_gaussian_acquisitions():
    X, y = _data(200, seed=2)
    for acquisition in ("max-variance", "integrated-variance", "joint-information"):
        learner = ActiveLearner(Pool(X, y), surrogate=MLPRegressor(hidden=(32, 32), epochs=30, seed=0),
                                acquisition=acquisition, seed=0)
        records = learner.run(budget=30, q=10, initial=10, progress=False)
        assert learner.n_labels == 30, acquisition
        assert all(math.isfinite(v) for r in records for v in r.values() if isinstance(v, float))


@pytest.mark.parametrize("kernel", ["ll", "grad"])
def test_batch_kernels_of_the_network(kernel):
    model = _small()
    X, _ = _data()
    pool = torch.rand(50, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    rows = batch_kernel(kernel, model, X[:20], pool, transforms=("scale", "posterior"), sigma=0.1,
                        n_features=64 if kernel == "grad" else None, seed=0)
    assert rows.n_train == 20 and rows.n_pool == 50
    assert rows.n_features == (65 if kernel == "ll" else 64)
    assert bool(torch.isfinite(rows.features).all()) and bool((rows.diag >= 0).all())
    base = batch_kernel(kernel, model, X[:20], pool, n_features=64 if kernel == "grad" else None, seed=0)
    assert torch.allclose(base.features[20:], model.feature_map(kernel, 64 if kernel == "grad" else None, 0)(pool))


def test_multi_output_and_registry():
    X, y = _data(80)
    Y = torch.stack([y, 2 * y + 1], -1)
    model = MLPRegressor(hidden=(16, 16), epochs=20, seed=0).fit(X, Y)
    post = model.posterior(X[:5])
    assert post.mean.shape == (5, 2) and post.variance.shape == (5, 2)
    assert model.noise_variance.shape == (2,) and model.covariance(X[:3], X[:4]).shape == (2, 3, 4)
    mean, cov = model.joint_posterior(X[:6].reshape(2, 3, 2))
    assert mean.shape == (2, 3, 2) and cov.shape == (2, 2, 3, 3)
    assert isinstance(make_model("mlp"), MLPRegressor) and "mlp" in MODELS


def test_bad_input_is_refused():
    X, y = _data(30)
    for kwargs in ({"hidden": 5}, {"hidden": (0,)}, {"holdout": 0.7}, {"lr": -1.0},
                   {"epochs": 0}, {"weight_gain": float("nan")}, {"dtype": torch.int64}, {"seed": -1}):
        with pytest.raises(InvalidInput):
            MLPRegressor(**kwargs)
    with pytest.raises(UnknownName):
        MLPRegressor(activation="swish")
    with pytest.raises(UnknownName):
        MLPRegressor(posterior_kernel="ntk")
    with pytest.raises(NotFitted):
        MLPRegressor().posterior(X)
    with pytest.raises(NotFitted):
        MLPRegressor().feature_map("ll")
    model = MLPRegressor(hidden=(8,), epochs=2).fit(X, y)
    bad = X.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(InvalidInput):
        model.fit(bad, y)
    with pytest.raises(InvalidInput):
        model.posterior(X[:, :1])
    with pytest.raises(InvalidInput):
        model.fit(X, y[:-1])
    with pytest.raises(UnknownName):
        model.feature_map("badge-typo")


def test_degenerate_data_keep_positive_finite_variances():
    """One label, constant labels, inputs of 1e200: the evidence's optimum is at s² = 0 or σ² = 0
    for the first two, so the floors keep the posterior usable (positive, finite)."""
    X, y = _data(20)
    cases = [(X[:1], y[:1]), (X, torch.full((20,), 3.0, dtype=torch.float64)), (X * 1e200, y)]
    for Xc, yc in cases:
        model = MLPRegressor(hidden=(16, 16), epochs=5, seed=0).fit(Xc, yc)
        post = model.posterior(Xc[:3])
        assert bool(torch.isfinite(post.mean).all()) and bool(torch.isfinite(post.variance).all())
        assert float(post.variance.min()) > 1e-12 and float(model.noise_variance.min()) > 0
    # the scaling is done in float64: inputs of 1e200 give the network of inputs of 1
    small = MLPRegressor(hidden=(16, 16), epochs=5, seed=0).fit(X, y)
    assert torch.allclose(model.predict(X * 1e200), small.predict(X), atol=1e-4)


def test_training_equals_bmdal_regs_fit_model(monkeypatch):
    """Same initial network, same mini-batch permutations: our training loop and bmdal_reg's
    ``fit_model`` (Adam, linear learning-rate decay, MSE, last partial batch dropped) end at the
    same network (float64, no validation set)."""
    import numpy as np

    np.Inf = np.inf  # bmdal_reg still uses the alias NumPy 2 removed
    pytest.importorskip("bmdal_reg")
    import bmdal_reg.data as bdata
    from bmdal_reg.models import create_tabular_model
    from bmdal_reg.train import fit_model

    X, y = _data(70, seed=6)
    epochs, bs = 12, 16
    model = MLPRegressor(hidden=(8, 8), epochs=epochs, batch_size=bs, holdout=0.0, dtype=torch.float64,
                         seed=3).fit(X, y)
    # replay the seeded generator: the split, the initialisation, then one permutation per epoch
    gen = torch.Generator().manual_seed(3)
    split = torch.randperm(70, generator=gen)
    init = model._build(2, 1, gen).double()
    perms = iter([torch.randperm(70, generator=gen) for _ in range(epochs)])
    monkeypatch.setattr(bdata, "batch_randperm", lambda n_batch, n, device="cpu": next(perms).unsqueeze(0))
    theirs = create_tabular_model(1, 2, hidden_sizes=[8, 8], act="relu", weight_gain=0.2, bias_gain=0.2).double()
    with torch.no_grad():
        mine = [m for m in init if hasattr(m, "weight")]
        for layer, src in zip([m for m in theirs.layers if hasattr(m, "weight")], mine):
            layer.weight.copy_(src.weight.T.unsqueeze(0))
            layer.bias.copy_(src.bias.unsqueeze(0))
    U = model._transform(X)
    T = ((y - model.y_mean) / model.y_std).unsqueeze(-1)
    with torch.no_grad():
        assert torch.allclose(theirs(U.unsqueeze(0))[0], init(U))  # the same starting network
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # fit_model prints a dot per epoch
        fit_model(theirs, bdata.DictDataset({"X": U, "y": T}), 1, split, None, n_epochs=epochs, batch_size=bs,
                  lr=0.375)
    with torch.no_grad():
        ours, ref = model.net(U), theirs(U.unsqueeze(0))[0]
    assert not torch.allclose(ref, init(U).detach(), atol=1e-3)  # it did train
    assert torch.allclose(ours, ref, rtol=1e-7, atol=1e-9), (ours - ref).abs().max()
