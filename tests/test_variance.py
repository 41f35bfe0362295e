"""Integrated variance reduction and EV-GP: naive recomputation, BoTorch agreement, NTK identity."""

import pytest
import torch
from botorch.acquisition.active_learning import qNegIntegratedPosteriorVariance
from botorch.optim import optimize_acqf_discrete
from torch import nn

from bayesal import ActiveLearner, Box, ExactGP, InvalidInput, Pool
from bayesal.acquisition import EVGP, IntegratedVarianceReduction
from bayesal.models import EmpiricalNTK, KernelGP
from bayesal.selection import select_continuous, select_greedy, select_topk
from bayesal.settings import memory_budget

UNIT = [[0.0, 0.0], [1.0, 1.0]]


def _rand(n, d, seed):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _naive_greedy_ivr(gp, pool_X, R, w, q, out_w=None):
    """Greedy on the integrated variance, each candidate's posterior recomputed from scratch
    (a conditioned copy of the model per candidate, no shared state)."""
    out_w = torch.ones(gp.num_outputs, dtype=torch.float64) if out_w is None else out_w

    def integrated(model):
        return float((model.posterior(R).variance * w.reshape(-1, 1) * out_w).sum())

    chosen = []
    for _ in range(q):
        base = integrated(gp.condition_on(pool_X[chosen])) if chosen else integrated(gp)
        gains = [(base - integrated(gp.condition_on(pool_X[chosen + [i]])), i)
                 for i in range(pool_X.shape[0]) if i not in chosen]
        chosen.append(max(gains)[1])
    return chosen


def test_greedy_equals_naive_recomputation(gp_2d):
    pool, R = Pool(_rand(45, 2, 1), bounds=UNIT), _rand(25, 2, 2)
    w = torch.full((25,), 1 / 25, dtype=torch.float64)
    selection = select_greedy(gp_2d, IntegratedVarianceReduction(reference_points=R), pool, 5)
    assert selection.indices.tolist() == _naive_greedy_ivr(gp_2d, pool.X, R, w, 5)


def test_weighted_reference_and_multi_output_equal_naive():
    X = _rand(30, 2, 0)
    Y = torch.stack([torch.sin(5 * X[:, 0]), 3 * torch.cos(2 * X[:, 1])], -1)
    gp = ExactGP().fit(X, Y, bounds=UNIT)
    pool, R = Pool(_rand(35, 2, 3), bounds=UNIT), _rand(20, 2, 4)
    raw = torch.linspace(0.1, 2.0, 20, dtype=torch.float64)
    out_w = torch.tensor([1.0, 0.25], dtype=torch.float64)
    acq = IntegratedVarianceReduction(reference_points=R, reference_weights=raw, output_weights=out_w)
    chosen = select_greedy(gp, acq, pool, 4).indices.tolist()
    assert chosen == _naive_greedy_ivr(gp, pool.X, R, raw / raw.sum(), 4, out_w)


def test_streamed_reference_blocks_give_the_same_batch(gp_2d):
    pool = Pool(_rand(400, 2, 5), bounds=UNIT)
    acq = IntegratedVarianceReduction(reference_points=_rand(64, 2, 6))
    stored = select_greedy(gp_2d, acq, pool, 6)
    with memory_budget(16 * 1024):  # C0 [64, 400] no longer fits: recomputed chunk by chunk
        streamed = select_greedy(gp_2d, acq, pool, 6)
    assert stored.indices.tolist() == streamed.indices.tolist()
    assert torch.allclose(stored.scores, streamed.scores, rtol=1e-9)


def test_agrees_with_botorch_qnipv(gp_2d):
    """Same greedy batch as qNegIntegratedPosteriorVariance + optimize_acqf_discrete, and
    IVR(B) = mean σ²(R) + qNIPV(B) (qNIPV is the negated integrated variance after B)."""
    pool, R = Pool(_rand(60, 2, 7), bounds=UNIT), _rand(40, 2, 8)
    acq = IntegratedVarianceReduction(reference_points=R)
    ours = select_greedy(gp_2d, acq, pool, 4).indices.tolist()
    qnipv = qNegIntegratedPosteriorVariance(gp_2d.model, mc_points=R)
    cand, _ = optimize_acqf_discrete(qnipv, q=4, choices=pool.X, unique=True)
    theirs = [int(torch.nonzero((pool.X - c).abs().sum(-1) < 1e-12)) for c in cand]
    assert ours == theirs
    batches = torch.stack([pool.X[ours], pool.X[[0, 1, 2, 3]]])
    with torch.no_grad():
        value = acq.for_space(pool).batch_value(gp_2d, batches)
        expected = gp_2d.posterior(R).variance.mean() + qnipv(batches)
    assert torch.allclose(value, expected, rtol=1e-8)


def test_greedy_gains_add_up_to_the_batch_value(gp_2d):
    pool = Pool(_rand(50, 2, 9), bounds=UNIT)
    acq = IntegratedVarianceReduction(reference_points=_rand(30, 2, 10)).for_space(pool)
    selection = select_greedy(gp_2d, acq, pool, 5)
    with torch.no_grad():
        value = acq.batch_value(gp_2d, pool.X[selection.indices].unsqueeze(0))
    assert torch.isclose(selection.scores.sum(), value[0], rtol=1e-8)
    top = select_topk(gp_2d, acq, pool, 1)
    assert top.indices.tolist() == selection.indices[:1].tolist()
    assert torch.isclose(top.scores[0], selection.scores[0])


