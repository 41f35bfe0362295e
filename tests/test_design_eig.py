"""EIG estimators against closed forms: the linear-Gaussian EIG, the A/B test, BALD of a GP."""

import math

import numpy as np
import pytest
import torch

import bayesal
from bayesal import BALD, ExactGP, InvalidInput, UnknownName
from bayesal.design import (
    DeathProcessModel,
    GaussianMarginalGuide,
    GaussianPosteriorGuide,
    LinearGaussianModel,
    PsychometricModel,
    ab_test_model,
    estimate_eig,
    gaussian_posterior_model,
    laplace_eig,
    marginal_eig,
    nmc_eig,
    pce_eig,
    posterior_eig,
    select_design,
)


# small tensors: see conftest.one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def linear_gaussian():
    """A 2-parameter regression, 3 observations per design, EIG between about 0.6 and 1.6 nats."""
    S = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    model = LinearGaussianModel(torch.tensor([0.2, -0.1]), S, 0.8, design_shape=(3, 2))
    X = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = 0.5 * torch.tensor([np.linalg.slogdet(np.eye(3) + x @ S.numpy() @ x.T / 0.64)[1] for x in X.numpy()])
    return model, X, exact.to(torch.float64)


CASES = [
    ("nmc", {"num_outer": 1000, "num_inner": 1000}, "upper"),
    ("nmc", {"num_outer": 1000, "reuse_inner": True}, "upper"),
    ("pce", {"num_outer": 1000, "num_contrastive": 1000}, "lower"),
    ("posterior", {"num_outer": 1000}, "lower"),
    ("marginal", {"num_outer": 1000}, "upper"),
    ("laplace", {"num_outer": 50}, "exact"),
]


@pytest.mark.parametrize("method, options, side", CASES, ids=[c[0] + ("-reuse" if "reuse_inner" in c[1] else "") for c in CASES])
def test_every_estimator_is_within_three_standard_errors_of_the_closed_form(linear_gaussian, method, options, side):
    model, X, exact = linear_gaussian
    est = estimate_eig(model, X, method, seed=1, **options)
    tol = 3 * est.stderr + 1e-9
    assert bool(((est.value - exact).abs() <= tol).all()), (est.value, est.stderr, exact)
    if side == "lower":
        assert bool((est.value <= exact + tol).all())
    if side == "upper":
        assert bool((est.value >= exact - tol).all())
    if side == "exact":
        assert torch.allclose(est.value, exact, atol=1e-9)
    else:
        assert bool((est.stderr > 0).all() and (est.stderr < 0.06).all())


def test_bounds_are_on_their_side_when_they_are_loose(linear_gaussian):
    """With 3 inner samples the nested bounds are far from the EIG, each on its own side."""
    model, X, exact = linear_gaussian
    upper = nmc_eig(model, X, num_outer=2000, num_inner=3, seed=2)
    lower = pce_eig(model, X, num_outer=2000, num_contrastive=3, seed=2)
    assert bool((upper.value - 3 * upper.stderr > exact).all())
    assert bool((lower.value + 3 * lower.stderr < exact).all())
    assert bool((lower.value <= math.log(4) + 1e-12).all())


def test_pce_never_exceeds_log_of_contrastive_count_plus_one():
    model = ab_test_model()  # EIG between 6.6 and 7.1 nats on these designs, ≫ log(11)
    est = pce_eig(model, torch.arange(10.0, 91.0, 10.0), num_outer=200, num_contrastive=10)
    assert bool((est.value <= math.log(11) + 1e-12).all())
    assert bool((est.value > math.log(11) - 0.3).all())


def test_ab_test_best_design_equals_the_analytic_best():
    model = ab_test_model()
    designs = torch.arange(101.0).unsqueeze(-1)
    choice = select_design(model, designs, estimator="laplace", num_outer=20)
    analytic = model.eig(designs)
    assert int(choice.indices[0]) == int(torch.argmax(analytic)) == 50
    assert torch.allclose(choice.scores.value, analytic, atol=1e-9)
    assert float(choice.designs[0, 0]) == 50.0


