"""The surrogate contract (DESIGN.md): ``fit``, ``posterior``, ``condition_on``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from ..posteriors import GaussianPosterior, SamplePosterior

__all__ = ["Surrogate"]


class Surrogate(ABC):
    """A probabilistic model of the labelling function.

    Subclasses learn from ``fit(X [n, d], y [n, m])`` and answer ``posterior(X [N, d])``.
    Gaussian surrogates also provide ``covariance(A, B)`` (posterior cross-covariance of the
    latent function, ``[m, Na, Nb]``) and ``condition_on(X_pending)``, which greedy batch
    selection uses to account for points chosen but not yet labelled.
    """

    #: number of outputs m, known after ``fit``
    num_outputs: int = 1

    @abstractmethod
    def fit(self, X: Any, y: Any, bounds: Any = None) -> "Surrogate":
        """Learn from inputs ``X: [n, d]`` and labels ``y: [n]`` or ``[n, m]``; returns self."""

    @abstractmethod
    def posterior(self, X: Any) -> GaussianPosterior | SamplePosterior:
        """Posterior over the latent function at ``X: [N, d]``."""

    def condition_on(self, X_pending: Any) -> "Surrogate":
        """A copy whose posterior accounts for pending (chosen, unlabelled) points ``[q, d]``."""
        raise NotImplementedError(f"{type(self).__name__} cannot condition on pending points")

    def covariance(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """Posterior cross-covariance ``[m, Na, Nb]`` of f between ``A: [Na, d]`` and ``B: [Nb, d]``."""
        raise NotImplementedError(f"{type(self).__name__} has no posterior cross-covariance")

    def covariance_columns(self, X: torch.Tensor) -> "CovarianceColumns":
        """Columns ``j -> Σ(X, X[j]) [m, N]`` of the posterior covariance over ``X: [N, d]``."""
        return CovarianceColumns(self, X)

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "_fitted", False)


class CovarianceColumns:
    """Columns of the posterior covariance of f over a fixed point set ``X: [N, d]``.

    ``columns(j)`` is ``Σ(X, X[j])`` as ``[m, N]``. This generic version asks the surrogate for
    one chunk of ``covariance(A, B)`` at a time; surrogates with cheaper structure override
    :meth:`Surrogate.covariance_columns` (an exact GP caches ``L⁻¹ k(X_train, X)`` once).
    """

    def __init__(self, surrogate: "Surrogate", X: torch.Tensor, chunk_size: int = 65536):
        self.surrogate, self.X, self.chunk_size = surrogate, X, chunk_size

    def __call__(self, j: int) -> torch.Tensor:
        xj = self.X[j:j + 1]
        parts = [self.surrogate.covariance(self.X[s:s + self.chunk_size], xj)[..., 0]
                 for s in range(0, self.X.shape[0], self.chunk_size)]
        return torch.cat(parts, -1)
