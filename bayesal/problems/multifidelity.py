"""Multi-fidelity benchmark problems: one input box, several fidelities with costs, and a truth.

A :class:`MultiFidelityProblem` evaluates ``evaluate(X [q, d], fidelity [q]) -> y [q, 1]`` at
fidelity levels ``0 .. S-1`` (``S-1`` the highest, the *target*), each with a cost in units of
one highest-fidelity evaluation (``costs[-1] == 1``). Its :meth:`~MultiFidelityProblem.test_set`
holds the truth on a fixed Sobol design: the analytic high-fidelity function for the standard test
functions, the solution on a fine reference grid for the PDE simulators.

The standard test functions and their usual low-fidelity versions:

* :func:`forrester_mf` — Forrester, Sóbester & Keane (2007), "Multi-fidelity optimization via
  surrogate modelling", Proc. R. Soc. A 463, 3251–3269; and their book *Engineering Design via
  Surrogate Modelling* (Wiley, 2008), §8.
* :func:`currin_mf` — Currin, Mitchell, Morris & Ylvisaker (1991), with the low-fidelity
  version of Xiong, Qian & Wu (2013), "Sequential design and analysis of high-accuracy and
  low-accuracy computer codes", Technometrics 55(1), 37–46.
* :func:`park_mf` — Park (1991), PhD thesis, Stanford; low fidelity from Xiong et al. (2013).
* :func:`borehole_mf` — Morris, Mitchell & Ylvisaker (1993); low fidelity from Xiong et al.
  (2013).

(The formulas as collected by Surjanovic & Bingham, *Virtual Library of Simulation Experiments*,
Simon Fraser University.) The low fidelity of these functions costs 0.1 here, a common
convention in the multi-fidelity literature; the PDE simulators take their costs from their grids.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..errors import InvalidInput, UnknownName
from ..spaces import Box
from ..validation import DEFAULT_DTYPE
from . import simulators as sim

__all__ = [
    "MultiFidelityProblem", "forrester_mf", "currin_mf", "park_mf", "borehole_mf",
    "ForresterMF", "CurrinMF", "ParkMF", "BoreholeMF", "HeatEquationMF", "PoissonMF",
    "MF_PROBLEMS", "make_multifidelity_problem", "check_fidelity",
]


def check_fidelity(fidelity, n: int, num_fidelities: int, name: str = "fidelity") -> torch.Tensor:
    """Fidelity levels as a long tensor ``[n]`` in ``0 .. num_fidelities-1`` (a scalar is broadcast)."""
    try:
        f = torch.as_tensor(fidelity)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidInput(name, f"integer fidelity levels in 0..{num_fidelities - 1}", type(fidelity).__name__) from None
    if f.dim() == 0:
        f = f.expand(n)
    f = f.reshape(-1)
    if f.numel() != n:
        raise InvalidInput(name, f"{n} fidelity level(s)", f"{f.numel()}")
    if f.is_floating_point():
        if not bool(torch.isfinite(f).all()) or not bool((f == f.round()).all()):
            raise InvalidInput(name, f"integer fidelity levels in 0..{num_fidelities - 1}", "non-integer values")
    f = f.long()
    bad = ((f < 0) | (f >= num_fidelities)).nonzero().reshape(-1)
    if bad.numel():
        raise InvalidInput(name, f"fidelity levels in 0..{num_fidelities - 1}",
                           f"{f[bad[:5]].tolist()} at position(s) {bad[:5].tolist()}")
    return f


class MultiFidelityProblem:
    """A function with S fidelities on a box, their costs, and a noise-free truth.

    Args:
        name: registry name.
        levels: S functions ``X [N, d] (numpy) -> y [N]``, lowest fidelity first.
        box: the input space.
        costs: S costs, increasing, in units of one highest-fidelity evaluation (the last is 1).
        truth: ``X [N, d] -> y [N]`` used for the test set (default: the highest fidelity).
        fidelity_names: labels of the levels (``"16 cells"``).
        n_test: size of the test set (a scrambled Sobol design with its own seed).
        description: one line.
    """

    def __init__(self, name: str, levels: Sequence[Callable[[np.ndarray], np.ndarray]], box: Box,
                 costs: Sequence[float], truth: Callable[[np.ndarray], np.ndarray] | None = None,
                 fidelity_names: Sequence[str] | None = None, n_test: int = 500, description: str = ""):
        if len(levels) < 1 or len(costs) != len(levels):
            raise InvalidInput("costs", f"one cost per fidelity ({len(levels)})", f"{len(costs)}")
        c = [float(v) for v in costs]
        if any(not (v > 0) or not math.isfinite(v) for v in c):
            raise InvalidInput("costs", "positive finite costs", repr(c))
        self.name, self.levels, self.space, self.description = name, list(levels), box, description
        self.costs = torch.tensor(c, dtype=DEFAULT_DTYPE)
        self.truth = truth or levels[-1]
        self.fidelity_names = list(fidelity_names) if fidelity_names else [f"level {i}" for i in range(len(levels))]
        self.n_test = int(n_test)
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None
        self.num_outputs = 1

    @property
    def num_fidelities(self) -> int:
        return len(self.levels)

    @property
    def target_fidelity(self) -> int:
        return len(self.levels) - 1

    @property
    def dim(self) -> int:
        return self.space.dim

    def __repr__(self) -> str:
        return f"MultiFidelityProblem({self.name!r}, dim={self.dim}, costs={self.costs.tolist()})"

    def evaluate(self, X, fidelity) -> torch.Tensor:
        """Labels ``[q, 1]`` of the points ``X: [q, d]`` at levels ``fidelity: [q]`` (or one int)."""
        X = self.space.check(X, "X")
        f = check_fidelity(fidelity, X.shape[0], self.num_fidelities)
        out = torch.empty(X.shape[0], 1, dtype=DEFAULT_DTYPE)
        Xn = X.detach().cpu().numpy()
        for level in f.unique().tolist():
            rows = (f == level).nonzero().reshape(-1)
            out[rows, 0] = torch.as_tensor(np.asarray(self.levels[level](Xn[rows.numpy()]), dtype=float))
        return out.to(X.device)

    def __call__(self, X, fidelity) -> torch.Tensor:
        return self.evaluate(X, fidelity)

    def cost_of(self, fidelity) -> torch.Tensor:
        """Costs ``[q]`` of evaluations at levels ``fidelity: [q]``."""
        f = torch.as_tensor(fidelity).reshape(-1).long()
        return self.costs[f]

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X_test [n, d], y_true [n, 1])``: the truth on a fixed scrambled Sobol design."""
        if self._test is None:
            X = self.space.sample(self.n_test, seed=20240611)
            y = torch.as_tensor(np.asarray(self.truth(X.numpy()), dtype=float)).reshape(-1, 1)
            self._test = (X, y.to(DEFAULT_DTYPE))
        return self._test

    def measure_seconds(self, n: int = 32, seed: int = 0) -> list[float]:
        """Measured wall seconds per evaluation at each level (median of three batches of n)."""
        X = self.space.sample(n, seed=seed).numpy()
        out = []
        for level in self.levels:
            times = []
            for _ in range(3):
                start = time.perf_counter()
                level(X)
                times.append((time.perf_counter() - start) / n)
            out.append(float(np.median(times)))
        return out


