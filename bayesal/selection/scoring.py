"""THE pool scoring function: single-point acquisition values of any set of points.

Selection (top-k, stochastic batches), the shards of a distributed pool and the report's
acquisition maps all score candidates through :func:`score_points`, so a criterion has one
meaning everywhere. Posteriors are computed chunk by chunk, sized from the surrogate's declared
``posterior_bytes_per_row`` and the memory budget, into one preallocated ``[N]`` output, so a
pool of a million points never holds more than one chunk's posterior.
"""

from __future__ import annotations

import math

import torch

from ..posteriors import EmptyPosterior
from ..settings import rows_per_chunk
from .base import noise_of

__all__ = ["score_points", "default_bytes_per_row"]


def default_bytes_per_row(surrogate, dim: int) -> float:
    """Working memory of one row while it is scored: the surrogate's declared
    ``posterior_bytes_per_row``, else an estimate for a Gaussian posterior."""
    declared = None if surrogate is None else surrogate.posterior_bytes_per_row
    return float(declared) if declared is not None else 8.0 * (dim + 64)


def score_points(surrogate, acquisition, X: torch.Tensor, rows: torch.Tensor | None = None,
                 generator: torch.Generator | None = None, chunk_size: int | None = None) -> torch.Tensor:
    """Single-point scores ``[N]`` (float64, on the CPU; NaN mapped to −inf) of the points
    ``X: [N, d]`` — or of the rows ``X[rows]`` when ``rows: [N]`` is given, gathered chunk by
    chunk so that a large pool is never copied whole — for an acquisition already prepared for
    the space and the surrogate (:func:`bayesal.selection.base.prepare`).

    * model-free acquisitions (Random) score an :class:`~bayesal.posteriors.EmptyPosterior`
      with ``generator``;
    * criteria scored from marginals score each chunk's posterior;
    * criteria that need cross-covariances (integrated variance, Gaussian EPIG) take the first
      step of their greedy scorer, over the whole set at once (its reference blocks are
      themselves chunked).
    """
    N = X.shape[0] if rows is None else rows.numel()
    if not acquisition.needs_posterior:
        s = acquisition.score(EmptyPosterior(N), generator=generator)
        return torch.nan_to_num(s.detach().to("cpu", torch.float64), nan=-math.inf)
    if rows is not None:
        rows = rows.to(X.device)
    if not acquisition.scores_from_marginals:
        Xs = X if rows is None else X[rows]
        post = surrogate.posterior(Xs)
        scorer = acquisition.greedy_scorer(surrogate, Xs, post.mean, noise_of(post))
        s = scorer.scores(post.variance)
        return torch.nan_to_num(s.detach().to("cpu", torch.float64), nan=-math.inf)
    step = chunk_size or rows_per_chunk(default_bytes_per_row(surrogate, X.shape[-1]))
    out = torch.empty(N, dtype=torch.float64)
    for start in range(0, N, step):
        Xc = X[start:start + step] if rows is None else X[rows[start:start + step]]
        out[start:start + step] = acquisition.score(surrogate.posterior(Xc), generator=generator).detach().to(
            "cpu", torch.float64)
    return torch.nan_to_num(out, nan=-math.inf)
