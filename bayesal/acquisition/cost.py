"""Cost-awareness as a wrapper: any acquisition valued per unit cost.

:class:`CostAware` divides what an acquisition is worth by what the evaluation costs, the
"expected improvement per second" of Snoek, Larochelle & Adams (2012, "Practical Bayesian
optimization of machine learning algorithms", NeurIPS) and BoTorch's
``InverseCostWeightedUtility`` (``botorch/acquisition/cost_aware.py``):

    value(x) / c(x)            for a candidate (greedy and top-k selection),
    value(B) / Σ_{x ∈ B} c(x)  for a box batch B.

A *cost model* maps candidate inputs ``[..., d]`` to positive costs ``[...]``:

* :class:`FidelityCost` — multi-fidelity candidates ``(x, s)`` (the fidelity level in the last
  column, see :func:`bayesal.models.multifidelity.augment`) cost ``costs[s]``;
* :class:`ConstantCost` — every evaluation costs the same (single fidelity; per-unit-cost values
  rank as the plain ones, but a learner can still stop on a cost budget);
* :class:`CallableCost` — a user function ``cost(X [..., d]) -> [...]`` (cost depends on the input).

:func:`as_cost_model` turns a number, a sequence of per-level costs or a callable into one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..errors import InvalidInput, Unsupported
from ..validation import as_tensor
from .base import Acquisition

__all__ = ["CostModel", "FidelityCost", "ConstantCost", "CallableCost", "as_cost_model", "CostAware", "PerCostScorer"]


class CostModel:
    """Base class: ``cost_model(X [..., d]) -> [...]`` positive cost of evaluating each point."""

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not define __call__")

    def cheapest(self, X: torch.Tensor) -> float:
        """The lowest cost among the candidate points ``X: [N, d]`` (what a learner compares the
        budget left with before asking)."""
        return float(self(X).min())


class FidelityCost(CostModel):
    """Cost of a multi-fidelity evaluation: ``costs[s]`` for a candidate whose last column is
    the fidelity level s.

    Args:
        costs: ``[S]`` positive finite cost of one evaluation at each level (lowest first).
    """

    def __init__(self, costs: Any):
        c = as_tensor(costs, "costs").reshape(-1)
        if c.numel() < 1 or not bool((c > 0).all()) or not bool(torch.isfinite(c).all()):
            raise InvalidInput("costs", "positive finite costs, one per fidelity", repr(c.tolist()))
        self.costs = c

    def __repr__(self) -> str:
        return f"FidelityCost({self.costs.tolist()})"

    @property
    def num_fidelities(self) -> int:
        """S, the number of levels priced."""
        return self.costs.numel()

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """``[...]`` cost of the augmented points ``X: [..., d + 1]`` (level in the last column)."""
        return self.costs.to(X)[X[..., -1].round().long()]

    def of_levels(self, levels: torch.Tensor) -> torch.Tensor:
        """``[k]`` cost of evaluations at the levels ``levels: [k]`` (long)."""
        return self.costs[levels.to(self.costs.device)]


class ConstantCost(CostModel):
    """Every evaluation costs ``cost`` (a positive finite number)."""

    def __init__(self, cost: float = 1.0):
        if not isinstance(cost, (int, float)) or not (0 < float(cost) < float("inf")):
            raise InvalidInput("cost", "a positive finite number", repr(cost))
        self.cost = float(cost)

    def __repr__(self) -> str:
        return f"ConstantCost({self.cost:g})"

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """``[...]`` the constant cost for every point of ``X: [..., d]``."""
        return torch.full(X.shape[:-1], self.cost, dtype=X.dtype, device=X.device)


class CallableCost(CostModel):
    """A user cost function ``fn(X [..., d]) -> [...]`` (positive; differentiable if the
    acquisition is optimised on a box)."""

    def __init__(self, fn: Callable[[torch.Tensor], Any]):
        if not callable(fn):
            raise InvalidInput("cost_model", "a callable cost(X) -> [N]", type(fn).__name__)
        self.fn = fn

    def __repr__(self) -> str:
        return f"CallableCost({getattr(self.fn, '__name__', type(self.fn).__name__)})"

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """``[...]`` the user's costs of ``X: [..., d]``, checked positive and finite."""
        c = torch.as_tensor(self.fn(X)).to(X)
        c = c.reshape(X.shape[:-1]) if c.numel() == X.shape[:-1].numel() else c
        if c.shape != X.shape[:-1] or not bool((c > 0).all()) or not bool(torch.isfinite(c).all()):
            raise InvalidInput("cost_model", f"positive finite costs of shape {list(X.shape[:-1])}",
                               f"shape {list(c.shape)}, min {float(c.min()) if c.numel() else 'n/a'}")
        return c


