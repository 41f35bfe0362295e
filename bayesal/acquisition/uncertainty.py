"""Model-free and uncertainty-sampling acquisitions for regression."""

from __future__ import annotations

import torch

from ..posteriors import GaussianPosterior, SamplePosterior
from .base import Acquisition, output_weights

__all__ = ["Random", "MaxVariance"]


class Random(Acquisition):
    """Uniformly random acquisition: the baseline every strategy must beat.

    On a pool it draws a uniformly random subset of the unlabelled candidates; on a box, uniform
    points. Seeded through the selector's generator, so the same seed gives the same batch.
    """

    name = "random"
    needs_posterior = False
    greedy_by_default = False

    def score(self, posterior=None, n: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """I.i.d. uniform scores ``[n]`` (top-k of them is a uniform random k-subset)."""
        if n is None:
            n = posterior.num_points
        return torch.rand(n, generator=generator, dtype=torch.float64)


class MaxVariance(Acquisition):
    """Uncertainty sampling: the posterior variance of f, summed over outputs with ``weights``.

    With greedy conditioning over a pool (the default for q > 1), each next point maximises the
    variance left after the points already chosen are observed, which avoids picking q
    neighbours of one uncertain point.
    """

    name = "max-variance"

    def __init__(self, weights=None):
        self.weights = weights

    def score(self, posterior: GaussianPosterior | SamplePosterior) -> torch.Tensor:
        var = posterior.variance  # [..., N, m]
        return (var * output_weights(self.weights, var.shape[-1], var)).sum(-1)
