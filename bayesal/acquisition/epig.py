"""Expected predictive information gain (EPIG; Bickford Smith, Kirsch, Farquhar, Gal, Foster &
Rainforth 2023, "Prediction-oriented Bayesian active learning", AISTATS).

BALD values a label by what it says about the model's parameters; EPIG by what it says about
predictions where they matter, at target inputs x* drawn from the test distribution:

    EPIG(x) = E_{x*} [ I(y; y* | x, x*) ].

* Classification, class probabilities ``[K, N, C]`` and ``[K, M, C]`` at M targets under the same
  K model samples: ``I(y; y*) = H(y) + H(y*) − H(y, y*)`` with the joint predictive
  ``p(y, y*) = (1/K) Σ_k p_k(y) p_k(y*)`` (their eq. 6).
* Gaussian predictives: ``I(y; y*) = −½ log(1 − ρ²)`` with ρ the correlation of the two noisy
  labels, ``ρ² = Σ(x, x*)² / ((σ²(x) + σ_n²)(σ²(x*) + σ_n²))``. For a Gaussian posterior the
  cross-covariances come from the surrogate and greedy batches condition them on the chosen
  points; for regression draws ``[K, N, m]`` the covariances are the sample covariances over K
  (the Gaussian approximation of the predictive).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from ..errors import InvalidInput
from ..posteriors import GaussianPosterior, SamplePosterior
from ..settings import get_memory_budget
from ..spaces import Box, Pool
from ..validation import check_X, renamed
from ._samples import class_probabilities, entropy_of_mean, row_chunks
from .base import Acquisition, check_output_weights, output_weights

__all__ = ["EPIG", "epig_classification", "epig_gaussian"]


def epig_classification(probs: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """EPIG scores ``[N]`` from class probabilities of the candidates ``probs: [K, N, C]`` and of
    the targets ``target_probs: [K, M, C]`` under the same K model samples, averaged over the
    M targets; chunked over N (one ``[n·C, M·C]`` joint at a time)."""
    K, N, C = probs.shape
    if target_probs.dim() != 3 or target_probs.shape[0] != K:
        raise InvalidInput("target_probs", f"class probabilities [K={K}, M, C'] under the same model samples",
                           f"shape {list(target_probs.shape)}")
    M, Ct = target_probs.shape[1], target_probs.shape[2]
    t = target_probs.to(probs)
    h_target = entropy_of_mean(t).mean()
    flat_t = t.reshape(K, M * Ct)
    out = torch.empty(N, dtype=probs.dtype, device=probs.device)
    for s in row_chunks(N, 3.0 * C * M * Ct * probs.element_size()):
        p = probs[:, s]
        n = p.shape[1]
        joint = (p.reshape(K, n * C).T @ flat_t).reshape(n, C, M, Ct) / K
        h_joint = torch.special.entr(joint).sum((1, 3)).mean(-1)  # [n]
        out[s] = entropy_of_mean(p) + h_target - h_joint
    return out.clamp_min_(0.0)


def epig_gaussian(cross: torch.Tensor, var: torch.Tensor, target_var: torch.Tensor,
                  noise: torch.Tensor) -> torch.Tensor:
    """EPIG of Gaussian predictives, ``[m, N]``: the mean over M targets of ``−½ log(1 − ρ²)``.

    Args:
        cross: ``[m, M, N]`` covariance of f between targets and candidates.
        var: ``[N, m]`` variance of f at the candidates; target_var: ``[M, m]`` at the targets.
        noise: ``[m]`` observation-noise variance of a label.
    """
    denom = (target_var.T + noise.reshape(-1, 1)).unsqueeze(-1) * (var.T + noise.reshape(-1, 1)).unsqueeze(-2)
    rho2 = (cross.pow(2) / denom.clamp_min(1e-300)).clamp(0.0, 1.0 - 1e-12)
    return (-0.5 * torch.log1p(-rho2)).mean(-2)


class EPIG(Acquisition):
    """Expected predictive information gain about labels at target inputs (see module doc).

    Args:
        reference_points: the target inputs x* ``[M, d]`` the gain is averaged over; or
            ``"auto"`` (default: ``"pool"`` on a pool, ``"uniform"`` on a box), ``"pool"`` for
            ``n_reference`` points drawn from the pool (the pool as the
            test distribution, as in Bickford Smith et al.), or ``"uniform"`` for uniform points
            of the box (deprecated name: ``target``).
        n_reference: M when the targets are drawn (deprecated name: ``num_targets``).
        target_posterior: optional ready-made posterior at the targets (a
            :class:`SamplePosterior` under the same model samples as the candidates'), for calling
            :meth:`score` directly without a selector.
        output_weights: ``[m]`` output weights (regression; deprecated name: ``weights``).
        seed: seed of the drawn targets.

    Selectors call :meth:`for_space` (draws the targets) and :meth:`bind` (the surrogate's
    posterior at them) before scoring.
    """

    name = "epig"

    def __init__(self, reference_points: str | Any = None, n_reference: int | None = None,
                 target_posterior: SamplePosterior | None = None, output_weights=None, seed: int = 0, *,
                 target: str | Any = None, num_targets: int | None = None, weights=None):
        reference = renamed(reference_points, target, "reference_points", "target", "EPIG")
        reference = "auto" if reference is None else reference
        if isinstance(reference, str) and reference not in ("auto", "pool", "uniform"):
            raise InvalidInput("reference_points", "'auto', 'pool', 'uniform' or target points [M, d]", repr(reference))
        n = renamed(n_reference, num_targets, "n_reference", "num_targets", "EPIG")
        self.reference_points, self.n_reference, self.seed = reference, int(128 if n is None else n), int(seed)
        self.output_weights = check_output_weights(renamed(output_weights, weights, "output_weights", "weights", "EPIG"))
        self.target_posterior = target_posterior
        self._X_target: torch.Tensor | None = None

    def __repr__(self) -> str:
        ref = self.reference_points
        tgt = ref if isinstance(ref, str) else f"{len(ref)} points"
        return f"EPIG(reference_points={tgt!r}, n_reference={self.n_reference})"

    @property
    def scores_from_marginals(self) -> bool:  # Gaussian EPIG needs cross-covariances
        """False for Gaussian posteriors (EPIG needs cross-covariances with the target points), True for
        sample posteriors."""
        return not isinstance(self.target_posterior, GaussianPosterior)

    def target_points(self, space: Pool | Box) -> torch.Tensor:
        """Target inputs ``[M, d]`` for ``space``."""
        ref = self.reference_points
        if not isinstance(ref, str):
            return check_X(ref, "reference_points", dim=space.dim)
        gen = torch.Generator().manual_seed(self.seed)
        if ref == "auto":
            ref = "pool" if isinstance(space, Pool) else "uniform"
        if ref == "pool":
            if not isinstance(space, Pool):
                raise InvalidInput("reference_points", "'uniform' or points [M, d] on a box", "'pool' (there is no pool)")
            pick = torch.randperm(len(space), generator=gen)[: self.n_reference]
            return space.X[pick.to(space.X.device)]
        return Box(space.bounds[0], space.bounds[1]).sample(self.n_reference, seed=self.seed, method="uniform")

    def for_space(self, space: Pool | Box) -> "EPIG":
        bound = copy.copy(self)
        bound._X_target = self.target_points(space)
        return bound

    def bind(self, surrogate) -> "EPIG":
        """This acquisition with the surrogate's posterior at the targets."""
        if self._X_target is None or surrogate is None:
            return self
        bound = copy.copy(self)
        with torch.no_grad():
            bound.target_posterior = surrogate.posterior(self._X_target)
        return bound

    def score(self, posterior: SamplePosterior | GaussianPosterior, generator=None) -> torch.Tensor:
        """EPIG scores ``[N]`` of the N candidates of ``posterior`` (a :class:`SamplePosterior`;
        Gaussian posteriors are scored through :meth:`greedy_scorer`, which needs the surrogate's
        cross-covariances)."""
        target = self.target_posterior
        if target is None:
            raise InvalidInput("EPIG", "a target posterior (pass target_posterior=, or select through a selector)",
                               "none")
        if isinstance(posterior, SamplePosterior) and posterior.kind == "classification":
            return epig_classification(class_probabilities(self, posterior), class_probabilities(self, target))
        if isinstance(posterior, SamplePosterior):
            if not isinstance(target, SamplePosterior) or target.kind != "regression":
                raise InvalidInput("target_posterior", "a regression SamplePosterior", repr(target))
            return self._score_regression_samples(posterior, target)
        raise InvalidInput("posterior", "a SamplePosterior (Gaussian EPIG is computed by the greedy scorer)",
                           type(posterior).__name__)

    def _score_regression_samples(self, post: SamplePosterior, target: SamplePosterior) -> torch.Tensor:
        f, g = post.samples, target.samples.to(post.samples)  # [K, N, m], [K, M, m]
        K, N, m = f.shape
        if g.shape[0] != K:
            raise InvalidInput("target_posterior", f"{K} draws like the candidates'", f"{g.shape[0]}")
        noise = _noise(post.noise_variance, m, f)
        gc = g - g.mean(0, keepdim=True)
        tvar = gc.pow(2).sum(0) / max(K - 1, 1)  # [M, m]
        w = output_weights(self.output_weights, m, f)
        out = torch.empty(N, dtype=f.dtype, device=f.device)
        for s in row_chunks(N, 3.0 * g.shape[1] * m * f.element_size() + K * m * f.element_size()):
            fc = f[:, s] - f[:, s].mean(0, keepdim=True)
            cross = torch.einsum("knm,kjm->mjn", fc, gc) / max(K - 1, 1)  # [m, M, n]
            var = fc.pow(2).sum(0) / max(K - 1, 1)
            out[s] = (epig_gaussian(cross, var, tvar, noise) * w.reshape(-1, 1)).sum(0)
        return out

    def batch_value(self, surrogate, X: torch.Tensor) -> torch.Tensor:
        """Gaussian EPIG ``[b]`` of single points ``X: [b, 1, d]`` on a box, differentiable in X:
        ``−½ log(1 − ρ²)`` averaged over the targets, from the surrogate's joint posterior and its
        cross-covariance with the targets (for a sample surrogate, the moment-matched Gaussian of
        its fixed draws, as in the pool scores of regression draws). EPIG has no joint batch
        value here, so a box batch is chosen one point at a time, the surrogate conditioned on
        the points before (and the target variances with it, through :meth:`bind`)."""
        if X.shape[-2] != 1:
            raise InvalidInput("q", f"1 for the single-point acquisition {self.name}", str(X.shape[-2]))
        if self._X_target is None or self.target_posterior is None:
            raise InvalidInput("EPIG", "an EPIG bound to a space and a surrogate (for_space, bind)", "unbound")
        _, cov = surrogate.joint_posterior(X)  # [b, m, 1, 1]
        cross = surrogate.reference_cross(self._X_target, X)[..., 0]  # [b, m, M]
        m = cov.shape[-3]
        noise = _noise(surrogate.noise_variance, m, cov)
        tvar = self.target_posterior.variance.to(cov)  # [M, m]
        info = epig_gaussian(cross.permute(1, 2, 0), cov[..., 0, 0], tvar, noise)  # [m, b]
        return (info * output_weights(self.output_weights, m, cov).reshape(-1, 1)).sum(0)

    def greedy_scorer(self, surrogate, X: torch.Tensor, mean: torch.Tensor, noise: torch.Tensor):
        if self._X_target is None:
            raise InvalidInput("EPIG", "target points (call for_space(pool) first)", "none")
        return _GaussianEPIGScorer(surrogate, X, self._X_target, noise, output_weights(self.output_weights, noise.numel(), mean))


def _noise(noise_variance, m: int, like: torch.Tensor) -> torch.Tensor:
    if noise_variance is None:
        return torch.full((m,), 1e-10, dtype=like.dtype, device=like.device)
    return noise_variance.to(like).reshape(-1).expand(m).clamp_min(1e-10)


class _GaussianEPIGScorer:
    """Gaussian EPIG over a pool with greedy conditioning on the chosen points.

    Keeps the target × pool cross-covariance ``C: [m, M, N]`` and the target variances; choosing
    candidate j with pool-side update ``v = Σ_t(X, x_j)/√denom`` applies the same rank-1 step to
    the target side, ``u = C[:, :, j]/√denom``: ``C ← C − u vᵀ``, ``σ²(x*) ← σ²(x*) − u²``.
    """

    def __init__(self, surrogate, X: torch.Tensor, R: torch.Tensor, noise: torch.Tensor, out_w: torch.Tensor):
        m, M, N = noise.numel(), R.shape[0], X.shape[0]
        if 8.0 * m * M * N > 4 * get_memory_budget():
            raise InvalidInput("n_reference", f"fewer targets: a [{m}, {M}, {N}] cross-covariance exceeds 4x the memory budget",
                               str(M))
        block = surrogate.reference_blocks(R)
        with torch.no_grad():
            self.C = torch.cat([block(X[s]) for s in row_chunks(N, 8.0 * m * (M + 64))], -1)
            self.target_var = surrogate.posterior(R).variance.to(self.C).clone()  # [M, m]
        self.noise = noise.to(self.C).clamp_min(1e-10)
        self.out_w = out_w.to(self.C)

    def scores(self, var: torch.Tensor) -> torch.Tensor:
        info = epig_gaussian(self.C, var.to(self.C), self.target_var, self.noise)  # [m, N]
        return (info * self.out_w.reshape(-1, 1)).sum(0)

    def update(self, j: int, v_new: torch.Tensor, denom: torch.Tensor) -> None:
        u = self.C[..., j] / denom.to(self.C).reshape(-1, 1).clamp_min(1e-300).sqrt()  # [m, M]
        self.C = self.C - u.unsqueeze(-1) * v_new.T.to(self.C).unsqueeze(-2)
        self.target_var = (self.target_var - u.T.pow(2)).clamp_min(0.0)
