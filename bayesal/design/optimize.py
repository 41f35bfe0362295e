"""Choosing designs: the argmax over a finite set, gradient ascent over a box, and batches.

* :func:`select_design` scores a finite set of candidate designs with any EIG estimator and
  takes the argmax; for ``q > 1`` it builds the batch greedily, each step maximising the *joint*
  EIG of the batch so far plus one candidate (:func:`~bayesal.design.batch_model`), with common
  random numbers so candidates are compared on the same draws.
* :func:`optimize_design` climbs a differentiable EIG bound over a continuous box by stochastic
  gradient ascent (Foster et al. 2020, "A unified stochastic gradient approach to designing
  Bayesian-optimal experiments"): PCE with reparameterised observations, or the variational
  posterior / marginal bounds trained jointly with their guide. With ``q > 1`` the q designs of
  a batch are optimised jointly on the joint EIG. Observations that cannot be reparameterised
  (counts, binary responses) get the score-function gradient with a leave-one-out baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InvalidInput, UnknownName
from ..validation import as_tensor, check_count, describe, renamed
from .eig import (
    ESTIMATORS,
    EIGEstimate,
    _flat_obs,
    _marginal_terms,
    _posterior_terms,
    contrastive_terms,
    default_guide,
    estimate_eig,
)
from .model import DesignModel, batch_model, seeded

__all__ = ["DesignChoice", "select_design", "optimize_design", "OBJECTIVES"]

#: differentiable bounds :func:`optimize_design` can climb
OBJECTIVES = ("pce", "posterior", "marginal")


@dataclass
class DesignChoice:
    """The outcome of a design search.

    Attributes:
        designs: ``[q, *design_shape]`` the chosen design(s).
        eig: the EIG estimate of the chosen batch (value and standard error, scalars).
        indices: ``[q]`` positions in the candidate set (finite search), else None.
        scores: EIG of every candidate (finite search, first pick) or of every restart's final
            design (gradient search), as an :class:`~bayesal.design.EIGEstimate`.
        history: the objective (mean over restarts) after each gradient step.
    """

    designs: torch.Tensor
    eig: EIGEstimate
    indices: torch.Tensor | None = None
    scores: EIGEstimate | None = None
    history: list[float] = field(default_factory=list)

    @property
    def design(self) -> torch.Tensor:
        """The first (for q = 1 the only) chosen design ``[*design_shape]``."""
        return self.designs[0]


def _check_model(model: Any) -> DesignModel:
    if not isinstance(model, DesignModel):
        raise InvalidInput("model", "a bayesal.design.DesignModel", describe(model))
    return model


def _check_estimator(estimator: str) -> None:
    if estimator not in ESTIMATORS:
        raise UnknownName("estimator", str(estimator), list(ESTIMATORS))


def select_design(model: DesignModel, candidates: Any, q: int = 1, estimator: str = "pce",
                  allow_repeats: bool = True, seed: int = 0, *, method: str | None = None,
                  **options) -> DesignChoice:
    """The candidate design(s) of highest EIG.

    Args:
        model: the design model.
        candidates: ``[N, *design_shape]`` candidate designs.
        q: batch size; q > 1 is built greedily on the joint EIG of the batch.
        estimator: estimator name (``"pce"``, ``"nmc"``, ``"laplace"``, ``"posterior"``,
            ``"marginal"``; ``method`` is its deprecated name); ``options`` are passed to it
            (``num_outer=…``).
        allow_repeats: whether a batch may repeat a candidate (replicates are often optimal in
            experimental design, unlike in pool-based active learning).
        seed: the same seed gives the same choice.

    Returns: :class:`DesignChoice` with ``indices [q]``, ``designs [q, *design_shape]`` and the
    candidates' EIG for the first pick in ``scores``.
    """
    model = _check_model(model)
    candidates = model.check_designs(candidates, "candidates")
    N = candidates.shape[0]
    q = check_count(q, "q", maximum=None if allow_repeats else N,
                    maximum_reason="without repeats, at most the number of candidates")
    if method is not None:
        estimator = renamed(None, method, "estimator", "method", "select_design")
    _check_estimator(estimator)
    chosen: list[int] = []
    first = best = None
    for j in range(q):
        if j == 0:
            pool = torch.arange(N, device=candidates.device)
            est = first = estimate_eig(model, candidates, estimator, seed=seed, **options)
        else:
            pool = torch.arange(N, device=candidates.device)
            if not allow_repeats:
                keep = torch.ones(N, dtype=torch.bool, device=candidates.device)
                keep[chosen] = False
                pool = pool[keep]
            prefix = candidates[chosen].unsqueeze(0).expand(pool.numel(), *candidates[chosen].shape)
            batches = torch.cat([prefix, candidates[pool].unsqueeze(1)], 1)  # [n, j+1, *ds]
            est = estimate_eig(batch_model(model, j + 1), batches, estimator, seed=seed, **options)
        k = int(torch.argmax(est.value))
        chosen.append(int(pool[k]))
        best = EIGEstimate(est.value[k], est.stderr[k])
    idx = torch.tensor(chosen, dtype=torch.long, device=candidates.device)
    return DesignChoice(candidates[idx], best, idx, first)


def _score_function(terms: torch.Tensor, log_lik: torch.Tensor) -> torch.Tensor:
    """A surrogate whose gradient is ``∇g + g ∇ log p(y | θ, d)`` for ``y`` drawn without a
    reparameterisation (REINFORCE, Williams 1992), with the leave-one-out mean of g over the
    samples as a baseline (unbiased, lower variance)."""
    g = terms.detach()
    n = g.shape[0]
    baseline = (g.sum(0, keepdim=True) - g) / max(n - 1, 1)
    return terms + (g - baseline) * log_lik


def optimize_design(model: DesignModel, bounds: Any = None, q: int = 1, estimator: str = "pce",
                    num_restarts: int = 8, num_steps: int = 300, lr: float = 0.02, num_outer: int = 64,
                    num_contrastive: int = 127, guide: torch.nn.Module | None = None, guide_lr: float = 1e-2,
                    final_estimator: str = "pce", final_options: dict | None = None,
                    seed: int = 0, *, objective: str | None = None, final_method: str | None = None) -> DesignChoice:
    """Maximise an EIG bound over a box of designs by stochastic gradient ascent.

    Args:
        model: the design model.
        bounds: ``[2, *design_shape]`` (default: ``model.bounds``).
        q: number of designs chosen jointly (optimised on the joint EIG of the batch).
        estimator: the differentiable bound climbed: ``"pce"`` (lower bound; ``num_contrastive``
            = L), ``"posterior"`` (Barber–Agakov lower bound, guide trained jointly) or
            ``"marginal"`` (upper bound: the guide descends it while the designs ascend it);
            ``objective`` is its deprecated name.
        num_restarts: designs optimised in parallel from uniform random starts.
        num_steps, lr: Adam steps and step size on the designs rescaled to the unit box
            (projected back into the box after each step).
        num_outer: joint draws (θ, y) per step.
        guide: for the variational objectives, a guide with ``num_restarts`` slots (default: the
            Gaussian guide of :mod:`bayesal.design.eig`). A guide with ``fit_moments`` (the
            Gaussian ones) is refitted in closed form to each step's draws; any other guide is
            trained by Adam (``guide_lr``) jointly with the designs (Foster et al. 2020, §4).
        final_estimator, final_options: the estimator that scores the restarts' final designs
            (default PCE with 1000 outer and 1000 contrastive draws); the best one is returned
            (``final_method`` is the deprecated name of ``final_estimator``).
        seed: the same seed gives the same designs.

    Returns: :class:`DesignChoice` with ``designs [q, *design_shape]`` and the restarts' final
    EIG in ``scores``.
    """
    model = _check_model(model)
    if objective is not None:
        estimator = renamed(None, objective, "estimator", "objective", "optimize_design")
    if final_method is not None:
        final_estimator = renamed(None, final_method, "final_estimator", "final_method", "optimize_design")
    objective = estimator
    if objective not in OBJECTIVES:
        raise UnknownName("estimator", str(objective), list(OBJECTIVES))
    _check_estimator(final_estimator)
    q = check_count(q, "q")
    R = check_count(num_restarts, "num_restarts")
    num_steps = check_count(num_steps, "num_steps", minimum=0)
    n = check_count(num_outer, "num_outer", minimum=2)
    L = check_count(num_contrastive, "num_contrastive")
    if not (float(lr) > 0):
        raise InvalidInput("lr", "a positive step size", repr(lr))
    if bounds is None:
        if model.bounds is None:
            raise InvalidInput("bounds", "a [2, *design_shape] box (the model has none)", "None")
        box = model.bounds
    else:
        box = as_tensor(bounds, "bounds", dtype=model.dtype, device=model.device)
        if tuple(box.shape) != (2, *model.design_shape):
            raise InvalidInput("bounds", f"a tensor of shape {[2, *model.design_shape]}", describe(bounds))
        if not bool(torch.isfinite(box).all()) or not bool((box[1] >= box[0]).all()):
            raise InvalidInput("bounds", "finite bounds with upper >= lower", f"{box.tolist()}")
        if model.bounds is not None:
            inside = (box[0] >= model.bounds[0] - 1e-12).all() and (box[1] <= model.bounds[1] + 1e-12).all()
            if not bool(inside):
                raise InvalidInput("bounds", f"a box inside the model's bounds {model.bounds.tolist()}", f"{box.tolist()}")
    bm = batch_model(model, q)
    lo = box[0].unsqueeze(0).expand(q, *model.design_shape) if q > 1 else box[0]
    hi = box[1].unsqueeze(0).expand(q, *model.design_shape) if q > 1 else box[1]
    span = hi - lo
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    x = torch.rand(R, *bm.design_shape, generator=gen, dtype=model.dtype).to(model.device)
    x = x.requires_grad_(True)
    params = [{"params": [x], "lr": float(lr)}]
    if objective in ("posterior", "marginal"):
        if objective == "posterior":
            bm._require_density("the posterior objective")
        if guide is None:
            guide = default_guide(objective, bm, (lo + span * x).detach(), R)
        slots = getattr(guide, "num_designs", R)
        if slots != R:
            raise InvalidInput("guide", f"a guide with one slot per restart ({R})", f"{slots} slots")
        refit = hasattr(guide, "fit_moments")
        if not refit:
            params.append({"params": list(guide.parameters()), "lr": float(guide_lr)})
    opt = torch.optim.Adam(params)
    history: list[float] = []
    rows = slice(None)
    with seeded(seed, model.device):
        for _ in range(num_steps):
            opt.zero_grad()
            d = lo + span * x
            with torch.no_grad():
                theta = bm.sample_prior((n, 1))
            lik = bm.likelihood(theta, d)
            reparam = lik.has_rsample
            y = lik.rsample() if reparam else lik.sample()
            log_lik = lik.log_prob(y)  # [n, R]
            if objective == "pce":
                with torch.no_grad():
                    contrast = bm.sample_prior((L, n, 1))
                terms = contrastive_terms(bm, d, y, log_lik, contrast, include_outer=True)
            else:
                if refit:
                    # A guide with a closed-form best fit is refitted to the current draws at
                    # every step: at the optimal guide the gradient of the bound in d is its
                    # partial derivative (envelope theorem), with no min-max game to balance.
                    with torch.no_grad():
                        yf = _flat_obs(y.detach(), y.dim() - 2)
                        if objective == "posterior":
                            guide.fit_moments(bm.to_unconstrained(theta).expand(-1, R, -1), yf)
                        else:
                            guide.fit_moments(yf)
                if objective == "posterior":
                    terms = _posterior_terms(bm, guide, d, rows, theta, y)
                else:
                    terms = _marginal_terms(bm, guide, d, rows, y, log_lik)
            surrogate = terms if reparam else _score_function(terms, log_lik)
            (-surrogate.mean(0).sum()).backward()
            if objective == "marginal" and not refit:
                for p in guide.parameters():  # the guide minimises the upper bound
                    if p.grad is not None:
                        p.grad.neg_()
            opt.step()
            with torch.no_grad():
                x.clamp_(0.0, 1.0)
            history.append(float(terms.detach().mean()))
    final = (lo + span * x).detach()
    options = {"num_outer": 1000, "num_contrastive": 1000} if final_estimator == "pce" else {}
    options.update(final_options or {})
    scores = estimate_eig(bm, final, final_estimator, seed=seed, **options)
    k = int(torch.argmax(scores.value))
    designs = final[k] if q > 1 else final[k].unsqueeze(0)
    return DesignChoice(designs, EIGEstimate(scores.value[k], scores.stderr[k]), None, scores, history)
