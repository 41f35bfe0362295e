"""Sparse variational GP (SVGP) for large data, on GPyTorch's variational strategy."""

from __future__ import annotations

import copy
import math
import time
import warnings
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
from ..settings import stream_rows
from .algebra import ExactGaussianAlgebra, robust_cholesky
from .base import AlgebraSurrogate, ConditionedSurrogate

__all__ = ["SparseGP", "BatchedSVGP"]


class BatchedSVGP(ApproximateGP):
    """m independent whitened SVGPs (Hensman, Matthews & Ghahramani 2015) batched along a leading
    output axis: constant mean, Matérn-5/2 ARD kernel, Cholesky variational distribution. The
    GPyTorch module behind :class:`SparseGP` and the variational :class:`~bayesal.models.DeepKernelGP`.

    Args:
        inducing: initial inducing inputs ``[m, M, d]`` (learned).
    """

    def __init__(self, inducing: torch.Tensor):
        m, M, d = inducing.shape
        batch = torch.Size([m])
        strategy = VariationalStrategy(self, inducing, CholeskyVariationalDistribution(M, batch_shape=batch),
                                       learn_inducing_locations=True)
        super().__init__(strategy)
        self.mean_module = ConstantMean(batch_shape=batch)
        self.covar_module = ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=d, batch_shape=batch), batch_shape=batch)

    def forward(self, x):
        """The prior ``MultivariateNormal`` of f at ``x: [m, N, d]``."""
        return MultivariateNormal(self.mean_module(x), self.covar_module(x))