def as_cost_model(cost: Any) -> CostModel:
    """A :class:`CostModel` from a cost model, a number (:class:`ConstantCost`), a sequence or
    tensor of per-level costs ``[S]`` (:class:`FidelityCost`) or a callable (:class:`CallableCost`)."""
    if isinstance(cost, CostModel):
        return cost
    if isinstance(cost, bool):
        raise InvalidInput("cost_model", "a cost model, a number, per-level costs or a callable", repr(cost))
    if isinstance(cost, (int, float)):
        return ConstantCost(float(cost))
    if callable(cost) and not isinstance(cost, torch.Tensor):
        return CallableCost(cost)
    return FidelityCost(cost)


class CostAware(Acquisition):
    """``acquisition`` valued per unit cost under ``cost_model`` (see the module docstring).

    Greedy (and top-k) selection divides each candidate's gain, given the points already chosen,
    by its cost; box optimisation divides a batch's value by its total cost. The flags of the
    wrapped acquisition carry over, except that scores need the candidates' inputs (for their
    costs), so they are never computed from marginals alone.

    Args:
        acquisition: any model-based :class:`~bayesal.acquisition.Acquisition`.
        cost_model: a :class:`CostModel` (or anything :func:`as_cost_model` accepts).
    """

    scores_from_marginals = False

    def __init__(self, acquisition: Acquisition, cost_model: Any):
        if not isinstance(acquisition, Acquisition):
            raise InvalidInput("acquisition", "a bayesal Acquisition", type(acquisition).__name__)
        if isinstance(acquisition, CostAware):  # one division by cost, not two
            acquisition = acquisition.acquisition
        self.acquisition = acquisition
        self.cost_model = as_cost_model(cost_model)
        self.name = acquisition.name
        self.needs_posterior = acquisition.needs_posterior
        self.greedy_by_default = acquisition.greedy_by_default
        self.joint = acquisition.joint

    def __repr__(self) -> str:
        return f"CostAware({self.acquisition!r}, {self.cost_model!r})"

    def with_cost(self, cost_model: Any) -> "CostAware":
        """The wrapped acquisition per unit cost under ``cost_model`` instead."""
        return CostAware(self.acquisition, cost_model)

    def for_space(self, space) -> "CostAware":
        return CostAware(self.acquisition.for_space(space), self.cost_model)

    def bind(self, surrogate) -> "CostAware":
        return CostAware(self.acquisition.bind(surrogate), self.cost_model)

    def selection_model(self, X_train: torch.Tensor, surrogate):
        return self.acquisition.selection_model(X_train, surrogate)

    def score(self, posterior, generator=None):
        raise Unsupported(type(self).__name__, "candidate inputs to price (greedy_scorer or batch_value)",
                          "scoring a posterior alone")

    def greedy_scorer(self, surrogate, X: torch.Tensor, mean: torch.Tensor, noise: torch.Tensor):
        """The wrapped acquisition's scorer with gains divided by the cost ``[N]`` of ``X: [N, d]``."""
        return PerCostScorer(self.acquisition.greedy_scorer(surrogate, X, mean, noise), self.cost_model(X))

    def batch_value(self, surrogate, X: torch.Tensor) -> torch.Tensor:
        """``[b]`` value of the batches ``X: [b, q, d]`` divided by their total cost."""
        return self.acquisition.batch_value(surrogate, X) / self.cost_model(X).sum(-1)


class PerCostScorer:
    """A greedy scorer whose gains are divided by fixed candidate costs ``[N]``."""

    def __init__(self, scorer, costs: torch.Tensor):
        self.scorer, self.costs = scorer, costs

    def scores(self, var: torch.Tensor) -> torch.Tensor:
        """``[N]`` the wrapped gains per unit cost; ``var: [N, m]``."""
        return self.scorer.scores(var) / self.costs.to(var)

    def update(self, j: int | None, v_new: torch.Tensor, denom: torch.Tensor) -> None:
        """Condition the wrapped scorer (costs do not change)."""
        self.scorer.update(j, v_new, denom)
