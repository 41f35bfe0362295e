"""Parametric models for Bayesian experimental design: a prior p(θ) and a likelihood p(y | θ, d).

A :class:`DesignModel` holds

* a prior over one or more named parameters, each a torch ``Distribution`` (independent a
  priori; batch dimensions of a prior are read as event dimensions, so ``Normal(zeros(3), 1)``
  is one 3-vector parameter), or a set of samples (:meth:`DesignModel.condition_on_samples`, the
  posterior of a sequential design used as the next prior);
* a likelihood ``(theta, designs) -> Distribution`` batched over designs.

Shapes, used by every estimator in :mod:`bayesal.design.eig`:

* ``designs: [B, *design_shape]`` (``design_shape`` is ``(1,)`` for one scalar per experiment,
  ``(K,)`` for K observation times, ``(n, p)`` for a design matrix);
* ``theta[name]: [..., B, *event_shape[name]]`` where ``...`` are sample dimensions and the B axis
  may be 1 (the same parameter draw for every design: common random numbers);
* ``likelihood(theta, designs)``: a ``Distribution`` with batch shape ``[..., B]`` and event shape
  the shape of one observation, so ``log_prob(y [..., B, *obs]) -> [..., B]``. A likelihood
  returned with extra batch dimensions (e.g. a ``Normal`` over n observations) has them folded
  into the event by :meth:`DesignModel.likelihood`.

Ready-made models: :class:`LinearGaussianModel` (closed-form EIG) and :func:`ab_test_model`,
:class:`PsychometricModel`, :class:`PharmacokineticModel`, :class:`DeathProcessModel`, and
:func:`gaussian_posterior_model`, the bridge from a surrogate's Gaussian posterior to a design
model whose EIG is BALD.
"""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch.distributions import (
    Binomial,
    Distribution,
    Independent,
    LogNormal,
    MultivariateNormal,
    Normal,
    biject_to,
    constraints,
)
from torch.distributions.transforms import ComposeTransform, IndependentTransform

from ..errors import InvalidInput
from ..posteriors import GaussianPosterior
from ..validation import DEFAULT_DTYPE, as_tensor, check_count, check_finite, check_in_box, describe

__all__ = [
    "DesignModel",
    "LinearGaussianModel",
    "ab_test_model",
    "PsychometricModel",
    "PharmacokineticModel",
    "DeathProcessModel",
    "DeathProcessCounts",
    "IsotropicNormal",
    "gaussian_posterior_model",
    "batch_model",
    "seeded",
]

Theta = dict[str, torch.Tensor]
Likelihood = Callable[[Theta, torch.Tensor], Distribution]


@contextlib.contextmanager
def seeded(seed: int | torch.Generator | None, device: torch.device | str | None = None):
    """Run a block with torch's global generator seeded, restoring its state afterwards.

    torch ``Distribution.sample`` draws from the global generator only, so explicit seeds are
    honoured by forking it: the same seed gives the same draws, and the caller's stream is left
    untouched. A ``torch.Generator`` is turned into a seed by drawing from it.
    """
    if isinstance(seed, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=seed))
    device = torch.device(device) if device is not None else torch.device("cpu")
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if seed is None:
            torch.seed()  # fresh, non-deterministic draws (the caller's stream is still restored)
        else:
            torch.manual_seed(int(seed))
        yield


def _as_event_prior(name: str, dist: Any) -> Distribution:
    if not isinstance(dist, Distribution):
        raise InvalidInput(f"prior[{name!r}]", "a torch.distributions.Distribution", describe(dist))
    if len(dist.batch_shape):
        dist = Independent(dist, len(dist.batch_shape))
    return dist


def _is_identity(transform) -> bool:
    while isinstance(transform, IndependentTransform):
        transform = transform.base_transform
    return isinstance(transform, ComposeTransform) and not transform.parts


