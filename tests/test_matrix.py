"""Every surrogate on every space: each registry surrogate (plus KernelGP, a wrapped BoTorch
SingleTaskGP and the two network classifiers) × {pool top-k, pool greedy, box} × {Gaussian
criteria, sample criteria} either returns a valid batch or raises InvalidInput / Unsupported
naming the combination, and the refused combinations are listed here explicitly, so a new
refusal (or a silent fallback that starts raising) fails the test.

Tiny data (20 labels in 2-D), tiny networks and small optimiser settings keep it fast."""

import time

import pytest
import torch
from gpytorch.kernels import RBFKernel

from bayesal import ActiveLearner, Box, InvalidInput, Pool
from bayesal.acquisition import BALD, EPIG, IntegratedVarianceReduction, JointInformation, MaxVariance
from bayesal.errors import Unsupported
from bayesal.models import (
    MODELS, BoTorchSurrogate, DeepEnsemble, DeepKernelGP, ExactGP, FullyBayesianGP, KernelGP, MCDropoutNet, MLPRegressor, SampleSurrogate,
    SparseGP,
)
from bayesal.models.gp import KERNELS
from bayesal.selection import prepare, select, select_continuous

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BOUNDS = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
NETS = dict(hidden=(16, 16), max_epochs=300, lr=1e-2)
Q = 3


