"""Issue 17, "Bad input never crashes and never lies": each case here was found by a fuzz of the
Python API and once raised a traceback, returned NaN / inf, or silently accepted bad input."""

import math

import pytest
import torch

import bayesal as b
from bayesal import InvalidInput
from bayesal import design as D
from bayesal.validation import check_in_box


def _data(n=8, d=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, d, generator=gen, dtype=torch.float64)
    return X, torch.sin(3 * X).sum(-1)


@pytest.fixture(scope="module")
def fitted():
    X, y = _data()
    return b.ExactGP().fit(X, y, bounds=[[0.0, 0.0], [1.0, 1.0]])


@pytest.fixture
def pool():
    return b.Pool(torch.rand(20, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64))


def _finite(t):
    return bool(torch.isfinite(t).all())


# -- 1. tracebacks become InvalidInput ---------------------------------------------------------
@pytest.mark.parametrize("selector", [b.select_topk, b.select_greedy, b.select])
@pytest.mark.parametrize("acquisition", ["bald", None, 3])
def test_selectors_reject_an_acquisition_that_is_not_one(fitted, pool, selector, acquisition):
    with pytest.raises(InvalidInput, match="acquisition"):
        selector(fitted, acquisition, pool, 2)


@pytest.mark.parametrize("selector", [b.select_topk, b.select_greedy, b.select])
@pytest.mark.parametrize("surrogate", ["exact-gp", None])
def test_selectors_reject_a_surrogate_that_is_not_one(pool, selector, surrogate):
    with pytest.raises(InvalidInput, match="surrogate"):
        selector(surrogate, b.MaxVariance(), pool, 2)


@pytest.mark.parametrize("selector", [b.select_topk, b.select_greedy, b.select, b.select_stochastic])
def test_selectors_reject_a_tensor_for_a_pool(fitted, selector):
    with pytest.raises(InvalidInput, match="space"):
        selector(fitted, b.MaxVariance(), torch.rand(5, 2), 2)


def test_select_continuous_rejects_a_pool(fitted, pool):
    with pytest.raises(InvalidInput, match="space"):
        b.select_continuous(fitted, b.MaxVariance(), pool, 1)


def test_model_free_selection_still_needs_no_surrogate(pool):
    assert len(b.select_topk(None, b.Random(), pool, 3, seed=0)) == 3


@pytest.mark.parametrize("bounds", [[0, 1, 2], [[0, float("nan")], [1, 1]], [[0, 0], [1, 0]], [[0, 1], [0, 1]],
                                    [[0, 0, 0], [1, 1, 1]]])
def test_bad_bounds_are_rejected_when_given(bounds):
    X, y = _data()
    with pytest.raises(InvalidInput, match="bounds"):
        b.ExactGP().fit(X, y, bounds=bounds)
    with pytest.raises(InvalidInput, match="bounds"):
        b.Pool(X, bounds=bounds)


def test_fit_rejects_inputs_without_columns():
    with pytest.raises(InvalidInput, match="column"):
        b.ExactGP().fit(torch.rand(5, 0), torch.rand(5))


def test_tell_detaches_inputs_that_require_grad():
    learner = b.ActiveLearner(b.Box([0, 0], [1, 1]), seed=0)
    X = torch.rand(4, 2, dtype=torch.float64, requires_grad=True)
    learner.tell(X, torch.rand(4, dtype=torch.float64))
    assert not learner.X.requires_grad
    batch = learner.ask(2)
    assert batch.X.shape == (2, 2) and _finite(batch.X)


def test_labels_too_spread_for_a_finite_variance_are_rejected_at_fit():
    learner = b.ActiveLearner(b.Box([0, 0], [1, 1]), seed=0)
    learner.tell(torch.rand(4, 2, dtype=torch.float64), torch.rand(4, dtype=torch.float64) * 1e300)
    with pytest.raises(InvalidInput, match="standard deviation"):
        learner.ask(1)


