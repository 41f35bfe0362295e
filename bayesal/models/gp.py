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
from botorch.models.transforms.input import Normalize, Warp
from botorch.models.transforms.outcome import Standardize
from botorch.models.utils.gpytorch_modules import (
    get_covar_module_with_dim_scaled_prior,
    get_gaussian_likelihood_with_lognormal_prior,
)
from gpytorch.kernels import Kernel, MaternKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior

from ..errors import InvalidInput, NotFitted, UnknownName
from ..posteriors import GaussianPosterior
from ..settings import rows_per_chunk
from ..validation import MAX_USER_SEED, check_count, check_seed, check_X, check_y, fit_bounds
from .algebra import ExactGaussianAlgebra
from .base import AlgebraSurrogate

__all__ = ["ExactGP", "KERNELS", "make_kernel"]

KERNELS = ("matern52", "matern32", "matern12", "rbf")
#: L-BFGS-B iterations of a warped ExactGP's fit (see ``input_warping``); measured on bike and
#: concrete at 30 and 100 labels, caps of 100, 300 and 1,000 iterations all predicted better than
#: the unwarped fit (bike, 100 labels: test RMSE 0.05 to 0.09 against 0.15; concrete: 7.89 to 7.90
#: against 8.04), 1,000 costing five times as long as 200
WARPED_FIT_ITERATIONS = 200


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


def fit_exact_model(model, noise: float | None = None, seed: int = 0, cholesky_up_to: int = 800,
                    restarts: int = 1, max_iterations: int | None = None) -> None:
    """Maximise the marginal likelihood of a BoTorch exact GP ``model`` in place (seeded restarts,
    BoTorch's fitting warnings silenced). ``noise``: a fixed observation-noise variance in the
    units of y, or None to learn it; ``cholesky_up_to``: see :class:`ExactGP`; ``restarts`` > 1:
    that many fits, the first from the default initial values and the others from draws of the
    hyperparameter priors, keeping the largest marginal likelihood (BoTorch's
    ``pick_best_of_all_attempts``); ``max_iterations``: a cap on L-BFGS-B's iterations per fit
    (None: SciPy's default)."""
    if noise is not None:
        # A fixed homoskedastic noise, expressed in the standardised units the model sees.
        stdvs = model.outcome_transform.stdvs.reshape(-1)
        model.likelihood.noise = (noise / stdvs**2).reshape(model.likelihood.noise.shape)
        model.likelihood.raw_noise.requires_grad_(False)
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    with torch.random.fork_rng(), warnings.catch_warnings():
        torch.manual_seed(seed)
        warnings.simplefilter("ignore", category=OptimizationWarning)
        warnings.simplefilter("ignore", category=InputDataWarning)
        with gpytorch.settings.max_cholesky_size(max(cholesky_up_to, 800)):
            kwargs = {} if max_iterations is None else {"optimizer_kwargs": {"options": {"maxiter": max_iterations}}}
            if restarts > 1:
                kwargs.update(max_attempts=restarts, pick_best_of_all_attempts=True)
            fit_gpytorch_mll(mll, **kwargs)


#: the largest spread of labels whose posterior variance (in y's units squared) is still a finite
#: float64: sqrt(float64 max) is about 1.3e154, and a fitted prior variance may be a few hundred times
#: the labels' variance
MAX_LABEL_SPREAD = 1e152


def _power_of_two(top: torch.Tensor) -> torch.Tensor:
    # a power of two: dividing by it is exact in floating point
    tiny = torch.finfo(top.dtype).tiny
    return torch.where(top > 0, torch.exp2(torch.floor(torch.log2(top.clamp_min(tiny)))), torch.ones_like(top))