def _data(n=20, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    y = torch.sin(3 * X[:, 0]) + X[:, 1] ** 2 + 0.02 * torch.randn(n, generator=gen, dtype=torch.float64)
    labels = (X[:, 0] + X[:, 1] > 1.0).long()
    return X, y, labels


def _rbf():
    k = RBFKernel().double()
    k.lengthscale = 0.3
    return k


#: a tiny version of every entry of bayesal.models.MODELS (same class and task, small sizes)
REGISTRY_TINY = {
    "exact-gp": lambda: ExactGP(seed=0),
    "warped-gp": lambda: ExactGP(input_warping=True, seed=0),
    **{f"exact-gp-{k}": (lambda k: lambda: ExactGP(kernel=k, seed=0))(k) for k in KERNELS},
    "sparse-gp": lambda: SparseGP(num_inducing=10, subset_size=20, seed=0),
    "deep-kernel-gp": lambda: DeepKernelGP(hidden=(16, 16), max_epochs=150, lr=0.03, seed=0),
    "deep-kernel-gp-variational": lambda: DeepKernelGP(hidden=(16, 16), max_epochs=150, lr=0.03, variational=True,
                                                       num_inducing=10, seed=0),
    "mc-dropout-regression": lambda: MCDropoutNet(task="regression", num_samples=16, seed=0, **NETS),
    "deep-ensemble-regression": lambda: DeepEnsemble(task="regression", num_members=10, seed=0, **NETS),
    "mlp": lambda: MLPRegressor(hidden=(32, 32), epochs=40, seed=0),
    "fully-bayesian-gp": lambda: FullyBayesianGP(num_samples=16, warmup=32, thinning=4, seed=0),
    "saas-gp": lambda: FullyBayesianGP(prior="saas", num_samples=16, warmup=32, thinning=4, seed=0),
}
#: surrogates outside the registry
EXTRA = {
    "kernel-gp": lambda: KernelGP(_rbf(), noise=1e-2),
    "botorch-single-task-gp": None,  # built from a fitted SingleTaskGP in _fitted
    "mc-dropout-classification": lambda: MCDropoutNet(task="classification", num_classes=2, num_samples=16,
                                                      seed=0, **NETS),
    "deep-ensemble-classification": lambda: DeepEnsemble(task="classification", num_classes=2, num_members=8,
                                                         seed=0, **NETS),
}
SURROGATES = [*REGISTRY_TINY, *EXTRA]
CLASSIFIERS = ("mc-dropout-classification", "deep-ensemble-classification")
SPACES = ("pool-topk", "pool-greedy", "box")
CRITERIA = {
    # Gaussian criteria
    "joint-information": JointInformation,
    "integrated-variance": lambda: IntegratedVarianceReduction(n_reference=64),
    "max-variance": MaxVariance,
    # criteria with a sample form (classifiers' probabilities, regression draws)
    "bald": BALD,
    "epig": lambda: EPIG(n_reference=32),
}

#: (surrogate, space, criterion) combinations that must raise Unsupported, and why:
#: a classifier's posterior is over class probabilities, so a box criterion on f (or a
#: cross-covariance of f, which integrated variance needs on a pool too) has no meaning.
EXPECTED_UNSUPPORTED = {
    **{(s, "box", c): "a classifier has no regression posterior for box optimisation"
       for s in CLASSIFIERS for c in CRITERIA},
    **{(s, space, "integrated-variance"): "a classifier has no cross-covariance of f"
       for s in CLASSIFIERS for space in ("pool-topk", "pool-greedy")},
}

_CACHE: dict[str, object] = {}


def _fitted(name):
    """The surrogate ``name`` fitted on the shared tiny data (once per test session)."""
    if name not in _CACHE:
        X, y, labels = _data()
        if name == "botorch-single-task-gp":
            from botorch.fit import fit_gpytorch_mll
            from botorch.models import SingleTaskGP
            from gpytorch.mlls import ExactMarginalLogLikelihood

            model = SingleTaskGP(X, y.unsqueeze(-1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            _CACHE[name] = BoTorchSurrogate(model)
        else:
            factory = REGISTRY_TINY.get(name) or EXTRA[name]
            _CACHE[name] = factory().fit(X, labels if name in CLASSIFIERS else y, bounds=BOUNDS)
    return _CACHE[name]


def _pool():
    return Pool(torch.rand(60, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64), bounds=BOUNDS)


def _run(surrogate, space, criterion):
    acquisition = CRITERIA[criterion]()
    if space == "box":
        return select_continuous(surrogate, acquisition, Box([0.0, 0.0], [1.0, 1.0]), Q, seed=0,
                                 num_restarts=4, raw_samples=128)
    selector = "topk" if space == "pool-topk" else "greedy"
    return select(surrogate, acquisition, _pool(), Q, selector=selector, seed=0)


def _check_repeats(selection, surrogate, criterion):
    """A box batch repeats a point only where the criterion says so.

    Measuring a point twice is the optimum of an information or variance criterion when the
    noise is comparable to the posterior variance (as for these under-trained tiny networks):
    a sequential criterion's value at a repeat must then have dropped (its surrogate was
    conditioned on the first pick), and a joint batch must not improve when the repeat is moved
    to any of 256 random points of the box.
    """
    X, box = selection.X, Box([0.0, 0.0], [1.0, 1.0])
    dist = torch.cdist(X, X) + torch.eye(X.shape[0], dtype=X.dtype) * 1e9
    repeats = [(i, j) for j in range(X.shape[0]) for i in range(j) if float(dist[i, j]) <= 1e-6]
    if not repeats:
        return
    acquisition = CRITERIA[criterion]()
    if not acquisition.joint:
        for i, j in repeats:
            assert float(selection.scores[j]) < float(selection.scores[i]), (X, selection.scores)
        return
    bound = prepare(acquisition, box, surrogate)
    with torch.no_grad():
        value = float(bound.batch_value(surrogate, X.unsqueeze(0)))
        moved = X.unsqueeze(0).repeat(256, 1, 1)
        moved[:, repeats[0][1]] = box.sample(256, seed=1, method="uniform")
        assert float(bound.batch_value(surrogate, moved).max()) <= value + 1e-9 * max(1.0, abs(value)), X


def _check_valid(selection, space, surrogate=None, criterion=None):
    X = selection.X
    assert X.shape == (Q, 2)
    assert bool(torch.isfinite(X).all())
    assert selection.scores.shape == (Q,)
    if space == "box":
        assert selection.indices is None
        assert bool(Box([0.0, 0.0], [1.0, 1.0]).contains(X).all())
        _check_repeats(selection, surrogate, criterion)
    else:
        pool = _pool()
        idx = selection.indices
        assert idx.shape == (Q,) and len(set(idx.tolist())) == Q
        assert bool(((idx >= 0) & (idx < len(pool))).all())
        assert torch.equal(X, pool.X[idx])


def test_the_matrix_covers_the_whole_registry():
    assert set(REGISTRY_TINY) == set(MODELS)
    for name, factory in REGISTRY_TINY.items():
        tiny, full = factory(), MODELS[name]()
        assert type(tiny) is type(full)
        if isinstance(tiny, SampleSurrogate):
            assert tiny.task == full.task
        if isinstance(tiny, DeepKernelGP):
            assert tiny.variational == full.variational
        if isinstance(tiny, ExactGP):
            assert (tiny.input_warping, tiny.kernel) == (full.input_warping, full.kernel)
    assert set(EXPECTED_UNSUPPORTED) <= {(s, sp, c) for s in SURROGATES for sp in SPACES for c in CRITERIA}


@pytest.mark.parametrize("criterion", list(CRITERIA))
@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("name", SURROGATES)
def test_every_surrogate_on_every_space(name, space, criterion):
    surrogate = _fitted(name)
    key = (name, space, criterion)
    if key in EXPECTED_UNSUPPORTED:
        with pytest.raises(Unsupported) as err:
            _run(surrogate, space, criterion)
        message = str(err.value)
        assert type(surrogate).__name__ in message and "classification" in message, message
        if space == "box":
            assert "box" in message, message
        return
    try:
        selection = _run(surrogate, space, criterion)
    except InvalidInput as err:  # Unsupported included: a refusal not listed above is a failure
        pytest.fail(f"{key} raised {type(err).__name__}: {err}")
    _check_valid(selection, space, surrogate, criterion)


@pytest.mark.parametrize("name", ["mc-dropout-regression", "deep-ensemble-regression"])
def test_box_batch_of_a_sample_surrogate_is_deterministic(name):
    X, y, _ = _data()
    box = Box([0.0, 0.0], [1.0, 1.0])
    batches = []
    for _ in range(2):  # a fresh fit each time: the same seeds give the same base samples
        surrogate = REGISTRY_TINY[name]().fit(X, y, bounds=BOUNDS)
        for acquisition in (MaxVariance(), JointInformation()):
            batches.append(select_continuous(surrogate, acquisition, box, Q, seed=4, num_restarts=2,
                                             raw_samples=32).X)
    assert torch.equal(batches[0], batches[2]) and torch.equal(batches[1], batches[3])


@pytest.mark.parametrize("name", ["mc-dropout-regression", "deep-ensemble-regression"])
def test_sequential_box_points_of_a_sample_surrogate_differ(name):
    surrogate = _fitted(name)
    batch = select_continuous(surrogate, MaxVariance(), Box([0.0, 0.0], [1.0, 1.0]), Q, seed=0,
                              num_restarts=2, raw_samples=32).X
    assert float(torch.pdist(batch).min()) > 1e-3, batch


@pytest.mark.parametrize("name", [n for n in SURROGATES if n not in CLASSIFIERS and n != "botorch-single-task-gp"])
def test_learner_asks_on_a_box(name):
    """ActiveLearner(Box, surrogate) then ask(1) and ask(3), with the learner's own optimiser settings."""
    X, y, _ = _data()
    factory = REGISTRY_TINY.get(name) or EXTRA[name]
    learner = ActiveLearner(Box([0.0, 0.0], [1.0, 1.0]), surrogate=factory(), acquisition="max-variance")
    learner.tell(X, y)
    start = time.perf_counter()
    for q in (1, 3):
        batch = learner.ask(q)
        assert batch.X.shape == (q, 2) and bool(learner.space.contains(batch.X).all())
        assert bool(torch.isfinite(batch.X).all())
    assert time.perf_counter() - start < 60


def test_classifier_refuses_a_box_and_pending_points_by_name():
    surrogate = _fitted("mc-dropout-classification")
    learner = ActiveLearner(Box([0.0, 0.0], [1.0, 1.0]), surrogate=surrogate, acquisition="bald")
    X, _, labels = _data()
    learner.tell(X, labels)
    with pytest.raises(Unsupported, match=r"MCDropoutNet \(classification\)"):
        learner.ask(2)
    with pytest.raises(Unsupported, match="BatchBALD"):
        surrogate.condition_on(X[:2])
