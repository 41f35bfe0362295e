"""Tests of the 1-D heat-equation simulator (bayesal.problems.simulators).

The reference solutions are closed forms of the continuous problem on [0, L] from u = 0:

* constant flux q through the left end only (cosine series),
  u(x, t) = q t / L + (q / a) ((L - x)^2 / (2L) - L / 6)
            - (2 q L / (a pi^2)) sum_n cos(n pi x / L) exp(-a n^2 pi^2 t / L^2) / n^2,
  and by linearity and mirror symmetry any pair of end fluxes;
* its long-time limit, the same without the series: a fixed quadratic profile rising at the
  rate (q_L + q_R) / L.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bayesal.errors import InvalidInput
from bayesal.problems.simulators import (
    HEAT_BOUNDS,
    HEAT_INPUT_NAMES,
    default_heat_steps,
    heat_equation_1d,
    heat_equation_batch,
)


def _exact_left(x, t, q, a, length, n_terms=400):
    """Exact u(x, t) for flux q in at the left end, nothing at the right end."""
    k = np.arange(1, n_terms + 1)
    series = np.sum(
        np.cos(k * np.pi * x / length) * np.exp(-a * (k * np.pi / length) ** 2 * t) / k**2
    )
    return (
        q * t / length
        + (q / a) * ((length - x) ** 2 / (2 * length) - length / 6)
        - 2 * q * length / (a * np.pi**2) * series
    )


def _exact(x, t, q_left, q_right, a, length=1.0):
    return _exact_left(x, t, q_left, a, length) + _exact_left(length - x, t, q_right, a, length)


# ----------------------------------------------------------------------------------- conservation


@pytest.mark.parametrize(
    "a, q_left, q_right, n_cells, n_steps, t_end, length",
    [
        (0.2, 0.5, -0.3, 64, None, 0.5, 1.0),
        (0.05, 1.0, 1.0, 16, 1, 0.5, 1.0),
        (0.5, -1.0, 0.2, 33, 7, 2.0, 3.0),
        (0.11, 0.4, 0.9, 100, 250, 0.05, 0.5),
    ],
)
def test_total_heat_is_exactly_flux_times_time(a, q_left, q_right, n_cells, n_steps, t_end, length):
    x, u = heat_equation_1d(
        a, q_left, q_right, n_cells=n_cells, n_steps=n_steps, t_end=t_end, length=length,
        return_profile=True,
    )
    assert x.shape == u.shape == (n_cells,)
    dx = length / n_cells
    np.testing.assert_allclose(x, (np.arange(n_cells) + 0.5) * dx, rtol=0, atol=1e-14)
    assert np.sum(u) * dx == pytest.approx((q_left + q_right) * t_end, rel=1e-10)


def test_total_heat_is_exact_after_every_step():
    # The state after k steps of size dt is the output for (n_steps=k, t_end=k*dt).
    dt = 0.01
    for k in (1, 2, 3, 10, 37):
        _, u = heat_equation_1d(0.3, 0.8, -0.5, n_cells=20, n_steps=k, t_end=k * dt,
                                return_profile=True)
        assert np.sum(u) / 20 == pytest.approx(0.3 * k * dt, rel=1e-10)


def test_zero_net_flux_keeps_zero_total_heat():
    _, u = heat_equation_1d(0.2, 0.7, -0.7, return_profile=True)
    assert abs(np.sum(u) / 64) < 1e-12
    assert np.abs(u).max() > 0.1  # but the profile itself is far from zero


# ------------------------------------------------------------------------- linearity and symmetry


@pytest.mark.parametrize("a", [0.05, 0.17, 0.5])
@pytest.mark.parametrize("q_left, q_right", [(0.8, -0.35), (-1.0, -1.0), (0.3, 0.0), (2.5, 1.5)])
def test_linear_in_the_fluxes(a, q_left, q_right):
    unit_left = heat_equation_1d(a, 1.0, 0.0)
    unit_right = heat_equation_1d(a, 0.0, 1.0)
    got = heat_equation_1d(a, q_left, q_right)
    assert got == pytest.approx(q_left * unit_left + q_right * unit_right, rel=1e-11, abs=1e-12)
    assert heat_equation_1d(a, 0.0, 0.0) == 0.0


def test_linear_in_the_fluxes_for_the_whole_profile():
    kw = dict(n_cells=40, n_steps=90, t_end=0.8, length=2.0, return_profile=True)
    _, left = heat_equation_1d(0.3, 1.0, 0.0, **kw)
    _, right = heat_equation_1d(0.3, 0.0, 1.0, **kw)
    _, both = heat_equation_1d(0.3, -0.6, 0.45, **kw)
    np.testing.assert_allclose(both, -0.6 * left + 0.45 * right, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("x_probe", [0.0, 0.004, 0.1, 0.25, 0.5, 0.61, 0.999, 1.0])
def test_mirror_symmetry(x_probe):
    a, q_left, q_right = 0.13, 0.8, -0.35
    direct = heat_equation_1d(a, q_left, q_right, x_probe=x_probe)
    mirrored = heat_equation_1d(a, q_right, q_left, x_probe=1.0 - x_probe)
    assert direct == pytest.approx(mirrored, rel=1e-12, abs=1e-12)


def test_mirror_symmetry_of_the_profile():
    kw = dict(n_cells=25, t_end=1.3, length=0.7, return_profile=True)
    x, u = heat_equation_1d(0.4, -0.2, 0.9, **kw)
    x_m, u_m = heat_equation_1d(0.4, 0.9, -0.2, **kw)
    np.testing.assert_allclose(x + x_m[::-1], 0.7, rtol=0, atol=1e-14)
    np.testing.assert_allclose(u, u_m[::-1], rtol=1e-12, atol=1e-13)


# ----------------------------------------------------------------------- accuracy and convergence


@pytest.mark.parametrize(
    "a, q_left, q_right, x_probe",
    [(0.2, 1.0, 0.3, 0.25), (0.05, 1.0, 0.3, 0.25), (0.5, -0.7, 0.4, 0.5), (0.2, 1.0, 0.0, 0.0)],
)
def test_second_order_convergence_with_the_default_steps(a, q_left, q_right, x_probe):
    # Default n_steps grows like n_cells^2, so dt ~ dx^2 and the O(dx^2 + dt) error should fall
    # by 4 each time n_cells doubles: observed order 2 in dx.
    exact = _exact(x_probe, 0.5, q_left, q_right, a)
    errors = [
        abs(heat_equation_1d(a, q_left, q_right, n_cells=n, x_probe=x_probe) - exact)
        for n in (16, 32, 64, 128)
    ]
    orders = [math.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:])]
    assert all(1.8 <= p <= 2.2 for p in orders), (errors, orders)
    # Absolute size at the default resolution: about 1e-4 of an O(1) answer.
    assert errors[2] < 2e-3 * max(1.0, abs(exact))


def test_first_order_in_time():
    # Fine grid (space error ~1e-6), coarse time steps: halving dt halves the error.
    a, q_left, q_right, x_probe = 0.2, 1.0, 0.3, 0.25
    exact = _exact(x_probe, 0.5, q_left, q_right, a)
    errors = [
        abs(heat_equation_1d(a, q_left, q_right, n_cells=512, n_steps=m, x_probe=x_probe) - exact)
        for m in (16, 32, 64, 128)
    ]
    orders = [math.log2(e0 / e1) for e0, e1 in zip(errors, errors[1:])]
    assert all(0.85 <= p <= 1.15 for p in orders), (errors, orders)


def test_default_steps_rule():
    assert default_heat_steps(4) == 16
    assert default_heat_steps(11) == 16
    assert default_heat_steps(64) == 512
    assert default_heat_steps(65) == 529  # ceil(65^2 / 8)
    assert heat_equation_1d(0.2, 0.4, 0.1) == heat_equation_1d(0.2, 0.4, 0.1, n_steps=512)


# ------------------------------------------------------------------------- closed-form long time


@pytest.mark.parametrize("x_probe", [0.0, 0.3, 1.0, 1.77, 2.0])
def test_zero_net_flux_reaches_the_linear_steady_state(x_probe):
    # Heat q in on the left and out on the right, no net heat: the profile settles on
    # u = q (L/2 - x) / a, which the scheme (and the end extrapolation) reproduce exactly.
    q, a, length = 0.6, 0.3, 2.0
    got = heat_equation_1d(a, q, -q, t_end=100.0, length=length, x_probe=x_probe)
    assert got == pytest.approx(q * (length / 2 - x_probe) / a, rel=1e-10, abs=1e-11)


@pytest.mark.parametrize("q_left, q_right", [(0.7, -0.2), (1.0, 1.0), (-0.4, 0.1)])
def test_long_time_profile_and_growth_rate(q_left, q_right):
    # Long after the start the profile is a fixed quadratic rising at (q_L + q_R) / L. The cells
    # hold its cell averages, which exceed the centre values by dx^2 u_xx / 24 with
    # u_xx = (q_L + q_R) / (a L): a closed form of the discretisation error itself.
    a, length, n = 0.4, 1.5, 32
    dx = length / n
    for t in (40.0, 45.0):
        x, u = heat_equation_1d(a, q_left, q_right, n_cells=n, n_steps=int(t * 20), t_end=t,
                                length=length, return_profile=True)
        exact = (
            (q_left + q_right) * t / length
            + q_left / a * ((length - x) ** 2 / (2 * length) - length / 6)
            + q_right / a * (x**2 / (2 * length) - length / 6)
        )
        shift = dx**2 * (q_left + q_right) / (24 * a * length)
        np.testing.assert_allclose(u - exact, shift, rtol=0, atol=1e-10)
    # and the probe value grows at exactly (q_L + q_R) / L per unit time
    kw = dict(n_cells=n, length=length, x_probe=0.4)
    early = heat_equation_1d(a, q_left, q_right, n_steps=800, t_end=40.0, **kw)
    late = heat_equation_1d(a, q_left, q_right, n_steps=900, t_end=45.0, **kw)
    assert (late - early) / 5.0 == pytest.approx((q_left + q_right) / length, rel=1e-10, abs=1e-11)


def test_matches_the_series_solution_at_the_default_resolution():
    rng = np.random.default_rng(0)
    lo, hi = np.array(HEAT_BOUNDS)
    for a, q_left, q_right in lo + (hi - lo) * rng.random((5, 3)):
        exact = _exact(0.25, 0.5, q_left, q_right, a)
        assert heat_equation_1d(a, q_left, q_right) == pytest.approx(exact, abs=3e-3)


# ------------------------------------------------------------------------------------- batch


def test_batch_matches_single_calls():
    rng = np.random.default_rng(1)
    lo, hi = np.array(HEAT_BOUNDS)
    X = lo + (hi - lo) * rng.random((6, 3))
    got = heat_equation_batch(X, n_cells=32, x_probe=0.6)
    assert got.shape == (6,) and got.dtype == np.float64
    want = [heat_equation_1d(*row, n_cells=32, x_probe=0.6) for row in X]
    np.testing.assert_array_equal(got, want)
    assert heat_equation_batch(np.zeros((0, 3))).shape == (0,)
    assert heat_equation_batch(X.tolist()).shape == (6,)


def test_constants():
    assert HEAT_INPUT_NAMES == ("diffusivity", "flux_left", "flux_right")
    assert HEAT_BOUNDS == [[0.05, -1.0, -1.0], [0.5, 1.0, 1.0]]


# -------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(diffusivity=0.0), "diffusivity"),
        (dict(diffusivity=-0.1), "diffusivity"),
        (dict(diffusivity=float("nan")), "diffusivity"),
        (dict(diffusivity="hot"), "diffusivity"),
        (dict(flux_left=float("inf")), "flux_left"),
        (dict(flux_right=None), "flux_right"),
        (dict(n_cells=3), "n_cells"),
        (dict(n_cells=16.0), "n_cells"),
        (dict(n_cells=True), "n_cells"),
        (dict(n_steps=0), "n_steps"),
        (dict(n_steps=2.5), "n_steps"),
        (dict(x_probe=-0.01), "x_probe"),
        (dict(x_probe=1.01), "x_probe"),
        (dict(x_probe=1.5, length=1.2), "x_probe"),
        (dict(t_end=-1.0), "t_end"),
        (dict(length=0.0), "length"),
    ],
)
def test_bad_inputs_raise_invalid_input(kwargs, argument):
    call = dict(diffusivity=0.2, flux_left=0.5, flux_right=-0.5)
    call.update(kwargs)
    with pytest.raises(InvalidInput, match=argument) as info:
        heat_equation_1d(**call)
    assert info.value.argument == argument


def test_edge_inputs_are_accepted():
    assert heat_equation_1d(0.2, 1.0, 0.0, n_cells=4, n_steps=1) > 0
    assert heat_equation_1d(0.2, 1.0, 0.0, x_probe=2.0, length=2.0) > 0
    assert heat_equation_1d(0.2, 1.0, 0.0, n_cells=np.int64(8)) > 0
    assert heat_equation_1d(0.2, 1.0, 1.0, t_end=0.0) == 0.0


@pytest.mark.parametrize("X", [np.zeros((4, 2)), np.zeros(3), [[0.2, 0.1, float("nan")]]])
def test_bad_batch_input_raises(X):
    with pytest.raises(InvalidInput, match="X") as info:
        heat_equation_batch(X)
    assert info.value.argument == "X"


def test_batch_rejects_bad_rows_and_return_profile():
    with pytest.raises(InvalidInput, match="diffusivity"):
        heat_equation_batch([[0.2, 0.0, 0.0], [-0.2, 0.0, 0.0]])
    with pytest.raises(InvalidInput, match="return_profile"):
        heat_equation_batch([[0.2, 0.0, 0.0]], return_profile=True)