# -- the standard test functions ------------------------------------------------------------------

def _rows(X, d: int) -> np.ndarray:
    arr = np.asarray(X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else X, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != d:
        raise InvalidInput("X", f"an array of shape [N, {d}]", f"shape {list(arr.shape)}")
    return arr


def forrester_mf(X, fidelity: int = 1) -> np.ndarray:
    """Forrester function and its low fidelity (Forrester, Sóbester & Keane 2007/2008).

    ``f_1(x) = (6x − 2)² sin(12x − 4)`` on [0, 1] (high fidelity) and
    ``f_0(x) = A f_1(x) + B (x − 0.5) − C`` with ``A = 0.5, B = 10, C = −5`` (low fidelity).

    Args:
        X: ``[N, 1]``; fidelity: 1 (high) or 0 (low).

    Returns: ``[N]``.
    """
    x = _rows(X, 1)[:, 0]
    high = (6 * x - 2) ** 2 * np.sin(12 * x - 4)
    return high if fidelity == 1 else 0.5 * high + 10 * (x - 0.5) + 5


def _currin_high(x1, x2):
    with np.errstate(divide="ignore"):
        factor = np.where(x2 > 0, 1 - np.exp(-1 / (2 * np.where(x2 > 0, x2, 1.0))), 1.0)
    return factor * (2300 * x1**3 + 1900 * x1**2 + 2092 * x1 + 60) / (100 * x1**3 + 500 * x1**2 + 4 * x1 + 20)


def currin_mf(X, fidelity: int = 1) -> np.ndarray:
    """Currin exponential function (Currin et al. 1991) and the low fidelity of Xiong, Qian &
    Wu (2013), on [0, 1]²:

    ``f_1(x) = [1 − exp(−1 / (2 x₂))] (2300 x₁³ + 1900 x₁² + 2092 x₁ + 60) / (100 x₁³ + 500 x₁² + 4 x₁ + 20)``
    (with the bracket equal to 1 at ``x₂ = 0``), and ``f_0`` the average of ``f_1`` at the four
    points ``(x₁ ± 0.05, x₂ + 0.05)`` and ``(x₁ ± 0.05, max(0, x₂ − 0.05))``.

    Args:
        X: ``[N, 2]``; fidelity: 1 (high) or 0 (low).

    Returns: ``[N]``.
    """
    x = _rows(X, 2)
    x1, x2 = x[:, 0], x[:, 1]
    if fidelity == 1:
        return _currin_high(x1, x2)
    lo2 = np.maximum(0.0, x2 - 0.05)
    return 0.25 * (_currin_high(x1 + 0.05, x2 + 0.05) + _currin_high(x1 + 0.05, lo2)
                   + _currin_high(x1 - 0.05, x2 + 0.05) + _currin_high(x1 - 0.05, lo2))


def park_mf(X, fidelity: int = 1) -> np.ndarray:
    """Park (1991) function and the low fidelity of Xiong et al. (2013), on [0, 1]⁴:

    ``f_1(x) = x₁/2 [sqrt(1 + (x₂ + x₃²) x₄ / x₁²) − 1] + (x₁ + 3 x₄) exp(1 + sin x₃)`` and
    ``f_0(x) = (1 + sin(x₁) / 10) f_1(x) − 2 x₁ + x₂² + x₃² + 0.5``.

    The first term is evaluated as ``(sqrt(x₁² + (x₂ + x₃²) x₄) − x₁) / 2``, equal for x₁ > 0 and
    continuous at x₁ = 0.

    Args:
        X: ``[N, 4]``; fidelity: 1 (high) or 0 (low).

    Returns: ``[N]``.
    """
    x = _rows(X, 4)
    x1, x2, x3, x4 = x.T
    high = 0.5 * (np.sqrt(x1**2 + (x2 + x3**2) * x4) - x1) + (x1 + 3 * x4) * np.exp(1 + np.sin(x3))
    return high if fidelity == 1 else (1 + np.sin(x1) / 10) * high - 2 * x1 + x2**2 + x3**2 + 0.5


#: Borehole input box, columns ``(r_w, r, T_u, H_u, T_l, H_l, L, K_w)``.
BOREHOLE_BOUNDS = [[0.05, 100.0, 63070.0, 990.0, 63.1, 700.0, 1120.0, 9855.0],
                   [0.15, 50000.0, 115600.0, 1110.0, 116.0, 820.0, 1680.0, 12045.0]]


def borehole_mf(X, fidelity: int = 1) -> np.ndarray:
    """Borehole water-flow function (Morris, Mitchell & Ylvisaker 1993; Harper & Gupta 1983) and
    the low fidelity of Xiong et al. (2013), inputs ``(r_w, r, T_u, H_u, T_l, H_l, L, K_w)``:

    ``f_1 = 2π T_u (H_u − H_l) / (ln(r/r_w) [1 + 2 L T_u / (ln(r/r_w) r_w² K_w) + T_u / T_l])``,
    ``f_0 = 5 T_u (H_u − H_l) / (ln(r/r_w) [1.5 + 2 L T_u / (ln(r/r_w) r_w² K_w) + T_u / T_l])``.

    Args:
        X: ``[N, 8]`` in :data:`BOREHOLE_BOUNDS`; fidelity: 1 (high) or 0 (low).

    Returns: ``[N]`` flow rates (m³/yr).
    """
    x = _rows(X, 8)
    rw, r, tu, hu, tl, hl, length, kw = x.T
    log_ratio = np.log(r / rw)
    middle = 2 * length * tu / (log_ratio * rw**2 * kw) + tu / tl
    if fidelity == 1:
        return 2 * math.pi * tu * (hu - hl) / (log_ratio * (1 + middle))
    return 5 * tu * (hu - hl) / (log_ratio * (1.5 + middle))


def _analytic(name: str, function, lower, upper, low_cost: float, description: str) -> MultiFidelityProblem:
    return MultiFidelityProblem(
        name, [lambda X: function(X, 0), lambda X: function(X, 1)], Box(lower, upper),
        costs=[low_cost, 1.0], fidelity_names=["low", "high"], n_test=1000, description=description)


def ForresterMF(low_cost: float = 0.1) -> MultiFidelityProblem:
    """The 1-D Forrester pair (see :func:`forrester_mf`); low fidelity costs ``low_cost``."""
    return _analytic("forrester-mf", forrester_mf, [0.0], [1.0], low_cost, "Forrester et al. (2007), 1-D, 2 fidelities")


def CurrinMF(low_cost: float = 0.1) -> MultiFidelityProblem:
    """The 2-D Currin pair (see :func:`currin_mf`); low fidelity costs ``low_cost``."""
    return _analytic("currin-mf", currin_mf, [0.0, 0.0], [1.0, 1.0], low_cost, "Currin / Xiong et al. (2013), 2-D")


def ParkMF(low_cost: float = 0.1) -> MultiFidelityProblem:
    """The 4-D Park pair (see :func:`park_mf`); low fidelity costs ``low_cost``."""
    return _analytic("park-mf", park_mf, [0.0] * 4, [1.0] * 4, low_cost, "Park (1991) / Xiong et al. (2013), 4-D")


def BoreholeMF(low_cost: float = 0.1) -> MultiFidelityProblem:
    """The 8-D borehole pair (see :func:`borehole_mf`); low fidelity costs ``low_cost``."""
    return _analytic("borehole-mf", borehole_mf, *BOREHOLE_BOUNDS, low_cost, "Borehole / Xiong et al. (2013), 8-D")


# -- the PDE simulators ------------------------------------------------------------------------------

def _grid_levels(grids: Sequence[int], work: Callable[[int], int], reference: int, name: str):
    grids = [int(g) for g in grids]
    if len(grids) < 1 or sorted(grids) != grids or len(set(grids)) != len(grids) or grids[0] < 4:
        raise InvalidInput("grids", "increasing grid sizes >= 4", repr(grids))
    if not int(reference) > grids[-1]:
        raise InvalidInput("reference_grid", f"a grid finer than the highest fidelity ({grids[-1]})", repr(reference))
    costs = [work(g) / work(grids[-1]) for g in grids]
    return grids, costs


def HeatEquationMF(grids: Sequence[int] = sim.FIDELITY_GRIDS, reference_grid: int = sim.REFERENCE_GRID["heat"],
                   n_test: int = 300) -> MultiFidelityProblem:
    """The 1-D heat equation of :func:`~bayesal.problems.simulators.heat_equation_1d` at several
    grid sizes (default 16 / 32 / 64 cells, with the default ``n_steps ∝ n_cells²``), the truth on
    a ``reference_grid``-cell grid. Costs are cells × time steps relative to the finest level
    (:func:`~bayesal.problems.simulators.heat_work`): 1/64, 1/8, 1 by default.
    """
    grids, costs = _grid_levels(grids, sim.heat_work, reference_grid, "heat")
    levels = [(lambda g: lambda X: sim.heat_equation_batch(X, n_cells=g))(g) for g in grids]
    truth = lambda X: sim.heat_equation_batch(X, n_cells=int(reference_grid))  # noqa: E731
    box = Box(sim.HEAT_BOUNDS[0], sim.HEAT_BOUNDS[1], names=list(sim.HEAT_INPUT_NAMES))
    return MultiFidelityProblem("heat-mf", levels, box, costs, truth=truth,
                                fidelity_names=[f"{g} cells" for g in grids], n_test=n_test,
                                description="1-D heat equation at several grids; truth on a fine grid")


def PoissonMF(grids: Sequence[int] = sim.FIDELITY_GRIDS, reference_grid: int = sim.REFERENCE_GRID["poisson"],
              n_test: int = 500) -> MultiFidelityProblem:
    """The 2-D Poisson sensor problem of :func:`~bayesal.problems.simulators.poisson_2d_batch` at
    several grid sizes (default 16 / 32 / 64 intervals per side), the truth on a
    ``reference_grid`` grid. Costs are the numbers of unknowns relative to the finest level
    (:func:`~bayesal.problems.simulators.poisson_work`): about 0.057, 0.24, 1 by default.
    """
    grids, costs = _grid_levels(grids, sim.poisson_work, reference_grid, "poisson")
    levels = [(lambda g: lambda X: sim.poisson_2d_batch(X, n_grid=g))(g) for g in grids]
    truth = lambda X: sim.poisson_2d_batch(X, n_grid=int(reference_grid))  # noqa: E731
    box = Box(sim.POISSON_BOUNDS[0], sim.POISSON_BOUNDS[1], names=list(sim.POISSON_INPUT_NAMES))
    return MultiFidelityProblem("poisson-mf", levels, box, costs, truth=truth,
                                fidelity_names=[f"{g}x{g} grid" for g in grids], n_test=n_test,
                                description="2-D Poisson sensor reading at several grids; truth on a fine grid")


#: name -> factory for the multi-fidelity problems.
MF_PROBLEMS: dict[str, Callable[..., MultiFidelityProblem]] = {
    "heat-mf": HeatEquationMF,
    "poisson-mf": PoissonMF,
    "forrester-mf": ForresterMF,
    "currin-mf": CurrinMF,
    "park-mf": ParkMF,
    "borehole-mf": BoreholeMF,
}


def make_multifidelity_problem(name: str, **kwargs) -> MultiFidelityProblem:
    """A multi-fidelity problem by name (``"heat-mf"``, ``"poisson-mf"``, ``"currin-mf"``, ...)."""
    if name not in MF_PROBLEMS:
        raise UnknownName("multi-fidelity problem", name, list(MF_PROBLEMS))
    return MF_PROBLEMS[name](**kwargs)
