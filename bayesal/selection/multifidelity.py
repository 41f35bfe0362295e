"""Multi-fidelity batches on THE greedy engine: (point, fidelity) candidates with per-candidate
noise and costs.

A candidate is an augmented input ``(x, s)`` (:func:`bayesal.models.multifidelity.augment`). A
label at level s has its own noise ``σ²_s``, so :class:`~bayesal.selection.greedy.GreedyConditioning`
runs with noise ``[N, 1]``, and :func:`~bayesal.selection.greedy.greedy_batch` with the
candidates' costs ``[N]`` and the budget left, so that a batch may mix fidelities and never
overspends. The acquisition (a :class:`~bayesal.acquisition.multifidelity.MultiFidelityAcquisition`,
possibly wrapped per unit cost in :class:`~bayesal.acquisition.cost.CostAware`) supplies the
scorer; the update formula lives in the engine alone.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InvalidInput
from ..validation import check_count, check_X
from .base import Selection
from .greedy import GreedyConditioning, greedy_batch

__all__ = ["select_augmented", "select_multifidelity", "fidelity_candidates", "check_levels"]

_FLOOR = 1e-12


def _require_multifidelity(surrogate) -> None:
    from ..models.multifidelity import MultiFidelitySurrogate

    if not isinstance(surrogate, MultiFidelitySurrogate):
        raise InvalidInput("model", "a fitted MultiFidelitySurrogate (CoKriging, BoTorchMultiFidelityGP)",
                           type(surrogate).__name__)


def check_levels(fidelities: Any, num_fidelities: int) -> torch.Tensor:
    """Levels on offer ``[L]`` (long, CPU): all of ``0..S-1`` when None."""
    if fidelities is None:
        return torch.arange(num_fidelities)
    levels = torch.as_tensor(fidelities).reshape(-1).long().cpu()
    if levels.numel() == 0 or bool(((levels < 0) | (levels >= num_fidelities)).any()):
        raise InvalidInput("fidelities", f"levels in 0..{num_fidelities - 1}", f"{levels.tolist()}")
    return levels


def fidelity_candidates(X: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """``[N·L, d + 1]``: every point of ``X: [N, d]`` at every level of ``levels: [L]``, grouped by
    level (all points at the first level, then all at the second, ...)."""
    from ..models.multifidelity import augment

    lev = levels.to(X.device).repeat_interleave(X.shape[0])
    return augment(X.repeat(levels.numel(), 1), lev)


def select_augmented(surrogate, acquisition, candidates: torch.Tensor, q: int, cost_model=None,
                     budget: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Greedy batch over augmented candidates ``candidates: [N, d + 1]``.

    Args:
        surrogate: a fitted multi-fidelity surrogate.
        acquisition: an acquisition over augmented inputs, already prepared for the space
            (and, to be valued per unit cost, wrapped with ``with_cost``).
        candidates: ``[N, d + 1]`` inputs with the fidelity level in the last column.
        q: batch size.
        cost_model: ``X_aug [N, d + 1] -> [N]`` costs, needed with ``budget``.
        budget: cost left; candidates that do not fit are never chosen.

    Returns:
        ``(rows [k], gains [k], costs [k] or None)`` with k ≤ q.
    """
    q = check_count(q, "q")
    C = candidates
    lev = C[:, -1].round().long()
    with torch.no_grad():
        post = surrogate.posterior(C)
    # the noise of a label at each candidate's own level: per-candidate noise [N, 1]
    noise = surrogate.observation_noise(lev).to(C).clamp_min(_FLOOR).reshape(-1, 1)
    scorer = acquisition.greedy_scorer(surrogate, C, post.mean, noise)

    def column(j: int) -> torch.Tensor:
        with torch.no_grad():
            return surrogate.covariance(C, C[j:j + 1])[0]  # [N, 1]

    state = GreedyConditioning(post.variance, noise, scorer, column=column)
    costs = None if cost_model is None else cost_model(C)
    if budget is not None and costs is None:
        raise InvalidInput("cost_model", "a cost model when a budget is given", "None")
    chosen, gains = greedy_batch(state, q, costs=costs, budget=budget)
    rows = torch.tensor(chosen, dtype=torch.long, device=C.device)
    return rows, torch.tensor(gains, dtype=C.dtype), None if costs is None else costs[rows]


def select_multifidelity(surrogate, acquisition, X: Any, cost_model, q: int = 1, fidelities: Any = None,
                         budget: float | None = None, space=None) -> Selection:
    """Choose up to q (point, fidelity) pairs greedily from the points ``X: [N, d]``, each
    offered at every level in ``fidelities`` (default: all).

    The acquisition is prepared for ``space`` and valued per unit cost under ``cost_model`` (a
    :class:`~bayesal.acquisition.cost.FidelityCost` or any cost model of augmented inputs) when
    it is cost-aware; ``budget`` (cost left) is never overspent, and the batch stops early when
    nothing fits.

    Returns a :class:`Selection` with ``X [k, d]``, ``fidelity [k]``, ``cost [k]`` and ``scores [k]``
    (gains given the points chosen before, per unit cost when cost-aware); ``indices`` is None.
    """
    from ..acquisition.cost import FidelityCost

    _require_multifidelity(surrogate)
    q = check_count(q, "q")
    S = surrogate.num_fidelities
    x = check_X(X, "X")
    if isinstance(cost_model, FidelityCost) and cost_model.num_fidelities != S:
        raise InvalidInput("costs", f"{S} positive costs", f"{cost_model.costs.tolist()}")
    levels = check_levels(fidelities, S)
    C = fidelity_candidates(x, levels)
    acq = acquisition.for_space(space).with_cost(cost_model)
    rows, gains, _ = select_augmented(surrogate, acq, C, q, cost_model=cost_model, budget=budget)
    lev = C[rows, -1].round().long()
    return Selection(C[rows, :-1], None, gains, fidelity=lev, cost=cost_model(C[rows]).to(x))
