"""Property-based tests of the Python API boundary (issue 17, "Bad input never crashes and never
lies"): for any generated input, a public constructor or entry point either returns a finite,
correctly shaped result or raises a :class:`~bayesal.errors.BayesalError` (``InvalidInput``,
``Unsupported``, ...), never another exception and never NaN.

The number of examples comes from the hypothesis profile loaded in ``conftest.py`` (small by
default; ``BAYESAL_HYPOTHESIS_PROFILE=thorough`` for a long run).
"""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import bayesal as b
from bayesal import BayesalError
from bayesal import design as D
from bayesal.validation import check_in_box

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# -- strategies ---------------------------------------------------------------------------------
EXTREMES = [0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300, 5e-324, 1e300, -1e300, 1e155, 2.0**53, 2.0**54,
            1.7e308, -1.7e308, math.nan, math.inf, -math.inf]
wild_floats = st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=True, allow_infinity=True, width=64),
                        st.floats(-10, 10))
tame_floats = st.floats(-3, 3, allow_nan=False)


def arrays(shape, elements=wild_floats):
    n = math.prod(shape)
    return st.lists(elements, min_size=n, max_size=n).map(lambda v: np.array(v, dtype=np.float64).reshape(shape))


shapes = st.sampled_from([(), (0,), (1,), (3,), (0, 2), (3, 0), (1, 1), (4, 1), (4, 2), (3, 3), (2, 2, 2)])
wild_arrays = shapes.flatmap(lambda s: arrays(s, st.one_of(wild_floats, tame_floats)))
junk = st.one_of(st.none(), st.text(max_size=4), st.booleans(), st.integers(-5, 5), wild_floats,
                 st.lists(st.text(max_size=2), max_size=3), st.just(object()), st.just({"a": 1}))
wild = st.one_of(wild_arrays, junk, wild_arrays.map(torch.from_numpy))
#: mostly good data with some entries replaced by extremes, so the checks past the first are reached
nearly_good = st.integers(2, 6).flatmap(lambda n: st.tuples(arrays((n, 2), st.one_of(tame_floats, tame_floats, wild_floats)),
                                                            arrays((n,), st.one_of(tame_floats, tame_floats, wild_floats))))
scales = st.sampled_from([1.0, 1e-300, 1e-8, 1e8, 1e150, 1e155, 1e300])
seeds = st.one_of(st.integers(0, 100), st.just(None), st.just("a"), st.just(-1), st.just(1.5), st.just(2**80))


def _finite(t) -> bool:
    return bool(torch.isfinite(torch.as_tensor(t)).all())