def test_laplace_is_chunk_invariant_on_linear_gaussian(linear_gaussian):
    model, X, exact = linear_gaussian
    with bayesal.settings.memory_budget(20_000):
        small = laplace_eig(model, X, num_outer=30, chunk_size=1)
    assert torch.allclose(small.value, exact, atol=1e-9)


def test_nested_estimators_with_outer_and_inner_chunks(linear_gaussian):
    model, X, exact = linear_gaussian
    # 32 bytes per element · 3 observations · 300 inner draws: one outer sample per chunk and
    # the 400 inner draws in two blocks.
    with bayesal.settings.memory_budget(32 * 3 * 300):
        fresh = nmc_eig(model, X[:2], num_outer=150, num_inner=400, seed=4)
        reused = nmc_eig(model, X[:2], num_outer=150, reuse_inner=True, seed=4)
    for est in (fresh, reused):
        assert bool(((est.value - exact[:2]).abs() <= 3 * est.stderr).all())


def test_gp_eig_about_f_is_bald():
    """For θ = f(x) with the GP posterior as its prior and a Gaussian likelihood, the EIG is
    ½ log(1 + σ_f²/σ_n²), BALD's score: Laplace (exact here) matches it to rounding, and the
    sampling estimators within three standard errors."""
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(10, 1, generator=gen, dtype=torch.float64)
    y = torch.sin(6 * X[:, 0]) + 0.1 * torch.randn(10, generator=gen, dtype=torch.float64)
    gp = ExactGP(noise=0.05).fit(X, y, bounds=[[0.0], [1.0]])
    post = gp.posterior(torch.tensor([[0.05], [0.3], [0.62], [0.99], [1.0]], dtype=torch.float64))
    bald = BALD().score(post)
    closed = 0.5 * torch.log1p(post.variance[:, 0] / post.noise_variance[0])
    model = gaussian_posterior_model(post)
    designs = torch.arange(5.0)
    assert torch.allclose(bald, closed, atol=1e-12)
    assert torch.allclose(laplace_eig(model, designs, num_outer=20).value, bald, atol=1e-9)
    for est in (nmc_eig(model, designs, num_outer=1000, num_inner=1000, seed=3),
                pce_eig(model, designs, num_outer=1000, num_contrastive=1000, seed=3)):
        assert bool(((est.value - bald).abs() <= 3 * est.stderr).all()), (est, bald)


def test_guides_trained_by_sgd_from_scratch_reach_the_closed_form(linear_gaussian):
    model, X, exact = linear_gaussian
    post_guide = GaussianPosteriorGuide(2, 3, 2)
    marg_guide = GaussianMarginalGuide(2, 3)
    lower = posterior_eig(model, X[:2], guide=post_guide, init_samples=0, num_steps=300, lr=0.05,
                          batch_size=128, num_outer=2000, seed=5)
    upper = marginal_eig(model, X[:2], guide=marg_guide, init_samples=0, num_steps=300, lr=0.05,
                         batch_size=128, num_outer=2000, seed=5)
    assert bool((post_guide.weight.abs().sum() > 0) and (marg_guide.mean.abs().sum() > 0))  # trained in place
    assert bool(((lower.value - exact[:2]).abs() < 3 * lower.stderr + 0.05).all()), (lower, exact)
    assert bool(((upper.value - exact[:2]).abs() < 3 * upper.stderr + 0.05).all()), (upper, exact)
    assert bool((lower.value <= exact[:2] + 3 * lower.stderr).all())
    assert bool((upper.value >= exact[:2] - 3 * upper.stderr).all())


