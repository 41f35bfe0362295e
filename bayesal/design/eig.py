"""Estimators of the expected information gain of an experiment.

For a prior p(θ), a likelihood p(y | θ, d) and a design d, the expected information gain is

    EIG(d) = E_{p(θ) p(y | θ, d)} [ log p(y | θ, d) − log p(y | d) ]
           = H[p(θ)] − E_{p(y | d)} H[p(θ | y, d)]                  (Lindley 1956).

p(y | d) is an intractable integral for all but conjugate models, which is what these estimators
deal with. Each takes a :class:`~bayesal.design.DesignModel` and a batch of designs
``[B, *design_shape]``, processes the designs (and, when needed, the samples) in chunks sized
from :func:`bayesal.settings.memory_budget`, and returns an :class:`EIGEstimate` ``(value [B],
stderr [B])`` in nats. The standard error is the Monte Carlo error of the outer average; it does
not include the bias of a bound or of an approximation, documented with each estimator.

Every estimator draws the outer samples of θ once and uses them for every design (common random
numbers), so that differences between designs are estimated more precisely than the values.

============================  ==========================================  =======================
estimator                     what it is                                  bias
============================  ==========================================  =======================
:func:`nmc_eig`               nested Monte Carlo (Ryan 2003)              upper bound, O(1/M)
:func:`pce_eig`               prior contrastive estimation                lower bound, ≤ log(L+1)
:func:`posterior_eig`         Barber–Agakov variational posterior         lower bound
:func:`marginal_eig`          variational marginal                        upper bound
:func:`laplace_eig`           Laplace approximation of p(θ | y, d)        exact for linear-Gaussian
============================  ==========================================  =======================
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn

from ..errors import InvalidInput, UnknownName
from ..settings import get_memory_budget
from ..validation import check_count, check_seed, describe, renamed
from .model import DesignModel, Theta, seeded

__all__ = [
    "EIGEstimate",
    "nmc_eig",
    "pce_eig",
    "posterior_eig",
    "marginal_eig",
    "laplace_eig",
    "estimate_eig",
    "ESTIMATORS",
    "GaussianPosteriorGuide",
    "GaussianMarginalGuide",
]

_LOG_2PI = math.log(2 * math.pi)
# Bytes held per (inner sample, outer sample, design) triple per observed scalar: the
# likelihood's mean, the residual and the log density in float64, with some slack.
_BYTES_PER_ELEMENT = 32.0


class EIGEstimate(NamedTuple):
    """An EIG estimate in nats: ``value [B]`` and its Monte Carlo standard error ``stderr [B]``."""

    value: torch.Tensor
    stderr: torch.Tensor


# ---------------------------------------------------------------------------------------------
# shared plumbing
# ---------------------------------------------------------------------------------------------
def _prepare(model: Any, designs: Any) -> torch.Tensor:
    if not isinstance(model, DesignModel):
        raise InvalidInput("model", "a bayesal.design.DesignModel", describe(model))
    return model.check_designs(designs)


def _check_seed(seed):
    """An integer seed, None (fresh draws) or a ``torch.Generator``; anything else is InvalidInput."""
    return seed if isinstance(seed, torch.Generator) else check_seed(seed)


def _finite_estimate(estimate: EIGEstimate, designs: torch.Tensor) -> EIGEstimate:
    """``estimate`` unless a value is NaN or inf: at extreme designs (× 1e300) the log densities
    overflow, and a Monte Carlo estimate of inf or NaN would be a lie, not an answer."""
    bad = ~torch.isfinite(estimate.value)
    if bool(bad.any()):
        rows = torch.nonzero(bad).flatten().tolist()
        raise InvalidInput("designs", "designs at which the model's log densities are finite floats "
                           "(rescale the designs or the model)", f"a non-finite estimate at designs {rows[:5]}")
    return estimate


def _chunks(obs_numel: int, num_outer: int, num_inner: int, num_designs: int,
            chunk_size: int | None) -> tuple[int, int, int]:
    """Designs, outer samples and inner samples per chunk so that one chunk of likelihood
    evaluations ``[inner, outer, designs, *obs]`` fits the memory budget."""
    budget = get_memory_budget()
    per = _BYTES_PER_ELEMENT * max(obs_numel, 1)
    if chunk_size is None:
        b = int(max(1, min(num_designs, budget // (per * num_outer * num_inner))))
    else:
        b = min(chunk_size, num_designs)
    n = int(max(1, min(num_outer, budget // (per * num_inner * b))))
    m = int(max(1, min(num_inner, budget // (per * n * b))))
    return b, n, m


def _slice(theta: Theta, sl: slice) -> Theta:
    return {k: v[sl] for k, v in theta.items()}


def _mean_and_stderr(terms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error over the first axis of ``terms: [N, b]``."""
    n = terms.shape[0]
    value = terms.mean(0)
    if n < 2:
        return value, torch.full_like(value, math.inf)
    return value, terms.std(0) / math.sqrt(n)