def scale_free(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``((y - c) / s, c, s)`` with ``c, s: [m]`` a shift and a power-of-two scale such that the
    result is O(1): BoTorch's ``Standardize`` squares the labels, which overflows to inf (and a NaN
    posterior) for |y| >= 1e155, and it treats labels whose spread is below 1e-8 of their
    magnitude as constant. The mean is taken of y divided by its largest magnitude, so it cannot
    overflow either. Labels whose spread is too large for a finite posterior variance (in y's
    units squared) are :class:`InvalidInput`."""
    s1 = _power_of_two(y.abs().max(0).values)
    c = (y / s1).mean(0) * s1
    centred = y - c
    s = _power_of_two(centred.abs().max(0).values)
    scaled = centred / s
    spread = scaled.std(0) * s if y.shape[0] > 1 else torch.zeros_like(s)
    if not bool((spread <= MAX_LABEL_SPREAD).all()):
        raise InvalidInput("y", f"labels whose standard deviation is at most {MAX_LABEL_SPREAD:g} (a GP's "
                           "posterior variance of larger labels overflows float64)",
                           f"a standard deviation of {float(spread.max()):.3g}")
    return scaled, c, s


def rescale_outcome(transform: Standardize, c: torch.Tensor, s: torch.Tensor) -> None:
    """Fold the shift ``c: [m]`` and scale ``s: [m]`` of :func:`scale_free` back into a fitted
    ``Standardize``, so the model predicts in y's own units."""
    m = transform.means.shape[-1]
    c, s = c.to(transform.means).reshape(m), s.to(transform.means).reshape(m)
    transform.means = transform.means * s + c
    transform.stdvs = transform.stdvs * s
    transform._stdvs_sq = transform.stdvs**2


def clamped(transform):
    """``transform`` with its output clamped to ``[-1e6, 1e6]``: a point a million unit-cube widths
    from the data (X fitted at scale 1e-300, predicted at O(1)) has kernel value 0 at any
    plausible lengthscale, while unclamped coordinates of 1e300 square to inf and give NaN."""
    return lambda X: transform(X).clamp(-1e6, 1e6)