def test_box_batches_are_inside_and_better_than_random(gp_2d):
    box = Box([0.1, 0.0], [0.9, 1.0])
    acq = IntegratedVarianceReduction(n_reference=128)
    selection = select_continuous(gp_2d, acq, box, 3, seed=0, num_restarts=4, raw_samples=128)
    assert bool(box.contains(selection.X).all())
    bound = acq.for_space(box)
    with torch.no_grad():
        best = float(bound.batch_value(gp_2d, selection.X.unsqueeze(0)))
        randoms = bound.batch_value(gp_2d, torch.stack([box.sample(3, seed=s, method="uniform") for s in range(64)]))
    assert best >= float(randoms.max()) - 1e-9


def test_batch_value_gradient_matches_finite_differences(gp_2d):
    acq = IntegratedVarianceReduction(n_reference=32).for_space(Box([0.0, 0.0], [1.0, 1.0]))
    X = _rand(3, 2, 11).unsqueeze(0).requires_grad_(True)
    acq.batch_value(gp_2d, X).sum().backward()
    eps, numeric = 1e-6, torch.zeros_like(X)
    with torch.no_grad():
        for i in range(3):
            for k in range(2):
                Xp, Xm = X.clone(), X.clone()
                Xp[0, i, k] += eps
                Xm[0, i, k] -= eps
                numeric[0, i, k] = (acq.batch_value(gp_2d, Xp) - acq.batch_value(gp_2d, Xm)) / (2 * eps)
    assert torch.allclose(X.grad, numeric, rtol=1e-4, atol=1e-9)


def test_reference_sets():
    pool = Pool(_rand(3000, 2, 12))
    R, w = IntegratedVarianceReduction(reference_points="pool", n_reference=500).reference_set(pool)
    assert R.shape == (500, 2) and torch.isclose(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert bool(((R[:, None, :] - pool.X[None]).abs().sum(-1).min(-1).values < 1e-15).all())  # drawn from the pool
    box = Box([-1.0, 0.0], [1.0, 5.0])
    R, _ = IntegratedVarianceReduction(n_reference=256).reference_set(box)
    assert R.shape == (256, 2) and bool(box.contains(R).all())
    with pytest.raises(InvalidInput, match="there is no pool"):
        IntegratedVarianceReduction(reference_points="pool").reference_set(box)
    with pytest.raises(InvalidInput, match="3 non-negative weights"):
        IntegratedVarianceReduction(reference_points=_rand(3, 2, 0), reference_weights=[1.0, 2.0]).reference_set(box)


def _ntk_by_hand(net, A, B):
    """The empirical NTK from per-sample gradients taken one at a time with autograd."""
    def jac(x):
        net.zero_grad()
        out = net(x.unsqueeze(0).float()).sum()
        grads = torch.autograd.grad(out, list(net.parameters()))
        return torch.cat([g.reshape(-1) for g in grads]).double()

    JA = torch.stack([jac(x) for x in A])
    JB = torch.stack([jac(x) for x in B])
    return JA @ JB.T


def test_evgp_with_ntk_equals_the_direct_posterior_variance_formula():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
    X_lab, pool_X = _rand(6, 2, 13), _rand(30, 2, 14)
    noise = 0.1
    ntk = EmpiricalNTK(net)
    assert torch.allclose(ntk(pool_X[:5], X_lab), _ntk_by_hand(net, pool_X[:5], X_lab), rtol=1e-5, atol=1e-6)

    # direct formula: var(x | S) = k(x,x) - k(x,T) (K_TT + σ² I)^-1 k(T,x), T = labelled ∪ S
    def total_variance(S):
        T = torch.cat([X_lab, pool_X[S]]) if S else X_lab
        K = _ntk_by_hand(net, T, T) + noise * torch.eye(T.shape[0], dtype=torch.float64)
        kxT = _ntk_by_hand(net, pool_X, T)
        kxx = _ntk_by_hand(net, pool_X, pool_X).diagonal()
        return float((kxx - (kxT @ torch.linalg.solve(K, kxT.T)).diagonal()).sum())

    chosen = []
    for _ in range(3):
        chosen.append(min((total_variance(chosen + [i]), i) for i in range(30) if i not in chosen)[1])

    acq = EVGP(kernel=ntk, noise=noise)
    pool = Pool(pool_X)
    model = acq.selection_model(X_lab, surrogate=None)
    assert isinstance(model, KernelGP)
    assert select_greedy(model, acq, pool, 3).indices.tolist() == chosen


def test_evgp_through_the_learner_ignores_labels():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    pool_X = _rand(60, 2, 15)

    def batch(labels):
        learner = ActiveLearner(Pool(pool_X.clone()), acquisition=EVGP(kernel=EmpiricalNTK(net)), seed=0)
        learner.tell(None, labels, indices=[0, 1, 2])
        return learner.ask(4).indices.tolist()

    assert batch([0.0, 1.0, 2.0]) == batch([50.0, -3.0, 7.0])