class DesignModel:
    """A prior over named parameters θ and a likelihood p(y | θ, d) batched over designs.

    Args:
        prior: ``{name: Distribution}`` (independent parameters) or one ``Distribution``
            (named ``"theta"``).
        likelihood: ``(theta: {name: [..., B, *event]}, designs: [B, *design_shape]) ->
            Distribution`` with batch shape ``[..., B]``; None when a subclass overrides
            :meth:`likelihood_fn`.
        design_shape: the shape of one design.
        bounds: optional ``[2, *design_shape]`` lower / upper limits of valid designs; designs
            outside are rejected, and it is the default box of continuous optimisation.

    >>> model = DesignModel({"slope": Normal(0., 1.)},
    ...                     lambda th, d: Normal(th["slope"] * d[:, 0], 0.5), design_shape=(1,))
    """

    def __init__(self, prior: Mapping[str, Distribution] | Distribution,
                 likelihood: Likelihood | None = None, design_shape: Sequence[int] = (1,),
                 bounds: Any = None):
        if isinstance(prior, Distribution):
            prior = {"theta": prior}
        if not isinstance(prior, Mapping) or not prior:
            raise InvalidInput("prior", "a Distribution or a non-empty {name: Distribution} mapping", describe(prior))
        self.prior: dict[str, Distribution] | None = {str(k): _as_event_prior(str(k), v) for k, v in prior.items()}
        self.samples: dict[str, torch.Tensor] | None = None
        self.num_prior_samples = None
        if likelihood is not None and not callable(likelihood):
            raise InvalidInput("likelihood", "a callable (theta, designs) -> Distribution", describe(likelihood))
        self._likelihood_fn = likelihood
        try:
            self.design_shape = tuple(int(s) for s in design_shape)
        except TypeError:
            raise InvalidInput("design_shape", "a tuple of positive integers", describe(design_shape)) from None
        if any(s < 1 for s in self.design_shape):
            raise InvalidInput("design_shape", "a tuple of positive integers", repr(design_shape))
        with seeded(0):
            probe = {k: d.sample() for k, d in self.prior.items()}
        first = next(iter(probe.values()))
        self.dtype, self.device = first.dtype, first.device
        self.event_shapes = {k: tuple(d.event_shape) for k, d in self.prior.items()}
        self.transforms = {k: biject_to(d.support) for k, d in self.prior.items()}
        self.unconstrained_shapes = {
            k: tuple(self.transforms[k].inverse_shape(torch.Size(self.event_shapes[k])))
            for k in self.prior
        }
        self.bounds = None
        if bounds is not None:
            b = as_tensor(bounds, "bounds", dtype=self.dtype, device=self.device)
            if tuple(b.shape) != (2, *self.design_shape):
                raise InvalidInput("bounds", f"a tensor of shape {[2, *self.design_shape]}", describe(bounds))
            if not bool((b[1] >= b[0]).all()):
                raise InvalidInput("bounds", "upper >= lower everywhere", f"{b.tolist()}")
            self.bounds = b

    # -- description ------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """Names of the parameters θ, in the order of ``event_shapes``."""
        return list(self.event_shapes)

    @property
    def has_density(self) -> bool:
        """False for an empirical prior (samples only): estimators needing log p(θ) refuse it."""
        return self.prior is not None

    @property
    def param_dim(self) -> int:
        """P: the number of unconstrained scalars in θ (the dimension Laplace and guides see)."""
        return sum(math.prod(s) for s in self.unconstrained_shapes.values())

    def __repr__(self) -> str:
        kind = "prior" if self.has_density else f"{self.num_prior_samples} prior samples"
        return f"{type(self).__name__}(params={self.event_shapes}, design_shape={self.design_shape}, {kind})"

    # -- prior ------------------------------------------------------------------------------
    def sample_prior(self, sample_shape: Sequence[int] = ()) -> Theta:
        """``{name: [*sample_shape, *event]}`` draws from the prior (global generator: wrap the
        call in :func:`seeded`)."""
        sample_shape = torch.Size(sample_shape)
        if self.samples is not None:
            idx = torch.randint(0, self.num_prior_samples, sample_shape, device=self.device)
            return {k: v[idx] for k, v in self.samples.items()}
        return {k: d.sample(sample_shape) for k, d in self.prior.items()}

    def log_prior(self, theta: Theta) -> torch.Tensor:
        """``log p(θ)`` summed over parameters, shape ``[...]``."""
        self._require_density("log_prior")
        return sum(d.log_prob(theta[k]) for k, d in self.prior.items())

    def prior_entropy(self) -> float | None:
        """Entropy of the prior in the unconstrained space θ → u when every parameter has an
        analytic entropy and an identity transform; None otherwise (estimate it by Monte Carlo)."""
        if not self.has_density:
            return None
        total = 0.0
        for k, d in self.prior.items():
            if not _is_identity(self.transforms[k]):
                return None
            try:
                total += float(d.entropy())
            except NotImplementedError:
                return None
        return total

    def _require_density(self, what: str) -> None:
        if not self.has_density:
            raise InvalidInput("model", f"a model with a prior density ({what})",
                               "an empirical prior given by samples; use nmc_eig or pce_eig")

    # -- unconstrained parametrisation -------------------------------------------------------
    def to_unconstrained(self, theta: Theta) -> torch.Tensor:
        """Flatten θ into ``u: [..., P]`` in the unconstrained space (``biject_to(support)⁻¹``)."""
        parts = []
        for k in self.names:
            value = theta[k]
            batch = value.shape[: value.dim() - len(self.event_shapes[k])]
            u = self.transforms[k].inv(value)
            parts.append(u.reshape(*batch, -1))
        return torch.cat(parts, -1)

    def from_unconstrained(self, u: torch.Tensor) -> tuple[Theta, torch.Tensor]:
        """``θ(u)`` for ``u: [..., P]`` and ``log |det ∂θ/∂u|: [...]``."""
        theta, ladj, start = {}, torch.zeros(u.shape[:-1], dtype=u.dtype, device=u.device), 0
        for k in self.names:
            shape = self.unconstrained_shapes[k]
            size = math.prod(shape)
            uk = u[..., start:start + size].reshape(*u.shape[:-1], *shape)
            start += size
            value = self.transforms[k](uk)
            theta[k] = value
            j = self.transforms[k].log_abs_det_jacobian(uk, value)
            if j.dim() > ladj.dim():
                j = j.reshape(*ladj.shape, -1).sum(-1)
            ladj = ladj + j
        return theta, ladj

    def log_prior_unconstrained(self, u: torch.Tensor) -> tuple[Theta, torch.Tensor]:
        """θ(u) and the prior log density of ``u: [..., P]``: ``log p(θ(u)) + log|det ∂θ/∂u|``."""
        theta, ladj = self.from_unconstrained(u)
        return theta, self.log_prior(theta) + ladj

    # -- likelihood -------------------------------------------------------------------------
    def likelihood_fn(self, theta: Theta, designs: torch.Tensor) -> Distribution:
        """The user's likelihood; subclasses override this instead of passing a callable."""
        if self._likelihood_fn is None:
            raise NotImplementedError("DesignModel needs a likelihood callable or a subclass overriding likelihood_fn")
        return self._likelihood_fn(theta, designs)

    def likelihood(self, theta: Theta, designs: torch.Tensor) -> Distribution:
        """p(y | θ, d) with batch shape ``[..., B]`` (extra batch dimensions folded into the event)."""
        dist = self.likelihood_fn(theta, designs)
        batch = max(v.dim() - len(self.event_shapes[k]) for k, v in theta.items())
        batch = max(batch, 1)
        extra = len(dist.batch_shape) - batch
        if extra > 0:
            dist = Independent(dist, extra)
        return dist

    def observation_shape(self, designs: torch.Tensor) -> tuple[int, ...]:
        """The shape of one observation ``y`` for these designs (a likelihood probe, no sampling of y)."""
        with seeded(0, self.device):
            theta = {k: v.unsqueeze(0) for k, v in self.sample_prior((1,)).items()}
        return tuple(self.likelihood(theta, designs[:1]).event_shape)

    # -- boundary ---------------------------------------------------------------------------
    def check_designs(self, designs: Any, name: str = "designs") -> torch.Tensor:
        """Validate designs and return ``[B, *design_shape]`` in the model's dtype and device.

        One design of shape ``design_shape`` becomes a batch of one; with ``design_shape == (1,)``
        a scalar is one design and a 1-D array ``[B]`` is B scalar designs.
        """
        t = as_tensor(designs, name, dtype=self.dtype, device=self.device)
        ds = self.design_shape
        if tuple(t.shape) == ds:
            t = t.unsqueeze(0)
        elif ds == (1,) and t.dim() <= 1:
            t = t.reshape(-1, 1)
        if t.dim() != len(ds) + 1 or tuple(t.shape[1:]) != ds or t.shape[0] == 0:
            raise InvalidInput(name, f"a tensor of shape [B, {', '.join(map(str, ds))}] with B >= 1", describe(designs))
        finite = torch.isfinite(t.reshape(t.shape[0], -1))
        if not bool(finite.all()):
            rows = torch.nonzero(~finite.all(-1)).flatten().tolist()
            raise InvalidInput(name, "finite designs", f"NaN or inf at rows {rows[:5]}")
        if self.bounds is not None:
            flat = t.reshape(t.shape[0], -1)
            check_in_box(flat, self.bounds.reshape(2, -1), name)
        return t

    def condition_on_samples(self, samples: Mapping[str, Any]) -> DesignModel:
        """A copy of this model whose prior is the empirical distribution of ``samples``
        (``{name: [K, *event]}``), e.g. posterior draws after some experiments.

        Only sampling-based estimators (:func:`~bayesal.design.nmc_eig`,
        :func:`~bayesal.design.pce_eig`) work with it; they draw θ uniformly from the K samples.
        """
        checked, K = {}, None
        for k in self.names:
            if k not in samples:
                raise InvalidInput("samples", f"a mapping with the parameters {self.names}", f"missing {k!r}")
            v = as_tensor(samples[k], f"samples[{k!r}]", dtype=self.dtype, device=self.device)
            if tuple(v.shape[1:]) != self.event_shapes[k] or v.shape[0] == 0:
                raise InvalidInput(f"samples[{k!r}]", f"shape [K, {', '.join(map(str, self.event_shapes[k]))}]", describe(v))
            if K is not None and v.shape[0] != K:
                raise InvalidInput(f"samples[{k!r}]", f"{K} samples like the other parameters", str(v.shape[0]))
            K = v.shape[0]
            checked[k] = v
        clone = copy.copy(self)
        clone.prior, clone.samples, clone.num_prior_samples = None, checked, K
        return clone


