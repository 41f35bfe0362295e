"""Deep kernel learning: a GP whose kernel acts on the features of a neural network
(Wilson, Hu, Salakhutdinov & Xing 2016, "Deep Kernel Learning"; the stochastic variational
form of Wilson et al. 2016, "Stochastic Variational Deep Kernel Learning").

``k(x, x') = k_base(g(x), g(x'))`` with g an MLP ending in ``tanh`` (features in [−1, 1]^D)
and ``k_base`` a GPyTorch RBF or Matérn kernel with ARD length scales and an output scale. The
network and the GP hyperparameters are trained jointly by Adam on the exact marginal likelihood
(exact variant) or on the evidence lower bound over mini-batches with inducing points in the
feature space (variational variant), with early stopping on the predictive log likelihood of a
held-out fraction.

After training, the posterior is exposed through the same chunked algebra as
:class:`~bayesal.models.ExactGP` and :class:`~bayesal.models.SparseGP`
(:class:`~bayesal.models.algebra.ExactGaussianAlgebra` with the network as input transform), so
greedy batches, integrated variance, EPIG and box optimisation work unchanged.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import gpytorch
import torch
from gpytorch.distributions import MultivariateNormal
from gpytorch.kernels import MaternKernel, RBFKernel, ScaleKernel
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.means import ConstantMean
from gpytorch.mlls import ExactMarginalLogLikelihood, VariationalELBO
from torch import nn

from ..errors import InvalidInput, NotFitted
from ..validation import as_tensor, check_count, check_X, check_y
from .algebra import ExactGaussianAlgebra
from .base import AlgebraSurrogate, ConditionedSurrogate
from .sparse import BatchedSVGP

__all__ = ["DeepKernelGP"]


def _feature_net(d: int, hidden: Sequence[int], features: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = d
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers += [nn.Linear(width, features), nn.Tanh()]
    return nn.Sequential(*layers)


def _base_kernel(kernel: str, features: int) -> ScaleKernel:
    if kernel == "rbf":
        return ScaleKernel(RBFKernel(ard_num_dims=features))
    if kernel == "matern52":
        return ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=features))
    raise InvalidInput("kernel", "'rbf' or 'matern52'", repr(kernel))


class _ExactDKL(gpytorch.models.ExactGP):
    def __init__(self, U, Y, likelihood, net, kernel):
        super().__init__(U, Y, likelihood)
        self.net, self.mean_module, self.covar_module = net, ConstantMean(), kernel

    def forward(self, x):
        z = self.net(x)
        return MultivariateNormal(self.mean_module(z), self.covar_module(z))


class DeepKernelGP(AlgebraSurrogate):
    """A GP regression surrogate on learned network features (see module doc). One output.

    Args:
        hidden: widths of the feature network's hidden layers.
        features: D, the feature dimension the kernel sees.
        kernel: ``"rbf"`` or ``"matern52"`` on the features.
        variational: False for the exact GP (n up to a few thousand), True for the stochastic
            variational GP with ``num_inducing`` inducing points and mini-batches.
        num_inducing, batch_size: of the variational variant.
        lr, max_epochs, holdout, patience, min_holdout: Adam training and early stopping on the
            held-out predictive log likelihood (skipped below ``min_holdout`` held-out labels).
        seed: seed of the initialisation, the split and the mini-batches.

    Runs in float64 (the GP algebra's dtype).
    """

    def __init__(self, hidden: Sequence[int] = (64, 64), features: int = 8, kernel: str = "rbf",
                 variational: bool = False, num_inducing: int = 128, batch_size: int = 256, lr: float = 0.01,
                 max_epochs: int = 300, holdout: float = 0.1, patience: int = 30, min_holdout: int = 5,
                 seed: int = 0):
        _base_kernel(kernel, 1)  # validates the name
        if not 0 <= holdout < 0.5:
            raise InvalidInput("holdout", "a fraction in [0, 0.5)", repr(holdout))
        self.hidden, self.feature_dim, self.kernel = tuple(int(h) for h in hidden), check_count(features, "features"), kernel
        self.variational = bool(variational)
        self.num_inducing, self.batch_size = check_count(num_inducing, "num_inducing"), check_count(batch_size, "batch_size")
        self.lr, self.max_epochs = float(lr), check_count(max_epochs, "max_epochs")
        self.holdout, self.patience, self.min_holdout, self.seed = float(holdout), int(patience), int(min_holdout), int(seed)
        self._fitted, self._cache = False, None
        self.history: list[dict[str, float]] = []

    def __repr__(self) -> str:
        kind = "variational" if self.variational else "exact"
        return f"DeepKernelGP({kind}, features={self.feature_dim}, kernel={self.kernel!r}, fitted={self._fitted})"

    # -- fitting ------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, bounds: Any = None) -> "DeepKernelGP":
        """Train on ``X: [n, d]``, ``y: [n]`` (``bounds: [2, d]`` fixes the input scaling to [−1, 1])."""
        X = check_X(X, "X")
        y = check_y(y, "y", n=X.shape[0])
        if y.shape[-1] != 1:
            raise InvalidInput("y", "one output column for DeepKernelGP", f"{y.shape[-1]} columns")
        n, d = X.shape
        if bounds is None:
            lo, hi = X.min(0).values, X.max(0).values
            bounds = torch.stack([lo, torch.where(hi > lo, hi, lo + 1.0)])
        self.bounds = as_tensor(bounds, "bounds").reshape(2, d).to(X)
        self.y_mean = y.mean(0)
        std = y.std(0) if n > 1 else torch.ones(1, dtype=y.dtype)
        self.y_std = torch.where(std > 0, std, torch.ones_like(std))
        U = self._scale(X)
        Y = ((y - self.y_mean) / self.y_std)[:, 0]
        gen = torch.Generator().manual_seed(self.seed)
        perm = torch.randperm(n, generator=gen).to(X.device)
        n_hold = int(round(self.holdout * n))
        if n_hold < self.min_holdout or n - n_hold < 3:
            n_hold = 0
        hold, train = perm[:n_hold], perm[n_hold:]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = _feature_net(d, self.hidden, self.feature_dim).to(X)
            if self.variational:
                self._fit_variational(net, U, Y, train, hold, gen)
            else:
                self._fit_exact(net, U, Y, train, hold)
        self._dim, self.num_outputs, self._fitted, self._cache = d, 1, True, None
        return self

    def _scale(self, X: torch.Tensor) -> torch.Tensor:
        return 2 * (X - self.bounds[0]) / (self.bounds[1] - self.bounds[0]) - 1

    def _early_stop(self, score: float, state: dict) -> bool:
        """Record a held-out score; True when training should stop."""
        if score > self._best + 1e-4:
            self._best, self._best_state, self._stale = score, copy.deepcopy(state), 0
        else:
            self._stale += 1
        return self._stale >= self.patience

    def _fit_exact(self, net, U, Y, train, hold) -> None:
        likelihood = GaussianLikelihood().to(U)
        model = _ExactDKL(U[train], Y[train], likelihood, net, _base_kernel(self.kernel, self.feature_dim)).to(U)
        mll = ExactMarginalLogLikelihood(likelihood, model)
        optim = torch.optim.Adam(model.parameters(), lr=self.lr)
        self._best, self._best_state, self._stale = -math.inf, None, 0
        self.history = []
        for epoch in range(self.max_epochs):
            model.train()
            likelihood.train()
            optim.zero_grad()
            loss = -mll(model(U[train]), Y[train])
            loss.backward()
            optim.step()
            record = {"epoch": epoch, "neg_mll": float(loss.detach())}
            if hold.numel():
                model.eval()
                likelihood.eval()
                with torch.no_grad(), gpytorch.settings.fast_computations(False):
                    pred = likelihood(model(U[hold]))
                    score = float(-0.5 * (math.log(2 * math.pi) + pred.variance.log()
                                          + (Y[hold] - pred.mean).pow(2) / pred.variance).mean())
                record["holdout_loglik"] = score
                self.history.append(record)
                if self._early_stop(score, model.state_dict()):
                    break
            else:
                self.history.append(record)
        if self._best_state is not None:
            model.load_state_dict(self._best_state)
        model.eval()
        likelihood.eval()
        self.model, self.likelihood, self._train_U, self._train_Y = model, likelihood, U[train], Y[train]

    def _fit_variational(self, net, U, Y, train, hold, gen) -> None:
        with torch.no_grad():
            start = train[torch.randperm(train.numel(), generator=gen)[: self.num_inducing].to(U.device)]
            Z = net(U[start])
        gp = BatchedSVGP(Z.unsqueeze(0).clone())
        if self.kernel == "rbf":
            gp.covar_module = ScaleKernel(RBFKernel(ard_num_dims=self.feature_dim, batch_shape=torch.Size([1])),
                                          batch_shape=torch.Size([1]))
        else:
            gp.covar_module = ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=self.feature_dim, batch_shape=torch.Size([1])),
                                          batch_shape=torch.Size([1]))
        model = nn.ModuleDict({"net": net, "gp": gp}).to(U)
        likelihood = GaussianLikelihood(batch_shape=torch.Size([1])).to(U)
        elbo = VariationalELBO(likelihood, gp, num_data=train.numel())
        optim = torch.optim.Adam([*model.parameters(), *likelihood.parameters()], lr=self.lr)
        self._best, self._best_state, self._stale = -math.inf, None, 0
        self.history = []
        for epoch in range(self.max_epochs):
            model.train()
            likelihood.train()
            order = train[torch.randperm(train.numel(), generator=gen).to(U.device)]
            total = 0.0
            for s in range(0, order.numel(), self.batch_size):
                idx = order[s:s + self.batch_size]
                optim.zero_grad()
                loss = -elbo(gp(net(U[idx]).unsqueeze(0)), Y[idx].unsqueeze(0)).sum()
                loss.backward()
                optim.step()
                total += float(loss.detach()) * idx.numel()
            record = {"epoch": epoch, "elbo": -total / order.numel()}
            if hold.numel():
                model.eval()
                likelihood.eval()
                with torch.no_grad():
                    out = gp(net(U[hold]).unsqueeze(0))
                    var = out.variance[0] + likelihood.noise.reshape(-1)
                    score = float((-0.5 * (math.log(2 * math.pi) + var.log() + (Y[hold] - out.mean[0]).pow(2) / var)).mean())
                record["holdout_loglik"] = score
                self.history.append(record)
                state = {"model": model.state_dict(), "likelihood": likelihood.state_dict()}
                if self._early_stop(score, state):
                    break
            else:
                self.history.append(record)
        if self._best_state is not None:
            model.load_state_dict(self._best_state["model"])
            likelihood.load_state_dict(self._best_state["likelihood"])
        model.eval()
        likelihood.eval()
        self.model, self.likelihood = model, likelihood

    # -- posterior ------------------------------------------------------------------------------------
    @property
    def net(self) -> nn.Module:
        """The trained feature network ``[..., d] -> [..., D]`` (on inputs scaled to [−1, 1])."""
        return self.model["net"] if self.variational else self.model.net

    def features_of(self, X: torch.Tensor) -> torch.Tensor:
        """Learned features ``[..., N, D]`` of raw inputs ``X: [..., N, d]`` (differentiable)."""
        return self.net(self._scale(X))

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        if not self._fitted:
            raise NotFitted("DeepKernelGP has no data yet: call fit(X, y) first")
        return check_X(X, name, dim=self._dim).to(self.bounds)

    def _kernel(self, A: torch.Tensor, B: torch.Tensor, diag: bool = False) -> torch.Tensor:
        covar = self.model["gp"].covar_module if self.variational else self.model.covar_module
        batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2], (1,))
        with gpytorch.settings.lazily_evaluate_kernels(False):
            k = covar(A.expand(*batch, *A.shape[-2:]), B.expand(*batch, *B.shape[-2:]), diag=diag)
        return k.to_dense() if hasattr(k, "to_dense") else k

    def _algebra(self) -> ExactGaussianAlgebra:
        if not self._fitted:
            raise NotFitted("DeepKernelGP has no data yet: call fit(X, y) first")
        if self._cache is not None:
            return self._cache
        with torch.no_grad():
            if not self.variational:
                F_train = self.net(self._train_U).unsqueeze(0)  # [1, n, D]
                self._cache = ExactGaussianAlgebra(
                    self._kernel, self.features_of, F_train.detach(),
                    noise=self.likelihood.noise.detach().reshape(1),
                    targets=self._train_Y.unsqueeze(0), const=self.model.mean_module.constant.detach().reshape(1),
                    y_mean=self.y_mean, y_std=self.y_std,
                )
            else:
                gp = self.model["gp"]
                strategy = gp.variational_strategy
                Z = strategy.inducing_points.detach()  # [1, M, D]
                jitter = gpytorch.settings.variational_cholesky_jitter.value(Z.dtype)
                dist = strategy._variational_distribution
                S_chol = dist.chol_variational_covar.detach().tril()
                eye = torch.eye(Z.shape[-2], dtype=Z.dtype, device=Z.device)
                algebra = ExactGaussianAlgebra(
                    self._kernel, self.features_of, Z, noise=torch.full((1,), jitter, dtype=Z.dtype),
                    const=gp.mean_module.constant.detach().reshape(1), y_mean=self.y_mean, y_std=self.y_std,
                    middle=eye - S_chol @ S_chol.transpose(-1, -2),
                    observation_noise=self.likelihood.noise.detach().reshape(-1),
                )
                m_v = dist.variational_mean.detach().unsqueeze(-1)  # [1, M, 1]
                algebra.alpha = torch.linalg.solve_triangular(algebra.L.transpose(-1, -2), m_v, upper=True)
                self._cache = algebra
        return self._cache

    def condition_on(self, X_pending: Any) -> ConditionedSurrogate:
        """The posterior updated for noisy observations at ``X_pending: [q, d]`` (exact Gaussian
        update of the covariance, mean unchanged)."""
        return ConditionedSurrogate(self, self._check_points(X_pending, "X_pending"))
