"""Small, fast physical simulators used as test problems for active learning.

The only simulator so far is :func:`heat_equation_1d`, the temperature at one point of a rod
heated (or cooled) through its two ends. It is cheap (well under a millisecond a call at the
default resolution), smooth in its three inputs, linear in two of them and nonlinear in the
third, which makes it a convenient stand-in for an expensive simulation code.

The model
---------
On the rod ``0 <= x <= L`` the temperature ``u(x, t)`` obeys the heat equation

.. math::

    u_t = \\alpha\\, u_{xx}, \\qquad u(x, 0) = 0,

with the diffusivity :math:`\\alpha > 0`, and heat is pushed in through the two ends at fixed
rates (Neumann, or flux, boundary conditions)::

    -alpha * u_x(0, t) = flux_left       (heat entering at the left end)
    +alpha * u_x(L, t) = flux_right      (heat entering at the right end)

A negative flux takes heat out. Integrating the equation over the rod shows that the total heat
grows linearly, :math:`\\int_0^L u\\,dx = (q_L + q_R)\\,t`, whatever :math:`\\alpha` is.

The discretisation
------------------
The rod is cut into ``n_cells`` cells of width ``dx = L / n_cells`` with centres
``x_i = (i + 1/2) dx``; ``u_i`` is the temperature of cell ``i`` (a finite-volume, or cell-centred,
scheme). The rate of change of the heat in a cell is what flows in through its left face minus
what flows out through its right face::

    du_i/dt = (F_{i-1/2} - F_{i+1/2}) / dx,
    F_{i+1/2} = -alpha (u_{i+1} - u_i) / dx        on the n_cells - 1 interior faces,
    F_{-1/2} = flux_left,   F_{n-1/2} = -flux_right  on the two ends (the data, imposed exactly).

Time is advanced with the implicit (backward) Euler method, ``dt = t_end / n_steps``::

    (I - dt A) u^{k+1} = u^k + dt b,

where ``A`` is the tridiagonal matrix of the interior fluxes (``alpha/dx^2 * [1, -2, 1]``, with
``[-1, 1]`` in the two end rows) and ``b`` is zero except ``b_0 = flux_left / dx`` and
``b_{n-1} = flux_right / dx``. The matrix ``I - dt A`` is symmetric positive definite and
constant in time, so it is factored once per call (LAPACK ``pttrf``, an ``L D L^T`` factorisation
of a symmetric positive definite tridiagonal matrix) and each step is one ``pttrs`` solve, O(n)
work. (One ``scipy.linalg.solve_banded`` per step gives the same numbers but refactors the matrix
every step and costs about 10 microseconds of call overhead per step, ten times more than the whole
step costs here.) Backward Euler is unconditionally stable, so ``dt`` is chosen for accuracy only.

Properties of the scheme
------------------------
* **Accuracy.** Second order in space (the interior stencil is the standard three-point one;
  the end cells have an O(dx) local truncation error, which still gives O(dx^2) global error,
  a classical supraconvergence result for cell-centred schemes) and first order in time
  (backward Euler): the error is O(dx^2 + dt). See R. J. LeVeque, *Finite Difference Methods for
  Ordinary and Partial Differential Equations*, SIAM, 2007, chapters 2 (boundary conditions) and
  9 (diffusion equations, backward Euler); and R. J. LeVeque, *Finite Volume Methods for
  Hyperbolic Problems*, CUP, 2002, chapter 4 (the cell-centred finite-volume view).
* **Exact conservation.** Every interior face flux leaves one cell and enters its neighbour, so
  the columns of ``A`` sum to zero and summing the update over all cells gives
  ``sum(u^{k+1}) dx = sum(u^k) dx + dt (flux_left + flux_right)``. The discrete total heat is
  therefore exactly ``(flux_left + flux_right) * t_k`` at every step (up to rounding), as for the
  continuous problem.
* **Linearity and symmetry.** The result is linear in ``(flux_left, flux_right)`` for a fixed
  diffusivity, and mirroring the rod (swapping the fluxes, probing at ``L - x_probe``) gives the
  same value, as for the PDE.
* **Default number of steps.** With ``dt`` proportional to ``dx^2`` both error terms shrink at
  the same rate; ``n_steps = max(16, ceil(n_cells**2 / 8))`` (512 steps for the default 64 cells)
  keeps the time error within an order of magnitude of the space error over
  :data:`HEAT_BOUNDS` (measured against the exact series solution at ``t_end = 0.5``: both are
  about 1e-4 for ``diffusivity = 0.5`` and 1e-4 to 2e-3 for ``0.05``), so that doubling
  ``n_cells`` with the default ``n_steps`` divides the error by 4 (observed order 2.00).
"""

from __future__ import annotations

import math
import operator

