"""THE greedy engine: batches built one point at a time by exact Gaussian conditioning.

Every greedy batch in bayesal (pool greedy, the shards of a Dask-distributed pool, and the
(point, fidelity) batches of multi-fidelity acquisitions) runs on :class:`GreedyConditioning`.
It holds the posterior variance of N candidates and the update vectors of the points chosen so
far, an incremental pivoted Cholesky:

    σ²_{t+1}(x) = σ²_t(x) − Σ_t(x, x_j)² / (σ²_t(x_j) + σ_n²(x_j)),
    Σ_t(x, x_j) = Σ_0(x, x_j) − Σ_{s<t} v_s(x) v_s(x_j),   v_t = Σ_t(·, x_j) / √(σ²_t(x_j) + σ_n²(x_j)).

The mean is unchanged (pending labels are their expected values). Each step costs one
covariance column and O(t N m); nothing is refitted. An acquisition plugs in through its
*scorer* (``Acquisition.greedy_scorer``): ``scores(var [N, m]) -> [N]`` turns the conditioned
state into gains, and ``update(j, v [N, m], denom [m])`` conditions whatever else the criterion
tracks (reference-point cross-covariances for integrated variance, target covariances for EPIG
and multi-fidelity information) by the same rank-1 step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import InvalidInput, Unsupported
from ..posteriors import GaussianPosterior, SamplePosterior
from ..validation import check_count
from ..spaces import Pool
from .base import Selection, check_arguments, from_pool, noise_of, prepare

__all__ = ["GreedyConditioning", "greedy_batch", "select_greedy"]

_FLOOR = 1e-12


class GreedyConditioning:
    """Greedy-selection state over N candidates (see the module docstring).

    Args:
        variance: ``[N, m]`` posterior variance of f at the candidates (copied).
        noise: ``[m]`` observation-noise variance, or ``[N, m]`` per candidate (multi-fidelity).
        scorer: the acquisition's greedy scorer.
        column: ``j -> Σ_0(X, X[j])  [N, m]``, the prior (unconditioned) covariance column of
            candidate j; may be omitted when columns are supplied to :meth:`condition` (shards).
    """

    def __init__(self, variance: torch.Tensor, noise: torch.Tensor, scorer,
                 column: Callable[[int], torch.Tensor] | None = None):
        self.var = variance.detach().clone()
        self.noise = noise.detach().to(self.var)
        self.scorer, self.column = scorer, column
        self.updates: list[torch.Tensor] = []
        self.taken = torch.zeros(self.var.shape[0], dtype=torch.bool, device=self.var.device)

    def _noise_at(self, j: int) -> torch.Tensor:
        return self.noise[j] if self.noise.dim() == 2 else self.noise

    def scores(self, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """Gains ``[N]`` given the points chosen so far; −inf for chosen (or not ``allowed``)
        candidates and for NaN scores."""
        s = torch.nan_to_num(self.scorer.scores(self.var).detach(), nan=-math.inf)
        s = s.masked_fill(self.taken, -math.inf)
        if allowed is not None:
            s = s.masked_fill(~allowed, -math.inf)
        return s

    def pivot(self, j: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What any holder of other candidates needs to condition on candidate j: its variance
        ``[m]``, its noise ``[m]`` and the earlier update vectors at j ``[t, m]``."""
        past = (torch.stack([v[j] for v in self.updates]) if self.updates
                else self.var.new_empty(0, self.var.shape[-1]))
        return self.var[j], self._noise_at(j), past

    def condition(self, column: torch.Tensor, var_j: torch.Tensor, noise_j: torch.Tensor, past_j: torch.Tensor,
                  j: int | None = None) -> None:
        """Rank-1 update after a point with prior covariance column ``column: [N, m]`` (to these
        candidates) and pivot state ``(var_j, noise_j, past_j)`` was chosen; ``j`` is its row here,
        or None when it belongs to another holder (only scorers that need no row may be used then)."""
        col = column.to(self.var)
        for v, vj in zip(self.updates, past_j.to(self.var)):
            col = col - v * vj
        denom = (var_j.to(self.var) + noise_j.to(self.var)).clamp_min(_FLOOR)
        v_new = col / denom.sqrt()
        self.scorer.update(j, v_new, denom)
        self.var = (self.var - v_new.pow(2)).clamp_min(0.0)
        self.updates.append(v_new)
        if j is not None:
            self.taken[j] = True

    def choose(self, j: int) -> None:
        """Condition on candidate j of this set."""
        if self.column is None:
            raise InvalidInput("column", "a covariance-column function to choose a candidate of this set", "None")
        var_j, noise_j, past_j = self.pivot(j)
        self.condition(self.column(j), var_j, noise_j, past_j, j)


