"""Multi-fidelity simulators converge at their order; the standard MF test functions match their
formulas at known points."""

import math

import numpy as np
import pytest
import torch

from bayesal.errors import InvalidInput, UnknownName
from bayesal.problems import simulators as sim
from bayesal.problems.multifidelity import (
    MF_PROBLEMS, borehole_mf, check_fidelity, currin_mf, forrester_mf, make_multifidelity_problem, park_mf,
)


def _order(grids, errors):
    """Least-squares slope of log(error) against log(h) with h = 1 / grid."""
    h = 1.0 / np.asarray(grids, dtype=float)
    return np.polyfit(np.log(h), np.log(np.asarray(errors)), 1)[0]


def test_poisson_converges_at_second_order():
    X = np.array([[0.3, 0.6, 0.1], [0.5, 0.5, 0.15], [0.8, 0.2, 0.08], [0.2, 0.3, 0.2]])
    ref = sim.poisson_2d_batch(X, n_grid=256)
    grids = [16, 32, 64]
    errors = np.array([np.abs(sim.poisson_2d_batch(X, n_grid=g) - ref) for g in grids])  # [3, 4]
    for j in range(X.shape[0]):
        assert 1.8 < _order(grids, errors[:, j]) < 2.3
    assert np.all(np.diff(errors, axis=0) < 0)


def test_poisson_matches_series_solution_for_a_point_source_limit():
    # For a source and sensor both Gaussian, J = ∫∫ g G s with the Dirichlet Green's function of the
    # square: G = Σ_{jk} 4 sin(jπx) sin(kπy) sin(jπx') sin(kπy') / (π²(j²+k²)). Expanding the
    # Gaussians in the sine basis (their mass outside the square is negligible here) gives an
    # independent value.
    c = (0.45, 0.55, 0.12)
    J = np.arange(1, 120)

    def coeff(cx, w):  # ∫_0^1 N(x; cx, w) sin(jπx) dx  ≈ exp(-(jπw)²/2) sin(jπ cx)
        return np.exp(-0.5 * (J * math.pi * w) ** 2) * np.sin(J * math.pi * cx)

    sx, sy, sw = sim.POISSON_SENSOR
    a = np.outer(coeff(c[0], c[2]), coeff(c[1], c[2]))
    b = np.outer(coeff(sx, sw), coeff(sy, sw))
    lam = math.pi**2 * (J[:, None] ** 2 + J[None, :] ** 2)
    exact = float((4 * a * b / lam).sum())
    value = sim.poisson_2d_batch(np.array([c]), n_grid=128)[0]
    assert value == pytest.approx(exact, rel=2e-3)


def test_heat_converges_at_second_order_in_space():
    X = np.array([[0.1, 0.5, -0.3], [0.3, 1.0, 1.0], [0.5, -1.0, 0.4]])
    ref = sim.heat_equation_batch(X, n_cells=256)
    grids = [16, 32, 64]
    errors = np.array([np.abs(sim.heat_equation_batch(X, n_cells=g) - ref) for g in grids])
    for j in range(X.shape[0]):
        assert 1.7 < _order(grids, errors[:, j]) < 2.3


def test_poisson_rejects_bad_input():
    with pytest.raises(InvalidInput, match="X"):
        sim.poisson_2d_batch(np.zeros((2, 2)))
    with pytest.raises(InvalidInput, match="source_width"):
        sim.poisson_2d_batch(np.array([[0.5, 0.5, 0.0]]))
    with pytest.raises(InvalidInput, match="n_grid"):
        sim.poisson_2d_batch(np.array([[0.5, 0.5, 0.1]]), n_grid=2)


def test_costs_follow_grid_sizes():
    heat = make_multifidelity_problem("heat-mf")
    assert heat.costs.tolist() == pytest.approx([1 / 64, 1 / 8, 1.0])
    poisson = make_multifidelity_problem("poisson-mf")
    assert poisson.costs.tolist() == pytest.approx([225 / 3969, 961 / 3969, 1.0])
    assert len(poisson.measure_seconds(n=4)) == 3


def test_problem_evaluates_mixed_fidelities():
    p = make_multifidelity_problem("poisson-mf")
    X = p.space.sample(4, seed=0)
    y = p.evaluate(X, torch.tensor([0, 2, 1, 2]))
    assert y.shape == (4, 1)
    for i, level in enumerate([16, 64, 32, 64]):
        assert y[i, 0].item() == pytest.approx(sim.poisson_2d_batch(X[i:i + 1].numpy(), n_grid=level)[0])
    with pytest.raises(InvalidInput, match="fidelity"):
        p.evaluate(X, torch.tensor([0, 3, 1, 2]))
    with pytest.raises(InvalidInput, match="fidelity"):
        check_fidelity([0.5], 1, 3)
    with pytest.raises(UnknownName):
        make_multifidelity_problem("nope")
    assert set(MF_PROBLEMS) >= {"heat-mf", "poisson-mf", "forrester-mf", "currin-mf", "park-mf", "borehole-mf"}


def test_forrester_known_values():
    x = np.array([[0.0], [1.0], [0.757249]])
    high = forrester_mf(x, 1)
    assert high[0] == pytest.approx(4 * math.sin(-4))
    assert high[1] == pytest.approx(16 * math.sin(8))
    assert high[2] == pytest.approx(-6.02074, abs=1e-4)  # the global minimum
    low = forrester_mf(x, 0)
    assert low[0] == pytest.approx(0.5 * 4 * math.sin(-4) - 5 + 5)
    assert low[1] == pytest.approx(0.5 * 16 * math.sin(8) + 5 + 5)


def test_currin_known_values():
    hi = currin_mf(np.array([[0.5, 0.5], [0.2, 0.0]]), 1)
    assert hi[0] == pytest.approx((1 - math.exp(-1)) * 1868.5 / 159.5)
    num = 2300 * 0.008 + 1900 * 0.04 + 2092 * 0.2 + 60
    den = 100 * 0.008 + 500 * 0.04 + 0.8 + 20
    assert hi[1] == pytest.approx(num / den)  # x2 = 0: the bracket is 1
    lo = currin_mf(np.array([[0.5, 0.5]]), 0)[0]
    f = lambda a, b: currin_mf(np.array([[a, b]]), 1)[0]  # noqa: E731
    assert lo == pytest.approx(0.25 * (f(0.55, 0.55) + f(0.55, 0.45) + f(0.45, 0.55) + f(0.45, 0.45)))


def test_park_known_values():
    x = np.array([[0.5, 0.5, 0.5, 0.5]])
    expect = 0.25 * (math.sqrt(1 + 0.75 * 0.5 / 0.25) - 1) + 2.0 * math.exp(1 + math.sin(0.5))
    assert park_mf(x, 1)[0] == pytest.approx(expect)
    assert park_mf(x, 0)[0] == pytest.approx((1 + math.sin(0.5) / 10) * expect - 1 + 0.25 + 0.25 + 0.5)
    assert np.isfinite(park_mf(np.zeros((1, 4)), 1)).all()


def test_borehole_known_values():
    x = np.array([[0.1, 25050.0, 89335.0, 1050.0, 89.55, 760.0, 1400.0, 10950.0]])
    lr = math.log(25050 / 0.1)
    mid = 2 * 1400 * 89335 / (lr * 0.01 * 10950) + 89335 / 89.55
    assert borehole_mf(x, 1)[0] == pytest.approx(2 * math.pi * 89335 * 290 / (lr * (1 + mid)))
    assert borehole_mf(x, 0)[0] == pytest.approx(5 * 89335 * 290 / (lr * (1.5 + mid)))
