"""Network surrogates: consistent MC-dropout masks across chunks and calls, deterministic training,
vectorised ensembles, deep kernel GPs against GPyTorch's own predictions, and the selector /
learner paths with sample posteriors."""

import gpytorch
import pytest
import torch
from torch import nn

from bayesal import ActiveLearner, BatchBALD, DeepEnsemble, DeepKernelGP, MCDropoutNet, Pool, select
from bayesal.acquisition import BALD, EPIG, mutual_information
from bayesal.errors import InvalidInput, NotFitted
from bayesal.models import Surrogate
from bayesal.models.nets import ConsistentDropout
from bayesal.posteriors import GaussianPosterior, SamplePosterior

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(n=120, seed=0, C=3):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])[:C]
    y = torch.arange(n) % C
    X = centres[y] + 0.6 * torch.randn(n, 2, generator=gen)
    return X.double(), y


def _wave(n=80, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.sin(3 * X[:, 0]) + 0.5 * X[:, 1] + 0.05 * torch.randn(n, generator=gen, dtype=torch.float64)
    return X, y


@pytest.fixture(scope="module")
def dropout_net():
    X, y = _blobs()
    return MCDropoutNet(num_classes=3, hidden=(32, 32), num_samples=12, max_epochs=60, seed=0).fit(X, y), X


def test_mc_dropout_masks_are_consistent_across_chunks_and_calls(dropout_net):
    net, X = dropout_net
    whole = net.posterior(X)
    assert whole.samples.shape == (12, X.shape[0], 3) and whole.samples.dtype == torch.float32
    chunked = net.posterior(X, chunk_size=7)
    assert torch.equal(whole.samples, chunked.samples)
    again = net.posterior(X[5:9])
    assert torch.equal(again.samples, whole.samples[:, 5:9])
    # the K samples are different networks, and one network gives one answer for a repeated input
    assert not torch.allclose(whole.samples[0], whole.samples[1])
    dup = net.posterior(X[[3, 3, 3]]).samples
    assert torch.equal(dup[:, 0], dup[:, 2])


def test_mc_dropout_training_is_deterministic_given_the_seed(dropout_net):
    net, X = dropout_net
    X_train, y = _blobs()
    same = MCDropoutNet(num_classes=3, hidden=(32, 32), num_samples=12, max_epochs=60, seed=0).fit(X_train, y)
    other = MCDropoutNet(num_classes=3, hidden=(32, 32), num_samples=12, max_epochs=60, seed=1).fit(X_train, y)
    assert torch.equal(same.posterior(X).samples, net.posterior(X).samples)
    assert not torch.equal(other.posterior(X).samples, net.posterior(X).samples)
    assert (net.predict(X).argmax(-1) == y).double().mean() > 0.9


def test_early_stopping_stops_before_the_epoch_limit():
    X, y = _wave(200)
    net = MCDropoutNet(task="regression", hidden=(64, 64), max_epochs=2000, patience=5, seed=0).fit(X, y)
    assert "holdout_loss" in net.history[0]
    assert len(net.history) < 2000
    best = min(r["holdout_loss"] for r in net.history)
    assert len(net.history) - 1 - [r["holdout_loss"] for r in net.history].index(best) == 5  # stopped after 5 stale epochs


def test_mc_dropout_regression_posterior_and_user_module():
    X, y = _wave(150)
    net = MCDropoutNet(task="regression", num_samples=16, seed=0).fit(X, y)
    post = net.posterior(X)
    assert post.kind == "regression" and post.samples.shape == (16, 150, 1)
    assert float((post.mean[:, 0].double() - y).pow(2).mean().sqrt()) < 0.5 * float(y.std())
    assert post.noise_variance.shape == (1,) and float(post.noise_variance) > 0
    module = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    custom = MCDropoutNet(task="regression", module=module, num_samples=4, max_epochs=20, seed=0).fit(X, y)
    assert any(isinstance(m, ConsistentDropout) for m in custom.net.modules())
    assert custom.posterior(X[:5]).samples.shape == (4, 5, 1)
    with pytest.raises(InvalidInput, match="dropout layer"):
        MCDropoutNet(task="regression", module=nn.Linear(2, 1))


def test_bad_inputs_to_network_surrogates():
    X, y = _blobs(30)
    with pytest.raises(NotFitted):
        MCDropoutNet().posterior(X)
    with pytest.raises(InvalidInput, match="class indices"):
        MCDropoutNet().fit(X, y.double() + 0.5)
    with pytest.raises(InvalidInput, match="num_classes"):
        MCDropoutNet(num_classes=2).fit(X, y)
    with pytest.raises(InvalidInput, match="task"):
        DeepEnsemble(task="ranking")
    bad = X.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(InvalidInput, match="NaN"):
        DeepEnsemble(num_classes=3).fit(bad, y)


def test_deep_ensemble_members_are_trained_together_and_differ():
    X, y = _blobs(150, seed=1)
    ens = DeepEnsemble(num_classes=3, num_members=4, hidden=(32,), max_epochs=80, seed=0).fit(X, y)
    post = ens.posterior(X)
    assert post.samples.shape == (4, 150, 3)
    assert (post.mean.argmax(-1) == y).double().mean() > 0.9
    assert not torch.allclose(post.samples[0], post.samples[1])
    # a vectorised member equals the same network run on its own parameters
    member = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3)).to(torch.float32)
    member.load_state_dict({k: v[2] for k, v in ens.params.items()})
    U = ens._transform(X)
    assert torch.allclose(torch.softmax(member(U), -1), post.samples[2], atol=1e-6)
    assert torch.equal(DeepEnsemble(num_classes=3, num_members=4, hidden=(32,), max_epochs=80, seed=0)
                       .fit(X, y).posterior(X).samples, post.samples)


