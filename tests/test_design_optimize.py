"""Design search: gradient ascent against grid optima of closed forms, greedy batches."""

import itertools
import math

import pytest
import torch

from bayesal import InvalidInput, UnknownName
from bayesal.design import (
    DeathProcessModel,
    GaussianPosteriorGuide,
    LinearGaussianModel,
    ab_test_model,
    batch_model,
    laplace_eig,
    optimize_design,
    pce_eig,
    select_design,
)

PRIOR = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))


# small tensors: see conftest.one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _features(d):
    """One observation of θ₀ cos d + θ₁ sin d per design angle."""
    return torch.stack([torch.cos(d), torch.sin(d)], -1)


@pytest.fixture(scope="module")
def angle_model():
    """EIG(d) = ½ log(1 + cos² d + 4 sin² d): an interior maximum at d = π/2 on [0, 3]."""
    return LinearGaussianModel(torch.zeros(2), PRIOR, 1.0, design_shape=(1,), features=_features,
                               bounds=[[0.0], [3.0]])


def _joint_closed_form(angles):
    """Closed-form EIG of batches of angles ``[B, q]`` observed together."""
    q = angles.shape[-1]
    return LinearGaussianModel(torch.zeros(2), PRIOR, 1.0, design_shape=(q,), features=_features).eig(angles)


@pytest.mark.parametrize("objective", ["pce", "posterior", "marginal"])
def test_gradient_ascent_finds_the_interior_optimum(angle_model, objective):
    choice = optimize_design(angle_model, estimator=objective, num_steps=100, num_restarts=3, seed=0,
                             final_estimator="laplace", final_options={"num_outer": 10})
    d = float(choice.designs[0, 0])
    assert abs(d - math.pi / 2) < 0.15, d
    best = 0.5 * math.log(5.0)
    assert float(angle_model.eig(choice.designs)) > best - 0.01
    assert abs(float(choice.eig.value) - float(angle_model.eig(choice.designs))) < 1e-9  # Laplace is exact
    assert len(choice.history) == 100


def test_a_batch_optimised_jointly_beats_repeating_the_best_single_design(angle_model):
    choice = optimize_design(angle_model, q=2, num_steps=150, num_restarts=4, seed=0,
                             final_estimator="laplace", final_options={"num_outer": 10})
    assert choice.designs.shape == (2, 1)
    grid = torch.linspace(0.0, 3.0, 301, dtype=torch.float64)
    pairs = torch.cartesian_prod(grid, grid)
    grid_best = float(_joint_closed_form(pairs).max())
    found = float(_joint_closed_form(choice.designs.reshape(1, 2)))
    repeated = float(_joint_closed_form(torch.tensor([[math.pi / 2, math.pi / 2]], dtype=torch.float64)))
    assert found > grid_best - 0.005
    assert found > repeated + 0.05


def test_score_function_gradient_on_discrete_observations():
    """The death process has counts (no reparameterisation): the score-function gradient must
    still reach the best observation time of a grid search."""
    model = DeathProcessModel(num_times=1)
    choice = optimize_design(model, num_steps=150, num_restarts=4, seed=0)
    grid = torch.linspace(0.1, 10.0, 34, dtype=torch.float64)
    on_grid = pce_eig(model, grid, num_outer=1000, num_contrastive=1000, seed=1)
    chosen = pce_eig(model, choice.designs, num_outer=1000, num_contrastive=1000, seed=1)
    assert float(chosen.value) > float(on_grid.value.max()) - 0.05
    assert 0.8 < float(choice.designs[0, 0]) < 3.0


def test_greedy_batch_matches_a_brute_force_greedy_on_the_closed_form(angle_model):
    candidates = torch.linspace(0.0, 3.0, 13, dtype=torch.float64)
    choice = select_design(angle_model, candidates, q=3, estimator="laplace", num_outer=10)
    chosen = []
    for _ in range(3):
        trials = torch.stack([candidates[chosen + [j]] for j in range(13)])
        chosen.append(int(torch.argmax(_joint_closed_form(trials))))
    assert choice.indices.tolist() == chosen
    assert torch.allclose(choice.eig.value, _joint_closed_form(candidates[chosen].reshape(1, 3))[0], atol=1e-9)
    assert torch.allclose(choice.scores.value, angle_model.eig(candidates), atol=1e-9)


def test_batches_with_and_without_repeats():
    model = ab_test_model()
    candidates = torch.tensor([0.0, 50.0, 100.0])
    repeats = select_design(model, candidates, q=2, estimator="laplace", num_outer=5)
    distinct = select_design(model, candidates, q=2, estimator="laplace", num_outer=5, allow_repeats=False)
    assert repeats.indices.tolist() == [1, 1]  # a second 50/50 split beats every other pair
    assert distinct.indices.tolist()[0] == 1 and len(set(distinct.indices.tolist())) == 2
    pairs = torch.tensor([[[a], [b]] for a, b in itertools.product([0.0, 50.0, 100.0], repeat=2)])
    joint = laplace_eig(batch_model(model, 2), pairs, num_outer=5).value
    assert float(repeats.eig.value) == pytest.approx(float(joint.max()))
    with pytest.raises(InvalidInput, match="q"):
        select_design(model, candidates, q=4, allow_repeats=False)


def test_same_seed_same_design(angle_model):
    a = optimize_design(angle_model, num_steps=20, num_restarts=2, seed=3, final_options={"num_outer": 50, "num_contrastive": 50})
    b = optimize_design(angle_model, num_steps=20, num_restarts=2, seed=3, final_options={"num_outer": 50, "num_contrastive": 50})
    assert torch.equal(a.designs, b.designs)


def test_bad_inputs_raise_invalid_input_naming_the_argument(angle_model):
    with pytest.raises(UnknownName, match="estimator"):
        optimize_design(angle_model, estimator="laplace")
    with pytest.raises(InvalidInput, match="bounds"):
        optimize_design(angle_model, bounds=[[0.0, 0.0], [1.0, 1.0]])
    with pytest.raises(InvalidInput, match="bounds"):
        optimize_design(angle_model, bounds=[[0.0], [5.0]])  # outside the model's [0, 3]
    unbounded = LinearGaussianModel(torch.zeros(2), PRIOR, 1.0, design_shape=(1,), features=_features)
    with pytest.raises(InvalidInput, match="bounds"):
        optimize_design(unbounded)
    with pytest.raises(InvalidInput, match="q"):
        optimize_design(angle_model, q=0)
    with pytest.raises(InvalidInput, match="num_restarts"):
        optimize_design(angle_model, num_restarts=0)
    with pytest.raises(InvalidInput, match="guide"):
        optimize_design(angle_model, estimator="posterior", guide=GaussianPosteriorGuide(5, 1, 2), num_restarts=2)
    with pytest.raises(InvalidInput, match="candidates"):
        select_design(angle_model, torch.tensor([0.1, float("nan")]))
    with pytest.raises(UnknownName, match="estimator"):
        select_design(angle_model, torch.tensor([0.1]), estimator="bogus")