class SparseGP(AlgebraSurrogate):
    """Stochastic variational GP regression (Hensman, Fusi & Lawrence 2013, "Gaussian Processes
    for Big Data"), for n up to the hundreds of thousands.

    Inputs are normalised to the unit cube, outputs standardised; a Matérn-5/2 ARD kernel with an
    output scale and ``num_inducing`` inducing points with a full-covariance whitened variational
    distribution q(u) (GPyTorch's ``VariationalStrategy``). Fitting has three steps:

    1. inducing points: k-means centres of the inputs (``inducing="kmeans"``, seeded), or a
       random subset of them;
    2. hyperparameters: either those of an exact GP fitted on a random subset of
       ``subset_size`` points (``hyperparameters="subset"``, the default: fast, and the sparse
       model then refines the subset GP's fit with all the data), or the evidence lower bound
       maximised by Adam on mini-batches over all the data (``"elbo"``), stopping early when the
       predictive log likelihood on a held-out fraction stops improving;
    3. q(u): set to its optimum for the given kernel, noise and inducing points, which for a
       Gaussian likelihood is available in closed form (Titsias 2009; it is the natural-gradient
       step of length one of Hensman et al.): with ``A = L⁻¹ k(Z, X)``,
       ``S = (I + A Aᵀ/σ²)⁻¹`` and ``m = S A (y − μ)/σ²``, accumulated over the data in chunks,
       ``O(n M²)`` time and ``O(M²)`` memory.

    Measured on protein (41,157 training points, ``benchmarks/sparse_gp_uci.py``): the subset
    route with 2,048 inducing points reaches a lower test RMSE than an exact GP on 5,000 points,
    where ELBO training (which inflates the noise to explain what 512 to 1,024 inducing points
    cannot) stayed above it.

    The posterior is exposed through the same chunked algebra as :class:`ExactGP`
    (``Σ(A, B) = k(A, B) − W(A)ᵀ (I − S) W(B)`` with ``W = L⁻¹ k(Z, A)`` over the inducing points
    Z), so greedy and integrated-variance selection work unchanged; ``condition_on`` applies the
    exact Gaussian update of that posterior for pending points. Deterministic given ``seed``.

    Args:
        num_inducing: inducing points per output.
        hyperparameters: ``"subset"`` or ``"elbo"`` (see above).
        subset_size: points of the exact GP that sets the hyperparameters (``"subset"``).
        inducing: ``"kmeans"`` or ``"random"`` initial inducing points.
        batch_size: mini-batch size (``"elbo"``).
        max_epochs: upper limit on passes over the data (``"elbo"``).
        lr: Adam learning rate (``"elbo"``).
        holdout: fraction held out for early stopping (``"elbo"``; 0 disables it).
        patience: epochs without improvement before stopping (``"elbo"``).
        max_seconds: optional wall-clock limit on ELBO training.
        seed: seed of the subset, the inducing initialisation, the hold-out split and the mini-batches.
    """

    def __init__(self, num_inducing: int = 512, hyperparameters: str = "subset", subset_size: int = 1500,
                 inducing: str = "kmeans", batch_size: int = 1024, max_epochs: int = 200,
                 lr: float = 0.01, holdout: float = 0.1, patience: int = 8, max_seconds: float | None = None,
                 seed: int = 0, verbose: bool = False):
        self.num_inducing = check_count(num_inducing, "num_inducing")
        if hyperparameters not in ("subset", "elbo"):
            raise InvalidInput("hyperparameters", "'subset' or 'elbo'", repr(hyperparameters))
        if inducing not in ("kmeans", "random"):
            raise InvalidInput("inducing", "'kmeans' or 'random'", repr(inducing))
        self.hyperparameters, self.inducing = hyperparameters, inducing
        self.subset_size = check_count(subset_size, "subset_size")
        self.batch_size = check_count(batch_size, "batch_size")
        self.max_epochs = check_count(max_epochs, "max_epochs")
        if not 0 <= holdout < 0.5:
            raise InvalidInput("holdout", "a fraction in [0, 0.5)", str(holdout))
        self.lr, self.holdout, self.patience, self.max_seconds = float(lr), float(holdout), int(patience), max_seconds
        self.seed, self.verbose = int(seed), verbose
        self.model: BatchedSVGP | None = None
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
        elbo_mode = self.hyperparameters == "elbo"
        n_hold = int(self.holdout * n) if (elbo_mode and n >= 50) else 0
        hold, train = perm[:n_hold], perm[n_hold:]
        M = min(self.num_inducing, train.numel())
        start = time.perf_counter()
        inducing = self._initial_inducing(U[train], M, gen)
        model = BatchedSVGP(inducing.unsqueeze(0).repeat(m, 1, 1).clone()).to(X)
        likelihood = GaussianLikelihood(batch_shape=torch.Size([m])).to(X)
        self.history = [{"inducing_s": time.perf_counter() - start}]
        if elbo_mode:
            self._train_elbo(model, likelihood, U, Y, train, hold, gen)
        else:
            start = time.perf_counter()
            self._hyperparameters_from_subset(model, likelihood, X, y, gen)
            self.history.append({"subset": min(self.subset_size, n), "subset_fit_s": time.perf_counter() - start})
        start = time.perf_counter()
        self._optimal_variational(model, likelihood, U, Y)
        self.history.append({"variational_s": time.perf_counter() - start})
        model.eval()
        likelihood.eval()
        self.model, self.likelihood, self.num_outputs, self._dim = model, likelihood, m, d
        self._fitted, self._cache = True, None
        return self

    def _initial_inducing(self, U: torch.Tensor, M: int, gen: torch.Generator) -> torch.Tensor:
        """``[M, d]`` initial inducing points in the unit cube: k-means centres of (at most
        20,000 of) the inputs, or a random subset."""
        pick = torch.randperm(U.shape[0], generator=gen)
        if self.inducing == "random" or M >= U.shape[0]:
            return U[pick[:M].to(U.device)].clone()
        from scipy.cluster.vq import kmeans2

        sample = U[pick[:20_000].to(U.device)].cpu().numpy()
        # random initial centres: k-means++ seeding in SciPy costs O(n M² d) (385 s for M = 2,048)
        with warnings.catch_warnings():  # an empty cluster keeps its initial centre, a data point
            warnings.simplefilter("ignore", UserWarning)
            centres, _ = kmeans2(sample, M, iter=10, minit="points", seed=self.seed)
        return torch.as_tensor(centres).to(U)

    def _hyperparameters_from_subset(self, model, likelihood, X, y, gen) -> None:
        """Kernel, noise and mean of an exact GP (Matérn-5/2 ARD with output scale) fitted on a
        random subset, converted to this model's input scaling and output standardisation."""
        from .gp import ExactGP

        n = X.shape[0]
        idx = torch.randperm(n, generator=gen)[: min(self.subset_size, n)].to(X.device)
        exact = ExactGP(outputscale=True, seed=self.seed, cholesky_up_to=self.subset_size).fit(
            X[idx], y[idx], bounds=self.bounds)
        em = exact.model
        m = y.shape[-1]
        ratio = (em.outcome_transform.stdvs.reshape(-1) / self.y_std).reshape(m)  # exact y units -> ours
        with torch.no_grad():
            kernel = em.covar_module
            model.covar_module.base_kernel.lengthscale = kernel.base_kernel.lengthscale.detach().reshape(m, 1, -1)
            model.covar_module.outputscale = kernel.outputscale.detach().reshape(m) * ratio**2
            likelihood.noise = em.likelihood.noise.detach().reshape(m, 1) * ratio.reshape(m, 1) ** 2
            const_y = em.mean_module.constant.detach().reshape(m) * em.outcome_transform.stdvs.reshape(m) \
                + em.outcome_transform.means.reshape(m)
            model.mean_module.constant.copy_(((const_y - self.y_mean) / self.y_std).reshape(model.mean_module.constant.shape))

    def _optimal_variational(self, model, likelihood, U: torch.Tensor, Y: torch.Tensor) -> None:
        """Set the whitened q(u) = N(m, S) to its optimum for the current kernel, noise and
        inducing points (see the class docstring), streaming over the data in chunks."""
        strategy = model.variational_strategy
        dist = strategy._variational_distribution
        with torch.no_grad():
            Z = strategy.inducing_points.detach()  # [m, M, d]
            m, M = Z.shape[0], Z.shape[-2]
            kernel = model.covar_module
            jitter = gpytorch.settings.variational_cholesky_jitter.value(Z.dtype)
            eye = torch.eye(M, dtype=Z.dtype, device=Z.device)
            with gpytorch.settings.lazily_evaluate_kernels(False):
                Kzz = kernel(Z, Z).to_dense() + jitter * eye
                L = torch.linalg.cholesky(Kzz)
                noise = likelihood.noise.detach().reshape(m, 1, 1)
                resid = Y - model.mean_module.constant.detach().reshape(m, 1)  # [m, n]
                AA = torch.zeros(m, M, M, dtype=Z.dtype, device=Z.device)
                Ay = torch.zeros(m, M, 1, dtype=Z.dtype, device=Z.device)
                step = stream_rows(8.0 * m * (3 * M + 8))
                for s in range(0, U.shape[0], step):
                    Uc = U[s:s + step].unsqueeze(0).expand(m, -1, -1)
                    A = torch.linalg.solve_triangular(L, kernel(Z, Uc).to_dense(), upper=False)  # [m, M, c]
                    AA.add_(A @ A.transpose(-1, -2))
                    Ay.add_(A @ resid[:, s:s + step].unsqueeze(-1))
            precision = eye + AA / noise
            Lp = robust_cholesky(precision)
            mean = torch.cholesky_solve(Ay / noise, Lp)  # [m, M, 1]
            covar = torch.cholesky_inverse(Lp)
            dist.variational_mean.copy_(mean.squeeze(-1).reshape(dist.variational_mean.shape))
            dist.chol_variational_covar.copy_(robust_cholesky(covar).reshape(dist.chol_variational_covar.shape))
            # otherwise GPyTorch re-initialises q(u) to the prior on its first forward pass
            strategy.variational_params_initialized.fill_(1)

    def _train_elbo(self, model, likelihood, U, Y, train, hold, gen) -> None:
        """Adam on the ELBO over mini-batches; keeps the state with the best hold-out likelihood."""
        m, n_hold = Y.shape[0], hold.numel()
        model.train()
        likelihood.train()
        elbo = VariationalELBO(likelihood, model, num_data=train.numel())
        optim = torch.optim.Adam([*model.parameters(), *likelihood.parameters()], lr=self.lr)
        best, best_state, stale, start = -math.inf, None, 0, time.perf_counter()
        for epoch in range(self.max_epochs):
            order = train[torch.randperm(train.numel(), generator=gen).to(U.device)]
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