def greedy_batch(state: GreedyConditioning, q: int, costs: torch.Tensor | None = None,
                 budget: float | None = None, allowed: torch.Tensor | None = None) -> tuple[list[int], list[float]]:
    """Choose up to q candidates of ``state`` greedily; returns their rows and gains.

    With ``costs: [N]`` and ``budget``, a candidate whose cost exceeds the budget left is never
    chosen, and the batch stops early when nothing fits (a cost budget is never overspent).
    ``allowed: [N]`` (bool) restricts the choice to some candidates (the others, such as the
    labelled rows of a train + pool kernel, only condition). Ties go to the lowest row
    (``torch.argmax``).
    """
    q = check_count(q, "q")
    remaining = math.inf if budget is None else float(budget)
    chosen: list[int] = []
    gains: list[float] = []
    for t in range(q):
        fits = None if costs is None else costs <= remaining + 1e-12
        allowed_now = allowed if fits is None else (fits if allowed is None else fits & allowed)
        s = state.scores(allowed_now)
        j = int(torch.argmax(s))
        if float(s[j]) == -math.inf:  # no finite gain left: the first free candidate, if any
            free = ~state.taken if allowed_now is None else ~state.taken & allowed_now
            if not bool(free.any()):
                break
            j = int(torch.nonzero(free)[0])
        chosen.append(j)
        gains.append(float(s[j]))
        if costs is not None:
            remaining -= float(costs[j])
        if t + 1 < q:
            state.choose(j)
        else:
            state.taken[j] = True
    return chosen, gains


def select_greedy(surrogate, acquisition, pool, q: int) -> Selection:
    """Greedy batch over a pool, conditioning on each chosen point before choosing the next
    (:class:`GreedyConditioning`): the acquisition's greedy scorer gives each candidate's gain
    given the points already chosen, so no candidate is chosen twice and no model is refitted.

    A sample posterior (MC dropout, ensembles) has no covariance to condition: an acquisition
    with a batch objective on samples (BatchBALD) builds its own greedy batch from the draws,
    any other takes the top q single-point scores.
    """
    check_arguments(surrogate, acquisition, pool, Pool, "a bayesal Pool (a Box goes to select_continuous)")
    q = check_count(q, "q")
    pool.check_batch_size(q)
    acquisition = prepare(acquisition, pool, surrogate)
    if not acquisition.needs_posterior:
        raise Unsupported(type(acquisition).__name__, "a model-based criterion", "greedy conditioning")
    idx = pool.available
    X = pool.X[idx]
    post = surrogate.posterior(X)
    if isinstance(post, SamplePosterior):
        if acquisition.batch_from_samples:
            chosen, gains = acquisition.select_from_samples(post, q)
        else:
            top = torch.topk(torch.nan_to_num(acquisition.score(post).detach().to("cpu", torch.float64),
                                              nan=-math.inf), q)
            chosen, gains = top.indices, top.values
        return from_pool(pool, idx.cpu()[chosen.cpu()], gains)
    if not isinstance(post, GaussianPosterior):
        raise Unsupported(type(surrogate).__name__, "a Gaussian or sample posterior", "greedy selection")
    noise = noise_of(post)
    scorer = acquisition.greedy_scorer(surrogate, X, post.mean, noise)
    columns = surrogate.covariance_columns(X)
    state = GreedyConditioning(post.variance, noise, scorer, column=lambda j: columns(j).T)
    chosen, gains = greedy_batch(state, q)
    return from_pool(pool, idx.cpu()[torch.tensor(chosen, dtype=torch.long)], torch.tensor(gains, dtype=torch.float64))
