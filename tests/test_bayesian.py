"""The fully Bayesian GP (models/bayesian.py), its mixture posterior and the criteria over
hyperparameter draws (acquisition/hyper.py).

Evidence: the draws' posteriors equal BoTorch's own ``FullyBayesianSingleTaskGP.posterior``; the
mixture's moments are those of its components (law of total variance / covariance); BALD about
the hyperparameters equals BoTorch's ``qBayesianActiveLearningByDisagreement`` given the same
normal draws; with S = 1 every criterion is its point-estimate form; the greedy engine over the
draws conditions each draw exactly; NUTS recovers known hyperparameters with r_hat below 1.05.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

pytest.importorskip("numpyro")

from bayesal import ActiveLearner, ExactGP, FullyBayesianGP, GaussianPosterior, MixturePosterior, Pool  # noqa: E402
from bayesal.acquisition import BQBC, QBMGP, HellingerDistance, HyperBALD, MaxVariance  # noqa: E402
from bayesal.acquisition.hyper import hyper_bald_mc, hyper_bald_quadrature  # noqa: E402
from bayesal.errors import InvalidInput  # noqa: E402
from bayesal.models.bayesian import ConvergenceWarning  # noqa: E402

CRITERIA = [HyperBALD, BQBC, QBMGP, HellingerDistance]


def _data(n=14, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=g, dtype=torch.float64)
    y = 10 * torch.sin(6 * X[:, 0]) + X[:, 1] + 3 + 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
    return X, y


@pytest.fixture(scope="module")
def fbgp():
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a short run: convergence is tested below
        gp = FullyBayesianGP(num_samples=32, warmup=48, thinning=4, seed=0).fit(X, y)
    return gp, X


@pytest.fixture(scope="module")
def points():
    return torch.rand(40, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)


# -- the mixture posterior -----------------------------------------------------------------------
def test_mixture_moments_are_those_of_the_components():
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(5, 7, 2, generator=g, dtype=torch.float64)
    var = torch.rand(5, 7, 2, generator=g, dtype=torch.float64)
    noise = torch.rand(5, 1, generator=g, dtype=torch.float64)
    post = MixturePosterior(mu, var, component_noise_variance=noise)
    # draws from the mixture: pick a component, then draw from it
    assert torch.allclose(post.mean, mu.mean(0))
    second = (var + mu ** 2).mean(0)  # E[f²] of the mixture
    assert torch.allclose(post.variance, second - post.mean ** 2, atol=1e-12)
    assert torch.allclose(post.noise_variance, noise.mean(0).expand(2))
    assert post.num_components == 5 and post.num_points == 7
    one = MixturePosterior(mu[:1], var[:1])
    assert torch.equal(one.mean, mu[0]) and torch.allclose(one.variance, var[0])


def test_mixture_posterior_refuses_bad_shapes():
    with pytest.raises(InvalidInput, match="component_variance"):
        MixturePosterior(torch.zeros(2, 3, 1), torch.zeros(2, 4, 1))
    with pytest.raises(InvalidInput, match="component_mean"):
        MixturePosterior(torch.zeros(3, 1), torch.zeros(3, 1))
    with pytest.raises(InvalidInput, match="component_noise_variance"):
        MixturePosterior(torch.zeros(2, 3, 1), torch.ones(2, 3, 1), component_noise_variance=torch.ones(3, 1))
    with pytest.raises(InvalidInput, match="finite"):
        MixturePosterior(torch.full((2, 3, 1), math.nan), torch.ones(2, 3, 1))


# -- the model against BoTorch's -------------------------------------------------------------------
def test_draws_are_botorchs_posterior(fbgp, points):
    gp, _ = fbgp
    post = gp.posterior(points)
    with torch.no_grad():
        ref = gp.model.posterior(points)
    assert post.num_components == gp.num_components == 16
    assert torch.allclose(post.component_mean, ref.mean, atol=1e-9, rtol=1e-9)
    assert torch.allclose(post.component_variance, ref.variance, atol=1e-9, rtol=1e-7)
    # the noise of a new label, per draw, in y's units
    lik = gp.model.likelihood.noise.detach().reshape(-1) * gp.model.outcome_transform.stdvs.detach().reshape(()) ** 2
    assert torch.allclose(post.component_noise_variance[:, 0], lik)


def test_mixture_covariance_columns_and_joint_agree(fbgp, points):
    gp, _ = fbgp
    post = gp.posterior(points)
    C = gp.covariance(points, points)[0]
    assert torch.allclose(C.diagonal(), post.variance[:, 0], atol=1e-10)
    # law of total covariance, by brute force from the draws
    comp = gp.component_covariance(points, points)
    mu = post.component_mean[..., 0]
    brute = comp.mean(0) + (mu - mu.mean(0)).T @ (mu - mu.mean(0)) / mu.shape[0]
    assert torch.allclose(C, brute, atol=1e-10)
    cols = gp.covariance_columns(points)
    assert torch.allclose(cols(7)[0], C[:, 7], atol=1e-10)
    mean, cov = gp.joint_posterior(points[:5].unsqueeze(0))
    assert torch.allclose(mean[0, :, 0], post.mean[:5, 0], atol=1e-10)
    assert torch.allclose(cov[0, 0], C[:5, :5], atol=1e-10)


def test_conditioning_is_exact_for_every_draw(fbgp, points):
    gp, _ = fbgp
    before = gp.posterior(points)
    after = gp.condition_on(points[3:4]).posterior(points)
    assert torch.allclose(after.component_mean, before.component_mean, atol=1e-8)
    c = gp.component_covariance(points, points[3:4])[..., 0]  # [S, N]
    noise = before.component_noise_variance  # [S, 1]
    expected = before.component_variance[..., 0] - c ** 2 / (before.component_variance[:, 3, 0:1] + noise)
    assert torch.allclose(after.component_variance[..., 0], expected, atol=1e-9)


# -- the criteria ------------------------------------------------------------------------------------
def test_hyper_bald_equals_botorchs_qbald(fbgp, points):
    from botorch.acquisition.bayesian_active_learning import qBayesianActiveLearningByDisagreement
    from botorch.sampling.normal import SobolQMCNormalSampler

    gp, _ = fbgp
    for q in (1, 3):
        Xb = points[:4 * q].reshape(4, q, 2)
        sampler = SobolQMCNormalSampler(sample_shape=torch.Size([256]), seed=11)
        theirs = qBayesianActiveLearningByDisagreement(gp.model, sampler=sampler)(Xb).detach()
        mean, cov = gp.component_joint_posterior(Xb)  # [b, q, S], [b, S, q, q]
        noise = gp.component_noise_variance.reshape(1, -1, 1, 1) * torch.eye(q, dtype=cov.dtype)
        z = sampler.base_samples.reshape(256, q)  # the normal draws BoTorch used
        ours = hyper_bald_mc(mean.transpose(1, 2), cov + noise, z).detach()
        assert torch.allclose(ours, theirs, atol=1e-6, rtol=0), (q, ours, theirs)


def test_quadrature_matches_monte_carlo_at_one_point(fbgp, points):
    """Gauss–Hermite (48 nodes) against 2¹⁴ Sobol draws: agreement to 2 % or 1e-3 nats."""
    from botorch.utils.sampling import draw_sobol_normal_samples

    gp, _ = fbgp
    post = gp.posterior(points[:6])
    v = post.component_predictive_variance[..., 0]
    quad = hyper_bald_quadrature(post.component_mean[..., 0], v)
    mean, cov = gp.component_joint_posterior(points[:6].unsqueeze(1))
    cov = cov + gp.component_noise_variance.reshape(1, -1, 1, 1)
    mc = hyper_bald_mc(mean.transpose(1, 2), cov, draw_sobol_normal_samples(d=1, n=2 ** 14, seed=0)).detach()
    assert torch.allclose(quad, mc, rtol=0.02, atol=1e-3), (quad, mc)
    assert bool((quad > 0).all())
    assert torch.allclose(HyperBALD().score(post), quad)


def test_one_draw_gives_the_point_estimate_forms():
    g = torch.Generator().manual_seed(3)
    mu, var = torch.randn(9, 1, generator=g, dtype=torch.float64), torch.rand(9, 1, generator=g, dtype=torch.float64)
    noise = torch.tensor([0.05], dtype=torch.float64)
    for post in (MixturePosterior(mu[None], var[None], noise[None]), GaussianPosterior(mu, var, noise)):
        assert torch.allclose(QBMGP().score(post), MaxVariance().score(post))
        for cls in (BQBC, HellingerDistance, HyperBALD):
            assert torch.allclose(cls().score(post), torch.zeros(9, dtype=torch.float64), atol=1e-12), cls
    many = MixturePosterior(torch.stack([mu, mu + 1.0]), torch.stack([var, var]), torch.stack([noise, noise]))
    assert torch.allclose(BQBC().score(many), torch.full((9,), 0.25, dtype=torch.float64))
    assert bool((HellingerDistance().score(many) > 0).all()) and bool((HyperBALD().score(many) > 0).all())


def test_hellinger_closed_form():
    """Against the Bhattacharyya coefficient by numerical integration."""
    mu = torch.tensor([[[0.0]], [[1.5]]], dtype=torch.float64)
    var = torch.tensor([[[0.5]], [[2.0]]], dtype=torch.float64)
    post = MixturePosterior(mu, var, torch.zeros(2, 1, dtype=torch.float64))
    m_bar, v_bar = float(post.mean), float(post.variance)
    y = torch.linspace(-30, 30, 200001, dtype=torch.float64)

    def pdf(m, v):
        return torch.exp(-(y - m) ** 2 / (2 * v)) / math.sqrt(2 * math.pi * v)

    h = [math.sqrt(1 - float(torch.trapezoid(torch.sqrt(pdf(float(mu[s]), float(var[s])) * pdf(m_bar, v_bar)), y)))
         for s in range(2)]
    assert abs(float(HellingerDistance().score(post)) - sum(h) / 2) < 1e-8


def test_hellinger_of_point_masses():
    """A noise-free posterior at a labelled point: identical point masses are at distance 0,
    distinct ones at 1 (the formula's limit), never NaN."""
    mu = torch.tensor([[[1.0], [0.0]], [[1.0], [2.0]]], dtype=torch.float64)  # [S=2, N=2, 1]
    post = MixturePosterior(mu, torch.zeros_like(mu))
    h = HellingerDistance().score(post)
    assert torch.allclose(h, torch.tensor([0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("cls", CRITERIA)
def test_greedy_engine_over_the_draws_conditions_each_draw(cls, fbgp, points):
    """The second pick of a pool batch is the first pick of the model conditioned on the first."""
    gp, _ = fbgp
    from bayesal.selection import select

    pool = Pool(points)
    batch = select(gp, cls(), pool, 3).indices.tolist()
    assert len(set(batch)) == 3
    first = int(torch.argmax(cls().score(gp.posterior(points))))
    assert batch[0] == first
    s = cls().score(gp.condition_on(points[first:first + 1]).posterior(points))
    s[first] = -math.inf
    assert batch[1] == int(torch.argmax(s))


@pytest.mark.parametrize("cls", [HyperBALD, QBMGP, HellingerDistance])
def test_greedy_scores_after_a_pick_are_those_of_the_conditioned_model(cls, fbgp, points):
    gp, _ = fbgp
    post = gp.posterior(points)
    scorer = cls().greedy_scorer(gp, points, post.mean, post.noise_variance)
    before = scorer.scores(post.variance)
    assert torch.allclose(before, cls().score(post), atol=1e-10)
    scorer.update(11, None, None)
    want = cls().score(gp.condition_on(points[11:12]).posterior(points))
    assert torch.allclose(scorer.scores(post.variance), want, atol=1e-8)
    assert not torch.allclose(want, before, atol=1e-4)  # the pick changed the scores


@pytest.mark.parametrize("cls", CRITERIA)
def test_criteria_on_a_point_estimate_gp_run_greedy(cls):
    X, y = _data(10)
    gp = ExactGP().fit(X, y)
    from bayesal.selection import select

    idx = select(gp, cls(), Pool(torch.rand(30, 2, dtype=torch.float64)), 2).indices
    assert len(set(idx.tolist())) == 2


def test_box_batches_point_by_point(fbgp):
    from bayesal import Box
    from bayesal.selection import select

    gp, _ = fbgp
    sel = select(gp, BQBC(), Box([0.0, 0.0], [1.0, 1.0]), 2, seed=0)
    X = sel.X
    assert X.shape == (2, 2) and bool(((X >= 0) & (X <= 1)).all())
    grid = torch.rand(2000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    best_grid = float(BQBC().score(gp.posterior(grid)).max())
    # B-QBC reads the draws' means only, which pending labels (at those means) leave unchanged:
    # the best point is in the batch, the other is the best one not a duplicate of it
    assert float(BQBC().score(gp.posterior(X)).max()) >= 0.95 * best_grid


# -- fitting ---------------------------------------------------------------------------------------
def test_warm_start_and_diagnostics(fbgp):
    gp, X = fbgp
    d = gp.diagnostics()
    assert set(d) >= {"r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences", "table"}
    assert "lengthscale" in " ".join(d["table"].index)
    assert d["warm_start"] is False
    X2, y2 = _data(18, seed=0)
    warm = FullyBayesianGP(num_samples=32, warmup=48, warm_warmup=16, thinning=4, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm.fit(X, _data()[1])
        warm.fit(X2, y2)
    assert warm.diagnostics()["warm_start"] is True


def test_unconverged_chains_warn(fbgp, monkeypatch):
    gp, _ = fbgp
    real = gp.diagnostics()
    monkeypatch.setattr(type(gp), "diagnostics", lambda self: {**real, "r_hat_max": 1.2, "divergences": 3})
    with pytest.warns(ConvergenceWarning, match="r_hat 1.200 > 1.05.*3 divergent"):
        gp._warn_if_unconverged()


def test_bad_input_is_named():
    with pytest.raises(InvalidInput, match="prior"):
        FullyBayesianGP(prior="horseshoe")
    with pytest.raises(InvalidInput, match="thinning"):
        FullyBayesianGP(num_samples=4, thinning=8)
    X, y = _data(6)
    with pytest.raises(InvalidInput, match="one output"):
        FullyBayesianGP().fit(X, torch.stack([y, y], 1))
    with pytest.raises(InvalidInput, match="y"):
        FullyBayesianGP().fit(X, y.clone().fill_(math.nan))


def test_learner_campaign_with_a_criterion_over_draws():
    g = torch.Generator().manual_seed(2)
    X = torch.rand(60, 2, generator=g, dtype=torch.float64)
    learner = ActiveLearner(Pool(X), surrogate=FullyBayesianGP(num_samples=16, warmup=32, thinning=4),
                            acquisition="bqbc", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            batch = learner.ask(3).X
            learner.tell(batch, torch.sin(5 * batch[:, 0]) + batch[:, 1])
    assert learner.n_labels >= 6


@pytest.mark.slow
def test_nuts_recovers_known_hyperparameters():
    """y from a GP with lengthscale 0.2 (unit cube), outputscale 1, noise 0.01: the true
    lengthscale lies in the draws' 2.5–97.5 % range and every r_hat is below 1.05."""
    from gpytorch.kernels import MaternKernel

    torch.manual_seed(0)
    X = torch.linspace(0, 1, 60, dtype=torch.float64).reshape(-1, 1)
    k = MaternKernel(nu=2.5).double()
    k.lengthscale = 0.2
    K = k(X).to_dense() + 1e-8 * torch.eye(60, dtype=torch.float64)
    f = torch.linalg.cholesky(K) @ torch.randn(60, dtype=torch.float64)
    y = f + 0.1 * torch.randn(60, dtype=torch.float64)
    gp = FullyBayesianGP(num_samples=256, warmup=256, thinning=4, seed=1).fit(X, y, bounds=[[0.0], [1.0]])
    ls = gp.hyperparameters()["lengthscale"][:, 0]
    lo, hi = torch.quantile(ls, torch.tensor([0.025, 0.975], dtype=ls.dtype))
    assert float(lo) < 0.2 < float(hi), (float(lo), float(hi))
    assert gp.diagnostics()["r_hat_max"] < 1.05


# -- campaigns: records, status, report ---------------------------------------------------------------
def _hyper_record(n, r_hat=1.01, divergences=0):
    return {"n_labels": n, "hyperparameters": {
        "r_hat_max": r_hat, "ess_bulk_min": 80.0, "ess_tail_min": 60.0, "divergences": divergences, "chains": 2,
        "draws": 128, "warm_start": n > 4, "lengthscale": [[0.1, 0.3 + 0.01 * n, 2.0], [0.5, 1.0, 9.0]],
        "noise": [0.01, 0.02, 0.05], "prior": "matern"}}


def test_status_lines_name_convergence_and_the_lengthscales():
    from bayesal.models.bayesian import diagnostic_lines

    lines = diagnostic_lines(_hyper_record(8)["hyperparameters"])
    assert lines[0].startswith("NUTS") and "r_hat max 1.010" in lines[0] and "warm start" in lines[0]
    assert "median 0.38, 1" in lines[1] and "[0.1, 2]" in lines[1]
    assert not any(line.startswith("warning") for line in lines)
    bad = diagnostic_lines(_hyper_record(8, r_hat=1.2)["hyperparameters"])
    assert bad[-1].startswith("warning") and "1.05" in bad[-1]
    assert diagnostic_lines(_hyper_record(8, divergences=2)["hyperparameters"])[-1].startswith("warning")


def test_fit_diagnostics_are_json_and_match_the_draws(fbgp):
    import json

    gp, _ = fbgp
    d = gp.fit_diagnostics()
    json.dumps(d)
    ls = gp.hyperparameters()["lengthscale"]
    assert len(d["lengthscale"]) == 2
    for i in range(2):
        assert abs(d["lengthscale"][i][1] - float(ls[:, i].median())) < 0.2 * float(ls[:, i].std()) + 1e-12
        assert d["lengthscale"][i][0] <= d["lengthscale"][i][1] <= d["lengthscale"][i][2]
    assert abs(d["lengthscale"][1][1] - d["lengthscale"][0][1]) > 0.2 * float(ls[:, 0].std())  # x1 ≠ x2 here


def test_report_plots_the_hyperparameter_posterior(tmp_path):
    from bayesal.report import plot_hyperparameters

    import matplotlib.image

    path = plot_hyperparameters([_hyper_record(n) for n in (4, 8, 12)] + [{"n_labels": 13}], tmp_path / "h.png")
    assert str(path).endswith("h.png")
    rgb = torch.as_tensor(matplotlib.image.imread(str(tmp_path / "h.png"))[..., :3])
    for colour in ((0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)):  # the two lengthscales' lines (C0, C1)
        near = ((rgb - torch.tensor(colour) / 255).abs().max(-1).values < 0.02).sum()
        assert int(near) > 50, colour


@pytest.mark.slow
def test_a_fully_bayesian_campaign_records_status_and_report(tmp_path, capsys):
    from bayesal.cli import main

    store = tmp_path / "c.db"
    assert main(["run", "--store", str(store), "--model", "fully-bayesian-gp", "--strategy", "qbmgp",
                 "--budget", "8", "--batch-size", "4", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["status", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "NUTS" in out and "lengthscale median" in out
    assert main(["report", "--store", str(store), "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    assert (tmp_path / "rep" / "hyperparameters.png").exists()
    assert "r_hat max" in (tmp_path / "rep" / "index.html").read_text()


def test_without_numpyro_the_extra_is_named(monkeypatch):
    import sys

    from bayesal.errors import Unsupported

    monkeypatch.setitem(sys.modules, "numpyro", None)  # import numpyro now raises ImportError
    X, y = _data(6)
    with pytest.raises(Unsupported, match=r"bayesal\[fully-bayesian\]"):
        FullyBayesianGP().fit(X, y)


def test_distributed_shards_refuse_criteria_over_draws_by_name(fbgp, points):
    gp, _ = fbgp
    post = gp.posterior(points)
    scorer = QBMGP().greedy_scorer(gp, points, post.mean, post.noise_variance)
    with pytest.raises(InvalidInput, match="single pool"):
        scorer.update(None, None, None)


# -- the compiled sampler ------------------------------------------------------------------------
def test_padded_likelihood_is_the_unpadded_one_up_to_a_constant():
    """The masked, padded model's log density equals BoTorch's unpadded model's at the same
    hyperparameters, minus p/2 log 2π for p padded rows: NUTS samples the same posterior."""
    import jax.numpy as jnp
    from botorch.models.fully_bayesian import MaternPyroModel, SaasPyroModel
    from numpyro.infer.util import log_density

    from bayesal.models.nuts import sampler

    X, y = _data(13)
    X, y = X, ((y - y.mean()) / y.std()).unsqueeze(-1)
    for prior, cls in (("matern", MaternPyroModel), ("saas", SaasPyroModel)):
        plain = cls()
        plain.set_inputs(X, y)
        s = sampler(prior, 2, 13, 8, 4, 3)
        args = s.data(X, y)
        assert args[0].shape[0] == 32 and float(args[2].sum()) == 13
        params = {"noise": jnp.array(0.07), "mean": jnp.array(0.3)}
        if prior == "matern":
            params["lengthscale"] = jnp.array([0.2, 1.5])
        else:
            params.update(kernel_tausq=jnp.array(0.8), _kernel_inv_length_sq=jnp.array([3.0, 0.5]),
                          outputscale=jnp.array(1.3))
        full, _ = log_density(plain.sample, (), {}, params)
        padded, _ = log_density(s.pyro_model.model, args, {}, params)
        assert float(padded) == pytest.approx(float(full) - 19 / 2 * math.log(2 * math.pi), abs=1e-3)


def test_refits_in_one_size_bucket_reuse_one_compiled_sampler():
    from bayesal.models import nuts

    X, y = _data(40)
    gp = FullyBayesianGP(num_samples=8, warmup=8, warm_warmup=8, thinning=2, num_chains=2, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gp.fit(X[:33], y[:33])  # cold: bucket 64
        before = dict(nuts._SAMPLERS)
        gp.fit(X[:36], y[:36])  # warm, bucket 64: a new (warm) sampler
        gp.fit(X[:40], y[:40])  # warm, same bucket: no new sampler
    added = [k for k in nuts._SAMPLERS if k not in before]
    assert len(added) == 1 and added[0][2] == 64 and added[0][-1] is False  # warm: mass matrix not re-adapted
    assert gp.diagnostics()["warm_start"] is True and gp.num_train == 40


def test_warm_start_mass_matrix_is_the_draws_covariance():
    import jax.numpy as jnp
    import numpy as np

    from bayesal.models.nuts import draws_covariance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 2)) @ np.array([[1.0, 0.0], [0.8, 0.3]])
    b = rng.normal(size=(400,)) * 2.0
    chains = [{"a": jnp.asarray(a[:200]), "b": jnp.asarray(b[:200])}, {"a": jnp.asarray(a[200:]), "b": jnp.asarray(b[200:])}]
    cov = np.asarray(draws_covariance(chains))
    ref = np.cov(np.column_stack([a, b]), rowvar=False)  # ravel order: sites sorted, a then b
    assert np.allclose(cov, 400 / 405 * ref + 1e-3 * 5 / 405 * np.eye(3), atol=1e-4)