def test_estimators_on_nonlinear_models_agree_with_nmc():
    """No closed form: PCE and NMC bracket the EIG and agree within their errors; Laplace is an
    approximation but lands near them on this well-identified binomial model."""
    model = PsychometricModel(trials=20)
    designs = torch.tensor([-3.0, 0.0, 1.5])
    upper = nmc_eig(model, designs, num_outer=600, num_inner=600, seed=0)
    lower = pce_eig(model, designs, num_outer=600, num_contrastive=600, seed=0)
    lap = laplace_eig(model, designs, num_outer=300, seed=0)
    both = 3 * torch.sqrt(upper.stderr**2 + lower.stderr**2)
    assert bool(((upper.value - lower.value).abs() <= both).all())
    assert bool(((lap.value - upper.value).abs() <= 0.25).all()), (lap, upper)
    # The identity d ↦ EIG is decreasing away from the prior threshold (0): 0 beats −3.
    assert float(lower.value[1]) > float(upper.value[0])


def test_same_seed_same_estimate_and_global_stream_untouched(linear_gaussian):
    model, X, _ = linear_gaussian
    state = torch.get_rng_state()
    a = pce_eig(model, X, num_outer=50, num_contrastive=50, seed=9)
    b = pce_eig(model, X, num_outer=50, num_contrastive=50, seed=9)
    c = pce_eig(model, X, num_outer=50, num_contrastive=50, seed=10)
    assert torch.equal(a.value, b.value) and not torch.equal(a.value, c.value)
    assert torch.equal(torch.get_rng_state(), state)


def test_bad_inputs_raise_invalid_input_naming_the_argument(linear_gaussian):
    model, X, _ = linear_gaussian
    with pytest.raises(InvalidInput, match="num_outer"):
        nmc_eig(model, X, num_outer=0)
    with pytest.raises(InvalidInput, match="num_inner"):
        nmc_eig(model, X, num_inner=-1)
    with pytest.raises(InvalidInput, match="num_contrastive"):
        pce_eig(model, X, num_contrastive=2.5)
    with pytest.raises(InvalidInput, match="designs"):
        pce_eig(model, torch.zeros(4, 2, 3))
    with pytest.raises(InvalidInput, match="designs.*NaN"):
        pce_eig(model, torch.full((1, 3, 2), float("nan")))
    with pytest.raises(InvalidInput, match="model"):
        pce_eig("not a model", X)
    with pytest.raises(InvalidInput, match="guide"):
        posterior_eig(model, X, guide=GaussianPosteriorGuide(3, 3, 2))
    with pytest.raises(InvalidInput, match="guide"):
        marginal_eig(DeathProcessModel(), torch.tensor([1.0]))
    empirical = model.condition_on_samples({"theta": torch.randn(100, 2, dtype=torch.float64)})
    with pytest.raises(InvalidInput, match="model"):
        laplace_eig(empirical, X)
    with pytest.raises(InvalidInput, match="model"):
        posterior_eig(empirical, X)
    with pytest.raises(UnknownName, match="estimator"):
        estimate_eig(model, X, "bogus")
    assert pce_eig(empirical, X, num_outer=20, num_contrastive=20).value.shape == (4,)


def test_estimator_keyword_names_and_unknown_options():
    """One name for the EIG estimator argument everywhere (``estimator``); the old ``method`` still
    works with a DeprecationWarning, and an option the estimator does not take is a clear error."""
    from bayesal.design import LinearGaussianModel, estimate_eig

    model = LinearGaussianModel(torch.zeros(2), torch.eye(2), noise_sd=0.5, design_shape=(1, 2))
    designs = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
    new = estimate_eig(model, designs, estimator="laplace", num_outer=8, seed=0)
    with pytest.warns(DeprecationWarning, match="estimator"):
        old = estimate_eig(model, designs, method="laplace", num_outer=8, seed=0)
    assert torch.equal(new.value, old.value)
    with pytest.raises(InvalidInput, match="num_contrastiv"):
        estimate_eig(model, designs, estimator="laplace", num_contrastiv=3)