class _JointBatch(Distribution):
    """The product of a base likelihood over q designs of one batch: event ``[q, *obs]``."""

    arg_constraints: dict = {}

    def __init__(self, base: Distribution, batch_shape: torch.Size, q: int):
        self.base, self.q = base, q
        self.obs_shape = base.event_shape
        super().__init__(batch_shape, torch.Size([q, *self.obs_shape]), validate_args=False)

    @property
    def has_rsample(self) -> bool:
        return self.base.has_rsample

    @property
    def support(self):
        """Support of the flattened observations: the base distribution's support, one event dimension."""
        return constraints.independent(self.base.support, 1)

    def _reshape_out(self, y: torch.Tensor) -> torch.Tensor:
        return y.reshape(*y.shape[: y.dim() - len(self.obs_shape) - 1], -1, self.q, *self.obs_shape)

    def sample(self, sample_shape=torch.Size()):
        return self._reshape_out(self.base.sample(sample_shape))

    def rsample(self, sample_shape=torch.Size()):
        return self._reshape_out(self.base.rsample(sample_shape))

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log density ``[..., b]`` of observations ``value: [..., b, q, *obs_shape]`` (summed over the q
        repeats)."""
        lead = value.shape[: value.dim() - len(self.obs_shape) - 2]
        flat = value.reshape(*lead, -1, *self.obs_shape)
        lp = self.base.log_prob(flat)
        return lp.reshape(*lp.shape[:-1], -1, self.q).sum(-1)


class _BatchModel(DesignModel):
    def __init__(self, base: DesignModel, q: int):
        self.__dict__.update(base.__dict__)
        self.base, self.q = base, q
        self.design_shape = (q, *base.design_shape)
        self._likelihood_fn = None
        if base.bounds is not None:
            self.bounds = base.bounds.unsqueeze(1).expand(2, q, *base.design_shape).clone()

    def likelihood_fn(self, theta: Theta, designs: torch.Tensor) -> Distribution:
        B, q = designs.shape[0], self.q
        flat = {}
        for k, v in theta.items():
            ev = self.event_shapes[k]
            lead = v.shape[: v.dim() - len(ev) - 1]
            v = v.unsqueeze(v.dim() - len(ev)).expand(*lead, B, q, *ev)
            flat[k] = v.reshape(*lead, B * q, *ev)
        base = self.base.likelihood(flat, designs.reshape(B * q, *self.base.design_shape))
        return _JointBatch(base, base.batch_shape[:-1] + torch.Size([B]), q)


def batch_model(model: DesignModel, q: int) -> DesignModel:
    """The model of a batch of q experiments run together and observed jointly.

    A design of the batch model is ``[q, *design_shape]``; its observation is the q observations
    ``[q, *obs]``, conditionally independent given θ. Its EIG is the joint information of the
    batch, which is what :func:`~bayesal.design.optimize_design` maximises for ``q > 1``.
    """
    if not isinstance(model, DesignModel):
        raise InvalidInput("model", "a DesignModel", describe(model))
    if isinstance(q, bool) or not isinstance(q, int) or q < 1:
        raise InvalidInput("q", "an integer >= 1", describe(q))
    if q == 1:
        return model
    return _BatchModel(model, q)


# ---------------------------------------------------------------------------------------------
# Linear-Gaussian regression
# ---------------------------------------------------------------------------------------------
class IsotropicNormal(Distribution):
    """``N(loc, σ² I)`` over the last axis of ``loc: [..., n]``, with a scalar σ.

    ``Independent(Normal(loc, σ), 1)`` broadcasts σ to the shape of loc and takes its log and
    square elementwise; with nested estimators evaluating ``[M, N, B, n]`` densities, one
    subtraction, one square and one sum is most of the cost, so the constant terms are
    computed once.
    """

    arg_constraints: dict = {}
    support = constraints.independent(constraints.real, 1)
    has_rsample = True

    def __init__(self, loc: torch.Tensor, scale: float):
        self.loc, self.scale = loc, float(scale)
        n = loc.shape[-1]
        self._constant = -n * (math.log(self.scale) + 0.5 * math.log(2 * math.pi))
        super().__init__(loc.shape[:-1], loc.shape[-1:], validate_args=False)

    @property
    def mean(self) -> torch.Tensor:
        """The mean ``[..., n]`` (the location)."""
        return self.loc

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.loc.shape
        return self.loc + self.scale * torch.randn(shape, dtype=self.loc.dtype, device=self.loc.device)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log density ``[...]`` of ``value: [..., n]`` under N(loc, scale² I)."""
        diff = value - self.loc
        return (diff * diff).sum(-1) * (-0.5 / self.scale**2) + self._constant


