"""The surrogate contract (DESIGN.md): ``fit``, ``posterior``, ``condition_on``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch

from ..errors import Unsupported
from ..posteriors import GaussianPosterior, SamplePosterior

__all__ = ["Surrogate", "AlgebraSurrogate", "PendingConditioned", "ConditionedSurrogate", "CovarianceColumns",
           "CrossBlocks"]


class Surrogate(ABC):
    """A probabilistic model of the labelling function.

    Subclasses learn from ``fit(X [n, d], y [n, m])`` and answer ``posterior(X [N, d])``. Every
    capability a selector or an acquisition may use is declared here with a default, so callers
    never probe a surrogate with ``getattr``/``hasattr``: a capability a surrogate lacks raises
    :class:`~bayesal.errors.Unsupported`, naming the surrogate and what asked for it.

    * ``posterior_kind``: ``"gaussian"`` (``posterior`` returns a
      :class:`~bayesal.posteriors.GaussianPosterior`, and ``covariance`` /
      ``joint_posterior`` exist) or ``"samples"`` (a :class:`~bayesal.posteriors.SamplePosterior`
      with K joint draws, and ``joint_samples`` for boxes).
    * ``task``: ``"regression"`` or ``"classification"`` (class probabilities as the posterior's
      draws).
    * ``noise_variance``: ``[m]`` observation-noise variance, or None (noise-free).
    * ``posterior_bytes_per_row``: working memory of one pool row while it is scored, or None
      for the selectors' default estimate.
    * ``features(X)``: ``[m, F, N]`` features whose inner products give the posterior kernel.
    * ``joint_posterior(X [b, q, d])``: differentiable mean and covariance (box optimisation).
    * ``joint_samples(X [b, q, d])``: differentiable draws ``[K, b, q, m]`` under fixed base
      samples (box optimisation of sample surrogates).
    * ``condition_on(X_pending)``: a copy accounting for chosen, unlabelled points.
    * ``covariance(A, B)``: posterior cross-covariance (greedy conditioning over a pool).
    """

    #: number of outputs m, known after ``fit``
    num_outputs: int = 1
    #: ``"gaussian"`` or ``"samples"``: which posterior :meth:`posterior` returns
    posterior_kind: str = "gaussian"
    #: ``"regression"`` or ``"classification"``
    task: str = "regression"

    @abstractmethod
    def fit(self, X: Any, y: Any, bounds: Any = None) -> "Surrogate":
        """Learn from inputs ``X: [n, d]`` and labels ``y: [n]`` or ``[n, m]``; returns self."""

    @abstractmethod
    def posterior(self, X: Any) -> GaussianPosterior | SamplePosterior:
        """Posterior over the latent function at ``X: [N, d]``."""

    def _unsupported(self, capability: str, purpose: str) -> Unsupported:
        return Unsupported(type(self).__name__, capability, purpose)

    @property
    def noise_variance(self) -> torch.Tensor | None:
        """Observation-noise variance ``[m]`` of a new label, or None for a noise-free model."""
        return None

    @property
    def posterior_bytes_per_row(self) -> float | None:
        """Bytes of working memory one pool row costs while its posterior is scored, or None for
        the selectors' default estimate; pool chunks are sized from it."""
        return None

    @property
    def num_train(self) -> int:
        """Number of training points the posterior conditions on (sizes streamed work); 1 when unknown."""
        return 1

    def features(self, X: torch.Tensor) -> torch.Tensor:
        """Features ``[m, F, N]`` of ``X: [N, d]`` whose inner products give the posterior kernel."""
        raise self._unsupported("features of its posterior kernel", "a feature-based criterion")

    @property
    def feature_kinds(self) -> tuple[str, ...]:
        """The kinds :meth:`feature_map` provides (none by default)."""
        return ()

    def feature_map(self, kind: str, n_features: int | None = None, seed: int | None = None):
        """A :class:`~bayesal.kernels.FeatureMap` of the fitted model for batch selection:
        ``"ll"`` (last-layer features) or ``"grad"`` (per-example parameter gradients, sketched
        to ``n_features`` with ``seed``). Networks provide them; other surrogates do not."""
        raise self._unsupported(f"a {kind!r} feature map (a network's last layer or gradients)",
                                "kernel batch selection")

    def joint_posterior(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable mean ``[b, q, m]`` and covariance ``[b, m, q, q]`` of f on ``X: [b, q, d]``."""
        raise self._unsupported("a joint Gaussian posterior", "box optimisation")

    def fit_diagnostics(self) -> dict[str, Any] | None:
        """A JSON-able summary of the last fit for campaign records, ``bayesal status`` and the
        report (a fully Bayesian GP's convergence and hyperparameter posterior); None when the
        fit has nothing to report."""
        return None

    def hyperparameter_draws(self) -> "Surrogate | None":
        """The model draw by draw when it integrates over hyperparameters (a Gaussian surrogate
        whose outputs are the S draws, :class:`~bayesal.models.bayesian.HyperparameterDraws`);
        None for a point estimate."""
        return None

    def joint_samples(self, X: torch.Tensor) -> torch.Tensor:
        """Differentiable draws ``[K, b, q, m]`` of f on ``X: [b, q, d]`` under fixed base samples."""
        raise self._unsupported("differentiable posterior draws", "box optimisation")

    def condition_on(self, X_pending: Any) -> "Surrogate":
        """A copy whose posterior accounts for pending (chosen, unlabelled) points ``[q, d]``."""
        raise self._unsupported("conditioning on pending points", "pending points")

    def covariance(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """Posterior cross-covariance ``[m, Na, Nb]`` of f between ``A: [Na, d]`` and ``B: [Nb, d]``."""
        raise self._unsupported("a posterior cross-covariance", "greedy conditioning")

    def covariance_columns(self, X: torch.Tensor) -> "CovarianceColumns":
        """Columns ``j -> Σ(X, X[j]) [m, N]`` of the posterior covariance over ``X: [N, d]``."""
        return CovarianceColumns(self, X)

    def reference_blocks(self, R: torch.Tensor) -> "CrossBlocks":
        """:class:`CrossBlocks` of the cross-covariance between fixed reference points
        ``R: [M, d]`` and chunks of candidates (integrated-variance selection)."""
        return CrossBlocks(lambda Xc: self.covariance(R, Xc))

    def reference_cross(self, R: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Differentiable ``[b, m, M, q]`` cross-covariance between ``R: [M, d]`` and batches
        ``X: [b, q, d]``; generic version through the joint posterior of ``[R; X_b]``."""
        M = R.shape[0]
        joint = torch.cat([R.to(X).expand(X.shape[0], M, R.shape[-1]), X], -2)
        _, cov = self.joint_posterior(joint)
        return cov[..., :M, M:]

    def parameter_like(self) -> torch.Tensor:
        """A tensor with the dtype and device the surrogate computes in (box bounds are moved there)."""
        return torch.empty(0, dtype=torch.float64)

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has been called (posteriors need a fitted surrogate)."""
        return bool(self.__dict__.get("_fitted", False))


class CrossBlocks:
    """Cross-covariance blocks between fixed reference points R and chunks of candidates.

    ``blocks(Xc)`` is ``Σ(R, Xc)  [m, M, c]``; ``blocks.times(vec, Xc)`` is ``vecᵀ Σ(R, Xc)``,
    ``[m, M] -> [m, c]``. This generic version forms the block; surrogates with structure
    override :meth:`times` to avoid it (:class:`~bayesal.models.algebra.ReferenceBlocks`).

    Args:
        block: ``Xc -> Σ(R, Xc)  [m, M, c]``.
    """

    def __init__(self, block=None):
        self._block = block

    def __call__(self, Xc: torch.Tensor) -> torch.Tensor:
        return self._block(Xc)

    def times(self, vec: torch.Tensor, Xc: torch.Tensor) -> torch.Tensor:
        """``vecᵀ Σ(R, Xc)``: ``vec: [m, M]`` -> ``[m, c]``."""
        return (vec.unsqueeze(-2) @ self(Xc)).squeeze(-2)


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


class AlgebraSurrogate(Surrogate):
    """A surrogate whose posterior is an :class:`~bayesal.models.algebra.ExactGaussianAlgebra`.

    Subclasses provide ``_algebra()`` and ``_check_points(X, name)``; everything a selector needs
    (chunked marginals, covariance columns over a pool, reference blocks, differentiable joint
    posteriors) is then shared.
    """

    def _algebra(self):
        raise NotImplementedError

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        raise NotImplementedError

    @property
    def noise_variance(self) -> torch.Tensor:
        """Observation-noise variance ``[m]`` in the units of y."""
        return self._algebra().noise_variance

    @property
    def num_train(self) -> int:
        """Number of training (or inducing) points of the posterior algebra (0 before fitting)."""
        return self._algebra().n_train if self.is_fitted else 0

    def parameter_like(self) -> torch.Tensor:
        """A tensor with the dtype and device of the posterior algebra."""
        return self._algebra().X_train

    def features(self, X: torch.Tensor) -> torch.Tensor:
        """``W(X) = L⁻¹ k(X_train, X)``: ``[m, n, N]`` (internal units); Σ(A,B) = k(A,B) − W(A)ᵀW(B)."""
        return self._algebra().features(self._check_points(X))

    def posterior(self, X: Any, chunk_size: int | None = None) -> GaussianPosterior:
        """Posterior of f at ``X: [N, d]``; marginals computed in chunks, joint covariance lazily."""
        algebra = self._algebra()
        X = self._check_points(X)
        mean, var = algebra.marginals(X, chunk_size)
        return GaussianPosterior(mean, var, noise_variance=algebra.noise_variance,
                                 covariance_fn=lambda idx: algebra.covariance(X[idx], X[idx]))

    def covariance(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """Posterior cross-covariance of f, ``[m, Na, Nb]`` in the units of y²."""
        return self._algebra().covariance(self._check_points(A, "A"), self._check_points(B, "B"))

    def covariance_columns(self, X: torch.Tensor):
        """Columns ``j -> Σ(X, X[j]) [m, N]``; ``W(X)`` cached when it fits the memory budget."""
        return self._algebra().columns(self._check_points(X))

    def reference_blocks(self, R: torch.Tensor):
        return self._algebra().reference_blocks(self._check_points(R, "reference points"))

    def joint_posterior(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable mean ``[b, q, m]`` and covariance ``[b, m, q, q]`` of f on ``X: [b, q, d]``."""
        return self._algebra().joint(X)

    def reference_cross(self, R: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return self._algebra().reference_cross(R.to(X), X)


class PendingConditioned(Surrogate):
    """What every surrogate conditioned on pending points P shares: its base, the points, the
    base's noise, dtype and memory per row, and that it is not fitted itself.

    Args:
        base: the fitted surrogate; X_pending: ``[p, d]`` pending points.
    """

    def __init__(self, base: Surrogate, X_pending: torch.Tensor):
        self.base, self.P = base, X_pending
        self.num_outputs = base.num_outputs
        self._fitted = True

    @property
    def noise_variance(self) -> torch.Tensor:
        """Observation-noise variance ``[m]`` of the base surrogate (conditioning does not change it)."""
        return self.base.noise_variance

    @property
    def num_train(self) -> int:
        """Training points of the base surrogate plus the pending points."""
        return self.base.num_train + self.P.shape[0]

    @property
    def posterior_bytes_per_row(self) -> float | None:
        """Bytes one pool row costs while scored: those of the base surrogate."""
        return self.base.posterior_bytes_per_row

    def parameter_like(self) -> torch.Tensor:
        """A tensor with the dtype and device of the base surrogate."""
        return self.base.parameter_like()

    def fit(self, X: Any, y: Any, bounds: Any = None):
        """Not available: fit the base surrogate, then condition it again."""
        raise self._unsupported("fit (fit the base surrogate, then condition it again)", "fit")


class ConditionedSurrogate(PendingConditioned):
    """A Gaussian surrogate conditioned on pending points P (their labels unknown).

    With ``S_P = Σ(P, P) + σ_n² I``, the exact Gaussian update is
    ``Σ'(A, B) = Σ(A, B) − Σ(A, P) S_P⁻¹ Σ(P, B)``; the mean is unchanged (pending labels taken
    at their expected values). Works for any base surrogate with ``covariance``.
    """

    def __init__(self, base: Surrogate, X_pending: torch.Tensor):
        super().__init__(base, X_pending)
        with torch.no_grad():
            S = base.covariance(X_pending, X_pending)
            S = S + torch.diag_embed(base.noise_variance.to(S).reshape(-1, 1).expand(S.shape[:-1]))
            self._L = torch.linalg.cholesky(S)  # [m, p, p]

    def _whiten(self, C: torch.Tensor) -> torch.Tensor:
        """``L_P⁻¹ C`` for ``C = Σ(P, ·)  [..., m, p, N]``."""
        return torch.linalg.solve_triangular(self._L, C, upper=False)

    def posterior(self, X: Any) -> GaussianPosterior:
        post = self.base.posterior(X)
        X = post_X = torch.as_tensor(X).to(self.P)
        with torch.no_grad():
            V = self._whiten(self.base.covariance(self.P, post_X))  # [m, p, N]
            var = (post.variance - V.pow(2).sum(-2).T).clamp_min(0.0)
        return GaussianPosterior(post.mean, var, noise_variance=self.noise_variance,
                                 covariance_fn=lambda idx: self.covariance(X[idx], X[idx]))

    def covariance(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            VA = self._whiten(self.base.covariance(self.P, A))
            VB = self._whiten(self.base.covariance(self.P, B))
            return self.base.covariance(A, B) - VA.transpose(-1, -2) @ VB

    def joint_posterior(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable mean ``[b, q, m]`` and covariance ``[b, m, q, q]`` of f on ``X: [b, q, d]``,
        conditioned on the pending points."""
        mean, cov = self.base.joint_posterior(X)
        V = self._whiten(self.base.reference_cross(self.P, X))  # [b, m, p, q]
        return mean, cov - V.transpose(-1, -2) @ V

    def reference_cross(self, R: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            VR = self._whiten(self.base.covariance(self.P, R))  # [m, p, M]
        VX = self._whiten(self.base.reference_cross(self.P, X))  # [b, m, p, q]
        return self.base.reference_cross(R, X) - VR.transpose(-1, -2) @ VX

    def condition_on(self, X_pending: Any) -> "ConditionedSurrogate":
        Xp = torch.as_tensor(X_pending).to(self.P)
        return ConditionedSurrogate(self.base, torch.cat([self.P, Xp]))
