"""Cost-awareness as a wrapper (CostAware, cost models) and the learner with a cost model."""

import math

import pytest
import torch
from mf_cases import two_level_data

from bayesal import ActiveLearner, MultiFidelityLearner, make_multifidelity_problem
from bayesal.acquisition import IntegratedVarianceReduction, MaxVariance
from bayesal.acquisition.cost import CallableCost, ConstantCost, CostAware, FidelityCost, as_cost_model
from bayesal.acquisition.multifidelity import MultiFidelityInformation, MultiFidelityVarianceReduction
from bayesal.errors import InvalidInput
from bayesal.models.multifidelity import CoKriging, augment
from bayesal.selection import noise_of, select_greedy
from bayesal.selection.multifidelity import fidelity_candidates, select_augmented
from bayesal.spaces import Box, Pool

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mf_model():
    X, y = two_level_data(12, 4)
    return CoKriging(2).fit(X, y, bounds=[[0, 0], [1, 1]])


def test_cost_models():
    X = torch.tensor([[0.2, 0.0], [0.5, 1.0], [0.1, 1.0]], dtype=torch.float64)
    assert FidelityCost([0.25, 2.0])(X).tolist() == [0.25, 2.0, 2.0]
    assert ConstantCost(3.0)(X).tolist() == [3.0, 3.0, 3.0]
    assert CallableCost(lambda Z: 1 + Z[:, 0])(X).tolist() == pytest.approx([1.2, 1.5, 1.1])
    assert isinstance(as_cost_model(2), ConstantCost) and isinstance(as_cost_model([1, 2]), FidelityCost)
    assert isinstance(as_cost_model(lambda Z: Z[:, 0] + 1), CallableCost)
    with pytest.raises(InvalidInput, match="costs"):
        FidelityCost([0.0, 1.0])
    with pytest.raises(InvalidInput, match="cost_model"):
        CallableCost(lambda Z: -Z[:, 0])(X)


def test_cost_aware_divides_gains_and_batch_values_by_cost(gp_2d):
    X = Box([0, 0], [1, 1]).sample(16, seed=1)
    cost = CallableCost(lambda Z: 1.0 + 3.0 * Z[..., 0])
    post = gp_2d.posterior(X)
    plain = MaxVariance().score(post)
    scorer = CostAware(MaxVariance(), cost).greedy_scorer(gp_2d, X, post.mean, noise_of(post))
    torch.testing.assert_close(scorer.scores(post.variance), plain / (1.0 + 3.0 * X[:, 0]))
    # a box batch: the value of the batch divided by its total cost
    ivr = IntegratedVarianceReduction(n_reference=64).for_space(Box([0, 0], [1, 1]))
    B = X[:6].reshape(2, 3, 2)
    expect = ivr.batch_value(gp_2d, B) / (1.0 + 3.0 * B[..., 0]).sum(-1)
    torch.testing.assert_close(CostAware(ivr, cost).batch_value(gp_2d, B), expect)
    # greedy selection picks the best gain per unit cost
    sel = select_greedy(gp_2d, CostAware(MaxVariance(), cost), Pool(X), 1)
    assert int(sel.indices[0]) == int(torch.argmax(plain / (1.0 + 3.0 * X[:, 0])))
    assert CostAware(CostAware(MaxVariance(), cost), 2.0).cost_model.cost == 2.0  # never divides twice


@pytest.mark.parametrize("cls", [MultiFidelityVarianceReduction, MultiFidelityInformation])
def test_mf_cost_awareness_is_the_wrapper(mf_model, cls):
    C = fidelity_candidates(Box([0, 0], [1, 1]).sample(10, seed=3), torch.arange(2))
    noise = mf_model.observation_noise(C[:, -1].long()).reshape(-1, 1)
    post = mf_model.posterior(C)
    acq = cls().for_space(Box([0, 0], [1, 1]))
    plain = acq.greedy_scorer(mf_model, C, post.mean, noise).scores(post.variance)
    aware = acq.with_cost(FidelityCost([0.2, 1.0]))
    assert isinstance(aware, CostAware)
    per_cost = aware.greedy_scorer(mf_model, C, post.mean, noise).scores(post.variance)
    torch.testing.assert_close(per_cost, plain / torch.tensor([0.2, 1.0], dtype=torch.float64)[C[:, -1].long()])
    assert cls(cost_aware=False).with_cost(FidelityCost([0.2, 1.0])).cost_aware is False


def _gains_from_scratch(model, acq_name, R, chosen, C):
    """Every candidate's gain given the chosen points, by conditioning the joint Gaussian afresh."""
    noise = model.observation_noise(C[:, -1].long())
    B = C[chosen]
    K_BB = model.covariance(B, B)[0] + torch.diag(noise[chosen]) if len(chosen) else None

    def cond(A, D):  # Cov(A, D | y_B)
        k = model.covariance(A, D)[0]
        if K_BB is None:
            return k
        return k - model.covariance(A, B)[0] @ torch.linalg.solve(K_BB, model.covariance(B, D)[0])

    var = torch.stack([cond(C[i:i + 1], C[i:i + 1])[0, 0] for i in range(C.shape[0])])
    if acq_name == "ivr":
        cross = cond(augment(R, 1), C)  # [M, N]
        return cross.pow(2).mean(0) / (var + noise)
    T = augment(C[:, :-1], 1)
    varT = torch.stack([cond(T[i:i + 1], T[i:i + 1])[0, 0] for i in range(C.shape[0])])
    cov = torch.stack([cond(T[i:i + 1], C[i:i + 1])[0, 0] for i in range(C.shape[0])])
    return -0.5 * torch.log1p(-cov.pow(2) / (varT * (var + noise)))