import numpy as np
from scipy.linalg import lapack

from ..errors import InvalidInput

__all__ = [
    "HEAT_BOUNDS",
    "HEAT_INPUT_NAMES",
    "heat_equation_1d",
    "heat_equation_batch",
    "default_heat_steps",
    "POISSON_BOUNDS",
    "POISSON_INPUT_NAMES",
    "POISSON_SENSOR",
    "poisson_2d_batch",
    "FIDELITY_GRIDS",
    "REFERENCE_GRID",
    "heat_work",
    "poisson_work",
]

#: Box of the three inputs of :func:`heat_equation_batch`: the lower row, then the upper row, for
#: ``(diffusivity, flux_left, flux_right)``.
HEAT_BOUNDS = [[0.05, -1.0, -1.0], [0.5, 1.0, 1.0]]

#: Names of the three columns of the input of :func:`heat_equation_batch`.
HEAT_INPUT_NAMES = ("diffusivity", "flux_left", "flux_right")


def default_heat_steps(n_cells: int) -> int:
    """The default number of time steps for ``n_cells`` cells: ``max(16, ceil(n_cells**2 / 8))``.

    Backward Euler is first order in time and the space discretisation second order, so the time
    step is tied to the square of the cell width (``dt`` proportional to ``dx^2``) to keep both
    errors of the same order whatever the resolution; the constant 1/8 roughly balances the two
    over :data:`HEAT_BOUNDS` at the default ``t_end``.
    """
    return max(16, -(-n_cells * n_cells // 8))


def _finite_real(name: str, value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(name, "a real number", repr(value)) from None
    if isinstance(value, bool) or not math.isfinite(out):
        raise InvalidInput(name, "a finite real number", repr(value))
    return out


def _integer(name: str, value, minimum: int) -> int:
    if isinstance(value, bool):
        raise InvalidInput(name, f"an integer >= {minimum}", repr(value))
    try:
        out = operator.index(value)
    except TypeError:
        raise InvalidInput(name, f"an integer >= {minimum}", repr(value)) from None
    if out < minimum:
        raise InvalidInput(name, f"an integer >= {minimum}", repr(value))
    return out


def heat_equation_1d(
    diffusivity: float,
    flux_left: float,
    flux_right: float,
    n_cells: int = 64,
    n_steps: int | None = None,
    t_end: float = 0.5,
    x_probe: float = 0.25,
    length: float = 1.0,
    return_profile: bool = False,
):
    """Temperature at ``x_probe`` at time ``t_end`` in a rod heated through both ends.

    Solves ``u_t = diffusivity * u_xx`` on ``[0, length]`` from ``u = 0``, with heat entering at
    the left end at rate ``flux_left`` (``-diffusivity * u_x(0) = flux_left``) and at the right end
    at rate ``flux_right`` (``diffusivity * u_x(length) = flux_right``), by a cell-centred finite
    volume scheme in space and backward Euler in time (see the module docstring: second order in
    space, first order in time, and the discrete total heat ``sum(u) * dx`` equals
    ``(flux_left + flux_right) * t`` exactly at every step).

    Args:
        diffusivity: the thermal diffusivity ``alpha``, > 0.
        flux_left: rate at which heat enters through the left end (negative: leaves).
        flux_right: rate at which heat enters through the right end (negative: leaves).
        n_cells: number of cells, >= 4.
        n_steps: number of backward Euler steps, >= 1; by default
            :func:`default_heat_steps` ``(n_cells) = max(16, ceil(n_cells**2 / 8))``.
        t_end: final time, >= 0.
        x_probe: where the temperature is read, ``0 <= x_probe <= length``. The value is linearly
            interpolated between cell centres; within half a cell of an end it is interpolated
            towards the end value ``u_end`` implied by the imposed flux
            (``u(0) ~ u_0 + dx/2 * flux_left / alpha``, ``u(L) ~ u_{n-1} + dx/2 * flux_right /
            alpha``), which keeps the reading second order everywhere.
        length: length of the rod, > 0.
        return_profile: if true, return ``(x_centres, u)``, the cell centres and the temperature
            of every cell at ``t_end`` (two arrays of shape ``[n_cells]``), instead of the probe
            value.

    Returns:
        The temperature at ``x_probe`` at ``t_end`` (a float), or ``(x_centres, u)``.

    Raises:
        InvalidInput: an argument is out of range or of the wrong type.
    """
    alpha = _finite_real("diffusivity", diffusivity)
    if alpha <= 0:
        raise InvalidInput("diffusivity", "a real number > 0", repr(diffusivity))
    q_left = _finite_real("flux_left", flux_left)
    q_right = _finite_real("flux_right", flux_right)
    n = _integer("n_cells", n_cells, 4)
    steps = default_heat_steps(n) if n_steps is None else _integer("n_steps", n_steps, 1)
    t_end = _finite_real("t_end", t_end)
    if t_end < 0:
        raise InvalidInput("t_end", "a real number >= 0", repr(t_end))
    length = _finite_real("length", length)
    if length <= 0:
        raise InvalidInput("length", "a real number > 0", repr(length))
    x_probe = _finite_real("x_probe", x_probe)
    if not 0.0 <= x_probe <= length:
        raise InvalidInput("x_probe", f"a real number in [0, length] = [0, {length:g}]", repr(x_probe))

    dx = length / n
    dt = t_end / steps
    r = alpha * dt / (dx * dx)

    # I - dt A: symmetric positive definite tridiagonal, constant in time -> factor once.
    diag = np.full(n, 1.0 + 2.0 * r)
    diag[0] = diag[-1] = 1.0 + r
    off = np.full(n - 1, -r)
    d_fac, e_fac, info = lapack.dpttrf(diag, off)
    if info != 0:  # cannot happen for r >= 0; guards against a broken LAPACK
        raise RuntimeError(f"LAPACK dpttrf failed with info={info}")

    # Heat added to the end cells per step: dt * b.
    add_left = dt * q_left / dx
    add_right = dt * q_right / dx
    u = np.zeros(n)
    solve = lapack.dpttrs
    for _ in range(steps):
        u[0] += add_left
        u[-1] += add_right
        u, info = solve(d_fac, e_fac, u, overwrite_b=1)
    u = np.ravel(u)

    x_centres = (np.arange(n) + 0.5) * dx
    if return_profile:
        return x_centres, u

    # Read the temperature at x_probe: linear between centres, and towards the flux-consistent
    # end values in the two half cells next to the ends.
    nodes = np.empty(n + 2)
    nodes[0], nodes[1:-1], nodes[-1] = 0.0, x_centres, length
    values = np.empty(n + 2)
    values[1:-1] = u
    values[0] = u[0] + 0.5 * dx * q_left / alpha
    values[-1] = u[-1] + 0.5 * dx * q_right / alpha
    return float(np.interp(x_probe, nodes, values))


def heat_equation_batch(X, **kwargs) -> np.ndarray:
    """:func:`heat_equation_1d` on every row of ``X``.

    Args:
        X: array-like of shape ``[N, 3]``, rows ``(diffusivity, flux_left, flux_right)`` (see
            :data:`HEAT_INPUT_NAMES` and :data:`HEAT_BOUNDS`). A CPU torch tensor works too.
        **kwargs: passed on to :func:`heat_equation_1d` (``n_cells``, ``n_steps``, ``t_end``,
            ``x_probe``, ``length``); ``return_profile`` is not allowed.

    Returns:
        A float64 numpy array of shape ``[N]``. Each diffusivity needs its own matrix, so the rows
        are solved one after the other (about half a millisecond each at the defaults).
    """
    if "return_profile" in kwargs:
        raise InvalidInput("return_profile", "not given to heat_equation_batch", "return_profile")
    try:
        arr = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise InvalidInput("X", "a real array of shape [N, 3]", type(X).__name__) from None
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InvalidInput("X", "a real array of shape [N, 3]", f"shape {list(arr.shape)}")
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise InvalidInput("X", "finite values", f"non-finite values at rows {bad[:10].tolist()}")
    return np.array([heat_equation_1d(a, ql, qr, **kwargs) for a, ql, qr in arr], dtype=float)


# ------------------------------------------------------------------------------------------------
# 2-D Poisson problem
# ------------------------------------------------------------------------------------------------

#: Box of the three inputs of :func:`poisson_2d_batch`: the lower row, then the upper row, for
#: ``(source_x, source_y, source_width)``.
POISSON_BOUNDS = [[0.1, 0.1, 0.08], [0.9, 0.9, 0.2]]

#: Names of the three columns of the input of :func:`poisson_2d_batch`.
POISSON_INPUT_NAMES = ("source_x", "source_y", "source_width")

#: Centre and width of the sensor whose weighted mean temperature :func:`poisson_2d_batch` returns.
POISSON_SENSOR = (0.7, 0.35, 0.1)

_POISSON_FACTORS: dict[int, tuple] = {}


def _poisson_operator(n: int):
    """Sparse LU factors of the 5-point Laplacian ``-Δ_h`` on the ``(n-1)²`` interior nodes of an
    ``n × n`` grid of the unit square (homogeneous Dirichlet boundary), the node coordinates and
    the sensor weights; factored once per grid size and kept (the operator does not depend on the
    parameters, which enter through the right-hand side only)."""
    if n not in _POISSON_FACTORS:
        import scipy.sparse as sp
        from scipy.sparse.linalg import splu

        h = 1.0 / n
        m = n - 1
        one_d = sp.diags([-np.ones(m - 1), 2.0 * np.ones(m), -np.ones(m - 1)], [-1, 0, 1]) / (h * h)
        eye = sp.identity(m)
        laplacian = (sp.kron(one_d, eye) + sp.kron(eye, one_d)).tocsc()
        lu = splu(laplacian)
        x = np.arange(1, n) * h
        xx, yy = np.meshgrid(x, x, indexing="ij")
        cx, cy, w = POISSON_SENSOR
        sensor = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * w * w)) / (2 * math.pi * w * w)
        _POISSON_FACTORS[n] = (lu, xx.ravel(), yy.ravel(), sensor.ravel() * h * h)
    return _POISSON_FACTORS[n]


def poisson_2d_batch(X, n_grid: int = 64) -> np.ndarray:
    """Mean temperature seen by a sensor in a square plate heated by a Gaussian source.

    Solves the Poisson problem ``-Δu = s`` on the unit square with ``u = 0`` on the boundary, for
    the unit-mass Gaussian source ``s(p) = exp(-|p - c|² / (2 w²)) / (2π w²)`` centred at
    ``c = (source_x, source_y)`` with width ``w = source_width``, and returns the sensor reading
    ``J = ∫ u(p) g(p) dp`` with the fixed Gaussian weight ``g`` of :data:`POISSON_SENSOR` (centre
    (0.7, 0.35), width 0.1, unit mass).

    Discretisation: the standard 5-point finite-difference Laplacian on the ``(n_grid - 1)²``
    interior nodes of a uniform grid with spacing ``h = 1 / n_grid`` (the source sampled at the
    nodes), and the trapezoidal rule for J (the boundary terms vanish since u = 0 there). Both are
    second order, so J converges as O(h²) (R. J. LeVeque, *Finite Difference Methods for Ordinary
    and Partial Differential Equations*, SIAM, 2007, chapter 3). The sparse matrix is the same for
    every parameter value, so it is LU-factored once per grid size
    (``scipy.sparse.linalg.splu``) and every batch of sources is one multi-right-hand-side solve.

    Args:
        X: array-like ``[N, 3]``, rows ``(source_x, source_y, source_width)`` (see
            :data:`POISSON_BOUNDS`); a CPU torch tensor works too.
        n_grid: number of grid intervals per side, >= 4.

    Returns:
        A float64 numpy array ``[N]`` of sensor readings.

    Raises:
        InvalidInput: X is not a finite ``[N, 3]`` array, a width is not positive, or n_grid < 4.
    """
    n = _integer("n_grid", n_grid, 4)
    try:
        arr = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise InvalidInput("X", "a real array of shape [N, 3]", type(X).__name__) from None
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InvalidInput("X", "a real array of shape [N, 3]", f"shape {list(arr.shape)}")
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1) | (arr[:, 2] <= 0))
    if bad.size:
        raise InvalidInput("X", "finite rows with a positive source_width",
                           f"invalid values at rows {bad[:10].tolist()}")
    lu, xs, ys, weights = _poisson_operator(n)
    out = np.empty(arr.shape[0])
    step = max(1, int(2**22 // xs.size))  # right-hand sides per solve: ~32 MB of float64
    for s in range(0, arr.shape[0], step):
        c = arr[s:s + step]
        w2 = (c[:, 2] ** 2)[None, :]
        rhs = np.exp(-((xs[:, None] - c[None, :, 0]) ** 2 + (ys[:, None] - c[None, :, 1]) ** 2) / (2 * w2))
        rhs /= 2 * math.pi * w2
        out[s:s + step] = weights @ lu.solve(rhs)
    return out


# ------------------------------------------------------------------------------------------------
# Fidelities
# ------------------------------------------------------------------------------------------------

#: Grid sizes of the three fidelities of both simulators (low, medium, high).
FIDELITY_GRIDS = (16, 32, 64)

#: Grid sizes of the fine reference solutions used as the truth.
REFERENCE_GRID = {"heat": 256, "poisson": 256}


def heat_work(n_cells: int) -> int:
    """Work units of one :func:`heat_equation_1d` solve: cells × time steps (each step is one
    O(n_cells) tridiagonal solve). For 16 / 32 / 64 cells: 512 / 4096 / 32768, i.e. 1 : 8 : 64."""
    return int(n_cells) * default_heat_steps(int(n_cells))


def poisson_work(n_grid: int) -> int:
    """Work units of one :func:`poisson_2d_batch` solve: the ``(n_grid - 1)²`` unknowns (a
    forward and back substitution with the stored sparse LU factors is close to linear in them).
    For 16 / 32 / 64: 225 / 961 / 3969, about 1 : 4.3 : 17.6."""
    return (int(n_grid) - 1) ** 2