class ExactGP(AlgebraSurrogate):
    """Exact GP regression: inputs normalised to the unit cube, outputs standardised, kernel
    hyperparameters and noise fitted by maximising the marginal likelihood (with BoTorch's priors).

    Args:
        kernel: ``"matern52"`` (default), ``"matern32"``, ``"matern12"``, ``"rbf"`` or any
            GPyTorch ``Kernel`` (copied at each fit; its ``batch_shape`` must match m outputs).
        noise: observation-noise variance in the units of y, or None to learn it.
        outputscale: wrap the kernel in a ``ScaleKernel`` (BoTorch's current default omits it,
            relying on standardised outputs).
        seed: seed of the random restarts of the hyperparameter fit.
        love: predictive variances over pools by LOVE (Pleiss et al. 2018, "Constant-Time
            Predictive Distributions for Gaussian Processes", GPyTorch's ``fast_pred_var``):
            O(k n) per point after one Lanczos decomposition instead of O(n²). ``None``
            (default) turns it on above ``love_threshold`` training points. Covariances and
            greedy updates stay exact.
        restarts: fits of the hyperparameters from different starts (the default values, then
            draws of the priors), keeping the one of largest marginal likelihood; 1 (default)
            fits once, retrying only when the optimiser fails. Learned noise only.
        input_warping: learn a monotone warping of each input, the Kumaraswamy CDF of Snoek,
            Swersky, Zemel & Adams (2014), "Input Warping for Bayesian Optimization of
            Non-Stationary Functions" (BoTorch's ``Warp``), with log-normal priors on its two
            concentrations per input centred on the identity; the box (``bounds``) becomes the
            warping's domain and points outside it are clamped to its faces. Its fit is capped at
            ``WARPED_FIT_ITERATIONS`` L-BFGS-B iterations: the warped likelihood has long flat
            ridges (on bike, 4,000 to 10,000 iterations, one to three minutes, to SciPy's
            tolerance) and the capped fit already predicts better than the unwarped one.
        cholesky_up_to: fit with Cholesky factorisations up to this many training points
            (GPyTorch's default, 800; above it, conjugate gradients and Lanczos). Measured on
            protein, single-threaded: at n = 1,500 Cholesky is exact and about a minute; at
            n = 5,000 it took over 20 minutes, longer than the iterative solvers.

    After :meth:`fit`, :attr:`model` is the BoTorch ``SingleTaskGP``. With m outputs the outputs
    are modelled as independent GPs with their own hyperparameters.

    >>> gp = ExactGP().fit(X, y)            # X: [n, d], y: [n] or [n, m]
    >>> post = gp.posterior(X_new)          # GaussianPosterior, mean/variance [N, m]
    """

    def __init__(self, kernel: str | Kernel = "matern52", noise: float | None = None,
                 outputscale: bool = False, seed: int = 0, love: bool | None = None,
                 love_threshold: int = 3000, cholesky_up_to: int = 800, restarts: int = 1,
                 input_warping: bool = False):
        if not isinstance(kernel, Kernel) and kernel not in KERNELS:
            raise UnknownName("kernel", str(kernel), KERNELS)
        if noise is not None and not (float(noise) > 0):
            raise InvalidInput("noise", "a positive variance or None (learned)", repr(noise))
        self.kernel = kernel
        self.noise = None if noise is None else float(noise)
        self.outputscale = outputscale
        self.seed = check_seed(seed, allow_none=False, maximum=MAX_USER_SEED)
        self.love, self.love_threshold = love, int(love_threshold)
        self.cholesky_up_to = int(cholesky_up_to)
        self.restarts = check_count(restarts, "restarts")
        if self.restarts > 1 and self.noise is not None:
            raise InvalidInput("restarts", "1 with a fixed noise (restarts draw the noise from its prior too)",
                               str(restarts))
        if not isinstance(input_warping, bool):
            raise InvalidInput("input_warping", "True or False", repr(input_warping))
        self.input_warping = input_warping
        self.model: SingleTaskGP | None = None
        self._fitted = False

    def __repr__(self) -> str:
        name = self.kernel if isinstance(self.kernel, str) else type(self.kernel).__name__
        return f"ExactGP(kernel={name!r}, noise={self.noise}, n_train={self.num_train})"

    # -- fitting ------------------------------------------------------------------------------
    @property
    def num_train(self) -> int:
        """Number n of training points (0 before fitting)."""
        return 0 if self.model is None else int(self.model.train_inputs[0].shape[-2])

    def parameter_like(self) -> torch.Tensor:
        """The training inputs: the dtype and device the GP computes in."""
        self._require_fitted()
        return self.model.train_inputs[0]

    def fit(self, X: Any, y: Any, bounds: Any = None) -> "ExactGP":
        """Fit to ``X: [n, d]``, ``y: [n]`` or ``[n, m]``.

        ``bounds: [2, d]`` fixes the input normalisation (the search space's box); without it
        the training data's range is used.
        """
        X = check_X(X, "X")
        y = check_y(y, "y", n=X.shape[0])
        d, m = X.shape[-1], y.shape[-1]
        bounds = fit_bounds(X, bounds, "X")
        y, y_shift, y_scale = scale_free(y)
        batch_shape = torch.Size([m]) if m > 1 else torch.Size()
        likelihood = get_gaussian_likelihood_with_lognormal_prior(batch_shape=batch_shape)
        outcome = Standardize(m=m)
        model = SingleTaskGP(
            X, y,
            likelihood=likelihood,
            covar_module=make_kernel(self.kernel, d, batch_shape, self.outputscale),
            outcome_transform=outcome,
            input_transform=self._input_transform(d, bounds),
        ).to(X)
        # a fixed noise variance is in y's units: rescale it with y, per output
        noise = None if self.noise is None else self.noise / y_scale.to(X) ** 2
        fit_exact_model(model, noise, self.seed, self.cholesky_up_to, self.restarts,
                        WARPED_FIT_ITERATIONS if self.input_warping else None)
        model.eval()
        rescale_outcome(model.outcome_transform, y_shift, y_scale)
        self._set_model(model, m)
        return self

    def _input_transform(self, d: int, bounds: torch.Tensor):
        """Inputs to the unit cube, then (``input_warping``) through a learned Kumaraswamy CDF per
        input whose concentrations have log-normal priors with median 1 (the identity)."""
        if not self.input_warping:
            return Normalize(d=d, bounds=bounds)
        return Warp(d=d, indices=list(range(d)), bounds=bounds,
                    concentration1_prior=LogNormalPrior(0.0, 0.75 ** 0.5),
                    concentration0_prior=LogNormalPrior(0.0, 0.75 ** 0.5))

    def _set_model(self, model: SingleTaskGP, m: int) -> None:
        self.model = model
        self.num_outputs = m
        self._fitted = True
        self._cache = None

    # -- exact algebra ----------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not self._fitted:
            raise NotFitted("ExactGP has no data yet: call fit(X, y) (or tell the learner some labels) first")

    def _kernel(self, A: torch.Tensor, B: torch.Tensor, diag: bool = False) -> torch.Tensor:
        """The fitted prior kernel on transformed inputs ``[..., 1|m, N, d]`` → ``[..., m, Na, Nb]``."""
        batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        if self.num_outputs > 1:
            batch = torch.broadcast_shapes(batch, (self.num_outputs,))
        A = A.expand(*batch, *A.shape[-2:])
        B = B.expand(*batch, *B.shape[-2:])
        with gpytorch.settings.lazily_evaluate_kernels(False):
            k = self.model.covar_module(A, B, diag=diag)
        k = k.to_dense() if hasattr(k, "to_dense") else k
        return k

    def _algebra(self) -> ExactGaussianAlgebra:
        """The posterior algebra in the model's internal (normalised, standardised) units."""
        self._require_fitted()
        if self._cache is None:
            model = self.model
            Xt, yt = model.train_inputs[0], model.train_targets
            if self.num_outputs == 1:
                Xt, yt = Xt.unsqueeze(0), yt.unsqueeze(0)  # [1, n, d], [1, n]
            ot = model.outcome_transform
            with torch.no_grad(), gpytorch.settings.lazily_evaluate_kernels(False):
                self._cache = ExactGaussianAlgebra(
                    self._kernel, clamped(model.input_transform), Xt.detach(),
                    noise=model.likelihood.noise.detach().reshape(-1).expand(self.num_outputs),
                    targets=yt.detach(), const=model.mean_module.constant.detach(),
                    y_mean=ot.means.reshape(-1), y_std=ot.stdvs.reshape(-1),
                )
        return self._cache

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        self._require_fitted()
        Xt = self.model.train_inputs[0]
        return check_X(X, name, dim=Xt.shape[-1]).to(Xt)

    @property
    def uses_love(self) -> bool:
        """Whether posterior variances use LOVE (Pleiss et al. 2018): on request, or by default above
        ``love_threshold`` training points."""
        return bool(self.love) or (self.love is None and self.num_train > self.love_threshold)

    def posterior(self, X: Any, chunk_size: int | None = None) -> GaussianPosterior:
        """Posterior of f at ``X: [N, d]``: exact chunked algebra, or LOVE variances (see ``love``)."""
        if not self.uses_love:
            return super().posterior(X, chunk_size)
        X = self._check_points(X)
        chunk_size = chunk_size or rows_per_chunk(8.0 * self.num_outputs * 4 * (self.num_train + 64))
        means, variances = [], []
        with torch.no_grad(), gpytorch.settings.fast_pred_var():
            for start in range(0, X.shape[0], chunk_size):
                post = self.model.posterior(X[start:start + chunk_size])
                means.append(post.mean)
                variances.append(post.variance.clamp_min(0.0))
        algebra = self._algebra()
        return GaussianPosterior(torch.cat(means), torch.cat(variances), noise_variance=algebra.noise_variance,
                                 covariance_fn=lambda idx: algebra.covariance(X[idx], X[idx]))

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