def test_a_huge_box_samples_finite_points():
    box = b.Box([-1e300, 0], [1e300, 1])
    X = box.sample(16, seed=0)
    assert _finite(X) and bool(box.contains(X).all())


def test_ask_caps_the_batch_size_on_a_box():
    with pytest.raises(InvalidInput, match="q"):
        b.ActiveLearner(b.Box([0], [1])).ask(10**9)
    with pytest.raises(InvalidInput, match="n"):
        b.Box([0], [1]).sample(10**9)


@pytest.mark.parametrize("seed", ["a", 1.5, -1, None, 2**70])
def test_a_bad_seed_is_rejected(seed, fitted, pool):
    with pytest.raises(InvalidInput, match="seed"):
        b.ActiveLearner(b.Box([0], [1]), seed=seed)
    if seed is not None:
        with pytest.raises(InvalidInput, match="seed"):
            b.select_topk(None, b.Random(), pool, 2, seed=seed)
        with pytest.raises(InvalidInput, match="seed"):
            b.Box([0], [1]).sample(3, seed=seed)
        with pytest.raises(InvalidInput, match="seed"):
            b.ExactGP(seed=seed)


def test_a_noise_vector_of_the_wrong_length_is_rejected():
    with pytest.raises(InvalidInput, match="noise_variance"):
        b.GaussianPosterior(torch.zeros(3, 1), torch.ones(3, 1), torch.ones(3))
    with pytest.raises(InvalidInput, match="noise_variance"):
        b.GaussianPosterior(torch.zeros(3, 1), torch.ones(3, 1), -torch.ones(1))
    with pytest.raises(InvalidInput, match="noise_variance"):
        b.GaussianPosterior(torch.zeros(0, 2), torch.ones(0, 2), torch.ones(0, 2))


def test_pce_rejects_a_string_seed():
    model = D.LinearGaussianModel(torch.zeros(2), torch.eye(2), 1.0, design_shape=(3, 2))
    with pytest.raises(InvalidInput, match="seed"):
        D.pce_eig(model, torch.randn(2, 3, 2), 10, 10, seed="a")


def test_a_constant_column_beyond_2_to_the_53_fits():
    X = torch.cat([torch.rand(8, 1, dtype=torch.float64), torch.full((8, 1), 2.0**54, dtype=torch.float64)], 1)
    post = b.ExactGP().fit(X, torch.sin(3 * X[:, 0])).posterior(X)
    assert _finite(post.mean) and _finite(post.variance)


# -- 2. silent NaN / inf -----------------------------------------------------------------------
def test_huge_labels_with_a_moderate_spread_give_a_finite_correct_posterior():
    X, y = _data()
    small = b.ExactGP().fit(X, y).posterior(X)
    huge = b.ExactGP().fit(X, 1e160 + 1e150 * y).posterior(X)
    assert _finite(huge.mean) and _finite(huge.variance)
    # the same model up to the affine change of units
    assert torch.allclose((huge.mean - 1e160) / 1e150, small.mean, atol=1e-3 * float(small.mean.abs().max()) + 1e-6)


def test_labels_of_magnitude_1e151_fit_in_their_own_units():
    X, y = _data()
    post = b.ExactGP().fit(X, 1e151 * y).posterior(X)
    assert _finite(post.mean) and _finite(post.variance)
    assert torch.allclose(post.mean[:, 0] / 1e151, y, atol=0.2)


def test_tiny_inputs_predicted_far_away_give_the_prior():
    X, y = _data()
    gp = b.ExactGP().fit(X * 1e-300, y)
    post = gp.posterior(torch.rand(3, 2, dtype=torch.float64))
    assert _finite(post.mean) and _finite(post.variance)


def test_a_box_whose_width_overflows_is_rejected():
    with pytest.raises(InvalidInput, match="width"):
        b.Box([-1e308], [1e308])


