"""Any fitted BoTorch model as a bayesal surrogate, so our acquisitions and selectors run on it."""

from __future__ import annotations

from typing import Any

import torch
from botorch.models.model import Model

from ..errors import InvalidInput
from ..posteriors import GaussianPosterior
from ..settings import rows_per_chunk
from ..validation import check_X
from .base import Surrogate

__all__ = ["BoTorchSurrogate"]


class BoTorchSurrogate(Surrogate):
    """Wraps a fitted BoTorch ``Model`` with a Gaussian posterior (``SingleTaskGP``, a
    ``ModelListGP`` of them, a multi-fidelity GP, ...). It uses only BoTorch's public API:
    ``posterior`` for marginals, joint covariances and box optimisation, and
    ``condition_on_observations`` for pending points.

    Args:
        model: the fitted BoTorch model (put in eval mode here).
        noise_variance: ``[m]`` observation-noise variance in the units of y, for BALD and the
            joint information; read from a Gaussian likelihood and the outcome transform
            when omitted.

    ``fit`` is not supported: fit the BoTorch model yourself, or use :class:`ExactGP`.
    """

    def __init__(self, model: Model, noise_variance: Any = None):
        if not isinstance(model, Model):
            raise InvalidInput("model", "a fitted botorch Model", type(model).__name__)
        model.eval()
        self.model = model
        self.num_outputs = model.num_outputs
        self._noise = None if noise_variance is None else torch.as_tensor(noise_variance, dtype=torch.float64).reshape(-1)
        self._fitted = True

    def __repr__(self) -> str:
        return f"BoTorchSurrogate({type(self.model).__name__}, m={self.num_outputs})"

    def fit(self, X: Any, y: Any, bounds: Any = None) -> "BoTorchSurrogate":
        raise InvalidInput("surrogate", "a bayesal model that fits itself (e.g. ExactGP)",
                           "a wrapped BoTorch model: fit it with BoTorch and wrap it again")

    @property
    def noise_variance(self) -> torch.Tensor | None:
        """Observation-noise variance ``[m]`` in the units of y, or None when the BoTorch model has no
        Gaussian likelihood."""
        if self._noise is not None:
            return self._noise
        likelihood = getattr(self.model, "likelihood", None)
        noise = getattr(likelihood, "noise", None)
        if noise is None or noise.numel() not in (1, self.num_outputs):
            return None
        noise = noise.detach().reshape(-1).expand(self.num_outputs).to(torch.float64)
        transform = getattr(self.model, "outcome_transform", None)
        stdvs = getattr(transform, "stdvs", None)
        return noise if stdvs is None else noise * stdvs.detach().reshape(-1).to(noise) ** 2

    def parameter_like(self) -> torch.Tensor:
        """A tensor with the dtype and device of the wrapped model's parameters."""
        return next(iter(self.model.parameters()), torch.empty(0, dtype=torch.float64))

    def posterior(self, X: Any, chunk_size: int | None = None) -> GaussianPosterior:
        X = check_X(X, "X").to(self.parameter_like())
        chunk_size = chunk_size or rows_per_chunk(8.0 * self.num_outputs * 4096)
        means, variances = [], []
        with torch.no_grad():
            for start in range(0, X.shape[0], chunk_size):
                post = self.model.posterior(X[start:start + chunk_size])
                means.append(post.mean)
                variances.append(post.variance)
        return GaussianPosterior(torch.cat(means), torch.cat(variances), noise_variance=self.noise_variance,
                                 covariance_fn=lambda idx: self.covariance(X[idx], X[idx]))

    def joint_posterior(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``[b, q, m]`` and per-output covariance ``[b, m, q, q]`` of f on ``X: [b, q, d]``."""
        mvn = self.model.posterior(X).distribution
        b, q, m = X.shape[0], X.shape[-2], self.num_outputs
        mean = mvn.mean.reshape(b, q, m) if m > 1 else mvn.mean.reshape(b, q, 1)
        C = mvn.covariance_matrix
        if m == 1:
            return mean, C.reshape(b, 1, q, q)
        if getattr(mvn, "_interleaved", True):  # rows ordered (point, output)
            C = C.reshape(b, q, m, q, m).diagonal(dim1=2, dim2=4)  # [b, q, q, m]
        else:  # rows ordered (output, point)
            C = C.reshape(b, m, q, m, q).diagonal(dim1=1, dim2=3)  # [b, q, q, m]
        return mean, C.permute(0, 3, 1, 2)

    def covariance(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """``[m, Na, Nb]`` posterior cross-covariance, from the joint posterior of ``[A; B]``."""
        A, B = torch.as_tensor(A).to(self.parameter_like()), torch.as_tensor(B).to(self.parameter_like())
        with torch.no_grad():
            _, C = self.joint_posterior(torch.cat([A, B]).unsqueeze(0))
        return C[0, :, : A.shape[0], A.shape[0]:]

    def condition_on(self, X_pending: Any) -> "BoTorchSurrogate":
        Xp = check_X(X_pending, "X_pending").to(self.parameter_like())
        with torch.no_grad():
            mean = self.model.posterior(Xp).mean
            conditioned = self.model.condition_on_observations(Xp, mean)
        return BoTorchSurrogate(conditioned, noise_variance=self._noise)
