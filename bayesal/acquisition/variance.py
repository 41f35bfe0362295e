"""Variance-reduction acquisitions: integrated variance reduction (NIPV) and EV-GP."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InvalidInput
from ..settings import get_memory_budget, stream_rows
from ..spaces import Box, Pool
from ..validation import as_tensor, check_X, renamed
from .base import Acquisition, check_output_weights, output_weights

__all__ = ["IntegratedVarianceReduction", "EVGP"]


class IntegratedVarianceReduction(Acquisition):
    """How much a batch B shrinks the posterior variance of f, integrated over reference points:

        IVR(B) = Σ_r w_r [σ²(r) − σ²(r | y_B)] = Σ_r w_r Σ(r, B) (Σ_BB + σ_n² I)⁻¹ Σ(B, r),

    summed over outputs with ``output_weights``. Maximising it minimises the integrated posterior
    variance: the ALC criterion of Cohn (1996), the I-optimal design of the DoE literature, and
    BoTorch's ``qNegIntegratedPosteriorVariance`` up to a constant (Seo et al. 2000, "Gaussian
    process regression: active data selection and test point rejection"). Unlike max-variance
    it weighs uncertainty by where the model will be used, so it does not chase the corners of a
    high-dimensional box.

    Args:
        reference_points: ``"auto"`` (the pool for pool problems, else uniform), ``"uniform"``
            (scrambled Sobol points in the space's box), ``"pool"`` (the pool's candidates,
            labelled ones included), or points ``[M, d]`` (deprecated name: ``reference``).
        reference_weights: ``[M]`` non-negative weights of user reference points (uniform by
            default); normalised to sum to one (deprecated name: ``weights``).
        n_reference: number of reference points drawn for ``"uniform"``, and the size of the
            random subset of a larger pool for ``"pool"``.
        output_weights: ``[m]`` weights of the outputs' variances.
        seed: seed of the reference sample.

    On a pool the batch is built greedily (:func:`bayesal.select.select_greedy`): with one
    O(n² (N + M)) set-up and O(M N) work per chosen point, by rank-1 updates of the
    reference × pool cross-covariance kept in low-rank form, chunked over N when
    ``M × N`` does not fit the memory budget. On a box the q points are optimised jointly.
    """

    name = "integrated-variance"
    joint = True
    scores_from_marginals = False
    #: the reference set when none is given
    default_reference = "auto"

    def __init__(self, reference_points: str | Any = None, reference_weights: Any = None, n_reference: int = 2048,
                 output_weights: Any = None, seed: int = 0, *, reference: str | Any = None, weights: Any = None):
        owner = type(self).__name__
        reference = renamed(reference_points, reference, "reference_points", "reference", owner)
        reference = self.default_reference if reference is None else reference
        if isinstance(reference, str) and reference not in ("auto", "uniform", "pool"):
            raise InvalidInput("reference_points", "'auto', 'uniform', 'pool' or points [M, d]", repr(reference))
        self.reference_points, self.n_reference, self.seed = reference, int(n_reference), seed
        self.reference_weights = renamed(reference_weights, weights, "reference_weights", "weights", owner)
        self.output_weights = check_output_weights(output_weights)
        self._bound: tuple[torch.Tensor, torch.Tensor] | None = None

    def __repr__(self) -> str:
        ref = self.reference_points if isinstance(self.reference_points, str) else f"{len(self.reference_points)} points"
        return f"{type(self).__name__}(reference_points={ref!r})"

    # -- the reference set ----------------------------------------------------------------------
    def reference_set(self, space: Pool | Box) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference points ``[M, d]`` and weights ``[M]`` (summing to one) for ``space``."""
        if self._bound is not None:
            return self._bound
        kind = self.reference_points
        if not isinstance(kind, str):
            R = check_X(kind, "reference_points", dim=space.dim)
            if self.reference_weights is None:
                w = torch.full((R.shape[0],), 1.0 / R.shape[0], dtype=R.dtype)
            else:
                w = as_tensor(self.reference_weights, "reference_weights").reshape(-1)
                if w.numel() != R.shape[0] or bool((w < 0).any()) or not float(w.sum()) > 0:
                    raise InvalidInput("reference_weights", f"{R.shape[0]} non-negative weights, not all zero",
                                       f"{w.numel()} weights summing to {float(w.sum()):.3g}")
                w = w / w.sum()
            return R, w
        if kind == "auto":
            kind = "pool" if isinstance(space, Pool) else "uniform"
        if kind == "pool":
            if not isinstance(space, Pool):
                raise InvalidInput("reference_points", "'uniform' or points on a box", "'pool' (there is no pool)")
            R = space.X
            if R.shape[0] > self.n_reference:
                gen = torch.Generator().manual_seed(self.seed)
                R = R[torch.randperm(R.shape[0], generator=gen)[: self.n_reference].to(R.device)]
        else:
            R = Box(space.bounds[0], space.bounds[1]).sample(self.n_reference, seed=self.seed)
        return R, torch.full((R.shape[0],), 1.0 / R.shape[0], dtype=R.dtype, device=R.device)

    def for_space(self, space: Pool | Box) -> "IntegratedVarianceReduction":
        bound = object.__new__(type(self))
        bound.__dict__.update(self.__dict__)
        bound._bound = self.reference_set(space)
        return bound

    # -- values -----------------------------------------------------------------------------------
    def score(self, posterior, generator=None):
        raise InvalidInput("acquisition", "a selector that passes the surrogate (select_greedy / select_continuous)",
                           f"{self.name} scored from marginals alone: it needs cross-covariances")

    def batch_value(self, surrogate, X: torch.Tensor) -> torch.Tensor:
        """IVR of b batches ``X: [b, q, d]`` → ``[b]``, differentiable in X."""
        if self._bound is None:
            raise InvalidInput("acquisition", "an IntegratedVarianceReduction bound to a space (for_space)", "unbound")
        R, w = self._bound
        _, cov = surrogate.joint_posterior(X)  # [b, m, q, q]
        cross = surrogate.reference_cross(R, X)  # [b, m, M, q]
        noise = surrogate.noise_variance.to(cov).reshape(-1, 1, 1)
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device)
        L = torch.linalg.cholesky(cov + noise * eye)
        Z = torch.linalg.solve_triangular(L, cross.transpose(-1, -2), upper=False)  # [b, m, q, M]
        reduction = (Z.pow(2).sum(-2) * w.to(Z)).sum(-1)  # [b, m]
        return (reduction * output_weights(self.output_weights, reduction.shape[-1], reduction)).sum(-1)

    def greedy_scorer(self, surrogate, X: torch.Tensor, mean: torch.Tensor, noise: torch.Tensor):
        if self._bound is None:
            raise InvalidInput("acquisition", "an IntegratedVarianceReduction bound to a space (for_space)", "unbound")
        return _ReferenceScorer(surrogate, X, *self._bound, noise,
                                output_weights(self.output_weights, noise.numel(), noise))


