"""Benchmark problems, by name.

>>> from bayesal.problems import make_problem, problem_names
>>> problem = make_problem("branin")
>>> problem.space, problem.test_set()[0].shape
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UnknownName
from ..spaces import Box
from .analytic import Branin, Forrester, Hartmann6
from .base import DatasetProblem, FunctionProblem, Problem
from .data import UCI_DATASETS, load_uci, uci_available, uci_names
from .multifidelity import MF_PROBLEMS, MultiFidelityProblem, make_multifidelity_problem

__all__ = [
    "Problem", "FunctionProblem", "DatasetProblem", "HeatEquation",
    "Forrester", "Branin", "Hartmann6", "load_uci", "make_problem", "problem_names", "PROBLEMS",
    "MultiFidelityProblem", "make_multifidelity_problem", "MF_PROBLEMS", "is_multifidelity",
]


def HeatEquation(noise_std: float = 0.0, seed: int = 0, n_cells: int = 64) -> FunctionProblem:
    """A 1-D heat-equation simulator (implicit finite volumes, SciPy banded solves).

    Inputs: diffusivity and the two boundary heat fluxes; output: the temperature at a fixed
    probe point and time. See :func:`bayesal.problems.simulators.heat_equation_1d`.
    """
    from .simulators import HEAT_BOUNDS, HEAT_INPUT_NAMES, heat_equation_batch

    box = Box(HEAT_BOUNDS[0], HEAT_BOUNDS[1], names=list(HEAT_INPUT_NAMES))
    return FunctionProblem("heat", lambda X: heat_equation_batch(X.cpu().numpy(), n_cells=n_cells), box,
                           noise_std=noise_std, seed=seed, n_test=500,
                           description="1-D heat equation: (diffusivity, flux_left, flux_right) -> probe temperature")


#: name -> factory(noise_std=0.0, seed=0) for the built-in problems; ``uci-NAME`` loads a UCI set.
PROBLEMS: dict[str, Callable[..., Problem]] = {
    "forrester": Forrester,
    "branin": Branin,
    "hartmann6": Hartmann6,
    "heat": HeatEquation,
}


def problem_names(data_dir=None) -> list[str]:
    """Built-in problem names, the multi-fidelity ones (``heat-mf``, ...), plus ``uci-NAME`` for
    every data set found in ``data_dir`` (the UCI sets, and any folder laid out like them)."""
    return list(PROBLEMS) + list(MF_PROBLEMS) + [f"uci-{n}" for n in uci_names(data_dir)]


def is_multifidelity(name: str) -> bool:
    """Whether ``name`` is a multi-fidelity problem (see :data:`MF_PROBLEMS`)."""
    return name in MF_PROBLEMS


def make_problem(name: str, noise_std: float = 0.0, seed: int = 0, data_dir=None,
                 **kwargs) -> Problem | MultiFidelityProblem:
    """Build a problem by name (``"branin"``, ``"heat"``, ``"uci-concrete"``, ...).

    A multi-fidelity name (``"heat-mf"``, ``"forrester-mf"``, ...) gives a
    :class:`MultiFidelityProblem` (``evaluate(X, fidelity)``); these are deterministic, so
    ``noise_std`` and ``seed`` do not change them (a campaign adds its label noise itself)."""
    if name in PROBLEMS:
        return PROBLEMS[name](noise_std=noise_std, seed=seed, **kwargs)
    if name in MF_PROBLEMS:
        return make_multifidelity_problem(name, **kwargs)
    if name.startswith("uci-") and (name[4:] in UCI_DATASETS or uci_available(name[4:], data_dir)):
        return load_uci(name[4:], data_dir=data_dir, seed=seed, **kwargs)
    raise UnknownName("problem", name, problem_names(data_dir) or list(PROBLEMS))