class LinearGaussianModel(DesignModel):
    """Bayesian linear regression ``y = X(d) θ + ε``, ``θ ~ N(μ, Σ)``, ``ε ~ N(0, σ² I_n)``.

    The EIG has a closed form (Lindley 1956; Chaloner & Verdinelli 1995, "Bayesian experimental
    design: a review", §2.1, Bayesian D-optimality): for the design matrix ``X: [n, p]``,

        EIG(d) = ½ log det(I_p + Σ Xᵀ X / σ²) = ½ log det(I_n + X Σ Xᵀ / σ²).

    Args:
        prior_mean: ``[p]``; prior_covariance: ``[p, p]`` positive definite.
        noise_sd: σ, the observation noise standard deviation.
        design_shape: the shape of one design; without ``features`` a design is its design
            matrix and ``design_shape`` must be ``(n, p)``.
        features: optional ``designs [B, *design_shape] -> X [B, n, p]``.
        bounds: optional ``[2, *design_shape]``.

    The parameter is named ``"theta"`` (event ``[p]``); an observation is ``y: [n]``.
    """

    def __init__(self, prior_mean: Any, prior_covariance: Any, noise_sd: float = 1.0,
                 design_shape: Sequence[int] | None = None,
                 features: Callable[[torch.Tensor], torch.Tensor] | None = None, bounds: Any = None,
                 dtype: torch.dtype = DEFAULT_DTYPE, device: torch.device | str | None = None):
        mu = as_tensor(prior_mean, "prior_mean", dtype=dtype, device=device).reshape(-1)
        check_finite(mu, "prior_mean", "a finite prior mean")
        cov = as_tensor(prior_covariance, "prior_covariance", dtype=dtype, device=mu.device)
        check_finite(cov.reshape(1, -1), "prior_covariance", "a finite prior covariance")
        p = mu.numel()
        if p == 0:
            raise InvalidInput("prior_mean", "at least one parameter", "an empty array")
        if tuple(cov.shape) != (p, p):
            raise InvalidInput("prior_covariance", f"a [{p}, {p}] matrix", describe(prior_covariance))
        L, info = torch.linalg.cholesky_ex(cov)
        if int(info) != 0:
            raise InvalidInput("prior_covariance", "a symmetric positive definite matrix", "a matrix that is not")
        if isinstance(noise_sd, torch.Tensor) and noise_sd.numel() == 1 and not noise_sd.is_complex():
            noise_sd = float(noise_sd)
        if isinstance(noise_sd, bool) or not isinstance(noise_sd, numbers.Real) or not (0 < float(noise_sd) < math.inf):
            raise InvalidInput("noise_sd", "a positive, finite standard deviation", describe(noise_sd))
        if design_shape is None:
            raise InvalidInput("design_shape", "the shape of one design ((n, p) for a design matrix)", "None")
        self.noise_sd = float(noise_sd)
        self.features = features
        self.prior_scale_tril = L
        super().__init__({"theta": MultivariateNormal(mu, scale_tril=L, validate_args=False)},
                         design_shape=design_shape, bounds=bounds)
        if features is None and (len(self.design_shape) != 2 or self.design_shape[1] != p):
            raise InvalidInput("design_shape", f"(n, {p}) when a design is its design matrix", repr(design_shape))

    def design_matrix(self, designs: torch.Tensor) -> torch.Tensor:
        """``X(d): [B, n, p]``."""
        return designs if self.features is None else self.features(designs)

    def likelihood_fn(self, theta: Theta, designs: torch.Tensor) -> Distribution:
        X = self.design_matrix(designs)  # [B, n, p]
        th = theta["theta"]  # [..., B or 1, p]
        B, n, p = X.shape
        if th.shape[-2] == 1:
            # The same θ for every design (common random numbers, shared inner draws): one GEMM
            # [..., p] × [p, B·n] instead of a batched product per draw and design.
            mean = (th[..., 0, :] @ X.reshape(B * n, p).T).reshape(*th.shape[:-2], B, n)
        else:
            mean = torch.einsum("bkp,...bp->...bk", X, th.expand(*th.shape[:-2], B, p))
        return IsotropicNormal(mean, self.noise_sd)

    def eig(self, designs: Any) -> torch.Tensor:
        """Closed-form EIG ``[B]`` in nats."""
        designs = self.check_designs(designs)
        X = self.design_matrix(designs)
        L = self.prior_scale_tril
        A = X @ L / self.noise_sd  # [B, n, p]
        if not bool(torch.isfinite(A).all()):
            raise InvalidInput("designs", "designs whose design matrix X(d) Σ^½ / σ is finite", "an overflowing one")
        # ½ Σ log(1 + s²) over the singular values s of A, not ½ log det(I + AᵀA): AᵀA squares the
        # designs and overflows (designs × 1e300), while log(1 + s²) = 2 log s + log1p(s⁻²) does not
        s = torch.linalg.svdvals(A)
        big = s > 1.0
        safe = torch.where(big, s, torch.ones_like(s))
        terms = torch.where(big, 2 * safe.log() + torch.log1p(safe.pow(-2)), torch.log1p(s.square()))
        return 0.5 * terms.sum(-1)

    def posterior(self, X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior mean ``[p]`` and covariance ``[p, p]`` given ``X: [n, p]``, ``y: [n]``."""
        prior = self.prior["theta"]
        precision = torch.cholesky_inverse(self.prior_scale_tril) + X.T @ X / self.noise_sd**2
        cov = torch.cholesky_inverse(torch.linalg.cholesky(precision))
        mean = cov @ (torch.cholesky_solve(prior.loc.unsqueeze(-1), self.prior_scale_tril).squeeze(-1)
                      + X.T @ y / self.noise_sd**2)
        return mean, cov


def ab_test_model(num_participants: int = 100, prior_sd: Sequence[float] = (10.0, 2.5),
                  noise_sd: float = 1.0, dtype: torch.dtype = DEFAULT_DTYPE,
                  device: torch.device | str | None = None) -> LinearGaussianModel:
    """The A/B test of Foster et al. (2019), "Variational Bayesian Optimal Experimental Design".

    ``θ = (θ_A, θ_B) ~ N(0, diag(prior_sd²))``; the design is ``n1``, the number of the
    ``num_participants`` assigned to group A (the rest go to B); ``y = X θ + ε`` with ``X`` the
    ``[n, 2]`` one-hot assignment and ``ε ~ N(0, noise_sd²)``. Designs are ``[B, 1]`` values of
    n1 in ``[0, num_participants]`` (integers; a fraction is rounded up). The closed form is
    ``½ log(1 + n1 σ_A²/σ²) + ½ log(1 + (n − n1) σ_B²/σ²)``.
    """
    n = int(num_participants)
    if n < 1:
        raise InvalidInput("num_participants", "an integer >= 1", repr(num_participants))
    if len(prior_sd) != 2 or not all(float(s) > 0 for s in prior_sd):
        raise InvalidInput("prior_sd", "two positive standard deviations (group A, group B)", repr(prior_sd))
    sd = torch.tensor([float(s) for s in prior_sd], dtype=dtype, device=device)

    def one_hot(designs: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(n, dtype=designs.dtype, device=designs.device)
        in_a = (rows < designs[:, :1]).to(designs.dtype)  # [B, n]
        return torch.stack([in_a, 1.0 - in_a], -1)  # [B, n, 2]

    return LinearGaussianModel(torch.zeros(2, dtype=dtype, device=device), torch.diag(sd**2), noise_sd,
                               design_shape=(1,), features=one_hot,
                               bounds=torch.tensor([[0.0], [float(n)]], dtype=dtype, device=device))


# ---------------------------------------------------------------------------------------------
# Psychometric function
# ---------------------------------------------------------------------------------------------
def _number(value: Any, name: str, expected: str, ok: Callable[[float], bool]) -> float:
    """A finite real number for which ``ok`` holds, else :class:`InvalidInput` (a string or None
    must not reach ``float()`` or a comparison, which raise TypeError / ValueError)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or not ok(float(value)):
        raise InvalidInput(name, expected, describe(value))
    return float(value)


def _interval(bounds: Any, name: str = "bounds") -> tuple[float, float]:
    """``(lo, hi)``: two finite numbers with lo < hi and a finite width."""
    if isinstance(bounds, (str, bytes)) or not isinstance(bounds, Sequence) or len(bounds) != 2:
        raise InvalidInput(name, "a pair (lower, upper)", describe(bounds))
    lo = _number(bounds[0], name, "finite (lower, upper) with lower < upper", lambda v: True)
    hi = _number(bounds[1], name, "finite (lower, upper) with lower < upper", lambda v: v > lo)
    if not math.isfinite(hi - lo):
        raise InvalidInput(name, "bounds whose width upper - lower is a finite float", describe(bounds))
    return lo, hi


#: the most observation times / levels of one design: beyond it a design of shape [K] (2 × 8K bytes
#: of bounds, K likelihood factors per draw) is a typo, not an experiment
MAX_DESIGN_SIZE = 10_000
#: the largest binomial count (population, trials): counts are sampled and summed in int64 and
#: float64, where larger counts overflow or lose every unit
MAX_BINOMIAL_COUNT = 2**31


class PsychometricModel(DesignModel):
    """A logistic psychometric function: the probability of a correct (or "yes") response at
    stimulus intensity x,

        ψ(x; α, β) = γ + (1 − γ − λ) · sigmoid(β (x − α)),

    with threshold α, slope β > 0, guess rate γ and lapse rate λ (Wichmann & Hill 2001, "The
    psychometric function: I"). The adaptive choice of x by expected information gain is the
    Psi method of Kontsevich & Tyler (1999), "Bayesian adaptive estimation of psychometric slope
    and threshold".

    A design is K stimulus intensities ``[K]``; each is presented ``trials`` times and the
    observation is the K numbers of positive responses, ``y ~ Binomial(trials, ψ(x_k))``.

    Args:
        threshold_prior: prior on α (default ``Normal(0, 2)``).
        slope_prior: prior on β (default ``LogNormal(0, 0.5)``).
        guess_rate, lapse_rate: γ and λ (fixed).
        trials: presentations per intensity.
        num_levels: K, intensities per design.
        bounds: range of intensities (default ``(-6, 6)``).
    """

    def __init__(self, threshold_prior: Distribution | None = None, slope_prior: Distribution | None = None,
                 guess_rate: float = 0.0, lapse_rate: float = 0.02, trials: int = 1, num_levels: int = 1,
                 bounds: tuple[float, float] = (-6.0, 6.0), dtype: torch.dtype = DEFAULT_DTYPE,
                 device: torch.device | str | None = None):
        def t(x):
            return torch.tensor(float(x), dtype=dtype, device=device)

        guess_rate = _number(guess_rate, "guess_rate", "a rate in [0, 1)", lambda v: 0 <= v < 1)
        lapse_rate = _number(lapse_rate, "lapse_rate", "a rate in [0, 1)", lambda v: 0 <= v < 1)
        if not guess_rate + lapse_rate < 1:
            raise InvalidInput("guess_rate/lapse_rate", "rates in [0, 1) summing below 1", f"{guess_rate}, {lapse_rate}")
        trials = check_count(trials, "trials", maximum=MAX_BINOMIAL_COUNT)
        num_levels = check_count(num_levels, "num_levels", maximum=MAX_DESIGN_SIZE, maximum_reason="levels per design")
        bounds = _interval(bounds)
        self.guess_rate, self.lapse_rate, self.trials = guess_rate, lapse_rate, trials
        prior = {
            "threshold": threshold_prior if threshold_prior is not None else Normal(t(0.0), t(2.0), validate_args=False),
            "slope": slope_prior if slope_prior is not None else LogNormal(t(0.0), t(0.5), validate_args=False),
        }
        K = int(num_levels)
        lo, hi = bounds
        super().__init__(prior, design_shape=(K,),
                         bounds=torch.tensor([[float(lo)] * K, [float(hi)] * K], dtype=dtype, device=device))

    def probability(self, theta: Theta, designs: torch.Tensor) -> torch.Tensor:
        """ψ at the designs' intensities: ``[..., B, K]``."""
        a = theta["threshold"].unsqueeze(-1)
        b = theta["slope"].unsqueeze(-1)
        core = torch.sigmoid(b * (designs - a))
        return self.guess_rate + (1.0 - self.guess_rate - self.lapse_rate) * core

    def likelihood_fn(self, theta: Theta, designs: torch.Tensor) -> Distribution:
        p = self.probability(theta, designs)
        return Independent(Binomial(self.trials, probs=p, validate_args=False), 1)


# ---------------------------------------------------------------------------------------------
# Pharmacokinetics
# ---------------------------------------------------------------------------------------------
class PharmacokineticModel(DesignModel):
    """One-compartment pharmacokinetics with first-order absorption, as in Ryan et al. (2014),
    "Towards Bayesian experimental design for nonlinear models that require a large number of
    sampling times" (also Overstall & Woods 2017, "Bayesian design of experiments using
    approximate coordinate exchange").

    The concentration after an oral dose D at time t is the closed-form

        C(t) = D / V · k_a / (k_a − k_e) · (exp(−k_e t) − exp(−k_a t)),

    observed with multiplicative and additive noise, ``y = C(t)(1 + ε₁) + ε₂`` with
    ``ε₁ ~ N(0, 0.01)`` and ``ε₂ ~ N(0, 0.1)`` (variances), so ``y | θ ~ N(C, 0.01 C² + 0.1)``.
    The priors are log-normal: ``log k_a ~ N(log 1, 0.05)``, ``log k_e ~ N(log 0.1, 0.05)``,
    ``log V ~ N(log 20, 0.05)`` (variances), and D = 400.

    A design is K sampling times ``[K]`` in hours within ``bounds`` (default ``(0, 24)``).
    """

    def __init__(self, num_times: int = 1, dose: float = 400.0, bounds: tuple[float, float] = (0.0, 24.0),
                 multiplicative_variance: float = 0.01, additive_variance: float = 0.1,
                 dtype: torch.dtype = DEFAULT_DTYPE, device: torch.device | str | None = None):
        def ln(median, var):
            return LogNormal(torch.tensor(math.log(median), dtype=dtype, device=device),
                             torch.tensor(math.sqrt(var), dtype=dtype, device=device), validate_args=False)

        self.dose = _number(dose, "dose", "a positive, finite dose", lambda v: v > 0)
        self.multiplicative_variance = _number(multiplicative_variance, "multiplicative_variance",
                                               "a non-negative, finite variance", lambda v: v >= 0)
        # positive: with no additive noise a zero concentration (t = 0) has zero variance
        self.additive_variance = _number(additive_variance, "additive_variance", "a positive, finite variance",
                                         lambda v: v > 0)
        K = check_count(num_times, "num_times", maximum=MAX_DESIGN_SIZE, maximum_reason="times per design")
        lo, hi = _interval(bounds)
        super().__init__({"ka": ln(1.0, 0.05), "ke": ln(0.1, 0.05), "V": ln(20.0, 0.05)}, design_shape=(K,),
                         bounds=torch.tensor([[float(lo)] * K, [float(hi)] * K], dtype=dtype, device=device))

    def concentration(self, theta: Theta, times: torch.Tensor) -> torch.Tensor:
        """C(t): ``[..., B, K]`` for ``times: [B, K]``."""
        ka, ke, V = (theta[k].unsqueeze(-1) for k in ("ka", "ke", "V"))
        # exp(−k_e t) − exp(−k_a t) = exp(−k_e t)(1 − exp(−(k_a − k_e) t)) and k_a/(k_a − k_e)
        # become 0/0 as k_a → k_e: expm1 keeps the ratio accurate there.
        diff = ka - ke
        apart = diff.abs() > 1e-10
        safe = torch.where(apart, diff, torch.ones_like(diff))
        ratio = torch.where(apart, -torch.expm1(-diff * times) / safe, times)
        return self.dose / V * ka * torch.exp(-ke * times) * ratio

    def likelihood_fn(self, theta: Theta, designs: torch.Tensor) -> Distribution:
        c = self.concentration(theta, designs)
        sd = torch.sqrt(self.multiplicative_variance * c**2 + self.additive_variance)
        return Independent(Normal(c, sd, validate_args=False), 1)


# ---------------------------------------------------------------------------------------------
# Death process
# ---------------------------------------------------------------------------------------------
class DeathProcessCounts(Distribution):
    """Cumulative counts of a pure death process observed at increasing times.

    Each of N individuals leaves the susceptible state independently at rate b, so by time t it
    has with probability ``1 − exp(−b t)``. Observed at sorted times ``t_1 < … < t_K``, the new
    infections in ``(t_{k−1}, t_k]`` are ``Binomial(N − I_{k−1}, 1 − exp(−b (t_k − t_{k−1})))``.

    Args:
        rate: b, ``[...]``; times: ``[..., K]`` (broadcast with rate), sorted internally;
        population: N. The value is ``[..., K]``: counts at the times in increasing order.
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, rate: torch.Tensor, times: torch.Tensor, population: int):
        times, _ = torch.sort(times, dim=-1)
        gaps = torch.diff(times, dim=-1, prepend=torch.zeros_like(times[..., :1]))
        self.step_prob = -torch.expm1(-rate.unsqueeze(-1) * gaps.clamp_min(0.0))  # [..., K]
        self.population = int(population)
        super().__init__(self.step_prob.shape[:-1], self.step_prob.shape[-1:], validate_args=False)

    @property
    def support(self):
        """Counts are cumulative integers in [0, population] at each of the K observation times."""
        return constraints.independent(constraints.integer_interval(0, self.population), 1)

    def sample(self, sample_shape=torch.Size()):
        shape = torch.Size(sample_shape) + self.step_prob.shape
        p = self.step_prob.expand(shape)
        counts, total = [], torch.zeros(shape[:-1], dtype=p.dtype, device=p.device)
        with torch.no_grad():
            for k in range(shape[-1]):
                new = torch.binomial(self.population - total, p[..., k].clamp(0.0, 1.0))
                total = total + new
                counts.append(total)
        return torch.stack(counts, -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Log probability ``[...]`` of cumulative death counts ``value: [..., K]`` (a chain of binomials)."""
        before = torch.cat([torch.zeros_like(value[..., :1]), value[..., :-1]], -1)
        new, at_risk = value - before, self.population - before
        valid = (new >= 0) & (new <= at_risk)
        p = self.step_prob.clamp(1e-300, 1.0)
        # log C(n, k) + k log p + (n − k) log(1 − p); 1 − p = exp(−b Δt) kept exact via log1p(−p).
        safe_new = torch.where(valid, new, torch.zeros_like(new))
        safe_risk = torch.where(valid, at_risk, torch.zeros_like(at_risk))
        log_binom = torch.lgamma(safe_risk + 1) - torch.lgamma(safe_new + 1) - torch.lgamma(safe_risk - safe_new + 1)
        term = log_binom + torch.xlogy(safe_new, p) + (safe_risk - safe_new) * torch.log1p(-p.clamp(max=1 - 1e-16))
        term = torch.where(valid, term, torch.full_like(term, -math.inf))
        return term.sum(-1)


class DeathProcessModel(DesignModel):
    """The death process of Cook, Gibson & Gilligan (2008), "Optimal observation times in
    experimental epidemic processes", the standard test problem of design for models with
    discrete observations (Kleinegesse & Gutmann 2019, "Efficient Bayesian experimental design
    for implicit models"; Kleinegesse, Drovandi & Gutmann 2021).

    N individuals become infected independently at rate b (no contagion); a design is K
    observation times ``[K]`` in ``bounds`` (default ``(0, 10)``) at which the cumulative number
    infected is counted (:class:`DeathProcessCounts`). Prior on b: log-normal, default
    ``LogNormal(0, 0.5)`` (pass ``rate_prior`` to change it).
    """

    def __init__(self, population: int = 50, num_times: int = 1, rate_prior: Distribution | None = None,
                 bounds: tuple[float, float] = (0.0, 10.0), dtype: torch.dtype = DEFAULT_DTYPE,
                 device: torch.device | str | None = None):
        self.population = check_count(population, "population", maximum=MAX_BINOMIAL_COUNT)
        prior = rate_prior if rate_prior is not None else LogNormal(
            torch.tensor(0.0, dtype=dtype, device=device), torch.tensor(0.5, dtype=dtype, device=device),
            validate_args=False)
        K = check_count(num_times, "num_times", maximum=MAX_DESIGN_SIZE, maximum_reason="times per design")
        lo, hi = _interval(bounds)
        super().__init__({"b": prior}, design_shape=(K,),
                         bounds=torch.tensor([[float(lo)] * K, [float(hi)] * K], dtype=dtype, device=device))

    def likelihood_fn(self, theta: Theta, designs: torch.Tensor) -> Distribution:
        return DeathProcessCounts(theta["b"], designs, self.population)


# ---------------------------------------------------------------------------------------------
# Bridge from a surrogate's posterior
# ---------------------------------------------------------------------------------------------
def gaussian_posterior_model(posterior: GaussianPosterior, output: int = 0) -> DesignModel:
    """The design model "observe f at one of the N points of a Gaussian posterior".

    θ = ``f`` is the vector of the latent function at the N points, with the posterior's
    marginals ``N(mean, variance)`` as its prior (independent: a design observes one point, so
    only marginals matter); a design is a point index ``[1]`` in ``[0, N−1]``; the observation
    is ``y = f[index] + ε``, ``ε ~ N(0, noise_variance)``. Its EIG is
    ``½ log(1 + σ_f²/σ_n²)``, the BALD score of that point (Houlsby et al. 2011).
    """
    if not isinstance(posterior, GaussianPosterior):
        raise InvalidInput("posterior", "a GaussianPosterior", describe(posterior))
    if posterior.noise_variance is None:
        raise InvalidInput("posterior", "a posterior with observation noise", "noise_variance None")
    mean = posterior.mean[..., output]
    sd = posterior.variance[..., output].clamp_min(1e-300).sqrt()
    noise_sd = float(posterior.noise_variance.reshape(-1)[output]) ** 0.5
    N = mean.shape[-1]

    def likelihood(theta: Theta, designs: torch.Tensor) -> Distribution:
        f = theta["f"]  # [..., B or 1, N]
        idx = designs[:, 0].long().reshape(*([1] * (f.dim() - 2)), -1, 1)  # [..., B, 1]
        value = torch.take_along_dim(f, idx, dim=-1)  # [..., B, 1]
        return Independent(Normal(value, noise_sd, validate_args=False), 1)

    return DesignModel({"f": Normal(mean, sd, validate_args=False)}, likelihood, design_shape=(1,),
                       bounds=torch.tensor([[0.0], [float(N - 1)]], dtype=mean.dtype, device=mean.device))
