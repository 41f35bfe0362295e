"""Scores of a fitted surrogate on a test set: RMSE, NLPD and mean posterior standard deviation."""

from __future__ import annotations

import math

import torch

from .posteriors import SamplePosterior

__all__ = ["rmse", "nlpd", "accuracy", "evaluate"]


def rmse(mean: torch.Tensor, y: torch.Tensor) -> float:
    """Root mean squared error over all points and outputs; ``mean, y: [n, m]``."""
    return float((mean - y).pow(2).mean().sqrt())


def nlpd(mean: torch.Tensor, predictive_variance: torch.Tensor, y: torch.Tensor) -> float:
    """Mean negative log predictive density of ``y`` under independent Gaussians ``N(mean, var)``
    (the variance of a new noisy label), averaged over points and outputs."""
    var = predictive_variance.clamp_min(1e-12)
    return float((0.5 * (math.log(2 * math.pi) + var.log() + (y - mean).pow(2) / var)).mean())


def accuracy(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of points whose most probable class is the label; ``probs: [n, C]``, ``y: [n]`` or ``[n, 1]``."""
    return float((probs.argmax(-1) == y.reshape(-1).to(probs.device).long()).to(torch.float64).mean())


def evaluate(surrogate, X_test: torch.Tensor, y_test: torch.Tensor) -> dict[str, float]:
    """``{"rmse", "nlpd", "mean_std"}`` of a fitted surrogate on ``X_test: [n, d]``, ``y_test: [n, m]``.

    ``mean_std`` is the average posterior standard deviation of f: how uncertain the model
    still is, which active learning should drive down. For a classifier (a classification
    :class:`SamplePosterior`), ``{"accuracy", "nll"}`` of the predictive class probabilities.
    """
    post = surrogate.posterior(X_test)
    if isinstance(post, SamplePosterior) and post.kind == "classification":
        probs = post.mean.to(torch.float64)
        labels = y_test.reshape(-1).to(probs.device).long()
        nll = -probs.gather(-1, labels.unsqueeze(-1)).clamp_min(1e-12).log().mean()
        return {"accuracy": accuracy(probs, labels), "nll": float(nll)}
    mean, var = post.mean, post.predictive_variance
    y = y_test.to(mean)
    return {"rmse": rmse(mean, y), "nlpd": nlpd(mean, var, y), "mean_std": float(post.variance.sqrt().mean())}