def test_deep_ensemble_regression_variance_grows_away_from_data():
    X, y = _wave(120)
    ens = DeepEnsemble(task="regression", num_members=5, hidden=(64, 64), seed=0).fit(X, y)
    inside = ens.posterior(X).variance.mean()
    outside = ens.posterior(X * 4).variance.mean()
    assert outside > 3 * inside


@pytest.mark.parametrize("variational", [False, True])
def test_deep_kernel_gp_posterior_equals_gpytorch_prediction(variational):
    X, y = _wave(120, seed=2)
    dkl = DeepKernelGP(hidden=(32,), features=4, variational=variational, max_epochs=60, num_inducing=32, seed=0).fit(X, y)
    Xt, yt = _wave(50, seed=3)
    post = dkl.posterior(Xt)
    assert isinstance(post, GaussianPosterior)
    U = dkl._scale(Xt)
    with torch.no_grad(), gpytorch.settings.fast_computations(False):
        if variational:
            out = dkl.model["gp"](dkl.net(U).unsqueeze(0))
            mean, var = out.mean[0], out.variance[0]
        else:
            out = dkl.model(U)
            mean, var = out.mean, out.variance
    assert torch.allclose(post.mean[:, 0], mean * dkl.y_std + dkl.y_mean, atol=1e-5)
    assert torch.allclose(post.variance[:, 0], var * dkl.y_std**2, atol=1e-5, rtol=1e-4)
    assert float((post.mean[:, 0] - yt).pow(2).mean().sqrt()) < 0.6 * float(yt.std())
    # the shared algebra gives joint covariances consistent with the marginals
    cov = dkl.covariance(Xt[:4], Xt[:4])
    assert torch.allclose(cov[0].diagonal(), post.variance[:4, 0], atol=1e-8)


def test_batchbald_through_select_and_the_learner(dropout_net):
    net, _ = dropout_net
    X, y = _blobs(200, seed=4)
    pool = Pool(X, y.double())
    pool.mark_labelled(torch.arange(10))
    sel = select(net, BatchBALD(), pool, 5)
    assert len(set(sel.indices.tolist())) == 5 and not bool(pool.labelled[sel.indices].any())
    post = net.posterior(pool.X[pool.available])
    idx, gains = BatchBALD().select_from_samples(post, 5)
    assert torch.equal(sel.indices, pool.available[idx])
    # BALD with a sample surrogate: chunked top-k of the mutual information
    top = select(net, BALD(), pool, 5)
    bald = mutual_information(post.samples)
    assert torch.equal(top.indices, pool.available[torch.topk(bald, 5).indices])
    # EPIG through the selector (targets from the pool, same masks)
    assert len(select(net, EPIG(n_reference=20), pool, 3)) == 3

    learner = ActiveLearner(Pool(X, y.double()), surrogate=MCDropoutNet(num_classes=3, hidden=(16,), max_epochs=20),
                            acquisition=BatchBALD(), seed=0, test_set=(X[:50], y[:50]))
    records = learner.run(budget=16, q=4, initial=8, progress=False)
    assert learner.n_labels == 16 and "accuracy" in records[-1]
    assert isinstance(learner.posterior(X[:3]), SamplePosterior)


def test_regression_ensemble_in_the_learner_with_epig_and_stochastic_batches():
    from bayesal import StochasticBatch

    X, y = _wave(300, seed=5)
    for acquisition, selector in ((EPIG(n_reference=32), "auto"),
                                  (BALD(), StochasticBatch(mode="softrank", temperature=1.0, subset_size=100))):
        model = DeepEnsemble(task="regression", num_members=3, hidden=(16,), max_epochs=30, seed=0)
        learner = ActiveLearner(Pool(X, y), surrogate=model, acquisition=acquisition, selector=selector, seed=0,
                                test_set=(X[:50], y[:50]))
        records = learner.run(budget=14, q=4, initial=6, progress=False)
        assert learner.n_labels == 14 and records[-1]["rmse"] is not None
        assert learner.space.labelled.sum() == 14


# -- regression sample surrogates on a box: fixed base samples, moments, ETKF conditioning ----------
def _tiny_regression_nets(dtype=torch.float32):
    X, y = _wave(30, seed=4)
    common = dict(task="regression", hidden=(16, 16), max_epochs=200, lr=1e-2, seed=0, dtype=dtype)
    return [MCDropoutNet(num_samples=6, **common).fit(X, y), DeepEnsemble(num_members=4, **common).fit(X, y)]