def _flat_obs(y: torch.Tensor, obs_ndim: int) -> torch.Tensor:
    return y.reshape(*y.shape[: y.dim() - obs_ndim], -1)


def _check_chunk(chunk_size):
    return None if chunk_size is None else check_count(chunk_size, "chunk_size")


# ---------------------------------------------------------------------------------------------
# nested estimators
# ---------------------------------------------------------------------------------------------
def contrastive_terms(model: DesignModel, designs: torch.Tensor, y: torch.Tensor, log_lik_outer: torch.Tensor,
                      theta_inner: Theta, include_outer: bool) -> torch.Tensor:
    """Per-sample nested terms ``[n, b]``, differentiable in the designs.

    ``log p(y_n | θ_n, d) − log( (1/L') Σ_l p(y_n | θ_l, d) )`` with ``θ_inner[name]: [L, n, 1 or
    b, *event]``; ``include_outer`` adds θ_n to the inner sum (L' = L + 1: PCE), else L' = L (NMC).
    """
    inner = model.likelihood(theta_inner, designs).log_prob(y)  # [L, n, b]
    if include_outer:
        inner = torch.cat([log_lik_outer.unsqueeze(0), inner], 0)
    return log_lik_outer - (torch.logsumexp(inner, 0) - math.log(inner.shape[0]))


def _nested(model: DesignModel, designs: torch.Tensor, num_outer: int, num_inner: int, include_outer: bool,
            reuse_inner: bool, chunk_size: int | None, seed) -> EIGEstimate:
    seed = _check_seed(seed)
    B = designs.shape[0]
    obs_shape = model.observation_shape(designs)
    inner_count = num_outer if reuse_inner else num_inner
    b_step, n_step, m_step = _chunks(math.prod(obs_shape), num_outer, inner_count, B, chunk_size)
    values, errors = [], []
    with torch.no_grad():
        for start in range(0, B, b_step):
            d = designs[start:start + b_step]
            with seeded(seed, designs.device):
                theta0 = model.sample_prior((num_outer, 1))  # the same draws for every design
                terms = []
                for o in range(0, num_outer, n_step):
                    th = _slice(theta0, slice(o, o + n_step))
                    lik = model.likelihood(th, d)
                    y = lik.sample()  # [n, b, *obs]
                    lp0 = lik.log_prob(y)  # [n, b]
                    n = lp0.shape[0]
                    blocks = []
                    if reuse_inner:
                        rows = torch.arange(o, o + n, device=d.device).unsqueeze(-1)  # [n, 1]
                        for m in range(0, num_outer, m_step):
                            thm = {k: v[m:m + m_step].unsqueeze(1) for k, v in theta0.items()}  # [l, 1, 1, ...]
                            lp = model.likelihood(thm, d).log_prob(y)  # [l, n, b]
                            cols = torch.arange(m, m + lp.shape[0], device=d.device)
                            same = (cols.reshape(-1, 1) == rows.reshape(1, -1)).unsqueeze(-1)  # [l, n, 1]
                            blocks.append(lp.masked_fill(same, -math.inf))
                        count = num_outer - 1
                    else:
                        for m in range(0, num_inner, m_step):
                            l = min(m_step, num_inner - m)
                            thm = model.sample_prior((l, n, 1))
                            blocks.append(model.likelihood(thm, d).log_prob(y))
                        count = num_inner
                    inner = torch.cat(blocks, 0)
                    if include_outer:
                        inner = torch.cat([lp0.unsqueeze(0), inner], 0)
                        count += 1
                    terms.append(lp0 - (torch.logsumexp(inner, 0) - math.log(count)))
            v, e = _mean_and_stderr(torch.cat(terms, 0))
            values.append(v)
            errors.append(e)
    return _finite_estimate(EIGEstimate(torch.cat(values), torch.cat(errors)), designs)


