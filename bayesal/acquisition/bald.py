"""BALD for Gaussian regression and its batch form, the joint mutual information of a batch."""

from __future__ import annotations

import torch

from ..posteriors import GaussianPosterior
from .base import Acquisition, output_weights, require_gaussian

__all__ = ["BALD", "JointInformation"]


class BALD(Acquisition):
    """Bayesian Active Learning by Disagreement for a Gaussian regression posterior.

    The mutual information between a noisy label ``y = f(x) + ε`` and the latent ``f(x)``,

        I(y; f) = ½ log(1 + σ_f²(x) / σ_n²),

    summed over independent outputs (Houlsby et al. 2011, "Bayesian Active Learning for
    Classification and Preference Learning"; for GPs the information gain of MacKay 1992).
    With homoskedastic noise it ranks points like :class:`MaxVariance`; with input-dependent
    noise it does not.
    """

    name = "bald"

    def __init__(self, weights=None):
        self.weights = weights

    def score(self, posterior: GaussianPosterior) -> torch.Tensor:
        post = require_gaussian(self, posterior)
        var = post.variance
        noise = _noise(post, var)
        info = 0.5 * torch.log1p(var / noise)  # [..., N, m]
        return (info * output_weights(self.weights, var.shape[-1], var)).sum(-1)


class JointInformation(BALD):
    """Joint mutual information between a batch's labels and f: D-optimal batch design.

        I(y_B; f) = ½ log det(I + Σ_B / σ_n²)   (per output, summed),

    with Σ_B the posterior covariance of f on the batch. By the chain rule it is the sum of the
    BALD scores of each point conditioned on the points before it, so greedy selection with
    rank-1 conditioning (:func:`bayesal.select.select_greedy`) maximises it exactly one point at
    a time; it is submodular, so greedy is within (1 − 1/e) of the best batch (Krause & Guestrin
    2005, "Near-optimal nonmyopic value of information in graphical models"). The BatchBALD of
    Kirsch et al. (2019) for a Gaussian regression posterior. On a box the q points are optimised
    jointly.
    """

    name = "joint-information"
    joint = True

    def joint_score(self, mean: torch.Tensor, covariance: torch.Tensor,
                    noise_variance: torch.Tensor | None) -> torch.Tensor:
        q, m = covariance.shape[-1], covariance.shape[-3]
        noise = _noise_vector(noise_variance, m, covariance)
        eye = torch.eye(q, dtype=covariance.dtype, device=covariance.device)
        scaled = eye + covariance / noise.reshape(-1, 1, 1)  # [b, m, q, q]
        logdet = torch.linalg.cholesky(scaled).diagonal(dim1=-2, dim2=-1).log().sum(-1)  # ½ logdet
        return (logdet * output_weights(self.weights, m, covariance)).sum(-1)


_NOISE_FLOOR = 1e-10


def _noise(post: GaussianPosterior, like: torch.Tensor) -> torch.Tensor:
    return _noise_vector(post.noise_variance, like.shape[-1], like)


def _noise_vector(noise_variance, m: int, like: torch.Tensor) -> torch.Tensor:
    """Noise variances ``[m]``; a noise-free model gets a tiny floor so information stays finite."""
    if noise_variance is None:
        return torch.full((m,), _NOISE_FLOOR, dtype=like.dtype, device=like.device)
    return noise_variance.to(like).reshape(-1).expand(m).clamp_min(_NOISE_FLOOR)