def test_joint_samples_are_the_fixed_posterior_draws_and_differentiable_in_float64():
    from bayesal.models.nets import sample_moments

    Xb = torch.rand(4, 3, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    for net in _tiny_regression_nets():  # float32 networks, float64 optimiser inputs
        Xg = Xb.clone().requires_grad_()
        draws = net.joint_samples(Xg)
        assert draws.shape == (net.num_samples, 4, 3, 1) and draws.dtype == torch.float64
        post = net.posterior(Xb.reshape(-1, 2)).samples
        assert torch.allclose(draws.detach().reshape(post.shape).float(), post, atol=1e-5)
        assert torch.equal(draws.detach(), net.joint_samples(Xb))  # deterministic: fixed base samples
        grad, = torch.autograd.grad(draws.sum(), Xg)
        assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0
        mean, cov = net.joint_posterior(Xb)
        assert mean.shape == (4, 3, 1) and cov.shape == (4, 1, 3, 3)
        ref_mean, ref_cov = sample_moments(draws.detach())
        assert torch.allclose(mean, ref_mean) and torch.allclose(cov, ref_cov)
        assert torch.allclose(cov[0, 0].float(), net.posterior(Xb[0]).covariance()[0], atol=1e-6)
        R = Xb[1]
        generic = Surrogate.reference_cross(net, R, Xb)  # through the joint posterior of [R; X]
        assert torch.allclose(net.reference_cross(R, Xb), generic, atol=1e-9)


def test_ensemble_transform_conditioning_is_the_exact_woodbury_update():
    """Conditioned draws mean + T D have the sample covariance Σ − Σ_xP (Σ_PP + σ²I)⁻¹ Σ_Px of
    the base draws' sample covariance, and the same mean (tiny K, N, in float64)."""
    gen = torch.Generator().manual_seed(2)
    X, P = torch.rand(5, 2, generator=gen, dtype=torch.float64), torch.rand(2, 2, generator=gen, dtype=torch.float64)
    for net in _tiny_regression_nets(torch.float64):
        both = net.posterior(torch.cat([X, P]))
        S, noise = both.covariance()[0], net.noise_variance[0]
        Sxx, Sxp, Spp = S[:5, :5], S[:5, 5:], S[5:, 5:]
        direct = Sxx - Sxp @ torch.linalg.solve(Spp + noise * torch.eye(2, dtype=S.dtype), Sxp.T)
        conditioned = net.condition_on(P)
        after = conditioned.posterior(X)
        assert torch.allclose(after.covariance()[0], direct, atol=1e-10, rtol=1e-8)
        assert torch.allclose(after.mean, both.mean[:5], atol=1e-12)
        # the same update through the differentiable box path and the cross-covariances
        _, cov = conditioned.joint_posterior(X.unsqueeze(0))
        assert torch.allclose(cov[0, 0], direct, atol=1e-10, rtol=1e-8)
        assert torch.allclose(conditioned.covariance(X, X)[0], direct, atol=1e-10, rtol=1e-8)
        assert torch.allclose(conditioned.reference_cross(X, X[:2].unsqueeze(0))[0, 0], direct[:, :2],
                              atol=1e-10, rtol=1e-8)
        # stacking pending points is conditioning on all of them (same moments)
        twice = net.condition_on(P[:1]).condition_on(P[1:])
        assert twice.P.shape == (2, 2)
        assert torch.allclose(twice.posterior(X).covariance()[0], direct, atol=1e-10, rtol=1e-8)
        assert conditioned.posterior_kind == "samples" and conditioned.num_samples == net.num_samples
        assert torch.equal(conditioned.noise_variance, net.noise_variance)
        assert conditioned.posterior_bytes_per_row == net.posterior_bytes_per_row
        assert conditioned.parameter_like().dtype == torch.float64


def test_ensemble_transform_is_symmetric_and_keeps_the_mean():
    from bayesal.models.nets import ensemble_transform

    D = torch.randn(7, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    D = D - D.mean(0, keepdim=True)
    T = ensemble_transform(D, torch.tensor([0.1, 2.0], dtype=torch.float64))
    assert T.shape == (2, 7, 7) and torch.allclose(T, T.transpose(-1, -2))
    assert torch.allclose(T @ torch.ones(7, dtype=torch.float64), torch.ones(2, 7, dtype=torch.float64))


def test_classifiers_refuse_box_posteriors_and_pending_points_by_name(dropout_net):
    from bayesal.errors import Unsupported

    net, X = dropout_net
    with pytest.raises(Unsupported) as err:
        net.joint_samples(X[:3].unsqueeze(0))
    assert "MCDropoutNet (classification)" in str(err.value) and "box optimisation" in str(err.value)
    with pytest.raises(Unsupported, match="box optimisation"):
        net.joint_posterior(X[:3].unsqueeze(0))
    with pytest.raises(Unsupported, match=r"BatchBALD") as err:
        net.condition_on(X[:2])
    assert "MCDropoutNet (classification)" in str(err.value) and "conditioning on pending points" in str(err.value)