def nmc_eig(model: DesignModel, designs: Any, num_outer: int = 1000, num_inner: int = 1000,
            reuse_inner: bool = False, chunk_size: int | None = None, seed: int | torch.Generator = 0) -> EIGEstimate:
    """Nested Monte Carlo EIG (Ryan 2003, "Estimating expected information gains for
    experimental designs with application to the random fatigue-limit model"):

        (1/N) Σ_n [ log p(y_n | θ_n, d) − log (1/M) Σ_m p(y_n | θ_{n,m}, d) ],

    with ``θ_n ~ p(θ)``, ``y_n ~ p(y | θ_n, d)`` and M inner draws ``θ_{n,m} ~ p(θ)`` independent
    of θ_n. The inner average underestimates p(y_n | d) on the log scale (Jensen), so the
    estimator is biased upwards by O(1/M) (Rainforth et al. 2018, "On nesting Monte Carlo
    estimators"): its expectation is the *nested upper bound* U(d, M) ≥ EIG of Foster et al.
    (2020), "A unified stochastic gradient approach to designing Bayesian-optimal experiments",
    decreasing to the EIG as M grows. Cost: N·M likelihood evaluations per design.

    ``reuse_inner=True`` reuses the outer draws as the inner draws (Huan & Marzouk 2013,
    "Simulation-based optimal Bayesian experimental design for nonlinear systems"): every y_n
    is contrasted with the N − 1 other outer draws θ_m, m ≠ n, so ``num_inner`` is ignored and
    no extra draws of θ are made. The expectation is unchanged (U(d, N − 1), still an upper
    bound): θ_n itself is left out, since including it turns the estimator into the PCE lower
    bound (:func:`pce_eig`). But the N terms now share their inner draws and are correlated, so
    the reported standard error (that of independent terms) understates the error, and the cost
    grows as N² per design.

    Args:
        model: the design model (an empirical prior is fine).
        designs: ``[B, *design_shape]``.
        num_outer: N; num_inner: M.
        chunk_size: designs per chunk (default: from the memory budget).
        seed: seed or ``torch.Generator``.

    Returns: :class:`EIGEstimate` with ``value: [B]``, ``stderr: [B]``.
    """
    designs = _prepare(model, designs)
    num_outer = check_count(num_outer, "num_outer", minimum=2)
    num_inner = check_count(num_inner, "num_inner")
    return _nested(model, designs, num_outer, num_inner, False, bool(reuse_inner), _check_chunk(chunk_size), seed)


def pce_eig(model: DesignModel, designs: Any, num_outer: int = 1000, num_contrastive: int = 1000,
            chunk_size: int | None = None, seed: int | torch.Generator = 0) -> EIGEstimate:
    """Prior contrastive estimation, a lower bound on the EIG (Foster et al. 2020, "A unified
    stochastic gradient approach to designing Bayesian-optimal experiments", eq. 5):

        L(d, L) = E[ log p(y | θ_0, d) − log (1/(L+1)) Σ_{l=0}^{L} p(y | θ_l, d) ] ≤ EIG(d),

    with ``θ_0, …, θ_L ~ p(θ)`` and ``y ~ p(y | θ_0, d)``. The bound tightens monotonically to
    the EIG as L → ∞, but never exceeds ``log(L + 1)``: an EIG of k nats needs L ≫ e^k.
    Unlike nested Monte Carlo, each term is bounded, so the estimator has low variance.

    Args: as :func:`nmc_eig`, with ``num_contrastive`` = L.
    """
    designs = _prepare(model, designs)
    num_outer = check_count(num_outer, "num_outer", minimum=2)
    num_contrastive = check_count(num_contrastive, "num_contrastive")
    return _nested(model, designs, num_outer, num_contrastive, True, False, _check_chunk(chunk_size), seed)


