"""Shared helpers of the acquisitions on sample posteriors ``[K, N, C]``: input checks and
chunking of the N axis sized from the memory budget (DESIGN.md: never a ``[N, K·S, C]`` array)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..errors import InvalidInput
from ..posteriors import SamplePosterior
from ..settings import rows_per_chunk

#: upper limit on rows per chunk: beyond a few thousand rows the temporaries of one chunk leave
#: the CPU caches and larger chunks only cost memory
MAX_ROWS = 2048


def class_probabilities(acquisition, posterior) -> torch.Tensor:
    """The ``[K, N, C]`` class probabilities of a classification :class:`SamplePosterior`
    (a bare ``[K, N, C]`` tensor is accepted as well)."""
    if isinstance(posterior, torch.Tensor):
        if posterior.dim() != 3 or not posterior.is_floating_point():
            raise InvalidInput("probs", "floating class probabilities of shape [K, N, C]",
                               f"a tensor of shape {list(posterior.shape)} ({posterior.dtype})")
        return posterior
    if not isinstance(posterior, SamplePosterior) or posterior.kind != "classification":
        got = posterior.kind + " SamplePosterior" if isinstance(posterior, SamplePosterior) else type(posterior).__name__
        raise InvalidInput("posterior", f"a classification SamplePosterior [K, N, C] for {type(acquisition).__name__}", got)
    return posterior.samples


def row_chunks(n: int, bytes_per_row: float, max_rows: int = MAX_ROWS) -> Iterator[slice]:
    """Slices over ``range(n)`` with as many rows per slice as ``bytes_per_row`` allows in the
    memory budget (capped at ``max_rows``)."""
    step = max(1, min(max_rows, rows_per_chunk(bytes_per_row)))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def entropy_of_mean(probs: torch.Tensor) -> torch.Tensor:
    """``H[E_k p_k]``: ``[K, n, C] -> [n]`` (entropy of the predictive distribution)."""
    return torch.special.entr(probs.sum(0).div_(probs.shape[0])).sum(-1)


def mean_entropy(probs: torch.Tensor) -> torch.Tensor:
    """``E_k H[p_k]``: ``[K, n, C] -> [n]`` (expected conditional entropy).

    One temporary of the chunk's size, filled in place (log, then times p), and the sum over K
    taken first over contiguous rows: about twice as fast as ``entr(p).sum(-1).mean(0)``.
    """
    K, n, C = probs.shape
    plogp = probs.clamp_min(torch.finfo(probs.dtype).tiny)  # 0·log 0 = 0
    plogp.log_().mul_(probs)
    return plogp.reshape(K, n * C).sum(0).reshape(n, C).sum(-1).div_(-K)