class EVGP(IntegratedVarianceReduction):
    """EV-GP: choose the batch that minimises the expected posterior variance over the pool,
    training-free (Hemachandra, Dai, Singh, Ng & Low 2023, "Training-Free Neural Active Learning
    with Initialization-Robustness Guarantees", ICML).

    It is integrated variance reduction with the pool as reference set. With ``kernel`` given
    (for instance :class:`~bayesal.models.EmpiricalNTK` of a freshly initialised network), the
    selection uses a :class:`~bayesal.models.KernelGP` with that kernel on the labelled inputs,
    never the labels and never a trained model; without it, the learner's own surrogate.

    Args:
        kernel: the selection kernel, or None for the learner's surrogate.
        noise: the selection GP's noise variance (its regulariser).
        reference_points, n_reference, output_weights, seed: as for IntegratedVarianceReduction
            (the reference set defaults to the pool).
    """

    name = "ev-gp"

    default_reference = "pool"

    def __init__(self, kernel: Any = None, noise: float = 1e-2, reference_points: str | Any = None,
                 n_reference: int = 2048, output_weights: Any = None, seed: int = 0, *, reference: str | Any = None):
        super().__init__(reference_points, n_reference=n_reference, output_weights=output_weights, seed=seed,
                         reference=reference)
        self.kernel, self.noise = kernel, float(noise)

    def selection_model(self, X_train: torch.Tensor, surrogate):
        """The model whose posterior drives the selection: a training-free KernelGP on the
        labelled inputs when a kernel was given, else the learner's surrogate."""
        if self.kernel is None:
            return surrogate
        from ..models.kernel_gp import KernelGP

        return KernelGP(self.kernel, noise=self.noise).fit(X_train)