def test_nan_output_weights_and_nan_posteriors_are_rejected():
    with pytest.raises(InvalidInput, match="output_weights"):
        b.BALD(output_weights=[math.nan])
    with pytest.raises(InvalidInput, match="mean"):
        b.GaussianPosterior(torch.full((3, 1), math.nan), torch.ones(3, 1))
    with pytest.raises(InvalidInput, match="variance"):
        b.GaussianPosterior(torch.zeros(3, 1), torch.full((3, 1), math.inf))


def test_monte_carlo_eig_at_extreme_designs_is_rejected_not_inf():
    model = D.LinearGaussianModel(torch.zeros(2), torch.eye(2), 1.0, design_shape=(3, 2))
    designs = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1e300
    with pytest.raises(InvalidInput, match="designs"):
        D.nmc_eig(model, designs, 10, 10)
    with pytest.raises(InvalidInput, match="designs"):
        D.laplace_eig(model, designs, 10)


def test_closed_form_eig_at_extreme_designs_is_finite():
    model = D.LinearGaussianModel(torch.zeros(2), torch.eye(2), 1.0, design_shape=(3, 2))
    d = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    big = model.eig(d * 1e300)
    assert _finite(big)
    # ½ log det(I + c² AᵀA) = p log c + ½ log det(AᵀA) + o(1) for large c
    ref = math.log(1e300) * 2 + 0.5 * torch.logdet(d.transpose(-1, -2) @ d)
    assert torch.allclose(big, ref, rtol=1e-9)
    small = d.transpose(-1, -2) @ d
    exact = 0.5 * torch.logdet(torch.eye(2, dtype=torch.float64) + small)
    assert torch.allclose(model.eig(d), exact, rtol=1e-10)


# -- 3. bad input accepted ---------------------------------------------------------------------
def test_a_scalar_or_an_input_without_columns_is_not_a_pool():
    with pytest.raises(InvalidInput, match=r"an array of candidates \[N, d\], got float 3.0"):
        b.Pool(3.0)
    with pytest.raises(InvalidInput, match="an array of candidates"):
        b.Pool(torch.tensor(3.0))
    with pytest.raises(InvalidInput, match="column"):
        b.Pool(torch.rand(6, 0))


def test_box_bounds_must_be_one_dimensional_and_names_a_list():
    with pytest.raises(InvalidInput, match="lower"):
        b.Box([[0, 0], [0, 0]], [[1, 1], [1, 1]])
    with pytest.raises(InvalidInput, match="names"):
        b.Box([0, 0], [1, 1], names="ab")
    assert b.Box([0, 0], [1, 1], names=["a", "b"]).names == ["a", "b"]


def test_pool_bounds_must_contain_the_pool():
    X, _ = _data()
    with pytest.raises(InvalidInput, match="inside the box"):
        b.Pool(X, bounds=[[2, 2], [3, 3]])
    with pytest.raises(InvalidInput, match="inside the box"):
        b.ExactGP().fit(X, torch.sin(X).sum(-1), bounds=[[2, 2], [3, 3]])


def test_tell_rejects_an_X_that_disagrees_with_the_indices():
    X, y = _data()
    learner = b.ActiveLearner(b.Pool(X))
    with pytest.raises(InvalidInput, match="X"):
        learner.tell(X[[2, 3]], y[:2], indices=[0, 1])
    assert learner.n_labels == 0
    learner.tell(X[[0, 1]], y[:2], indices=[0, 1])
    learner.tell(None, y[2:3], indices=[2])
    assert learner.n_labels == 3


def test_acquisitions_reject_negative_or_named_weights():
    for weights in ("x", [-1.0], [[1.0]]):
        with pytest.raises(InvalidInput, match="output_weights"):
            b.BALD(output_weights=weights)
        with pytest.raises(InvalidInput, match="output_weights"):
            b.MaxVariance(output_weights=weights)