@pytest.mark.parametrize("acq_name", ["ivr", "info"])
def test_mf_greedy_batch_equals_brute_force(mf_model, acq_name):
    space = Box([0, 0], [1, 1])
    R = space.sample(16, seed=4)
    C = fidelity_candidates(space.sample(8, seed=6), torch.arange(2))
    costs = FidelityCost([0.3, 1.0])
    acq = MultiFidelityVarianceReduction(reference=R) if acq_name == "ivr" else MultiFidelityInformation()
    rows, gains, cost = select_augmented(mf_model, acq.for_space(space).with_cost(costs), C, 6, cost_model=costs,
                                         budget=2.5)
    assert float(cost.sum()) <= 2.5 + 1e-12
    chosen = []
    spent = 0.0
    for t, j in enumerate(rows.tolist()):
        g = _gains_from_scratch(mf_model, acq_name, R, chosen, C) / costs(C)
        g[chosen] = -math.inf
        g[costs(C) > 2.5 - spent + 1e-12] = -math.inf
        assert j == int(torch.argmax(g))
        assert gains[t].item() == pytest.approx(float(g[j]), rel=1e-6)
        chosen.append(j)
        spent += float(costs(C[j:j + 1]))
    # it stopped because nothing fits any more, not before
    assert len(rows) == 6 or 2.5 - spent < 0.3 - 1e-12


def test_one_fidelity_equal_costs_is_greedy_ivr():
    gen = torch.Generator().manual_seed(2)
    X = torch.rand(14, 2, generator=gen, dtype=torch.float64)
    y = torch.sin(3 * X[:, 0]) + X[:, 1]
    model = CoKriging(1).fit(augment(X, 0), y, bounds=[[0, 0], [1, 1]])
    R = Box([0, 0], [1, 1]).sample(32, seed=8)
    cand = Box([0, 0], [1, 1]).sample(30, seed=9)
    mf = MultiFidelityVarianceReduction(reference=R).select(model, cand, costs=[0.5], q=5)
    ref = select_greedy(model.at_target(), IntegratedVarianceReduction(reference_points=R), Pool(cand), 5)
    torch.testing.assert_close(mf.X, ref.X)
    torch.testing.assert_close(mf.scores * 0.5, ref.scores, rtol=1e-6, atol=1e-12)


def test_mf_learner_on_a_pool_asks_pairs_within_the_cost_budget():
    problem = make_multifidelity_problem("forrester-mf")
    pool = Pool(problem.space.sample(40, seed=2), bounds=problem.space.bounds)
    learner = ActiveLearner(pool, surrogate="co-kriging", acquisition="mf-integrated-variance", costs=problem.costs,
                            test_set=problem.test_set())
    records = learner.run(problem, cost_budget=3.0, q=3, initial=[4, 2], progress=False)
    assert learner.cumulative_cost <= 3.0 + 1e-9
    assert all(r["cumulative_cost"] <= 3.0 + 1e-9 for r in records)
    pairs = list(zip(pool.index_of(learner.X).tolist(), learner.fidelity.tolist()))
    assert len(set(pairs)) == len(pairs)  # no (row, level) bought twice
    batch = learner.ask(4, budget=0.5)
    assert batch.total_cost <= 0.5 + 1e-12 and batch.fidelity is not None and batch.indices is not None
    torch.testing.assert_close(batch.X, pool.X[batch.indices])


def test_learner_with_a_cost_model_never_overspends():
    problem = make_multifidelity_problem("currin-mf")
    for budget in (2.5, 3.3):
        learner = MultiFidelityLearner(problem.space, problem.costs, n_candidates=64, seed=3)
        learner.run(problem, cost_budget=budget, q=4, progress=False)
        assert learner.cumulative_cost <= budget + 1e-9
        assert budget - learner.cumulative_cost < float(problem.costs.max()) + 1e-9
    # one fidelity, input-dependent cost: the acquisition is per unit cost and the budget holds
    f = lambda X: torch.sin(6 * X[:, 0])  # noqa: E731
    sf = ActiveLearner(Pool(Box([0], [1]).sample(50, seed=1)), acquisition="max-variance",
                       cost_model=lambda X: 0.2 + X[..., 0])
    records = sf.run(lambda X, idx=None: f(X), cost_budget=4.0, q=3, progress=False)
    assert sf.cumulative_cost <= 4.0 + 1e-9 and records[-1]["cumulative_cost"] == pytest.approx(sf.cumulative_cost)
    with pytest.raises(InvalidInput, match="cost_budget"):
        ActiveLearner(Box([0], [1])).run(f, cost_budget=1.0)
    with pytest.raises(InvalidInput, match="budget"):
        ActiveLearner(Box([0], [1])).ask(2, budget=1.0)
