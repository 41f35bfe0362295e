"""Exact Gaussian-process regression on BoTorch's ``SingleTaskGP``.

The fitted BoTorch model is kept in :attr:`ExactGP.model`, so BoTorch's acquisitions and
``optimize_acqf`` work on it directly. For pools, :class:`ExactGP` also keeps the Cholesky factor
of the training covariance, so that posterior marginals and cross-covariances of any two point
sets are computed in chunks with one triangular solve per chunk
(``W(A) = L⁻¹ k(X_train, A)``, ``Σ(A, B) = k(A, B) − W(A)ᵀ W(B)``): the building block of the
rank-1 greedy batch updates in :mod:`bayesal.select`.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import gpytorch
import torch
from botorch.exceptions.warnings import InputDataWarning, OptimizationWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import (
    get_covar_module_with_dim_scaled_prior,
    get_gaussian_likelihood_with_lognormal_prior,
)
from gpytorch.kernels import Kernel, MaternKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood

from ..errors import InvalidInput, NotFitted, UnknownName
from ..posteriors import GaussianPosterior
from ..settings import get_memory_budget, rows_per_chunk
from ..validation import DEFAULT_DTYPE, as_tensor, check_X, check_y
from .base import CovarianceColumns, Surrogate

__all__ = ["ExactGP", "KERNELS", "make_kernel"]

KERNELS = ("matern52", "matern32", "matern12", "rbf")


def make_kernel(kernel: str | Kernel, dim: int, batch_shape: torch.Size, outputscale: bool) -> Kernel:
    """A GPyTorch kernel by name, with BoTorch's dimension-scaled lengthscale prior.

    The prior is the log-normal of Hvarfner, Hellsten & Nardi (2024), "Vanilla Bayesian
    Optimization Performs Great in High Dimensions", which BoTorch uses by default; here it is
    applied to every kernel so that the Matérn family and the RBF are comparable.
    """
    if isinstance(kernel, Kernel):
        base = copy.deepcopy(kernel)
    elif kernel in ("rbf", "matern52"):
        base = get_covar_module_with_dim_scaled_prior(dim, batch_shape, use_rbf_kernel=(kernel == "rbf"))
    elif kernel in ("matern32", "matern12"):
        template = get_covar_module_with_dim_scaled_prior(dim, batch_shape, use_rbf_kernel=False)
        base = MaternKernel(
            nu=1.5 if kernel == "matern32" else 0.5,
            ard_num_dims=dim,
            batch_shape=batch_shape,
            lengthscale_prior=template.lengthscale_prior,
            lengthscale_constraint=template.raw_lengthscale_constraint,
        )
    else:
        raise UnknownName("kernel", str(kernel), KERNELS)
    return ScaleKernel(base, batch_shape=batch_shape) if outputscale else base


class ExactGP(Surrogate):
    """Exact GP regression: inputs normalised to the unit cube, outputs standardised, kernel
    hyperparameters and noise fitted by maximising the marginal likelihood (with BoTorch's priors).

    Args:
        kernel: ``"matern52"`` (default), ``"matern32"``, ``"matern12"``, ``"rbf"`` or any
            GPyTorch ``Kernel`` (copied at each fit; its ``batch_shape`` must match m outputs).
        noise: observation-noise variance in the units of y, or None to learn it.
        outputscale: wrap the kernel in a ``ScaleKernel`` (BoTorch's current default omits it,
            relying on standardised outputs).
        seed: seed of the random restarts of the hyperparameter fit.

    After :meth:`fit`, :attr:`model` is the BoTorch ``SingleTaskGP``. With m outputs the outputs
    are modelled as independent GPs with their own hyperparameters.

    >>> gp = ExactGP().fit(X, y)            # X: [n, d], y: [n] or [n, m]
    >>> post = gp.posterior(X_new)          # GaussianPosterior, mean/variance [N, m]
    """

    def __init__(self, kernel: str | Kernel = "matern52", noise: float | None = None,
                 outputscale: bool = False, seed: int = 0):
        if not isinstance(kernel, Kernel) and kernel not in KERNELS:
            raise UnknownName("kernel", str(kernel), KERNELS)
        if noise is not None and not (float(noise) > 0):
            raise InvalidInput("noise", "a positive variance or None (learned)", repr(noise))
        self.kernel = kernel
        self.noise = None if noise is None else float(noise)
        self.outputscale = outputscale
        self.seed = seed
        self.model: SingleTaskGP | None = None
        self._fitted = False

    def __repr__(self) -> str:
        name = self.kernel if isinstance(self.kernel, str) else type(self.kernel).__name__
        return f"ExactGP(kernel={name!r}, noise={self.noise}, n_train={self.num_train})"

    # -- fitting ------------------------------------------------------------------------------
    @property
    def num_train(self) -> int:
        return 0 if self.model is None else int(self.model.train_inputs[0].shape[-2])

    def fit(self, X: Any, y: Any, bounds: Any = None) -> "ExactGP":
        """Fit to ``X: [n, d]``, ``y: [n]`` or ``[n, m]``.

        ``bounds: [2, d]`` fixes the input normalisation (the search space's box); without it
        the training data's range is used.
        """
        X = check_X(X, "X")
        y = check_y(y, "y", n=X.shape[0])
        d, m = X.shape[-1], y.shape[-1]
        if bounds is None:
            lo, hi = X.min(0).values, X.max(0).values
            bounds = torch.stack([lo, torch.where(hi > lo, hi, lo + 1.0)])
        else:
            bounds = as_tensor(bounds, "bounds").reshape(2, d).to(X)
        batch_shape = torch.Size([m]) if m > 1 else torch.Size()
        likelihood = get_gaussian_likelihood_with_lognormal_prior(batch_shape=batch_shape)
        outcome = Standardize(m=m)
        model = SingleTaskGP(
            X, y,
            likelihood=likelihood,
            covar_module=make_kernel(self.kernel, d, batch_shape, self.outputscale),
            outcome_transform=outcome,
            input_transform=Normalize(d=d, bounds=bounds),
        ).to(X)
        if self.noise is not None:
            # A fixed homoskedastic noise, expressed in the standardised units the model sees.
            stdvs = model.outcome_transform.stdvs.reshape(-1)
            model.likelihood.noise = (self.noise / stdvs**2).reshape(model.likelihood.noise.shape)
            model.likelihood.raw_noise.requires_grad_(False)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with torch.random.fork_rng(), warnings.catch_warnings():
            torch.manual_seed(self.seed)
            warnings.simplefilter("ignore", category=OptimizationWarning)
            warnings.simplefilter("ignore", category=InputDataWarning)
            fit_gpytorch_mll(mll)
        model.eval()
        self._set_model(model, m)
        return self

    def _set_model(self, model: SingleTaskGP, m: int) -> None:
        self.model = model
        self.num_outputs = m
        self._fitted = True
        self._cache = None

    # -- exact algebra (chunked) ----------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self._fitted:
            raise NotFitted("ExactGP has no data yet: call fit(X, y) (or tell the learner some labels) first")

    def _algebra(self) -> dict[str, torch.Tensor]:
        """Cholesky factor of the training covariance and the weights of the posterior mean,
        in the model's internal (normalised, standardised) units, with an output batch axis."""
        if self._cache is not None:
            return self._cache
        model = self.model
        Xt = model.train_inputs[0]
        yt = model.train_targets
        if self.num_outputs == 1:
            Xt, yt = Xt.unsqueeze(0), yt.unsqueeze(0)  # [1, n, d], [1, n]
        with torch.no_grad(), gpytorch.settings.lazily_evaluate_kernels(False):
            K = model.covar_module(Xt).to_dense()  # [m, n, n]
            noise = model.likelihood.noise.reshape(-1, 1)  # [m or 1, 1]
            K = K + torch.diag_embed(noise.expand(K.shape[:-1]))
            L = _robust_cholesky(K)
            const = model.mean_module.constant.reshape(-1, 1)  # [m or 1, 1]
            alpha = torch.cholesky_solve((yt - const).unsqueeze(-1), L)  # [m, n, 1]
            ot = model.outcome_transform
            cache = {
                "Xt": Xt, "L": L, "alpha": alpha, "const": const,
                "noise": noise.reshape(-1).expand(self.num_outputs),
                "y_mean": ot.means.reshape(-1), "y_std": ot.stdvs.reshape(-1),
            }
            self._cache = {k: v.detach() for k, v in cache.items()}
        return self._cache

    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        return self.model.input_transform(X)

    def _kernel(self, A: torch.Tensor, B: torch.Tensor, diag: bool = False) -> torch.Tensor:
        """Prior kernel between transformed inputs: ``[m, Na, Nb]`` or ``[m, Na]`` when diag."""
        with gpytorch.settings.lazily_evaluate_kernels(False):
            k = self.model.covar_module(A, B, diag=diag)
        k = k.to_dense() if hasattr(k, "to_dense") else k
        if k.dim() == (1 if diag else 2):
            k = k.unsqueeze(0)
        return k.expand(self.num_outputs, *k.shape[1:])

    def features(self, X: torch.Tensor) -> torch.Tensor:
        """``W(X) = L⁻¹ k(X_train, X)``: ``[m, n, N]`` (internal units); Σ(A,B) = k(A,B) − W(A)ᵀW(B)."""
        self._require_fitted()
        c = self._algebra()
        kXA = self._kernel(c["Xt"], self._transform(X))  # [m, n, N]
        return torch.linalg.solve_triangular(c["L"], kXA, upper=False)

    @property
    def noise_variance(self) -> torch.Tensor:
        """Observation-noise variance ``[m]`` in the units of y."""
        self._require_fitted()
        c = self._algebra()
        return c["noise"] * c["y_std"] ** 2

    def posterior(self, X: Any, chunk_size: int | None = None) -> GaussianPosterior:
        """Posterior of f at ``X: [N, d]``; marginals computed in chunks, joint covariance lazily."""
        self._require_fitted()
        X = check_X(X, "X", dim=self.model.train_inputs[0].shape[-1]).to(self.model.train_inputs[0])
        c = self._algebra()
        n = c["Xt"].shape[-2]
        if chunk_size is None:
            chunk_size = rows_per_chunk(8.0 * self.num_outputs * (3 * n + 8))
        means, variances = [], []
        with torch.no_grad():
            for start in range(0, X.shape[0], chunk_size):
                A = self._transform(X[start:start + chunk_size])
                kXA = self._kernel(c["Xt"], A)  # [m, n, c]
                W = torch.linalg.solve_triangular(c["L"], kXA, upper=False)
                mean = (kXA.transpose(-1, -2) @ c["alpha"]).squeeze(-1) + c["const"]  # [m, c]
                var = self._kernel(A, A, diag=True) - W.pow(2).sum(-2)  # [m, c]
                means.append(mean)
                variances.append(var.clamp_min(0.0))
        mean = torch.cat(means, -1).T * c["y_std"] + c["y_mean"]  # [N, m]
        var = torch.cat(variances, -1).T * c["y_std"] ** 2
        return GaussianPosterior(
            mean, var, noise_variance=self.noise_variance,
            covariance_fn=lambda idx: self.covariance(X[idx], X[idx]),
        )

    def covariance(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """Posterior cross-covariance of f, ``[m, Na, Nb]`` in the units of y²."""
        self._require_fitted()
        A = torch.as_tensor(A).to(self.model.train_inputs[0])
        B = torch.as_tensor(B).to(A)
        with torch.no_grad():
            c = self._algebra()
            WA, WB = self.features(A), self.features(B)
            cov = self._kernel(self._transform(A), self._transform(B)) - WA.transpose(-1, -2) @ WB
        return cov * (c["y_std"] ** 2).reshape(-1, 1, 1)

    def covariance_columns(self, X: torch.Tensor):
        """Columns ``j -> Σ(X, X[j]) [m, N]`` over ``X: [N, d]``; caches ``W(X)`` when it fits the
        memory budget (O(n N) per column), else recomputes it chunk by chunk."""
        self._require_fitted()
        X = X.to(self.model.train_inputs[0])
        if 8.0 * self.num_outputs * self.num_train * X.shape[0] <= get_memory_budget():
            return _CachedColumns(self, X)
        step = rows_per_chunk(8.0 * self.num_outputs * (2 * self.num_train + 8))
        return CovarianceColumns(self, X, chunk_size=step)

    def joint_posterior(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable joint posterior of f on b batches ``X: [b, q, d]``:
        mean ``[b, q, m]`` and covariance ``[b, m, q, q]`` (units of y), for box optimisation."""
        self._require_fitted()
        model = self.model
        Xt = model.transform_inputs(X)
        if self.num_outputs > 1:
            Xt = Xt.unsqueeze(-3)  # broadcast against the model's output batch [m]
        mvn = model(Xt)
        mean, cov = mvn.mean, mvn.covariance_matrix
        if self.num_outputs == 1:
            mean, cov = mean.unsqueeze(-2), cov.unsqueeze(-3)  # [b, 1, q], [b, 1, q, q]
        ot = model.outcome_transform
        std, mu = ot.stdvs.reshape(-1), ot.means.reshape(-1)
        mean = mean.transpose(-1, -2) * std + mu
        return mean, cov * (std**2).reshape(-1, 1, 1)

    def condition_on(self, X_pending: Any) -> "ExactGP":
        """A copy conditioned on noisy observations at ``X_pending: [q, d]`` equal to the current
        posterior mean (the mean stays unchanged; the variance shrinks by the exact GP update).
        Hyperparameters are kept; nothing is refitted."""
        self._require_fitted()
        Xp = check_X(X_pending, "X_pending", dim=self.model.train_inputs[0].shape[-1])
        Xp = Xp.to(self.model.train_inputs[0])
        with torch.no_grad():
            mean = self.model.posterior(Xp).mean  # [q, m]
            conditioned = self.model.condition_on_observations(Xp, mean)
        conditioned.eval()
        clone = copy.copy(self)
        clone._set_model(conditioned, self.num_outputs)
        return clone


def _robust_cholesky(K: torch.Tensor, max_tries: int = 6) -> torch.Tensor:
    """Cholesky factor of ``K: [..., n, n]``, adding growing jitter only when needed."""
    L, info = torch.linalg.cholesky_ex(K)
    if not bool((info > 0).any()):
        return L
    scale = K.diagonal(dim1=-2, dim2=-1).mean(-1, keepdim=True)
    eye = torch.eye(K.shape[-1], dtype=K.dtype, device=K.device)
    for i in range(max_tries):
        jitter = (1e-8 * 10**i) * scale.unsqueeze(-1)
        L, info = torch.linalg.cholesky_ex(K + jitter * eye)
        if not bool((info > 0).any()):
            return L
    raise torch.linalg.LinAlgError("training covariance is not positive definite even with jitter")


class _CachedColumns:
    """Covariance columns of an exact GP over a fixed pool, with ``W = L⁻¹ k(X_train, X)`` cached
    (``[m, n, N]``, one O(n² N) setup) so that each column costs O(n N)."""

    def __init__(self, gp: ExactGP, X: torch.Tensor):
        c = gp._algebra()
        self.gp, self.scale = gp, (c["y_std"] ** 2).reshape(-1, 1)
        with torch.no_grad():
            self.T = gp._transform(X)
            step = rows_per_chunk(8.0 * gp.num_outputs * (2 * c["Xt"].shape[-2] + 8))
            self.W = torch.cat([gp.features(X[s:s + step]) for s in range(0, X.shape[0], step)], -1)

    def __call__(self, j: int) -> torch.Tensor:
        with torch.no_grad():
            prior = self.gp._kernel(self.T, self.T[j:j + 1])[..., 0]  # [m, N]
            return (prior - (self.W.transpose(-1, -2) @ self.W[..., j:j + 1])[..., 0]) * self.scale
