"""Sparse variational GP (SVGP) for large data, on GPyTorch's variational strategy."""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import gpytorch
import torch
from gpytorch.distributions import MultivariateNormal
from gpytorch.kernels import MaternKernel, ScaleKernel
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.means import ConstantMean
from gpytorch.mlls import VariationalELBO
from gpytorch.models import ApproximateGP
from gpytorch.variational import CholeskyVariationalDistribution, VariationalStrategy

from ..errors import InvalidInput, NotFitted
from ..validation import as_tensor, check_count, check_X, check_y
from .algebra import ExactGaussianAlgebra
from .base import AlgebraSurrogate, ConditionedSurrogate

__all__ = ["SparseGP"]


class _SVGP(ApproximateGP):
    """m independent SVGPs batched along a leading output axis."""

    def __init__(self, inducing: torch.Tensor):  # inducing: [m, M, d]
        m, M, d = inducing.shape
        batch = torch.Size([m])
        strategy = VariationalStrategy(self, inducing, CholeskyVariationalDistribution(M, batch_shape=batch),
                                       learn_inducing_locations=True)
        super().__init__(strategy)
        self.mean_module = ConstantMean(batch_shape=batch)
        self.covar_module = ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=d, batch_shape=batch), batch_shape=batch)

    def forward(self, x):
        return MultivariateNormal(self.mean_module(x), self.covar_module(x))


