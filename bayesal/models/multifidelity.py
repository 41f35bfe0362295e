"""Multi-fidelity surrogates: auto-regressive co-kriging and BoTorch's multi-fidelity GP.

Both are Gaussian surrogates over *augmented* inputs ``[N, d + 1]``: the d inputs and, in the last
column, the fidelity level ``s ∈ {0, .., S-1}`` (``S-1`` the highest, the target). On augmented
inputs they follow the :class:`~bayesal.models.base.Surrogate` contract: ``posterior`` gives the
marginals of ``f_s(x)`` and ``covariance(A, B)`` the joint posterior covariance of the latent
functions across fidelities, e.g. ``Cov(f_target(r), f_0(x))``, which is what a multi-fidelity
acquisition needs. :meth:`MultiFidelitySurrogate.at_target` is the ordinary d-input surrogate of
``f_target``, on which every existing Gaussian acquisition and metric works unchanged.

>>> model = CoKriging(num_fidelities=2).fit(X_aug, y)    # X_aug: [n, d + 1], last column 0 or 1
>>> model.at_target().posterior(X)                       # GaussianPosterior of f_1 at X: [N, d]
>>> model.covariance(model.augment(R, 1), model.augment(X, 0))   # [1, M, N] across fidelities
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gpytorch
import torch

from ..errors import InvalidInput, NotFitted
from ..posteriors import GaussianPosterior
from ..validation import as_tensor, check_X, check_y
from .algebra import ExactGaussianAlgebra, robust_cholesky
from .base import AlgebraSurrogate, CrossBlocks
from .gp import ExactGP, fit_exact_model

__all__ = ["MultiFidelitySurrogate", "CoKriging", "BoTorchMultiFidelityGP", "TargetFidelity", "augment"]


def augment(X: torch.Tensor, fidelity) -> torch.Tensor:
    """``[N, d + 1]``: the points ``X: [N, d]`` with the fidelity level(s) ``[N]`` (or one int)
    appended as the last column."""
    f = torch.as_tensor(fidelity, dtype=X.dtype, device=X.device)
    f = f.expand(X.shape[:-1]) if f.dim() == 0 else f.reshape(X.shape[:-1])
    return torch.cat([X, f.unsqueeze(-1)], -1)


class MultiFidelitySurrogate(AlgebraSurrogate):
    """Base class: a Gaussian surrogate on augmented inputs ``[N, d + 1]`` (last column: level).

    Attributes:
        num_fidelities: S.
        target_fidelity: ``S - 1``, the level whose function is being learned.
    """

    num_fidelities: int = 2

    @property
    def target_fidelity(self) -> int:
        """Index of the highest fidelity, ``num_fidelities − 1``: the level the campaign wants to predict."""
        return self.num_fidelities - 1

    def augment(self, X: Any, fidelity) -> torch.Tensor:
        """``[N, d + 1]`` augmented inputs from ``X: [N, d]`` and level(s) ``fidelity``."""
        return augment(as_tensor(X, "X"), fidelity)

    def _split_levels(self, X: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        X = check_X(X, name)
        if X.shape[-1] < 2:
            raise InvalidInput(name, "augmented inputs [N, d + 1] (last column: the fidelity level)",
                               f"shape {list(X.shape)}")
        lev = X[:, -1]
        if not bool((lev == lev.round()).all()) or bool((lev < 0).any()) or bool((lev > self.num_fidelities - 1).any()):
            raise InvalidInput(name, f"fidelity levels 0..{self.num_fidelities - 1} in the last column",
                               f"values {lev.unique()[:6].tolist()}")
        return X[:, :-1], lev.long()

    def observation_noise(self, levels: torch.Tensor) -> torch.Tensor:
        """Noise variance ``[N]`` of a new label at fidelity ``levels: [N]`` (y units)."""
        raise NotImplementedError

    def at_target(self) -> "TargetFidelity":
        """The d-input surrogate of the target fidelity ``f_{S-1}``."""
        return TargetFidelity(self, self.target_fidelity)

    def at_fidelity(self, level: int) -> "TargetFidelity":
        """The d-input surrogate of ``f_level``."""
        if not 0 <= int(level) < self.num_fidelities:
            raise InvalidInput("level", f"a fidelity level in 0..{self.num_fidelities - 1}", repr(level))
        return TargetFidelity(self, int(level))


class TargetFidelity(AlgebraSurrogate):
    """A multi-fidelity surrogate seen at one fidelity: an ordinary surrogate on ``[N, d]``.

    Posterior, covariance, covariance columns, reference blocks and differentiable joint
    posteriors are those of ``f_level`` (the fidelity column is appended internally), and
    :attr:`noise_variance` is that level's observation noise, so the Gaussian acquisitions,
    selectors and metrics of bayesal apply as they are.
    """

    def __init__(self, base: MultiFidelitySurrogate, level: int):
        self.base, self.level = base, int(level)
        self.num_outputs = 1
        self._fitted = base.is_fitted

    def __repr__(self) -> str:
        return f"TargetFidelity({self.base!r}, level={self.level})"

    def fit(self, X: Any, y: Any, bounds: Any = None):
        raise NotImplementedError("fit the multi-fidelity model on augmented inputs, then take at_target()")

    def _algebra(self):
        return self.base._algebra()

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        return self.base._check_points(augment(check_X(X, name), self.level), name)

    @property
    def noise_variance(self) -> torch.Tensor:
        """``[1]`` observation-noise variance of a label at this fidelity level."""
        lev = torch.tensor([self.level])
        return self.base.observation_noise(lev).reshape(1)

    def joint_posterior(self, X: torch.Tensor):
        """Differentiable mean ``[b, q, 1]`` and covariance ``[b, 1, q, q]`` of f at this level on ``X: [b,
        q, d]``."""
        return self._algebra().joint(self.base._check_points_batched(augment(X, self.level)))

    def reference_blocks(self, R: torch.Tensor):
        block = self._algebra().reference_blocks(self._check_points(R, "reference points"))
        return CrossBlocks(lambda Xc: block(self.base._check_points_batched(augment(Xc, self.level))))

    def reference_cross(self, R: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return self._algebra().reference_cross(self._check_points(R.to(X), "reference points"),
                                               self.base._check_points_batched(augment(X, self.level)))

    def condition_on(self, X_pending: Any):
        from .base import ConditionedSurrogate

        return ConditionedSurrogate(self, check_X(X_pending, "X_pending"))


# -- auto-regressive co-kriging -------------------------------------------------------------------------

class _CoKrigingAlgebra(ExactGaussianAlgebra):
    """Exact GP algebra with a noise variance per training point and a prior mean per level."""

    def __init__(self, kernel, transform, X_train, noise_train, targets, level_mean, target_noise):
        super().__init__(kernel, transform, X_train.unsqueeze(0), noise=target_noise.reshape(1))
        self.level_mean = level_mean
        with torch.no_grad():
            K = kernel(self.X_train, self.X_train) + torch.diag_embed(noise_train.reshape(1, -1))
            self.L = robust_cholesky(K).detach()
            lev = X_train[:, -1].round().long()
            resid = (targets.reshape(-1) - level_mean[lev]).reshape(1, -1, 1)
            self.alpha = torch.cholesky_solve(resid, self.L).detach()

    def _mean_of(self, X: torch.Tensor) -> torch.Tensor:
        return self.level_mean[X[..., -1].round().long()].unsqueeze(-1)

    def marginals(self, X, chunk_size=None):
        mean, var = super().marginals(X, chunk_size)
        return mean + self._mean_of(X), var

    def joint(self, X):
        mean, cov = super().joint(X)
        return mean + self._mean_of(X), cov


class _ScaledLowerMean(gpytorch.means.Mean):
    """Prior mean ``ρ · z + c`` of a δ_s GP whose last input column z is the (standardised)
    posterior mean of the level below; the kernel sees only the other columns."""

    def __init__(self):
        super().__init__()
        self.register_parameter("rho", torch.nn.Parameter(torch.ones(())))
        self.register_parameter("constant", torch.nn.Parameter(torch.zeros(())))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rho * x[..., -1] + self.constant


class CoKriging(MultiFidelitySurrogate):
    """Linear auto-regressive co-kriging (Kennedy & O'Hagan 2000, "Predicting the output from a
    complex computer code when fast approximations are available", Biometrika 87(1), 1–13):

        f_0(x) = δ_0(x),    f_s(x) = ρ_s f_{s-1}(x) + δ_s(x)   (s = 1 .. S-1),

    with independent GPs ``δ_s`` (constant mean, Matérn kernel, BoTorch's priors). The joint prior
    covariance is ``Cov(f_s(a), f_t(b)) = Σ_{k ≤ min(s, t)} P_ks P_kt k_k(a, b)`` with
    ``P_ks = ρ_{k+1} ⋯ ρ_s``, so the posterior is exact and joint across fidelities.

    Hyperparameters are fitted level by level, as in Kennedy & O'Hagan §3 and Le Gratiet (2013,
    "Bayesian analysis of hierarchical multifidelity codes", SIAM/ASA JUQ 1): ``δ_0`` on the
    level-0 data; then, for each s, a GP for ``y_s`` with prior mean ``ρ_s μ_{s-1}(x) + c_s``,
    where ``μ_{s-1}`` is the co-kriging posterior mean of ``f_{s-1}`` given the lower levels' data
    (``y_{s-1}`` itself, up to noise, for nested designs), and the δ_s kernel: ``ρ_s``, ``c_s``
    and the kernel hyperparameters are fitted together by maximum marginal likelihood (Kennedy &
    O'Hagan estimate ρ by generalised least squares given δ's correlation parameters: the same
    maximiser). With ``rho`` fixed, δ_s is fitted to ``y_s − ρ_s μ_{s-1}(x)``. The designs need not
    be nested. Each level needs at least two observations.

    Args:
        num_fidelities: S >= 1.
        kernel: kernel name of every δ (see :class:`~bayesal.models.ExactGP`).
        rho: fixed scale factor(s) ``ρ_1..ρ_{S-1}`` (one float for all), or None to fit them.
        delta_variance: None to fit the δ_s (s >= 1), or 0 to force ``δ_s = 0`` (then
            ``f_s = ρ_s f_{s-1}`` exactly).
        noise: fixed observation-noise variance in y units at every level, or None to learn it
            (then level s has its own noise).
        seed: seed of the hyperparameter fits.
    """

    def __init__(self, num_fidelities: int = 2, kernel: str = "matern52", rho: float | Sequence[float] | None = None,
                 delta_variance: float | None = None, noise: float | None = None, seed: int = 0):
        if int(num_fidelities) < 1:
            raise InvalidInput("num_fidelities", "an integer >= 1", repr(num_fidelities))
        if delta_variance is not None and float(delta_variance) != 0.0:
            raise InvalidInput("delta_variance", "None (fitted) or 0 (no discrepancy)", repr(delta_variance))
        self.num_fidelities = int(num_fidelities)
        self.kernel, self.noise, self.seed = kernel, noise, seed
        self.delta_variance = delta_variance
        if rho is not None:
            rho = [float(rho)] * (self.num_fidelities - 1) if isinstance(rho, (int, float)) else [float(r) for r in rho]
            if len(rho) != self.num_fidelities - 1:
                raise InvalidInput("rho", f"{self.num_fidelities - 1} scale factor(s)", f"{len(rho)}")
        self.rho_fixed = rho
        self._fitted = False
        self.levels: list = []

    def __repr__(self) -> str:
        rho = None if not self._fitted else [round(float(r), 4) for r in self.rho[1:]]
        return f"CoKriging(num_fidelities={self.num_fidelities}, rho={rho})"

    # -- kernel on transformed augmented inputs ------------------------------------------------------
    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        lo, hi = self._bounds
        return torch.cat([(X[..., :-1] - lo) / (hi - lo), X[..., -1:]], -1)

    def _kernel(self, A: torch.Tensor, B: torch.Tensor, diag: bool = False, upto: int | None = None) -> torch.Tensor:
        S = self.num_fidelities if upto is None else upto
        P = self._P
        la, lb = A[..., -1].round().long(), B[..., -1].round().long()
        xa, xb = A[..., :-1], B[..., :-1]
        total = None
        for k in range(S):
            model = self.levels[k]
            if model is None:
                continue
            with gpytorch.settings.lazily_evaluate_kernels(False):
                K = model.covar_module(xa, xb, diag=diag)
            K = (K.to_dense() if hasattr(K, "to_dense") else K) * self._scale[k]
            ca, cb = P[k][la], P[k][lb]
            term = ca * K * cb if diag else ca.unsqueeze(-1) * K * cb.unsqueeze(-2)
            total = term if total is None else total + term
        if total is None:
            shape = torch.broadcast_shapes(la.shape, lb.shape) if diag else (*torch.broadcast_shapes(la.shape[:-1], lb.shape[:-1]), la.shape[-1], lb.shape[-1])
            return A.new_zeros(shape)
        return total

    def _build_P(self, rho: list[float]) -> torch.Tensor:
        S = self.num_fidelities
        P = torch.zeros(S, S, dtype=self._Xt.dtype, device=self._Xt.device)
        for k in range(S):
            P[k, k] = 1.0
            for s in range(k + 1, S):
                P[k, s] = P[k, s - 1] * rho[s]
        return P

    def _make_algebra(self, upto: int) -> _CoKrigingAlgebra:
        """The exact posterior given the data of levels ``< upto`` (all of it when upto = S)."""
        keep = self._lev < upto
        X = self._Xaug[keep]
        lev = self._lev[keep]
        level_mean = self._P.T @ self._c  # [S]: m_s = Σ_k P_ks c_k
        kernel = lambda A, B, diag=False: self._kernel(A, B, diag, upto=upto)  # noqa: E731
        return _CoKrigingAlgebra(kernel, self._transform, self._transform(X), self._noise[lev], self._y[keep],
                                 level_mean, self._noise[min(upto, self.num_fidelities) - 1])

    # -- fitting -------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, bounds: Any = None) -> "CoKriging":
        """Fit to augmented inputs ``X: [n, d + 1]`` (last column: level) and labels ``y: [n]``.

        ``bounds: [2, d]`` fixes the input normalisation of every level (the search box);
        without it the range of all the inputs is used.
        """
        x, lev = self._split_levels(X, "X")
        y = check_y(y, "y", n=x.shape[0], m=1).reshape(-1)
        counts = torch.bincount(lev, minlength=self.num_fidelities)
        if bool((counts < 2).any()):
            raise InvalidInput("X", "at least two observations at every fidelity level",
                               f"counts per level {counts.tolist()}")
        d = x.shape[-1]
        if bounds is None:
            lo, hi = x.min(0).values, x.max(0).values
            hi = torch.where(hi > lo, hi, lo + 1.0)
        else:
            b = as_tensor(bounds, "bounds").reshape(2, d).to(x)
            lo, hi = b[0], b[1]
        self._bounds = (lo, hi)
        self._Xt, self._Xaug, self._lev, self._y = x, torch.cat([x, lev.unsqueeze(-1).to(x)], -1), lev, y
        S = self.num_fidelities
        self.levels = [None] * S
        self.rho = [1.0] * S
        self._scale = torch.zeros(S, dtype=x.dtype, device=x.device)
        self._c = torch.zeros(S, dtype=x.dtype, device=x.device)
        self._noise = torch.zeros(S, dtype=x.dtype, device=x.device)
        self._P = self._build_P(self.rho)
        self._cache = None
        xu = (x - lo) / (hi - lo)
        for s in range(S):
            rows = lev == s
            Xs, ys = xu[rows], y[rows]
            if s == 0:
                self._fit_level(0, Xs, ys, None)
                continue
            with torch.no_grad():
                mu, _ = self._make_algebra(s).marginals(augment(x[rows], s - 1))
            mu = mu.reshape(-1)
            if self.delta_variance is not None:  # δ_s = 0: f_s = ρ_s f_{s-1}, nothing to fit
                self.rho[s] = 1.0 if self.rho_fixed is None else self.rho_fixed[s - 1]
                self._noise[s] = self._noise[0] if self.noise is None else self.noise
            elif self.rho_fixed is not None:
                self.rho[s] = self.rho_fixed[s - 1]
                self._fit_level(s, Xs, ys - self.rho[s] * mu, None)
            else:
                self._fit_level(s, Xs, ys, mu)
            self._P = self._build_P(self.rho)
        self._fitted = True
        self._cache = None
        return self

    def _fit_level(self, s: int, Xs: torch.Tensor, target: torch.Tensor, lower_mean: torch.Tensor | None) -> None:
        """Fit δ_s on unit-cube inputs ``Xs: [n_s, d]``. With ``lower_mean`` (``μ_{s-1}(Xs)``,
        ``[n_s]``), ρ_s is fitted jointly with δ_s's hyperparameters by maximum marginal
        likelihood, as the coefficient of a mean ``ρ_s μ_{s-1}(x) + c_s``."""
        from botorch.models import SingleTaskGP
        from botorch.models.transforms.outcome import Standardize
        from botorch.models.utils.gpytorch_modules import (
            get_covar_module_with_dim_scaled_prior, get_gaussian_likelihood_with_lognormal_prior,
        )
        from gpytorch.kernels import MaternKernel

        d = Xs.shape[-1]
        dims = list(range(d))
        template = get_covar_module_with_dim_scaled_prior(d, use_rbf_kernel=(self.kernel == "rbf"), active_dims=dims)
        if self.kernel in ("matern32", "matern12"):
            covar = MaternKernel(nu=1.5 if self.kernel == "matern32" else 0.5, ard_num_dims=d, active_dims=dims,
                                 lengthscale_prior=template.lengthscale_prior,
                                 lengthscale_constraint=template.raw_lengthscale_constraint)
        else:
            covar = template
        if lower_mean is None:
            inputs, mean_module, m_mu, s_mu = Xs, None, 0.0, 1.0
        else:
            m_mu = float(lower_mean.mean())
            s_mu = float(lower_mean.std()) if lower_mean.numel() > 1 and float(lower_mean.std()) > 0 else 1.0
            inputs = torch.cat([Xs, ((lower_mean - m_mu) / s_mu).unsqueeze(-1)], -1)
            mean_module = _ScaledLowerMean().to(Xs)
        kwargs = {} if mean_module is None else {"mean_module": mean_module}
        model = SingleTaskGP(inputs, target.unsqueeze(-1), likelihood=get_gaussian_likelihood_with_lognormal_prior(),
                             covar_module=covar, outcome_transform=Standardize(m=1), **kwargs).to(Xs)
        stdv = model.outcome_transform.stdvs.reshape(-1)[0].detach()
        ybar = model.outcome_transform.means.reshape(-1)[0].detach()
        fit_exact_model(model, self.noise, self.seed + s)
        model.eval()
        self.levels[s] = model
        self._scale[s] = stdv**2
        self._noise[s] = (model.likelihood.noise.reshape(-1)[0] * stdv**2).detach()
        if mean_module is None:
            self._c[s] = ybar + stdv * model.mean_module.constant.reshape(-1)[0].detach()
        else:
            # standardised mean: r' (μ - m_μ) / s_μ + c'  ->  y units: ρ μ + c
            r, c = float(mean_module.rho.detach()), float(mean_module.constant.detach())
            self.rho[s] = float(stdv) * r / s_mu
            self._c[s] = ybar + stdv * (c - r * m_mu / s_mu)

    # -- the contract ------------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self._fitted:
            raise NotFitted("CoKriging has no data yet: call fit(X_aug, y) first")

    def _algebra(self) -> _CoKrigingAlgebra:
        self._require_fitted()
        if self._cache is None:
            self._cache = self._make_algebra(self.num_fidelities)
        return self._cache

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        self._require_fitted()
        x, lev = self._split_levels(X, name)
        if x.shape[-1] != self._Xt.shape[-1]:
            raise InvalidInput(name, f"augmented inputs with {self._Xt.shape[-1] + 1} columns", f"{x.shape[-1] + 1}")
        return torch.cat([x, lev.unsqueeze(-1).to(x)], -1).to(self._Xt)

    def _check_points_batched(self, X: torch.Tensor) -> torch.Tensor:
        return X.to(self._Xt)

    def observation_noise(self, levels: torch.Tensor) -> torch.Tensor:
        self._require_fitted()
        return self._noise[torch.as_tensor(levels).long().reshape(-1)]

    @property
    def noise_variance(self) -> torch.Tensor:
        """``[1]`` noise variance of a target-fidelity label."""
        return self.observation_noise(torch.tensor([self.target_fidelity]))

    @property
    def num_train(self) -> int:
        """Number of training points over all levels (0 before fitting)."""
        return 0 if not self._fitted else int(self._Xt.shape[0])


# -- BoTorch's SingleTaskMultiFidelityGP ---------------------------------------------------------------

class BoTorchMultiFidelityGP(MultiFidelitySurrogate, ExactGP):
    """BoTorch's ``SingleTaskMultiFidelityGP`` with the fidelity as an input column.

    The fidelity level s is mapped to the fidelity parameter ``fidelity_values[s]`` in [0, 1]
    (default: evenly spaced, the target at 1), and the model's kernel is BoTorch's
    ``LinearTruncatedFidelityKernel`` (Wu, Toscano-Palmerin, Frazier & Wilson 2019, "Practical
    multi-fidelity Bayesian optimization for hyperparameter tuning", UAI). Hyperparameters and a
    single noise variance are fitted by maximum marginal likelihood. After :meth:`fit`,
    :attr:`model` is the BoTorch model (inputs with the fidelity *value* in the last column).

    Args:
        num_fidelities: S >= 2.
        fidelity_values: S increasing values in [0, 1], the last one 1.
        noise: fixed noise variance in y units, or None to learn it.
        seed: seed of the hyperparameter fit.
    """

    def __init__(self, num_fidelities: int = 2, fidelity_values: Sequence[float] | None = None,
                 noise: float | None = None, seed: int = 0):
        ExactGP.__init__(self, noise=noise, seed=seed)
        if int(num_fidelities) < 2:
            raise InvalidInput("num_fidelities", "an integer >= 2", repr(num_fidelities))
        self.num_fidelities = int(num_fidelities)
        if fidelity_values is None:
            fidelity_values = [s / (self.num_fidelities - 1) for s in range(self.num_fidelities)]
        vals = torch.as_tensor(fidelity_values, dtype=torch.float64).reshape(-1)
        if vals.numel() != self.num_fidelities or bool((vals.diff() <= 0).any()) or bool((vals < 0).any()) \
                or float(vals[-1]) != 1.0:
            raise InvalidInput("fidelity_values", f"{self.num_fidelities} increasing values in [0, 1] ending at 1",
                               repr(list(fidelity_values)))
        self.fidelity_values = vals

    def __repr__(self) -> str:
        return f"BoTorchMultiFidelityGP(num_fidelities={self.num_fidelities}, n_train={self.num_train})"

    def _to_values(self, Xaug: torch.Tensor) -> torch.Tensor:
        vals = self.fidelity_values.to(Xaug)[Xaug[..., -1].round().long()]
        return torch.cat([Xaug[..., :-1], vals.unsqueeze(-1)], -1)

    def fit(self, X: Any, y: Any, bounds: Any = None) -> "BoTorchMultiFidelityGP":
        """Fit to augmented inputs ``X: [n, d + 1]`` (last column: level) and ``y: [n]``.
        ``bounds: [2, d]`` is the box of the d inputs."""
        from botorch.models import SingleTaskMultiFidelityGP
        from botorch.models.transforms.input import Normalize
        from botorch.models.transforms.outcome import Standardize

        x, lev = self._split_levels(X, "X")
        y = check_y(y, "y", n=x.shape[0], m=1)
        d = x.shape[-1]
        if bounds is None:
            lo, hi = x.min(0).values, x.max(0).values
            hi = torch.where(hi > lo, hi, lo + 1.0)
        else:
            b = as_tensor(bounds, "bounds").reshape(2, d).to(x)
            lo, hi = b[0], b[1]
        full_bounds = torch.stack([torch.cat([lo, lo.new_zeros(1)]), torch.cat([hi, hi.new_ones(1)])])
        Xv = self._to_values(torch.cat([x, lev.unsqueeze(-1).to(x)], -1))
        model = SingleTaskMultiFidelityGP(Xv, y, data_fidelities=[d], outcome_transform=Standardize(m=1),
                                          input_transform=Normalize(d=d + 1, bounds=full_bounds)).to(x)
        fit_exact_model(model, self.noise, self.seed)
        model.eval()
        self._set_model(model, 1)
        return self

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        self._require_fitted()
        x, lev = self._split_levels(X, name)
        d = self.model.train_inputs[0].shape[-1] - 1
        if x.shape[-1] != d:
            raise InvalidInput(name, f"augmented inputs with {d + 1} columns", f"{x.shape[-1] + 1}")
        return self._to_values(torch.cat([x, lev.unsqueeze(-1).to(x)], -1)).to(self.model.train_inputs[0])

    def _check_points_batched(self, X: torch.Tensor) -> torch.Tensor:
        return self._to_values(X.to(self.model.train_inputs[0]))

    def observation_noise(self, levels: torch.Tensor) -> torch.Tensor:
        return self._algebra().noise_variance.reshape(1).expand(torch.as_tensor(levels).numel())

    @property
    def noise_variance(self) -> torch.Tensor:
        """``[1]`` observation-noise variance (shared by all levels)."""
        return self._algebra().noise_variance

    def joint_posterior(self, X: torch.Tensor):
        """Differentiable mean ``[b, q, 1]`` and covariance ``[b, 1, q, q]`` of f on augmented ``X: [b, q, d
        + 1]``."""
        return self._algebra().joint(self._check_points_batched(X))

    def reference_cross(self, R: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        return self._algebra().reference_cross(self._check_points(R), self._check_points_batched(X))

    def posterior(self, X: Any, chunk_size: int | None = None) -> GaussianPosterior:
        return AlgebraSurrogate.posterior(self, X, chunk_size)

    def condition_on(self, X_pending: Any) -> "BoTorchMultiFidelityGP":
        """A copy conditioned on noisy observations at the augmented ``X_pending: [q, d + 1]``
        equal to the current posterior mean (hyperparameters kept; the variance shrinks exactly)."""
        import copy

        Xv = self._check_points(X_pending, "X_pending")
        with torch.no_grad():
            conditioned = self.model.condition_on_observations(Xv, self.model.posterior(Xv).mean)
        conditioned.eval()
        clone = copy.copy(self)
        clone._set_model(conditioned, 1)
        return clone
