"""Model-free and uncertainty-sampling acquisitions.

Regression: :class:`MaxVariance`. Classification, on class probabilities ``[K, N, C]`` of a
:class:`~bayesal.posteriors.SamplePosterior` (the predictive is their mean over K):
:class:`Entropy`, :class:`Margin`, :class:`LeastConfidence` and :class:`VariationRatios`
(Settles 2009, "Active Learning Literature Survey"; Freeman 1965 for variation ratios;
Gal, Islam & Ghahramani 2017 for their MC-dropout forms). All scores are "higher is more
uncertain" and computed chunk by chunk over N.
"""

from __future__ import annotations

import math

import torch

from ..posteriors import GaussianPosterior, SamplePosterior
from ._samples import class_probabilities, entropy_of_mean, row_chunks
from ..validation import renamed
from .base import Acquisition, check_output_weights, output_weights

__all__ = ["Random", "MaxVariance", "Entropy", "Margin", "LeastConfidence", "VariationRatios"]


class Random(Acquisition):
    """Uniformly random acquisition: the baseline every strategy must beat.

    On a pool it draws a uniformly random subset of the unlabelled candidates; on a box, uniform
    points. Seeded through the selector's generator, so the same seed gives the same batch.
    """

    name = "random"
    needs_posterior = False
    greedy_by_default = False

    def score(self, posterior, generator: torch.Generator | None = None) -> torch.Tensor:
        """I.i.d. uniform scores ``[N]`` for the N points of ``posterior`` (any posterior, usually an
        :class:`~bayesal.posteriors.EmptyPosterior`); top-k of them is a uniform random subset."""
        return torch.rand(posterior.num_points, generator=generator, dtype=torch.float64)


class MaxVariance(Acquisition):
    """Uncertainty sampling: the posterior variance of f, summed over outputs with ``output_weights``
    (``[m]``, ones by default; ``weights`` is its deprecated name).

    With greedy conditioning over a pool (the default for q > 1), each next point maximises the
    variance left after the points already chosen are observed, which avoids picking q
    neighbours of one uncertain point.
    """

    name = "max-variance"

    def __init__(self, output_weights=None, *, weights=None):
        self.output_weights = check_output_weights(renamed(output_weights, weights, "output_weights", "weights", type(self).__name__))

    def score(self, posterior: GaussianPosterior | SamplePosterior, generator=None) -> torch.Tensor:
        var = posterior.variance  # [..., N, m]
        return (var * output_weights(self.output_weights, var.shape[-1], var)).sum(-1)


class _ClassificationScore(Acquisition):
    """A single-point score of the predictive class distribution, chunked over N."""

    greedy_by_default = False  # no batch objective: top-k of the marginal score

    def score(self, posterior: SamplePosterior, generator=None) -> torch.Tensor:
        """Scores ``[N]`` from class probabilities ``[K, N, C]``."""
        probs = class_probabilities(self, posterior)
        K, N, C = probs.shape
        out = torch.empty(N, dtype=probs.dtype, device=probs.device)
        for s in row_chunks(N, 2.0 * K * C * probs.element_size()):
            out[s] = self._chunk(probs[:, s])
        return out

    def _chunk(self, probs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Entropy(_ClassificationScore):
    """Predictive entropy ``H[p(y | x)]`` with ``p = (1/K) Σ_k p_k``, ``[K, N, C] -> [N]``.

    On a Gaussian regression posterior (mean / variance ``[N, m]``), the differential entropy of
    a new label, ``½ log(2πe (σ_f² + σ_n²))`` summed over outputs.
    """

    name = "entropy"

    def score(self, posterior: SamplePosterior | GaussianPosterior, generator=None) -> torch.Tensor:
        if isinstance(posterior, (GaussianPosterior, SamplePosterior)) and not (
                isinstance(posterior, SamplePosterior) and posterior.kind == "classification"):
            var = posterior.predictive_variance.clamp_min(1e-300)
            # log(2πe) + log var, not log(2πe var): the product overflows for var near 1e308
            return (0.5 * (math.log(2 * math.pi * math.e) + torch.log(var))).sum(-1)
        return super().score(posterior)

    def _chunk(self, probs: torch.Tensor) -> torch.Tensor:
        return entropy_of_mean(probs)


class Margin(_ClassificationScore):
    """Negative margin between the two most probable classes of the predictive,
    ``−(p_(1) − p_(2))``: highest where the top two classes are closest. ``[K, N, C] -> [N]``."""

    name = "margin"

    def _chunk(self, probs: torch.Tensor) -> torch.Tensor:
        top = probs.mean(0).topk(2, dim=-1).values
        return top[..., 1] - top[..., 0]


class LeastConfidence(_ClassificationScore):
    """One minus the probability of the predicted class, ``1 − max_c p(c | x)``.
    ``[K, N, C] -> [N]``."""

    name = "least-confidence"

    def _chunk(self, probs: torch.Tensor) -> torch.Tensor:
        return 1.0 - probs.mean(0).amax(-1)


class VariationRatios(_ClassificationScore):
    """Variation ratio of the K sampled predictions: ``1 − f_mode / K`` with ``f_mode`` the
    number of model samples whose most probable class is the most frequent one
    (Freeman 1965; Gal et al. 2017). ``[K, N, C] -> [N]``, in ``[0, 1 − 1/C]``."""

    name = "variation-ratios"

    def _chunk(self, probs: torch.Tensor) -> torch.Tensor:
        K, n, C = probs.shape
        votes = torch.zeros(n, C, dtype=probs.dtype, device=probs.device)
        votes.scatter_add_(1, probs.argmax(-1).T, torch.ones(n, K, dtype=probs.dtype, device=probs.device))
        return 1.0 - votes.amax(-1) / K
