"""Issue 17: a box batch never holds one point twice, and on a noise-free model never a labelled
point; on a noisy model a labelled point may be replicated."""

import pytest
import torch

from bayesal import ActiveLearner, Box, ExactGP, JointInformation, MaxVariance
from bayesal.selection import select, select_continuous
from bayesal.selection.continuous import DUPLICATE_TOL, duplicates_of, negligible_noise

BOX = Box([0.0], [1.0])


def _noise_free(X):
    return torch.sin(6 * X[:, :1]) + X[:, :1]


def _assert_distinct(X, X_observed=None):
    bounds = BOX.bounds.to(X)
    assert bool(BOX.contains(X).all())
    same = duplicates_of(X, X, bounds) & ~torch.eye(X.shape[0], dtype=torch.bool)
    assert not bool(same.any()), f"two batch points within {DUPLICATE_TOL} of the box: {X.reshape(-1).tolist()}"
    if X_observed is not None:
        assert not bool(duplicates_of(X, X_observed, bounds).any()), (
            f"a labelled point proposed again: {X.reshape(-1).tolist()}")


def _gp(noise=None, n=8, noisy=False):
    X = torch.linspace(0, 1, n, dtype=torch.float64).reshape(-1, 1)
    y = _noise_free(X)
    if noisy:
        y = y + 0.7 * torch.randn(n, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return ExactGP(noise=noise, seed=0).fit(X, y), X


class _CornerJoint(JointInformation):
    """A joint criterion whose every slot wants x = target: the collapsed batch the optimiser
    finds when the criterion is degenerate."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def batch_value(self, surrogate, X):
        return -(X - self.target).pow(2).sum((-1, -2))


class _CornerSingle(MaxVariance):
    """A single-point criterion that conditioning does not move off x = target."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def batch_value(self, surrogate, X):
        return -(X - self.target).pow(2).sum((-1, -2))


def test_joint_information_learner_on_a_noise_free_box_never_repeats_a_point():
    """The reproduced case: seed 2 proposed the labelled x = 0 again at step 4 (with x = 1)."""
    learner = ActiveLearner(BOX, acquisition="joint-information", seed=2)
    for _ in range(5):
        batch = learner.ask(3)
        assert batch.X.shape == (3, 1)
        _assert_distinct(batch.X, learner.X if learner.n_labels else None)
        learner.tell(batch.X, _noise_free(batch.X.double()))
    assert negligible_noise(learner.surrogate, learner.X)


@pytest.mark.parametrize("acquisition", [_CornerJoint, _CornerSingle])
def test_a_collapsed_batch_is_spread_and_deterministic(acquisition):
    gp, X_train = _gp()
    first = select_continuous(gp, acquisition(0.0), BOX, 3, seed=5, num_restarts=4, raw_samples=64)
    _assert_distinct(first.X)
    assert float(first.X.min()) == 0.0  # one slot keeps the optimum, the others are re-chosen
    again = select_continuous(gp, acquisition(0.0), BOX, 3, seed=5, num_restarts=4, raw_samples=64)
    assert torch.equal(first.X, again.X)
    assert torch.isfinite(first.scores).all()


@pytest.mark.parametrize("acquisition", [_CornerJoint, _CornerSingle])
def test_a_noise_free_model_does_not_propose_a_labelled_point(acquisition):
    gp, X_train = _gp()
    assert negligible_noise(gp, X_train)
    target = float(X_train[3])
    batch = select(gp, acquisition(target), BOX, 3, seed=0, X_observed=X_train)
    _assert_distinct(batch.X, X_train)
    # the re-chosen points stay next to the optimum rather than jumping away
    assert float((batch.X - target).abs().max()) < 0.05


def test_a_noisy_model_may_replicate_a_labelled_point():
    gp, X_train = _gp(noise=0.5, noisy=True)
    assert not negligible_noise(gp, X_train)
    target = float(X_train[3])
    batch = select(gp, _CornerJoint(target), BOX, 3, seed=0, X_observed=X_train)
    _assert_distinct(batch.X)  # inside the batch the points still differ
    assert bool(duplicates_of(batch.X, X_train, BOX.bounds.to(batch.X)).any())


def test_joint_information_on_a_fitted_noise_free_gp_with_pending_points():
    """Pending points count as labelled on a noise-free model, through the learner's ask."""
    learner = ActiveLearner(BOX, acquisition="joint-information", seed=2)
    X0 = torch.tensor([[0.0], [0.3], [0.7], [1.0]], dtype=torch.float64)
    learner.tell(X0, _noise_free(X0))
    pending = torch.tensor([[0.5]], dtype=torch.float64)
    batch = learner.ask(3, pending=pending)
    _assert_distinct(batch.X, torch.cat([X0, pending]))


def test_duplicates_are_relative_to_the_box_width():
    bounds = torch.tensor([[0.0, 0.0], [1.0, 1000.0]], dtype=torch.float64)
    X = torch.tensor([[0.5, 500.0]], dtype=torch.float64)
    near = torch.tensor([[0.5 + 0.5e-6, 500.0 + 0.5e-3]], dtype=torch.float64)
    far = torch.tensor([[0.5 + 2e-6, 500.0]], dtype=torch.float64)
    assert bool(duplicates_of(X, near, bounds).all())
    assert not bool(duplicates_of(X, far, bounds).any())


@pytest.mark.parametrize("acquisition", [_CornerJoint, _CornerSingle])
def test_a_pending_point_is_not_proposed_again_on_a_noise_free_model(acquisition):
    """Every slot of the criterion wants the pending x = 0.5: the learner's ask forbids it (it is
    being labelled), and the re-chosen points stay next to it. With four labels the fitted noise
    is 0.9 % of the label variance, and the model conditioned on the pending point used to be
    judged noisy (its variance at 0.5 collapses), so 0.5 was proposed again: the box selector now
    judges the noise before it conditions on the pending points."""
    learner = ActiveLearner(BOX, acquisition=acquisition(0.5), seed=2)
    X0 = torch.tensor([[0.0], [0.3], [0.7], [1.0]], dtype=torch.float64)
    learner.tell(X0, _noise_free(X0))
    pending = torch.tensor([[0.5]], dtype=torch.float64)
    batch = learner.ask(3, pending=pending)
    _assert_distinct(batch.X, torch.cat([X0, pending]))
    assert float((batch.X - 0.5).abs().max()) < 0.05



def test_a_campaigns_select_function_gets_the_pending_points_on_a_box():
    """Campaigns pass their own select function (Dask sharding); on a box it must receive the
    pending points and the unconditioned model, so the noise is judged as in a plain ask."""
    from bayesal.selection import select

    seen = {}

    def spy(model, acquisition, space, q, **kwargs):
        seen["model"], seen["pending"] = model, kwargs.get("X_pending")
        return select(model, acquisition, space, q, **kwargs)

    learner = ActiveLearner(BOX, acquisition=_CornerSingle(0.5), seed=2)
    X0 = torch.tensor([[0.0], [0.3], [0.7], [1.0]], dtype=torch.float64)
    learner.tell(X0, _noise_free(X0))
    pending = torch.tensor([[0.5]], dtype=torch.float64)
    batch = learner.ask(3, pending=pending, select_function=spy)
    assert seen["model"] is learner.surrogate and torch.equal(seen["pending"], pending)
    _assert_distinct(batch.X, torch.cat([X0, pending]))