# ---------------------------------------------------------------------------------------------
# Laplace
# ---------------------------------------------------------------------------------------------
def _log_joint(model: DesignModel, designs: torch.Tensor, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``log p(y | θ(u), d) + log p_u(u)``: ``[n, b]`` for ``u: [n, b, P]``."""
    theta, log_prior = model.log_prior_unconstrained(u)
    return model.likelihood(theta, designs).log_prob(y) + log_prior


def _neg_hessian(model, designs, y, u) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log joint ``[n, b]``, its gradient ``[n, b, P]`` and minus its Hessian ``[n, b, P, P]``
    at ``u``; the samples are independent, so P backward passes of summed gradients give every
    per-sample Hessian."""
    with torch.enable_grad():
        u = u.detach().requires_grad_(True)
        f = _log_joint(model, designs, y, u)
        (g,) = torch.autograd.grad(f.sum(), u, create_graph=True)
        rows = [torch.autograd.grad(g[..., i].sum(), u, retain_graph=True)[0] for i in range(u.shape[-1])]
    H = torch.stack(rows, -2)
    neg = -0.5 * (H + H.transpose(-1, -2))
    return f.detach(), g.detach(), neg.detach()


def _positive_eigen(neg_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition of minus the Hessian with |λ| floored: away from a maximum, negative
    curvature is flipped (the saddle-free Newton step of Dauphin et al. 2014)."""
    evals, evecs = torch.linalg.eigh(neg_h)
    floor = 1e-12 * evals.abs().amax(-1, keepdim=True).clamp_min(1.0)
    return evals.abs().clamp_min(floor), evecs


def laplace_fit(model: DesignModel, designs: torch.Tensor, y: torch.Tensor, u: torch.Tensor,
                newton_steps: int = 5, max_step: torch.Tensor | float = math.inf) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior modes ``[n, b, P]`` (unconstrained space) and the negative Hessians of the log
    joint there ``[n, b, P, P]``, by damped Newton ascent from ``u: [n, b, P]``.

    Minus the Hessian is made positive definite by taking absolute eigenvalues with a floor,
    each coordinate of a step is capped at ``max_step`` (``[P]`` or a float: a trust region, as
    a flat likelihood can make the Newton step huge), and a step is halved until the log joint
    does not decrease (at most 6 times), so each iteration is safe far from the mode.
    """
    f, g, neg_h = _neg_hessian(model, designs, y, u)
    for _ in range(newton_steps):
        evals, evecs = _positive_eigen(neg_h)
        step = evecs @ ((evecs.transpose(-1, -2) @ g.unsqueeze(-1)) / evals.unsqueeze(-1))
        step = step.squeeze(-1)
        over = (step.abs() / max_step).amax(-1, keepdim=True).clamp_min(1.0)
        step = step / over
        # Newton decrement: the predicted gain of the step, in nats, is ½ gᵀ H⁻¹ g.
        if float((0.5 * (g * step).sum(-1)).max()) < 1e-10:
            break
        new_u, done, scale = u.clone(), torch.zeros_like(f, dtype=torch.bool), torch.ones_like(f)
        with torch.no_grad():
            for _ in range(7):
                cand = u + scale.unsqueeze(-1) * step
                fc = _log_joint(model, designs, y, cand)
                ok = ~done & torch.isfinite(fc) & (fc >= f - 1e-12 * f.abs())
                new_u = torch.where(ok.unsqueeze(-1), cand, new_u)
                done = done | ok
                if bool(done.all()):
                    break
                scale = torch.where(done, scale, 0.5 * scale)
        u = new_u
        f, g, neg_h = _neg_hessian(model, designs, y, u)
    return u, neg_h


def laplace_eig(model: DesignModel, designs: Any, num_outer: int = 1000, newton_steps: int = 5,
                chunk_size: int | None = None, seed: int | torch.Generator = 0) -> EIGEstimate:
    """EIG with a Laplace approximation of each posterior p(θ | y_n, d) (Long et al. 2013,
    "Fast estimation of expected information gains for Bayesian experimental designs based on
    Laplace approximations"; Overstall, McGree & Drovandi 2018):

        EIG(d) ≈ H[p(u)] − (1/N) Σ_n ½ log det(2πe · H_n⁻¹),

    with ``y_n`` simulated from ``θ_n ~ p(θ)``, ``H_n`` minus the Hessian of
    ``log p(y_n | θ(u), d) + log p_u(u)`` at the mode found by Newton's method started at θ_n, and
    u the unconstrained parameters (``biject_to(support)⁻¹``; the EIG is invariant to the
    change of variables, and Gaussians fit better in u). The prior entropy is analytic when every
    parameter is unconstrained with a closed-form entropy, else it is estimated on the same
    draws (``−log p_u(u_n)``).

    Exact (up to the mean over y, which is constant) for linear-Gaussian models, where every
    posterior is Gaussian with a covariance independent of y. Otherwise biased by the
    non-Gaussianity of the posteriors, and the standard error does not include that bias.

    Args: as :func:`nmc_eig`; ``newton_steps`` (≥ 0) Newton iterations per posterior.
    """
    designs = _prepare(model, designs)
    model._require_density("laplace_eig")
    num_outer = check_count(num_outer, "num_outer", minimum=2)
    newton_steps = check_count(newton_steps, "newton_steps", minimum=0)
    chunk_size = _check_chunk(chunk_size)
    seed = _check_seed(seed)
    B, P = designs.shape[0], model.param_dim
    obs_numel = math.prod(model.observation_shape(designs))
    # The autograd graph of one Hessian holds about 4P copies of the likelihood evaluation.
    b_step, n_step, _ = _chunks(obs_numel * 4 * P, num_outer, 1, B, chunk_size)
    prior_entropy = model.prior_entropy()
    entropy_const = 0.5 * P * (1.0 + _LOG_2PI)
    values, errors = [], []
    for start in range(0, B, b_step):
        d = designs[start:start + b_step]
        with seeded(seed, designs.device):
            with torch.no_grad():
                theta0 = model.sample_prior((num_outer, 1))
                # Trust region of the Newton steps: two prior standard deviations per coordinate.
                max_step = 2.0 * model.to_unconstrained(theta0).std(0).reshape(-1).clamp_min(1e-12)
            terms = []
            for o in range(0, num_outer, n_step):
                th = _slice(theta0, slice(o, o + n_step))
                with torch.no_grad():
                    y = model.likelihood(th, d).sample()
                    u0 = model.to_unconstrained(th)  # [n, 1, P]
                u, neg_h = laplace_fit(model, d, y, u0.expand(-1, d.shape[0], -1).clone(), newton_steps, max_step)
                evals, _ = _positive_eigen(neg_h)
                posterior_entropy = entropy_const - 0.5 * evals.log().sum(-1)  # [n, b]
                if prior_entropy is None:
                    with torch.no_grad():
                        _, lp = model.log_prior_unconstrained(u0)  # [n, 1]
                    terms.append(-lp - posterior_entropy)
                else:
                    terms.append(prior_entropy - posterior_entropy)
        v, e = _mean_and_stderr(torch.cat(terms, 0))
        values.append(v)
        errors.append(e)
    return _finite_estimate(EIGEstimate(torch.cat(values), torch.cat(errors)), designs)


# ---------------------------------------------------------------------------------------------
# variational bounds
# ---------------------------------------------------------------------------------------------
def _mvn_log_prob(x: torch.Tensor, mean: torch.Tensor, scale_tril: torch.Tensor) -> torch.Tensor:
    """Gaussian log density ``[..., b]`` of ``x: [..., b, k]`` with ``scale_tril: [b, k, k]``."""
    diff = (x - mean).unsqueeze(-1)
    lead = diff.shape[:-3]
    L = scale_tril.expand(*lead, *scale_tril.shape)
    z = torch.linalg.solve_triangular(L, diff, upper=False).squeeze(-1)
    k = x.shape[-1]
    return -0.5 * z.pow(2).sum(-1) - scale_tril.diagonal(dim1=-2, dim2=-1).log().sum(-1) - 0.5 * k * _LOG_2PI


def _tril_from_raw(raw: torch.Tensor) -> torch.Tensor:
    return torch.tril(raw, -1) + torch.diag_embed(torch.exp(raw.diagonal(dim1=-2, dim2=-1)))


def _raw_from_tril(L: torch.Tensor) -> torch.Tensor:
    return torch.tril(L, -1) + torch.diag_embed(L.diagonal(dim1=-2, dim2=-1).log())


def _cholesky_with_jitter(C: torch.Tensor) -> torch.Tensor:
    scale = C.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12).reshape(*C.shape[:-2], 1, 1)
    eye = torch.eye(C.shape[-1], dtype=C.dtype, device=C.device)
    for jitter in (0.0, 1e-10, 1e-8, 1e-6, 1e-4):
        L, info = torch.linalg.cholesky_ex(C + jitter * scale * eye)
        if not bool((info > 0).any()):
            return L
    return torch.linalg.cholesky(C + 1e-2 * scale * eye)


class GaussianPosteriorGuide(nn.Module):
    """Variational posterior ``q(u | y, d_b) = N(u; W_b y + c_b, L_b L_bᵀ)``, one per design.

    The posterior family of Foster et al. (2019), "Variational Bayesian optimal experimental
    design", for the A/B test: a mean linear in the (flattened) observation and a fixed
    covariance, which contains the exact posterior of every linear-Gaussian model. ``u`` is the
    unconstrained parameter vector ``[P]`` (:meth:`DesignModel.to_unconstrained`).

    Args:
        num_designs: B, the number of designs (guide slots); obs_dim: n, numel of one observation;
        param_dim: P.

    ``log_prob(u [N, b, P], y [N, b, n], designs [b, ...], rows) -> [N, b]`` uses the slots
    ``rows`` (a slice of the B designs). Any ``nn.Module`` with this ``log_prob`` can replace it.
    """

    def __init__(self, num_designs: int, obs_dim: int, param_dim: int,
                 dtype: torch.dtype = torch.float64, device: torch.device | str | None = None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.num_designs = int(num_designs)
        self.weight = nn.Parameter(torch.zeros(num_designs, param_dim, obs_dim, **kw))
        self.bias = nn.Parameter(torch.zeros(num_designs, param_dim, **kw))
        self.raw_scale = nn.Parameter(torch.zeros(num_designs, param_dim, param_dim, **kw))

    def log_prob(self, u: torch.Tensor, y: torch.Tensor, designs: torch.Tensor | None = None,
                 rows: slice = slice(None)) -> torch.Tensor:
        """log q(u | y, d) ``[N, b]`` of parameters ``u: [N, b, P]`` given observations ``y: [N, b, n]``,
        for the guide's design rows ``rows``."""
        mean = (self.weight[rows] @ y.unsqueeze(-1)).squeeze(-1) + self.bias[rows]
        return _mvn_log_prob(u, mean, _tril_from_raw(self.raw_scale[rows]))

    @torch.no_grad()
    def fit_moments(self, u: torch.Tensor, y: torch.Tensor, rows: slice = slice(None)) -> None:
        """Maximum-likelihood fit of the family to draws ``u: [N, b, P]``, ``y: [N, b, n]``:
        least squares of u on y, and the residual covariance."""
        N = u.shape[0]
        um, ym = u.mean(0), y.mean(0)
        uc, yc = u - um, y - ym
        Cyy = torch.einsum("nbi,nbj->bij", yc, yc) / N
        ridge = 1e-8 * Cyy.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-12).reshape(-1, 1, 1)
        Cyy = Cyy + ridge * torch.eye(Cyy.shape[-1], dtype=Cyy.dtype, device=Cyy.device)
        Cuy = torch.einsum("nbi,nbj->bij", uc, yc) / N
        W = torch.linalg.solve(Cyy, Cuy.transpose(-1, -2)).transpose(-1, -2)  # [b, P, n]
        c = um - (W @ ym.unsqueeze(-1)).squeeze(-1)
        resid = u - (W @ y.unsqueeze(-1)).squeeze(-1) - c
        R = torch.einsum("nbi,nbj->bij", resid, resid) / N
        self.weight[rows] = W
        self.bias[rows] = c
        self.raw_scale[rows] = _raw_from_tril(_cholesky_with_jitter(R))


class GaussianMarginalGuide(nn.Module):
    """Variational marginal ``q(y | d_b) = N(y; m_b, L_b L_bᵀ)`` over the flattened observation,
    one per design (Foster et al. 2019). Exact for linear-Gaussian models. Real-valued
    observations only: a density is not a valid bound for discrete y.

    ``log_prob(y [N, b, n], designs [b, ...], rows) -> [N, b]``.
    """

    def __init__(self, num_designs: int, obs_dim: int, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None):
        super().__init__()
        kw = {"dtype": dtype, "device": device}
        self.num_designs = int(num_designs)
        self.mean = nn.Parameter(torch.zeros(num_designs, obs_dim, **kw))
        self.raw_scale = nn.Parameter(torch.zeros(num_designs, obs_dim, obs_dim, **kw))

    def log_prob(self, y: torch.Tensor, designs: torch.Tensor | None = None, rows: slice = slice(None)) -> torch.Tensor:
        """log q(y | d) ``[N, b]`` of observations ``y: [N, b, n]``, for the guide's design rows ``rows``."""
        return _mvn_log_prob(y, self.mean[rows], _tril_from_raw(self.raw_scale[rows]))

    @torch.no_grad()
    def fit_moments(self, y: torch.Tensor, rows: slice = slice(None)) -> None:
        """Maximum-likelihood fit to draws ``y: [N, b, n]``: sample mean and covariance."""
        m = y.mean(0)
        yc = y - m
        C = torch.einsum("nbi,nbj->bij", yc, yc) / y.shape[0]
        self.mean[rows] = m
        self.raw_scale[rows] = _raw_from_tril(_cholesky_with_jitter(C))


def _sample_joint(model: DesignModel, d: torch.Tensor, n: int, rsample: bool = False):
    """θ draws ``{name: [n, 1, ...]}``, u ``[n, 1, P]``, y ``[n, b, *obs]`` and log p(y | θ, d)."""
    theta = model.sample_prior((n, 1))
    lik = model.likelihood(theta, d)
    y = lik.rsample() if rsample else lik.sample()
    return theta, y, lik.log_prob(y)


def _posterior_terms(model, guide, d, rows, theta, y):
    """``log q(u | y, d) − log p_u(u)``: the Barber–Agakov integrand ``[n, b]`` (the Jacobian
    of θ(u) cancels between the two)."""
    obs_ndim = y.dim() - 2
    u = model.to_unconstrained(theta)  # [n, 1, P]
    _, log_prior = model.log_prior_unconstrained(u)
    yf = _flat_obs(y, obs_ndim)
    return guide.log_prob(u.expand(-1, yf.shape[1], -1), yf, d, rows) - log_prior


def _marginal_terms(model, guide, d, rows, y, log_lik):
    """``log p(y | θ, d) − log q(y | d)``: the variational marginal integrand ``[n, b]``."""
    return log_lik - guide.log_prob(_flat_obs(y, y.dim() - 2), d, rows)


def default_guide(kind: str, model: DesignModel, designs: torch.Tensor, num_slots: int) -> nn.Module:
    """The Gaussian guide of a variational bound (``kind``: ``"posterior"`` or ``"marginal"``)
    with ``num_slots`` slots, for observations shaped like those of ``designs``."""
    obs_numel = math.prod(model.observation_shape(designs))
    if kind == "posterior":
        return GaussianPosteriorGuide(num_slots, obs_numel, model.param_dim, designs.dtype, designs.device)
    with seeded(0, designs.device):
        probe = {k: v.unsqueeze(0) for k, v in model.sample_prior((1,)).items()}
    if model.likelihood(probe, designs[:1]).support.is_discrete:
        raise InvalidInput("guide", "a marginal guide for discrete observations (a Gaussian density "
                           "does not bound a probability mass function)", "None")
    return GaussianMarginalGuide(num_slots, obs_numel, designs.dtype, designs.device)


def _check_guide(guide, B: int, name: str = "guide") -> None:
    if not (hasattr(guide, "log_prob") and callable(guide.log_prob)):
        raise InvalidInput(name, "an nn.Module with a log_prob method", describe(guide))
    slots = getattr(guide, "num_designs", None)
    if slots is not None and slots != B:
        raise InvalidInput(name, f"a guide with one slot per design ({B})", f"{slots} slots")


def train_guide(model: DesignModel, designs: torch.Tensor, guide: nn.Module, kind: str, num_steps: int,
                batch_size: int, lr: float, init_samples: int, chunk_size: int | None, seed) -> list[float]:
    """Fit a guide by stochastic gradient ascent on its bound at fixed designs (Adam); returns
    the loss history. ``kind`` is ``"posterior"`` or ``"marginal"``. When the guide has
    ``fit_moments`` and ``init_samples > 0`` it first gets its maximum-likelihood fit to
    ``init_samples`` joint draws, so SGD only refines it."""
    B = designs.shape[0]
    obs_numel = math.prod(model.observation_shape(designs))
    b_step, _, _ = _chunks(obs_numel * 4, max(batch_size, init_samples), 1, B, chunk_size)
    history = []
    with seeded(seed, designs.device):
        if init_samples > 0 and hasattr(guide, "fit_moments"):
            for start in range(0, B, b_step):
                d, rows = designs[start:start + b_step], slice(start, start + b_step)
                with torch.no_grad():
                    theta, y, _ = _sample_joint(model, d, init_samples)
                    yf = _flat_obs(y, y.dim() - 2)
                    if kind == "posterior":
                        u = model.to_unconstrained(theta).expand(-1, d.shape[0], -1)
                        guide.fit_moments(u, yf, rows)
                    else:
                        guide.fit_moments(yf, rows)
        if num_steps == 0:
            return history
        opt = torch.optim.Adam(guide.parameters(), lr=lr)
        for _ in range(num_steps):
            opt.zero_grad()
            total = 0.0
            for start in range(0, B, b_step):
                d, rows = designs[start:start + b_step], slice(start, start + b_step)
                with torch.no_grad():
                    theta, y, log_lik = _sample_joint(model, d, batch_size)
                # Maximise the lower bound, minimise the upper bound.
                if kind == "posterior":
                    loss = -_posterior_terms(model, guide, d, rows, theta, y).mean(0).sum()
                else:
                    loss = _marginal_terms(model, guide, d, rows, y, log_lik).mean(0).sum()
                loss.backward()
                total += loss.item()
            opt.step()
            history.append(total)
    return history


def _variational(kind: str, model, designs, guide, num_outer, num_steps, batch_size, lr, init_samples,
                 chunk_size, seed) -> EIGEstimate:
    designs = _prepare(model, designs)
    num_outer = check_count(num_outer, "num_outer", minimum=2)
    if num_steps is not None:
        num_steps = check_count(num_steps, "num_steps", minimum=0)
    batch_size = check_count(batch_size, "batch_size")
    init_samples = check_count(init_samples, "init_samples", minimum=0)
    chunk_size = _check_chunk(chunk_size)
    seed = _check_seed(seed)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not (0 < float(lr) < math.inf):
        raise InvalidInput("lr", "a positive learning rate", repr(lr))
    B = designs.shape[0]
    obs_shape = model.observation_shape(designs)
    obs_numel = math.prod(obs_shape)
    if kind == "posterior":
        model._require_density("posterior_eig")
    if guide is None:
        guide = default_guide(kind, model, designs, B)
    _check_guide(guide, B)
    if num_steps is None:
        # A closed-form maximum-likelihood fit needs no SGD (Adam's first steps would only
        # jitter it); any other guide is trained from scratch.
        num_steps = 0 if (init_samples > 0 and hasattr(guide, "fit_moments")) else 500
    seed_train = seed if isinstance(seed, torch.Generator) or seed is None else seed + 1
    train_guide(model, designs, guide, kind, num_steps, batch_size, float(lr), init_samples, chunk_size, seed_train)
    b_step, n_step, _ = _chunks(obs_numel * 4, num_outer, 1, B, chunk_size)
    values, errors = [], []
    with torch.no_grad():
        for start in range(0, B, b_step):
            d, rows = designs[start:start + b_step], slice(start, start + b_step)
            with seeded(seed, designs.device):
                terms = []
                for o in range(0, num_outer, n_step):
                    theta, y, log_lik = _sample_joint(model, d, min(n_step, num_outer - o))
                    if kind == "posterior":
                        terms.append(_posterior_terms(model, guide, d, rows, theta, y))
                    else:
                        terms.append(_marginal_terms(model, guide, d, rows, y, log_lik))
            v, e = _mean_and_stderr(torch.cat(terms, 0))
            values.append(v)
            errors.append(e)
    return _finite_estimate(EIGEstimate(torch.cat(values), torch.cat(errors)), designs)


def posterior_eig(model: DesignModel, designs: Any, guide: nn.Module | None = None, num_outer: int = 1000,
                  num_steps: int | None = None, batch_size: int = 256, lr: float = 1e-2, init_samples: int = 2000,
                  chunk_size: int | None = None, seed: int | torch.Generator = 0) -> EIGEstimate:
    """The variational posterior (Barber–Agakov) lower bound (Barber & Agakov 2003, "The IM
    algorithm"; Foster et al. 2019, "Variational Bayesian optimal experimental design", eq. 8):

        EIG(d) ≥ E_{p(θ) p(y | θ, d)} [ log q(θ | y, d) − log p(θ) ],

    with equality when ``q`` is the true posterior. The guide (default
    :class:`GaussianPosteriorGuide` on the unconstrained parameters) is first given its
    closed-form maximum-likelihood fit to ``init_samples`` joint draws when it has
    ``fit_moments``, then trained by ``num_steps`` of Adam (default: none after a closed-form
    fit, 500 otherwise) on batches of ``batch_size`` joint draws; the bound is then estimated
    on ``num_outer`` fresh draws. A guide passed in is trained in place. Needs a prior density.

    Args: as :func:`nmc_eig`; guide: ``nn.Module`` with ``log_prob(u, y, designs, rows)`` and
    one slot per design.
    """
    return _variational("posterior", model, designs, guide, num_outer, num_steps, batch_size, lr,
                        init_samples, chunk_size, seed)


def marginal_eig(model: DesignModel, designs: Any, guide: nn.Module | None = None, num_outer: int = 1000,
                 num_steps: int | None = None, batch_size: int = 256, lr: float = 1e-2, init_samples: int = 2000,
                 chunk_size: int | None = None, seed: int | torch.Generator = 0) -> EIGEstimate:
    """The variational marginal upper bound (Foster et al. 2019, eq. 9):

        EIG(d) ≤ E_{p(θ) p(y | θ, d)} [ log p(y | θ, d) − log q(y | d) ],

    with equality when ``q(y | d)`` is the true marginal p(y | d). The default guide
    (:class:`GaussianMarginalGuide`, real-valued observations only) is initialised by moment
    matching and refined by Adam as in :func:`posterior_eig`; discrete observations need a
    guide that is a probability mass function.
    """
    return _variational("marginal", model, designs, guide, num_outer, num_steps, batch_size, lr,
                        init_samples, chunk_size, seed)


#: registry name -> estimator, for :func:`estimate_eig` and the design optimisers
ESTIMATORS: dict[str, Callable[..., EIGEstimate]] = {
    "nmc": nmc_eig,
    "pce": pce_eig,
    "posterior": posterior_eig,
    "marginal": marginal_eig,
    "laplace": laplace_eig,
}


def estimate_eig(model: DesignModel, designs: Any, estimator: str = "pce", *, method: str | None = None,
                 **options) -> EIGEstimate:
    """EIG of ``designs`` by the estimator named ``estimator`` (a key of :data:`ESTIMATORS`;
    ``method`` is its deprecated name); ``options`` go to that estimator, and one it does not
    take is :class:`~bayesal.errors.InvalidInput` naming it."""
    if method is not None:
        estimator = renamed(None, method, "estimator", "method", "estimate_eig")
    if estimator not in ESTIMATORS:
        raise UnknownName("estimator", str(estimator), list(ESTIMATORS))
    fn = ESTIMATORS[estimator]
    accepted = inspect.signature(fn).parameters
    unknown = sorted(k for k in options if k not in accepted)
    if unknown and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        known = sorted(k for k in accepted if k not in ("model", "designs"))
        raise InvalidInput("options", f"options of the {estimator!r} estimator ({', '.join(known)})",
                           ", ".join(unknown))
    return fn(model, designs, **options)