def test_linear_gaussian_model_rejects_a_nan_mean_and_infinite_noise():
    with pytest.raises(InvalidInput, match="prior_mean"):
        D.LinearGaussianModel([math.nan, 0], torch.eye(2), 1.0, design_shape=(3, 2))
    for sd in (math.inf, "x", -1.0, 0.0):
        with pytest.raises(InvalidInput, match="noise_sd"):
            D.LinearGaussianModel([0, 0], torch.eye(2), sd, design_shape=(3, 2))


def test_the_box_tolerance_is_relative_to_the_width():
    bounds = torch.tensor([[0.0], [1e-8]], dtype=torch.float64)
    with pytest.raises(InvalidInput, match="outside"):
        check_in_box(torch.tensor([[1.09e-8]], dtype=torch.float64), bounds)
    check_in_box(torch.tensor([[1e-8 * (1 + 1e-12)]], dtype=torch.float64), bounds)
    # points mapped from the unit cube keep passing far from the origin
    box = b.Box([1e6], [1e6 + 1e-3])
    check_in_box(box.sample(64, seed=1), box.bounds)


# -- found by tests/test_properties.py ---------------------------------------------------------
def test_a_box_samples_zero_points():
    assert b.Box([0, 0], [1, 1]).sample(0).shape == (0, 2)


def test_select_checks_q_before_choosing_a_selector(fitted, pool):
    with pytest.raises(InvalidInput, match="q"):
        b.select(fitted, b.MaxVariance(), pool, None)


def test_a_classifier_needs_two_classes():
    with pytest.raises(InvalidInput, match="C >= 2"):
        b.SamplePosterior(torch.ones(1, 1, 1, dtype=torch.float64), kind="classification")


def test_sample_draws_whose_variance_overflows_are_rejected():
    samples = torch.tensor([[[0.0]], [[1.7e308]]], dtype=torch.float64).expand(2, 1, 1).clone()
    samples[0] = -1.7e308
    with pytest.raises(InvalidInput, match="samples"):
        b.SamplePosterior(samples)


@pytest.mark.parametrize("make", [lambda: D.PsychometricModel(guess_rate=None), lambda: D.PsychometricModel(trials="x"),
                                  lambda: D.DeathProcessModel(population=None),
                                  lambda: D.DeathProcessModel(population=1e300),
                                  lambda: D.PsychometricModel(trials=2**80),
                                  lambda: D.DeathProcessModel(num_times=2.0**53),
                                  lambda: D.DeathProcessModel(bounds=(1.0, 0.0)),
                                  lambda: D.PharmacokineticModel(dose=math.nan),
                                  lambda: D.PharmacokineticModel(additive_variance=0.0),
                                  lambda: D.PharmacokineticModel(bounds="ab")])
def test_design_model_constructors_reject_bad_settings(make):
    with pytest.raises(InvalidInput):
        make()


def test_information_and_entropy_of_huge_variances_are_finite():
    post = b.GaussianPosterior(torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1), 1e308, dtype=torch.float64))
    for acquisition in (b.BALD(), b.JointInformation(), b.Entropy()):
        assert _finite(acquisition.score(post))
    # the overflow-free form agrees with the direct one where both are finite
    mild = b.GaussianPosterior(torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1), 3.0, dtype=torch.float64),
                               torch.ones(1, dtype=torch.float64))
    assert torch.allclose(b.BALD().score(mild), torch.tensor([0.5 * math.log(4.0)], dtype=torch.float64))


def test_labels_without_columns_are_rejected():
    """y of shape [3, 0] (found by the property test): no output to model."""
    import bayesal as b
    pool = b.Pool(torch.rand(5, 2, dtype=torch.float64))
    learner = b.ActiveLearner(pool, seed=0)
    with pytest.raises(b.InvalidInput, match="at least one output column"):
        learner.tell(None, torch.empty(3, 0, dtype=torch.float64), indices=torch.arange(3))
