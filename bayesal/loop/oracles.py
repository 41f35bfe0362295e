"""Oracles: whatever produces labels (a simulator, a data set's hidden labels, a person).

An oracle is called as ``oracle(X [q, d], indices [q] | None) -> y [q] or [q, m]``. Plain
functions of X alone are wrapped by :func:`as_oracle`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from ..errors import InvalidInput
from ..problems.base import Problem
from ..spaces import Pool

__all__ = ["Oracle", "FunctionOracle", "PoolOracle", "ProblemOracle", "as_oracle"]


class Oracle:
    """Base class: ``__call__(X [q, d], indices [q] | None) -> labels [q] or [q, m]``."""

    def __call__(self, X: torch.Tensor, indices: torch.Tensor | None = None) -> Any:
        raise NotImplementedError


class FunctionOracle(Oracle):
    """Wraps ``f(X [q, d]) -> y``: a simulator or any Python function of the inputs alone."""

    def __init__(self, function: Callable[[torch.Tensor], Any]):
        self.function = function

    def __call__(self, X, indices=None):
        return self.function(X)


class PoolOracle(Oracle):
    """Reveals a pool's hidden labels by index (simulated labelling of a data set)."""

    def __init__(self, pool: Pool):
        if not pool.has_labels:
            raise InvalidInput("pool", "a pool created with hidden labels y", "a pool without labels")
        self.pool = pool

    def __call__(self, X, indices=None):
        if indices is None:
            indices = self.pool.index_of(X)
        return self.pool.reveal(indices)


class ProblemOracle(Oracle):
    """Labels from a benchmark :class:`~bayesal.problems.Problem`."""

    def __init__(self, problem: Problem):
        self.problem = problem

    def __call__(self, X, indices=None):
        return self.problem.evaluate(X, indices)


def as_oracle(obj: Any) -> Oracle:
    """An :class:`Oracle` from an oracle, a problem, a labelled pool, or a callable.

    A callable taking two positional arguments is called with ``(X, indices)``, one taking a
    single argument with ``X`` alone.
    """
    if isinstance(obj, Oracle):
        return obj
    if isinstance(obj, Problem):
        return ProblemOracle(obj)
    if isinstance(obj, Pool):
        return PoolOracle(obj)
    if callable(obj):
        try:
            params = [p for p in inspect.signature(obj).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            takes_indices = len(params) >= 2
        except (TypeError, ValueError):
            takes_indices = False
        if takes_indices:
            return _TwoArgumentOracle(obj)
        return FunctionOracle(obj)
    raise InvalidInput("oracle", "a callable, an Oracle, a Problem or a labelled Pool", type(obj).__name__)


class _TwoArgumentOracle(Oracle):
    def __init__(self, function):
        self.function = function

    def __call__(self, X, indices=None):
        return self.function(X, indices)