class _ReferenceScorer:
    """Greedy IVR scores over a pool, with the reference × pool cross-covariance in low rank.

    With ``C_t = C_0 − Σ_s u_s v_sᵀ`` (u_s over the M reference points, v_s the pool-side update
    vectors of the selector), the weighted squared column norms are
    ``‖C_t(:, x)‖²_w = a(x) − 2 Σ_s v_s(x) b_s(x) + v(x)ᵀ G v(x)`` with
    ``a = ‖C_0(:, x)‖²_w``, ``b_s = (w ∘ u_s)ᵀ C_0`` and ``G = Uᵀ diag(w) U``: one pass over
    ``C_0`` per chosen point, which is kept in memory when it fits the budget and recomputed
    chunk by chunk otherwise.
    """

    def __init__(self, surrogate, X, R, w, noise, out_w):
        self.X, self.w, self.noise, self.out_w = X, w.to(X), noise, out_w
        block = surrogate.reference_blocks(R)
        m = noise.numel()
        M, N = R.shape[0], X.shape[0]
        self.stored = 8.0 * m * M * N <= get_memory_budget()
        per_row = 8.0 * m * (M + 2 * max(1, surrogate.num_train) + 8)
        self.step = N if self.stored else stream_rows(per_row)
        self.block = block
        if self.stored:
            self.C0, self.a = X.new_empty(m, M, N), X.new_empty(m, N)
            step = stream_rows(per_row)
            for s in range(0, N, step):  # in chunks: the kernel's temporaries would be [M, N] each
                Xc = X[s:s + step]
                Cc = self.C0[..., s:s + Xc.shape[0]]
                Cc.copy_(block(Xc))
                self.a[:, s:s + Xc.shape[0]] = (Cc.pow(2) * self.w.reshape(1, -1, 1)).sum(-2)
        else:
            self.C0 = None
            self.a = X.new_empty(m, N)  # preallocated outputs keep the heap from fragmenting
            for s in range(0, N, self.step):
                Xc = X[s:s + self.step]
                self.a[:, s:s + Xc.shape[0]] = (block(Xc).pow(2) * self.w.reshape(1, -1, 1)).sum(-2)
        self.U = X.new_zeros(m, M, 0)
        self.B = X.new_zeros(m, N, 0)
        self.V = X.new_zeros(m, N, 0)

    def _times_C0(self, vec: torch.Tensor) -> torch.Tensor:
        """``vecᵀ C_0``: ``[m, M] -> [m, N]``."""
        if self.stored:
            return (vec.unsqueeze(-2) @ self.C0).squeeze(-2)
        times = self.block.times
        out = self.X.new_empty(vec.shape[0], self.X.shape[0])
        for s in range(0, self.X.shape[0], self.step):
            Xc = self.X[s:s + self.step]
            out[:, s:s + Xc.shape[0]] = times(vec, Xc)
        return out

    def scores(self, var: torch.Tensor) -> torch.Tensor:
        """``[N]`` IVR gain of each candidate given the points chosen so far; ``var: [N, m]``."""
        wu = self.U * self.w.reshape(1, -1, 1)
        G = self.U.transpose(-1, -2) @ wu  # [m, t, t]
        sq = self.a - 2 * (self.V * self.B).sum(-1) + ((self.V @ G) * self.V).sum(-1)  # [m, N]
        gain = sq.clamp_min(0.0) / (var.T + self.noise.reshape(-1, 1)).clamp_min(1e-300)
        return (gain * self.out_w.reshape(-1, 1)).sum(0)

    def update(self, j: int, v_new: torch.Tensor, denom: torch.Tensor) -> None:
        """Account for candidate j, chosen with pool-side update ``v_new: [N, m]``."""
        C0j = self.C0[..., j] if self.stored else self.block(self.X[j:j + 1])[..., 0]  # [m, M]
        Ctj = C0j - (self.U @ self.V[:, j, :].unsqueeze(-1)).squeeze(-1)
        u = Ctj / denom.reshape(-1, 1).clamp_min(1e-300).sqrt()  # [m, M]
        self.U = torch.cat([self.U, u.unsqueeze(-1)], -1)
        self.B = torch.cat([self.B, self._times_C0(u * self.w).unsqueeze(-1)], -1)
        self.V = torch.cat([self.V, v_new.T.unsqueeze(-1)], -1)