class SparseGP(AlgebraSurrogate):
    """Stochastic variational GP regression (Hensman, Fusi & Lawrence 2013, "Gaussian Processes
    for Big Data"), for n up to the hundreds of thousands.

    Inputs are normalised to the unit cube, outputs standardised; a Matérn-5/2 ARD kernel with
    an output scale, ``num_inducing`` inducing points (initialised at a random subset of the data,
    then learned) and a full-covariance whitened variational distribution are fitted by Adam on
    mini-batches of the evidence lower bound. Training stops early when the predictive log
    likelihood on a held-out fraction stops improving, and is deterministic given ``seed``.

    The posterior is exposed through the same chunked algebra as :class:`ExactGP`
    (``Σ(A, B) = k(A, B) − W(A)ᵀ (I − S) W(B)`` with ``W = L⁻¹ k(Z, A)`` over the inducing points
    Z), so greedy and integrated-variance selection work unchanged; ``condition_on`` applies the
    exact Gaussian update of that posterior for pending points.

    Args:
        num_inducing: inducing points per output.
        batch_size: mini-batch size.
        max_epochs: upper limit on passes over the data.
        lr: Adam learning rate.
        holdout: fraction held out for early stopping (0 disables it).
        patience: epochs without improvement before stopping.
        max_seconds: optional wall-clock limit on training.
        seed: seed of the inducing initialisation, the hold-out split and the mini-batches.
    """

    def __init__(self, num_inducing: int = 512, batch_size: int = 1024, max_epochs: int = 200,
                 lr: float = 0.01, holdout: float = 0.1, patience: int = 8, max_seconds: float | None = None,
                 seed: int = 0, verbose: bool = False):
        self.num_inducing = check_count(num_inducing, "num_inducing")
        self.batch_size = check_count(batch_size, "batch_size")
        self.max_epochs = check_count(max_epochs, "max_epochs")
        if not 0 <= holdout < 0.5:
            raise InvalidInput("holdout", "a fraction in [0, 0.5)", str(holdout))
        self.lr, self.holdout, self.patience, self.max_seconds = float(lr), float(holdout), int(patience), max_seconds
        self.seed, self.verbose = int(seed), verbose
        self.model: _SVGP | None = None
        self.likelihood: GaussianLikelihood | None = None
        self._fitted, self._cache = False, None
        self.history: list[dict[str, float]] = []

    def __repr__(self) -> str:
        return f"SparseGP(num_inducing={self.num_inducing}, fitted={self._fitted})"

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, bounds: Any = None) -> "SparseGP":
        """Fit to ``X: [n, d]``, ``y: [n]`` or ``[n, m]`` (``bounds: [2, d]`` fixes the input scaling)."""
        # GPyTorch draws the initial variational parameters from the global generator
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return self._fit(X, y, bounds)

    def _fit(self, X: Any, y: Any, bounds: Any) -> "SparseGP":
        X = check_X(X, "X")
        y = check_y(y, "y", n=X.shape[0])
        n, d = X.shape
        m = y.shape[-1]
        if bounds is None:
            lo, hi = X.min(0).values, X.max(0).values
            bounds = torch.stack([lo, torch.where(hi > lo, hi, lo + 1.0)])
        self.bounds = as_tensor(bounds, "bounds").reshape(2, d).to(X)
        self.y_mean = y.mean(0)
        self.y_std = y.std(0) if n > 1 else torch.ones(m, dtype=y.dtype, device=y.device)
        self.y_std = torch.where(self.y_std > 0, self.y_std, torch.ones_like(self.y_std))
        U = self._transform(X)
        Y = ((y - self.y_mean) / self.y_std).T  # [m, n]
        gen = torch.Generator().manual_seed(self.seed)
        perm = torch.randperm(n, generator=gen).to(X.device)
        n_hold = int(self.holdout * n) if n >= 50 else 0
        hold, train = perm[:n_hold], perm[n_hold:]
        M = min(self.num_inducing, train.numel())
        inducing = U[train[torch.randperm(train.numel(), generator=gen)[:M].to(X.device)]]
        model = _SVGP(inducing.unsqueeze(0).repeat(m, 1, 1).clone()).to(X)
        likelihood = GaussianLikelihood(batch_shape=torch.Size([m])).to(X)
        model.train()
        likelihood.train()
        elbo = VariationalELBO(likelihood, model, num_data=train.numel())
        optim = torch.optim.Adam([*model.parameters(), *likelihood.parameters()], lr=self.lr)
        best, best_state, stale, start = -math.inf, None, 0, time.perf_counter()
        self.history = []
        for epoch in range(self.max_epochs):
            order = train[torch.randperm(train.numel(), generator=gen).to(X.device)]
            total = 0.0
            for s in range(0, order.numel(), self.batch_size):
                idx = order[s:s + self.batch_size]
                optim.zero_grad()
                out = model(U[idx].unsqueeze(0).expand(m, -1, -1))
                loss = -elbo(out, Y[:, idx]).sum()
                loss.backward()
                optim.step()
                total += float(loss.detach()) * idx.numel()
            record = {"epoch": epoch, "elbo": -total / order.numel()}
            if n_hold:
                score = self._holdout_log_likelihood(model, likelihood, U[hold], Y[:, hold])
                record["holdout_loglik"] = score
                if score > best + 1e-4:
                    best, stale = score, 0
                    best_state = (copy.deepcopy(model.state_dict()), copy.deepcopy(likelihood.state_dict()))
                else:
                    stale += 1
            self.history.append(record)
            if self.verbose:
                print(f"SparseGP epoch {epoch}: {record}")
            if (n_hold and stale >= self.patience) or (
                    self.max_seconds is not None and time.perf_counter() - start > self.max_seconds):
                break
        if best_state is not None:
            model.load_state_dict(best_state[0])
            likelihood.load_state_dict(best_state[1])
        model.eval()
        likelihood.eval()
        self.model, self.likelihood, self.num_outputs, self._dim = model, likelihood, m, d
        self._fitted, self._cache = True, None
        return self

    @staticmethod
    def _holdout_log_likelihood(model, likelihood, U, Y) -> float:
        model.eval()
        likelihood.eval()
        with torch.no_grad():
            out = model(U.unsqueeze(0).expand(Y.shape[0], -1, -1))
            var = out.variance + likelihood.noise.reshape(-1, 1)
            ll = -0.5 * (math.log(2 * math.pi) + var.log() + (Y - out.mean).pow(2) / var)
        model.train()
        likelihood.train()
        return float(ll.mean())

    # -- posterior ------------------------------------------------------------------------------
    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        return (X - self.bounds[0]) / (self.bounds[1] - self.bounds[0])

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        if not self._fitted:
            raise NotFitted("SparseGP has no data yet: call fit(X, y) first")
        return check_X(X, name, dim=self._dim).to(self.bounds)

    def _kernel(self, A: torch.Tensor, B: torch.Tensor, diag: bool = False) -> torch.Tensor:
        batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2], (self.num_outputs,))
        with gpytorch.settings.lazily_evaluate_kernels(False):
            k = self.model.covar_module(A.expand(*batch, *A.shape[-2:]), B.expand(*batch, *B.shape[-2:]), diag=diag)
        return k.to_dense() if hasattr(k, "to_dense") else k

    def _algebra(self) -> ExactGaussianAlgebra:
        if not self._fitted:
            raise NotFitted("SparseGP has no data yet: call fit(X, y) first")
        if self._cache is None:
            strategy = self.model.variational_strategy
            with torch.no_grad():
                Z = strategy.inducing_points.detach()  # [m, M, d]
                jitter = gpytorch.settings.variational_cholesky_jitter.value(Z.dtype)
                dist = strategy._variational_distribution
                S_chol = dist.chol_variational_covar.detach().tril()  # [m, M, M]
                S = S_chol @ S_chol.transpose(-1, -2)
                eye = torch.eye(Z.shape[-2], dtype=Z.dtype, device=Z.device)
                algebra = ExactGaussianAlgebra(
                    self._kernel, self._transform, Z,
                    noise=torch.full((self.num_outputs,), jitter, dtype=Z.dtype),
                    const=self.model.mean_module.constant.detach(), y_mean=self.y_mean, y_std=self.y_std,
                    middle=eye - S, observation_noise=self.likelihood.noise.detach().reshape(-1),
                )
                # whitened mean: k(A, Z) L⁻ᵀ m
                m_v = dist.variational_mean.detach().unsqueeze(-1)  # [m, M, 1]
                algebra.alpha = torch.linalg.solve_triangular(algebra.L.transpose(-1, -2), m_v, upper=True)
            self._cache = algebra
        return self._cache

    def condition_on(self, X_pending: Any) -> ConditionedSurrogate:
        """The posterior updated for noisy observations at ``X_pending: [q, d]`` equal to their
        expected values (mean unchanged, exact Gaussian update of the covariance)."""
        return ConditionedSurrogate(self, self._check_points(X_pending, "X_pending"))
