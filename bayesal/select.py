"""Deprecated location of the selectors: use :mod:`bayesal.selection` (same names)."""

from .selection import (  # noqa: F401
    SELECTORS, Selection, select, select_continuous, select_greedy, select_stochastic, select_topk,
)

__all__ = ["Selection", "select", "select_topk", "select_greedy", "select_stochastic", "select_continuous",
           "SELECTORS"]
