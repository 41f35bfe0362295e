"""Pool top-k: the q unlabelled candidates with the highest single-point scores."""

from __future__ import annotations

import torch

from ..validation import check_count
from ..spaces import Pool
from .base import Selection, check_arguments, from_pool, make_generator, prepare
from .scoring import score_points

__all__ = ["select_topk", "topk_of"]


def topk_of(scores: torch.Tensor, indices: torch.Tensor, q: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The q best ``(scores [q], indices [q])`` of ``scores: [N]`` at pool ``indices: [N]``,
    best first, ties broken by the lower pool index (the same ranking however the pool is
    split into chunks or shards)."""
    pre = torch.argsort(indices)
    s, idx = scores[pre], indices[pre]
    keep = torch.sort(s, descending=True, stable=True).indices[:q]
    return s[keep], idx[keep]


def select_topk(surrogate, acquisition, pool, q: int, seed: int | None = None,
                chunk_size: int | None = None) -> Selection:
    """The q unlabelled candidates with the highest single-point scores
    (:func:`~bayesal.selection.scoring.score_points`, chunked over the pool); model-free
    acquisitions draw their scores from a generator seeded with ``seed``."""
    check_arguments(surrogate, acquisition, pool, Pool, "a bayesal Pool (a Box goes to select_continuous)")
    q = check_count(q, "q")
    gen = make_generator(seed)
    pool.check_batch_size(q)
    acquisition = prepare(acquisition, pool, surrogate)
    idx = pool.available.cpu()
    scores = score_points(surrogate, acquisition, pool.X, rows=idx, generator=gen,
                          chunk_size=chunk_size)
    best, chosen = topk_of(scores, idx, q)
    return from_pool(pool, chosen, best)
