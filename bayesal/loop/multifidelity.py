"""``MultiFidelityLearner``: the multi-fidelity :class:`~bayesal.loop.learner.ActiveLearner`
under its earlier name and signatures (a learner with a cost model per fidelity level).

An oracle is called as ``oracle(X [q, d], fidelity [q]) -> y [q] or [q, 1]``; a
:class:`~bayesal.problems.multifidelity.MultiFidelityProblem` is one.

>>> learner = MultiFidelityLearner(problem.space, costs=problem.costs, test_set=problem.test_set())
>>> records = learner.run(problem, cost_budget=20.0, q=2)
>>> records[-1]["cumulative_cost"], records[-1]["rmse"]

is ``ActiveLearner(problem.space, surrogate="co-kriging", acquisition="mf-integrated-variance",
costs=problem.costs, ...)`` with ``tell(X, fidelity, y)`` in that argument order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..acquisition import Acquisition
from ..errors import UnknownName
from ..models import MF_MODELS
from ..models.multifidelity import MultiFidelitySurrogate
from ..spaces import Box, Pool
from .learner import ActiveLearner

__all__ = ["MultiFidelityLearner", "MF_MODELS"]


class MultiFidelityLearner(ActiveLearner):
    """Chooses which simulations to run, and at which fidelity, under a cost budget.

    Args:
        space: the :class:`~bayesal.spaces.Box` of inputs (or a :class:`~bayesal.spaces.Pool`).
        costs: ``[S]`` cost of one evaluation at each fidelity level (lowest first; the last
            level is the target).
        surrogate: a :class:`~bayesal.models.multifidelity.MultiFidelitySurrogate` or a name
            (``"co-kriging"``, default, or ``"botorch-mf-gp"``).
        acquisition: a multi-fidelity :class:`~bayesal.acquisition.Acquisition` or a name
            (``"mf-integrated-variance"``, default, or ``"mf-information"``).
        fidelities: the levels on offer to the acquisition (default: all).
        n_candidates: size of the scrambled Sobol candidate set drawn in the box at each ask.
        seed: makes every batch reproducible.
        test_set: optional ``(X_test [n, d], y_test [n, 1])`` of the target (the truth), on which
            :meth:`run` records RMSE, NLPD and mean posterior std of the target fidelity.
    """

    def __init__(self, space: Box | Pool, costs: Any, surrogate: str | MultiFidelitySurrogate = "co-kriging",
                 acquisition: str | Acquisition = "mf-integrated-variance", fidelities: Any = None,
                 n_candidates: int = 1024, seed: int = 0, test_set: tuple[Any, Any] | None = None):
        if isinstance(surrogate, str) and surrogate not in MF_MODELS:
            raise UnknownName("multi-fidelity model", surrogate, list(MF_MODELS))
        if not isinstance(surrogate, (str, MultiFidelitySurrogate)):
            from ..errors import InvalidInput
            from ..validation import describe

            raise InvalidInput("surrogate", "a MultiFidelitySurrogate", describe(surrogate))
        super().__init__(space, surrogate=surrogate, acquisition=acquisition, seed=seed, test_set=test_set,
                         costs=costs, fidelities=fidelities, n_candidates=n_candidates)

    def __repr__(self) -> str:
        return (f"MultiFidelityLearner(costs={self.costs.tolist()}, surrogate={self.surrogate!r}, "
                f"acquisition={self.acquisition!r}, counts={self.counts()}, cost={self.cumulative_cost:.4g})")

    def tell(self, X: Any, fidelity: Any, y: Any, indices: Any = None) -> None:
        """Add labels ``y: [k]`` of ``X: [k, d]`` at levels ``fidelity: [k]`` (their cost is added
        to :attr:`cumulative_cost`). Nothing is added unless every row is valid."""
        super().tell(X, y, indices=indices, fidelity=fidelity)

    def run(self, oracle: Callable[[torch.Tensor, torch.Tensor], Any], cost_budget: float, q: int = 1,
            initial: Any = None, step_cost: float | None = None,
            callback: Callable[[dict[str, Any]], Any] | None = None, progress: bool = True) -> list[dict[str, Any]]:
        """Buy labels from ``oracle(X, fidelity)`` until ``cost_budget`` cannot pay for another
        evaluation (see :meth:`ActiveLearner.run`; ``initial`` is labels per level)."""
        return super().run(oracle, q=q, initial=initial, callback=callback, progress=progress,
                           cost_budget=cost_budget, step_cost=step_cost)
