"""Pool scoring on a Dask cluster, with the batch that one process would choose.

The available candidates are split into contiguous shards, each scored where it lives. Top-k:
each shard returns its own top q (:func:`~bayesal.selection.scoring.score_points`) and the
driver keeps the global top q, ties broken by pool index as in
:func:`~bayesal.selection.topk.select_topk`. Greedy: each shard is a Dask actor holding a
:class:`~bayesal.selection.greedy.GreedyConditioning` over its rows; at every step the shards
report their best candidate, the owner of the global best sends its pivot state (point,
variance, noise and earlier update values), and every shard applies the same rank-1 update.
Communication per step is O(shards · t · m) numbers; the pool never leaves its shard. Dask
(``pip install "bayesal[dask]"``) is needed only by whoever calls these functions.
"""

from __future__ import annotations

import torch

from ..errors import InvalidInput
from ..validation import check_count
from .base import Selection, from_pool, noise_of, prepare
from .greedy import GreedyConditioning
from .scoring import score_points
from .topk import topk_of

__all__ = ["distributed_select", "distributable", "GreedyShard"]


def _shard_topk(surrogate, acquisition, X: torch.Tensor, idx: torch.Tensor, q: int):
    """Top-q of one shard: ``(scores [k], pool indices [k])``."""
    return topk_of(score_points(surrogate, acquisition, X), idx, min(q, idx.numel()))


class GreedyShard:
    """One shard's greedy state in a distributed greedy selection (a Dask actor): the candidates'
    :class:`~bayesal.selection.greedy.GreedyConditioning`, restricted to its rows."""

    def __init__(self, surrogate, acquisition, X: torch.Tensor, idx: torch.Tensor):
        self.surrogate, self.X, self.idx = surrogate, X, idx
        post = surrogate.posterior(X)
        noise = noise_of(post)
        self.state = GreedyConditioning(post.variance, noise, acquisition.greedy_scorer(surrogate, X, post.mean, noise))

    def best(self) -> tuple[float, int]:
        """The shard's best ``(score, local row)`` given the points chosen so far."""
        s = self.state.scores()
        j = int(torch.argmax(s))
        return float(s[j]), j

    def pivot(self, j: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """What every shard needs to condition on local row j: ``x_j [d]`` and the engine's pivot
        ``(σ²_t(x_j) [m], σ_n² [m], earlier update values [t, m])``."""
        return (self.X[j], *self.state.pivot(j))

    def condition(self, x_j: torch.Tensor, var_j: torch.Tensor, noise_j: torch.Tensor, past_j: torch.Tensor,
                  local_j: int | None) -> None:
        """Rank-1 update of this shard after the point ``x_j`` is chosen (``local_j``: its row here,
        when this shard owns it)."""
        column = self.surrogate.covariance(self.X, x_j.reshape(1, -1))[..., 0].T  # [Ns, m]
        self.state.condition(column, var_j, noise_j, past_j, local_j)


def _shards(pool, n_shards: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    available = pool.available
    bounds = torch.linspace(0, available.numel(), n_shards + 1).round().long().tolist()
    return [(pool.X[available[a:b]].cpu(), available[a:b].cpu()) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _greedy(surrogate, acquisition, q: int, selector: str) -> bool:
    return (selector == "greedy" or (selector == "auto" and acquisition.greedy_by_default and q > 1)) \
        and surrogate.posterior_kind == "gaussian"


def distributable(surrogate, acquisition, pool, selector: str = "auto") -> bool:
    """Whether :func:`distributed_select` gives :func:`bayesal.selection.select`'s batch for
    this surrogate, acquisition and selector on ``pool``: model-based criteria scored from
    marginals (judged after the acquisition is prepared for the pool and bound to the
    surrogate), chosen by top-k or, on Gaussian posteriors, greedily."""
    if not isinstance(selector, str) or selector not in ("auto", "topk", "greedy"):
        return False
    if surrogate is None or not acquisition.needs_posterior:
        return False
    acquisition = prepare(acquisition, pool, surrogate)
    if not acquisition.scores_from_marginals:
        return False
    return not (surrogate.posterior_kind == "samples" and acquisition.batch_from_samples)


def distributed_select(client, surrogate, acquisition, pool, q: int, selector: str = "auto",
                       n_shards: int | None = None) -> Selection:
    """Choose q candidates of a large pool on a Dask cluster, with the result of
    :func:`bayesal.selection.select` in one process (see the module docstring).

    Args:
        client: a ``distributed.Client``.
        surrogate: a fitted surrogate (pickled to the workers once).
        acquisition: a criterion scored from marginals (MaxVariance, BALD, JointInformation, EPIG
            of a sample posterior); it is prepared for the pool and bound to the surrogate here,
            before it is checked and sent to the workers.
        pool: the :class:`~bayesal.spaces.Pool`; q: batch size.
        selector: ``"auto"``, ``"topk"`` or ``"greedy"``.
        n_shards: default one per worker thread.

    Returns a :class:`~bayesal.selection.Selection` (indices ``[q]``, points ``[q, d]``, scores ``[q]``).
    """
    q = check_count(q, "q")
    pool.check_batch_size(q)
    if selector not in ("auto", "topk", "greedy"):
        raise InvalidInput("selector", "auto, topk or greedy for distributed scoring", repr(selector))
    if not distributable(surrogate, acquisition, pool, selector):
        raise InvalidInput("acquisition", "a model-based criterion scored from marginals for distributed scoring",
                           type(acquisition).__name__)
    acquisition = prepare(acquisition, pool, surrogate)
    if n_shards is None:
        n_shards = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()))
    shards = _shards(pool, check_count(n_shards, "n_shards"))
    # hash=False: fresh keys, so a second call never races the release of an earlier call's copies
    [model, acq] = client.scatter([surrogate, acquisition], broadcast=True, hash=False)
    if not _greedy(surrogate, acquisition, q, selector):
        parts = client.gather([client.submit(_shard_topk, model, acq, X, idx, q, pure=False) for X, idx in shards])
        scores, indices = topk_of(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), q)
        return from_pool(pool, indices, scores)
    actors = [client.submit(GreedyShard, model, acq, X, idx, actor=True, pure=False) for X, idx in shards]
    actors = [a.result() for a in actors]
    chosen, gains = [], []
    for _ in range(q):
        bests = [b.result() for b in [a.best() for a in actors]]
        # the first shard holding the maximum wins ties: torch.argmax's rule over the whole pool
        owner = max(range(len(bests)), key=lambda s: (bests[s][0], -s))
        score, local = bests[owner]
        x_j, var_j, noise_j, past_j = actors[owner].pivot(local).result()
        pending = [a.condition(x_j, var_j, noise_j, past_j, local if s == owner else None)
                   for s, a in enumerate(actors)]
        for p in pending:
            p.result()
        chosen.append(int(shards[owner][1][local]))
        gains.append(score)
    return from_pool(pool, torch.tensor(chosen, dtype=torch.long), torch.tensor(gains, dtype=torch.float64))
