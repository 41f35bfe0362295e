"""Cost-aware multi-fidelity acquisitions: reductions to the plain criteria and brute-force gains."""

import math

import pytest
import torch
from mf_cases import two_level_data

from bayesal.acquisition import IntegratedVarianceReduction, JointInformation
from bayesal.acquisition.multifidelity import MultiFidelityInformation, MultiFidelityVarianceReduction
from bayesal.errors import InvalidInput
from bayesal.models.multifidelity import CoKriging, augment
from bayesal.selection import select_greedy
from bayesal.spaces import Box, Pool

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    X, y = two_level_data(15, 5)
    return CoKriging(2).fit(X, y, bounds=[[0, 0], [1, 1]])


@pytest.fixture(scope="module")
def candidates():
    return Box([0, 0], [1, 1]).sample(40, seed=5)


@pytest.mark.parametrize("cls", [MultiFidelityVarianceReduction, MultiFidelityInformation])
def test_equal_costs_give_the_plain_criterion(model, candidates, cls):
    kwargs = {"n_reference": 64} if cls is MultiFidelityVarianceReduction else {}
    aware = cls(cost_aware=True, **kwargs).select(model, candidates, costs=[0.7, 0.7], q=5, space=Box([0, 0], [1, 1]))
    plain = cls(cost_aware=False, **kwargs).select(model, candidates, costs=[0.7, 0.7], q=5, space=Box([0, 0], [1, 1]))
    torch.testing.assert_close(aware.X, plain.X)
    torch.testing.assert_close(aware.fidelity, plain.fidelity)
    torch.testing.assert_close(aware.scores * 0.7, plain.scores)
    assert aware.total_cost == pytest.approx(3.5)


def test_single_fidelity_variance_reduction_is_greedy_ivr(model, candidates):
    R = Box([0, 0], [1, 1]).sample(64, seed=9)
    mf = MultiFidelityVarianceReduction(reference=R).select(model, candidates, costs=[0.1, 1.0], q=4, fidelities=[1])
    target = model.at_target()
    ref = select_greedy(target, IntegratedVarianceReduction(reference_points=R), Pool(candidates), 4)
    torch.testing.assert_close(mf.X, ref.X)
    assert mf.fidelity.tolist() == [1, 1, 1, 1]
    torch.testing.assert_close(mf.scores, ref.scores, rtol=1e-6, atol=1e-12)


def test_single_fidelity_information_is_greedy_joint_information(model, candidates):
    mf = MultiFidelityInformation().select(model, candidates, costs=[0.1, 1.0], q=4, fidelities=[1])
    ref = select_greedy(model.at_target(), JointInformation(), Pool(candidates), 4)
    torch.testing.assert_close(mf.X, ref.X)
    torch.testing.assert_close(mf.scores, ref.scores, rtol=1e-6, atol=1e-12)


def _joint_ivr(model, R, batch):
    """Brute force: Σ_r w_r Σ(r, B) (Σ_BB + diag σ²_B)⁻¹ Σ(B, r) across fidelities."""
    RT = augment(R, 1)
    C_RB = model.covariance(RT, batch)[0]
    S = model.covariance(batch, batch)[0] + torch.diag(model.observation_noise(batch[:, -1].long()))
    return float((C_RB * torch.linalg.solve(S, C_RB.T).T).sum() / R.shape[0])


def test_greedy_gains_match_brute_force_across_fidelities(model, candidates):
    R = Box([0, 0], [1, 1]).sample(32, seed=2)
    costs = torch.tensor([0.25, 1.0], dtype=torch.float64)
    sel = MultiFidelityVarianceReduction(reference=R).select(model, candidates, costs=costs, q=4)
    batch = augment(sel.X, sel.fidelity)
    previous = 0.0
    for t in range(4):
        value = _joint_ivr(model, R, batch[: t + 1])
        assert sel.scores[t].item() * costs[sel.fidelity[t]].item() == pytest.approx(value - previous, rel=1e-5)
        previous = value


def test_information_gain_matches_brute_force(model, candidates):
    costs = torch.tensor([0.2, 1.0], dtype=torch.float64)
    sel = MultiFidelityInformation().select(model, candidates, costs=costs, q=3)
    # second pick: I(y_2; f_T(x_2) | y_1) from the conditional 2x2 covariance, computed directly
    b = augment(sel.X, sel.fidelity)
    t2 = augment(sel.X[1:2], 1)
    pts = torch.cat([b[:2], t2])
    K = model.covariance(pts, pts)[0]
    noise = model.observation_noise(b[:2, -1].long())
    Ky = K[:2, :2] + torch.diag(noise)
    # condition (y_2, f_T(x_2)) on y_1
    idx = [1, 2]
    cond = K[idx][:, idx] - torch.outer(K[idx, 0], K[0, idx]) / Ky[0, 0]
    var_y2 = cond[0, 0] + noise[1]
    rho2 = cond[0, 1] ** 2 / (var_y2 * cond[1, 1])
    expect = -0.5 * math.log(1 - float(rho2))
    assert sel.scores[1].item() * costs[sel.fidelity[1]].item() == pytest.approx(expect, rel=1e-5)


def test_budget_is_never_overspent_and_cheap_levels_win(model, candidates):
    acq = MultiFidelityVarianceReduction(n_reference=64)
    sel = acq.select(model, candidates, costs=[0.3, 1.0], q=10, budget=1.0, space=Box([0, 0], [1, 1]))
    assert sel.total_cost <= 1.0 + 1e-12
    # an almost free, perfectly informative low fidelity is all the criterion buys
    cheap = acq.select(model, candidates, costs=[1e-3, 1.0], q=5, space=Box([0, 0], [1, 1]))
    assert cheap.fidelity.tolist().count(0) >= 4
    with pytest.raises(InvalidInput, match="costs"):
        acq.select(model, candidates, costs=[1.0], q=2)
    with pytest.raises(InvalidInput, match="fidelities"):
        acq.select(model, candidates, costs=[1.0, 1.0], q=2, fidelities=[2])
    with pytest.raises(InvalidInput, match="model"):
        acq.select(model.at_target(), candidates, costs=[1.0, 1.0], q=2)