def _call(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, or None when it raised a BayesalError (any other exception fails)."""
    try:
        return fn(*args, **kwargs)
    except BayesalError:
        return None


def _unit_box():
    return b.Box([0.0, 0.0], [1.0, 1.0])


_GP = None


def _gp():
    global _GP
    if _GP is None:
        gen = torch.Generator().manual_seed(0)
        X = torch.rand(10, 2, generator=gen, dtype=torch.float64)
        _GP = b.ExactGP().fit(X, torch.sin(3 * X).sum(-1), bounds=[[0, 0], [1, 1]])
    return _GP


# -- spaces --------------------------------------------------------------------------------------
#: bounds near the largest floats, whose width overflows (they must be rejected, not sampled as inf)
huge_bounds = st.sampled_from([-1.7e308, -1e308, -1e300, 1e300, 1e308, 1.7e308])
#: a lower and an upper bound of one shape, so that the checks past the shape check are reached
bound_pairs = st.one_of(
    st.tuples(wild, wild),
    st.tuples(huge_bounds, huge_bounds),
    st.sampled_from([(), (1,), (2,), (3,)]).flatmap(lambda s: st.tuples(arrays(s, st.one_of(wild_floats, huge_bounds)),
                                                                        arrays(s, st.one_of(wild_floats, huge_bounds)))))


@given(bounds=bound_pairs, n=st.one_of(st.integers(-1, 5), junk), seed=seeds)
def test_box_is_valid_or_rejected(bounds, n, seed):
    lower, upper = bounds
    box = _call(b.Box, lower, upper)
    if box is None:
        return
    assert box.bounds.shape == (2, box.dim) and _finite(box.bounds) and bool((box.upper > box.lower).all())
    X = _call(box.sample, n, seed=seed)
    if X is not None:
        assert X.shape == (int(n), box.dim) and _finite(X) and bool(box.contains(X).all())


class _About:
    """Bounds to build from the generated X (see :func:`_bounds_about`)."""

    def __init__(self, kind):
        self.kind = kind

    def __repr__(self):
        return f"_About({self.kind!r})"


def _bounds_about(X: np.ndarray, kind: str) -> np.ndarray:
    """Bounds ``[2, d]`` built from X's columns: spanning them, flat (lower == upper), flipped,
    inside them, or padded around them."""
    lo, hi = np.min(X, 0), np.max(X, 0)
    with np.errstate(all="ignore"):
        return {"span": np.stack([lo, hi]), "flat": np.stack([lo, lo]), "flipped": np.stack([hi, lo]),
                "inner": np.stack([lo, lo + (hi - lo) / 2]), "padded": np.stack([lo - 1, hi + 1])}[kind]


@given(X=st.one_of(wild, st.integers(1, 4).flatmap(lambda n: arrays((n, 2), st.one_of(tame_floats, wild_floats))),
                   arrays((1, 1), tame_floats)),
       bounds=st.one_of(st.none(), wild, st.sampled_from(["span", "flat", "flipped", "inner", "padded"]).map(_About)),
       scale=scales)
def test_pool_is_valid_or_rejected(X, bounds, scale):
    if isinstance(X, np.ndarray):
        X = X * scale
    if isinstance(bounds, _About):
        if not (isinstance(X, np.ndarray) and X.ndim == 2 and X.size):
            return
        bounds = _bounds_about(X, bounds.kind)
    pool = _call(b.Pool, X, bounds=bounds)
    if pool is None:
        return
    assert pool.X.dim() == 2 and pool.X.shape[0] >= 1 and pool.X.shape[1] >= 1 and _finite(pool.X)
    assert pool.bounds.shape == (2, pool.dim) and _finite(pool.bounds)
    check_in_box(pool.X, pool.bounds, "the pool")  # the bounds hold every candidate
    assert bool((pool.bounds[1] > pool.bounds[0]).all())


# -- ExactGP -------------------------------------------------------------------------------------
@given(data=st.one_of(nearly_good, st.tuples(wild, wild)), x_scale=scales, y_scale=scales,
       bounds=st.one_of(st.none(), st.none(), wild), Xq=st.one_of(arrays((3, 2), tame_floats), wild))
def test_exact_gp_fits_and_predicts_finitely_or_rejects(data, x_scale, y_scale, bounds, Xq):
    X, y = data
    if isinstance(X, np.ndarray):
        X = X * x_scale
    if isinstance(y, np.ndarray):
        y = y * y_scale
    gp = _call(b.ExactGP().fit, X, y, bounds=bounds)
    if gp is None:
        return
    post = _call(gp.posterior, Xq)
    if post is None:
        return
    assert post.mean.shape == post.variance.shape and post.mean.shape[0] == np.asarray(Xq).reshape(-1, gp.model.train_inputs[0].shape[-1]).shape[0]
    assert _finite(post.mean) and _finite(post.variance) and bool((post.variance >= 0).all())


# -- the learner ---------------------------------------------------------------------------------
@given(data=st.one_of(nearly_good, st.tuples(wild, wild)), y_scale=scales, q=st.one_of(st.integers(-1, 3), junk,
       st.just(10**9)), seed=seeds, on_pool=st.booleans())
def test_learner_tell_ask_is_finite_or_rejected(data, y_scale, q, seed, on_pool):
    X, y = data
    if isinstance(y, np.ndarray):
        y = y * y_scale
    space = b.Pool(torch.rand(12, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)) if on_pool \
        else _unit_box()
    learner = _call(b.ActiveLearner, space, seed=seed)
    if learner is None:
        return
    if on_pool:
        told = _call(learner.tell, None, y, indices=list(range(len(np.atleast_1d(np.asarray(y, dtype=object))))))
    else:
        told = _call(learner.tell, X, y)
    batch = _call(learner.ask, q)
    if batch is None:
        return
    assert batch.X.shape == (int(q), 2) and _finite(batch.X)
    if told is not None or learner.n_labels:
        assert learner.n_labels >= 1


# -- selection -----------------------------------------------------------------------------------
ACQUISITIONS = [b.MaxVariance(), b.BALD(), b.JointInformation(), b.Random(), b.EVGP(), b.KernelBatch("lcmd"),
                b.KernelBatch("maxdet"), b.KernelBatch("kmeanspp", kernel="inputs")]


@given(surrogate=st.one_of(st.just("gp"), st.none(), st.just("fitted")),
       acquisition=st.one_of(st.sampled_from(ACQUISITIONS), junk),
       space=st.sampled_from(["pool", "box", "tensor", "none"]), q=st.one_of(st.integers(-1, 4), junk),
       seed=seeds, selector=st.sampled_from(["select", "select_topk", "select_greedy", "select_stochastic"]))
def test_selectors_return_a_valid_batch_or_reject(surrogate, acquisition, space, q, seed, selector):
    surrogate = _gp() if surrogate == "fitted" else surrogate
    pool = b.Pool(torch.rand(15, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64),
                  bounds=[[0, 0], [1, 1]])
    space = {"pool": pool, "box": _unit_box(), "tensor": torch.rand(5, 2), "none": None}[space]
    fn = getattr(b.selection, selector)
    kwargs = {} if selector == "select_greedy" else {"seed": seed}
    if space is not None and isinstance(space, b.Box) and selector != "select":
        return  # box optimisation is select_continuous's, covered through select
    batch = _call(fn, surrogate, acquisition, space, q, **kwargs)
    if batch is None:
        return
    assert batch.X.shape == (int(q), 2) and _finite(batch.X)
    if batch.indices is not None:
        assert batch.indices.unique().numel() == int(q)
    if acquisition.needs_posterior:
        assert _finite(batch.scores)


# -- acquisitions on posteriors ------------------------------------------------------------------
SCORERS = [b.MaxVariance(), b.BALD(), b.JointInformation(), b.Entropy(), b.Margin(), b.LeastConfidence(),
           b.VariationRatios(), b.BatchBALD()]


posterior_shapes = st.sampled_from([(1, 1), (3, 1), (4, 2), (2, 3, 1)])
mixed = st.one_of(tame_floats, tame_floats, st.floats(0, 5), wild_floats)
gaussian_parts = st.one_of(
    posterior_shapes.flatmap(lambda s: st.tuples(arrays(s, mixed), arrays(s, mixed),
                                                 st.one_of(st.none(), arrays((s[-1],), mixed), wild))),
    st.tuples(wild, wild, st.one_of(st.none(), wild)))


@given(parts=gaussian_parts, scale=scales, acquisition=st.sampled_from(SCORERS))
def test_scores_of_a_gaussian_posterior_are_finite_or_rejected(parts, scale, acquisition):
    mean, variance, noise = parts

    def t(v):
        return torch.from_numpy(np.asarray(v * scale)) if isinstance(v, np.ndarray) else v
    post = _call(b.GaussianPosterior, t(mean), t(variance), t(noise))
    if post is None:
        return
    scores = _call(acquisition.score, post)
    if scores is not None:
        assert scores.shape[-1] == post.num_points and _finite(scores)


@given(K=st.integers(1, 4), N=st.integers(1, 4), C=st.integers(1, 3), values=st.lists(wild_floats, min_size=48,
       max_size=48), kind=st.sampled_from(["regression", "classification", "other"]), softmax=st.booleans(),
       acquisition=st.sampled_from(SCORERS))
def test_scores_of_a_sample_posterior_are_finite_or_rejected(K, N, C, values, kind, softmax, acquisition):
    samples = torch.tensor(values[:K * N * C], dtype=torch.float64).reshape(K, N, C)
    if softmax:
        samples = torch.softmax(torch.nan_to_num(samples, nan=0.0).clamp(-50, 50), -1)
    post = _call(b.SamplePosterior, samples, kind=kind)
    if post is None:
        return
    scores = _call(acquisition.score, post)
    if scores is not None:
        assert scores.shape[-1] == N and _finite(scores)


# -- experimental design -------------------------------------------------------------------------
@given(mean=st.one_of(wild, arrays((2,), mixed)), cov=st.one_of(wild, st.just(np.eye(2)), st.just(np.diag([1e-300, 1e300]))),
       noise_sd=st.one_of(wild_floats, junk, st.floats(1e-3, 10)),
       designs=st.one_of(wild, arrays((3, 2, 2), st.one_of(tame_floats, tame_floats, wild_floats))), scale=scales,
       estimator=st.sampled_from(["nmc", "pce", "laplace", "closed"]), seed=seeds)
def test_linear_gaussian_eig_is_finite_or_rejected(mean, cov, noise_sd, designs, scale, estimator, seed):
    model = _call(D.LinearGaussianModel, mean, cov, noise_sd, design_shape=(2, np.size(mean) or 1))
    if model is None:
        return
    if isinstance(designs, np.ndarray):
        designs = designs * scale
    if estimator == "closed":
        value = _call(model.eig, designs)
    else:
        est = _call(D.estimate_eig, model, designs, estimator, num_outer=8, **({"num_inner": 8} if estimator == "nmc"
                    else {"num_contrastive": 8} if estimator == "pce" else {}), seed=seed)
        value = None if est is None else est.value
    if value is not None:
        assert value.dim() == 1 and _finite(value)


@given(designs=arrays((3, 2, 2), tame_floats), scale=scales, noise_sd=st.sampled_from([1e-3, 1.0, 1e3]),
       estimator=st.sampled_from(["nmc", "pce", "laplace"]), seed=st.integers(0, 100))
def test_linear_gaussian_eig_of_a_valid_model_at_any_design_scale_is_finite_or_rejected(designs, scale, noise_sd,
                                                                                       estimator, seed):
    """A valid model at designs from 1e-300 to 1e300: a Monte Carlo estimate is finite or refused
    (its log densities overflow at the largest), never inf or NaN."""
    model = D.LinearGaussianModel(np.zeros(2), np.eye(2), noise_sd, design_shape=(2, 2))
    options = {"num_inner": 8} if estimator == "nmc" else {"num_contrastive": 8} if estimator == "pce" else {}
    est = _call(D.estimate_eig, model, designs * scale, estimator, num_outer=8, seed=seed, **options)
    if est is not None:
        assert est.value.shape == (3,) and _finite(est.value)


def _model_eig_is_finite_or_rejected(cls, kwargs, designs):
    """A design model built from ``kwargs`` is rejected or gives a finite PCE estimate at ``designs``."""
    model = _call(cls, **kwargs)
    if model is None:
        return
    est = _call(D.pce_eig, model, designs, num_outer=8, num_contrastive=8)
    if est is not None:
        assert _finite(est.value)


@given(kwargs=st.fixed_dictionaries({}, optional={
    "guess_rate": st.one_of(wild_floats, junk), "lapse_rate": st.one_of(wild_floats, junk),
    "trials": st.one_of(st.integers(-1, 3), junk), "bounds": st.one_of(st.tuples(wild_floats, wild_floats), junk)}),
    designs=st.one_of(arrays((3, 1), tame_floats), wild))
def test_psychometric_model_is_valid_or_rejected(kwargs, designs):
    _model_eig_is_finite_or_rejected(D.PsychometricModel, kwargs, designs)


@given(kwargs=st.fixed_dictionaries({}, optional={
    "population": st.one_of(st.integers(-1, 60), junk), "num_times": st.one_of(st.integers(-1, 3), junk),
    "bounds": st.one_of(st.tuples(wild_floats, wild_floats), junk)}),
    designs=st.one_of(arrays((3, 1), st.floats(0, 10)), wild))
def test_death_process_model_is_valid_or_rejected(kwargs, designs):
    _model_eig_is_finite_or_rejected(D.DeathProcessModel, kwargs, designs)


@given(kwargs=st.fixed_dictionaries({}, optional={
    "num_times": st.one_of(st.integers(-1, 3), junk), "dose": st.one_of(wild_floats, junk),
    "multiplicative_variance": st.one_of(wild_floats, junk), "additive_variance": st.one_of(wild_floats, junk),
    "bounds": st.one_of(st.tuples(wild_floats, wild_floats), junk)}),
    designs=st.one_of(arrays((3, 1), st.floats(0, 24)), wild))
def test_pharmacokinetic_model_is_valid_or_rejected(kwargs, designs):
    _model_eig_is_finite_or_rejected(D.PharmacokineticModel, kwargs, designs)
