"""Sequential Bayesian experimental design: choose a design, observe, update p(θ | data), repeat.

After each observation the posterior over θ is represented by K equally weighted draws, from

* ``inference="importance"`` (default, for models whose likelihood is cheap): adaptive
  importance sampling in the unconstrained space. The proposal is a defensive mixture
  (Hesterberg 1995, "Weighted average importance sampling and defensive mixture
  distributions") of the prior and a Gaussian fitted to the previous posterior draws with an
  inflated covariance, refitted to the weighted draws while the effective sample size is low
  (population Monte Carlo, Cappé et al. 2004); then K draws are resampled.
* ``inference="nuts"``: the No-U-Turn sampler (Hoffman & Gelman 2014) of Pyro on the same
  unconstrained log density, several chains run one after the other (Pyro is imported only
  here; ``pip install pyro-ppl``).

The next design maximises the EIG under the current posterior, used as the prior
(:meth:`DesignModel.condition_on_samples`), over a finite candidate set or a box.
:meth:`SequentialDesign.inference_data` gives an ArviZ ``InferenceData`` and
:meth:`SequentialDesign.diagnostics` its r_hat and effective sample sizes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInput, OracleFailed
from ..validation import as_tensor, check_count, describe, renamed
from .model import DesignModel, Theta, seeded
from .optimize import DesignChoice, optimize_design, select_design

__all__ = ["SequentialDesign", "importance_posterior", "nuts_posterior", "INFERENCE"]

INFERENCE = ("importance", "nuts")
_SAMPLING_METHODS = ("pce", "nmc", "marginal")


def _import_arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def _data_log_likelihood(model: DesignModel, theta: Theta, designs: list[torch.Tensor],
                         ys: list[torch.Tensor]) -> torch.Tensor:
    """``Σ_k log p(y_k | θ, d_k)`` for ``theta[name]: [S, *event]``; returns ``[S]``."""
    th = {k: v.unsqueeze(1) for k, v in theta.items()}  # [S, 1, ...]: one design at a time
    total = 0.0
    for d, y in zip(designs, ys):
        total = total + model.likelihood(th, d.unsqueeze(0)).log_prob(y.unsqueeze(0))[:, 0]
    return total


def _gaussian_fit(u: torch.Tensor, w: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean ``[P]`` and Cholesky factor ``[P, P]`` of the covariance of ``u: [S, P]``."""
    if w is None:
        w = torch.full((u.shape[0],), 1.0 / u.shape[0], dtype=u.dtype, device=u.device)
    mean = (w.unsqueeze(-1) * u).sum(0)
    c = u - mean
    cov = (w.unsqueeze(-1) * c).T @ c
    scale = cov.diagonal().mean().clamp_min(1e-12)
    eye = torch.eye(u.shape[-1], dtype=u.dtype, device=u.device)
    for jitter in (1e-9, 1e-6, 1e-3, 1e-1):
        L, info = torch.linalg.cholesky_ex(cov + jitter * scale * eye)
        if int(info) == 0:
            return mean, L
    return mean, torch.sqrt(scale) * eye


def _gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    z = torch.linalg.solve_triangular(L, (u - mean).T, upper=False)  # [P, S]
    P = u.shape[-1]
    return -0.5 * z.pow(2).sum(0) - L.diagonal().log().sum() - 0.5 * P * math.log(2 * math.pi)


def importance_posterior(model: DesignModel, designs: list[torch.Tensor], ys: list[torch.Tensor],
                         num_samples: int = 2000, num_proposal: int = 20000,
                         previous: Theta | None = None, inflation: float = 1.5, prior_weight: float = 0.1,
                         min_ess: float | None = None, max_iterations: int = 5,
                         seed: int | torch.Generator = 0) -> tuple[Theta, float]:
    """Posterior draws ``{name: [num_samples, *event]}`` given the data, and the effective
    sample size of the final importance weights (Kish 1965: ``(Σw)² / Σw²``).

    Args:
        designs, ys: the experiments so far, ``[*design_shape]`` and ``[*obs]`` each.
        num_proposal: S, proposal draws per iteration.
        previous: draws of an earlier posterior to centre the proposal on (default: prior only).
        inflation: scale of the Gaussian proposal's standard deviations relative to the fit.
        prior_weight: the prior's share of the defensive mixture.
        min_ess: stop adapting once the ESS reaches this (default ``S / 20``).
    """
    model._require_density("importance_posterior")
    S = num_proposal
    min_ess = S / 20 if min_ess is None else float(min_ess)
    with seeded(seed, model.device), torch.no_grad():
        fit = None
        if previous is not None:
            mean, L = _gaussian_fit(model.to_unconstrained(previous))
            fit = (mean, L * inflation)
        for _ in range(max_iterations):
            u_prior = model.to_unconstrained(model.sample_prior((S,)))
            if fit is None:
                u = u_prior
            else:
                mean, L = fit
                z = torch.randn(S, mean.numel(), dtype=mean.dtype, device=mean.device)
                u_gauss = mean + z @ L.T
                pick = torch.rand(S, device=mean.device) < prior_weight
                u = torch.where(pick.unsqueeze(-1), u_prior, u_gauss)
            theta, log_prior = model.log_prior_unconstrained(u)
            log_lik = _data_log_likelihood(model, theta, designs, ys)
            if fit is None:
                log_w = log_lik  # the proposal is the prior: the prior density cancels
            else:
                log_q = torch.logaddexp(math.log(prior_weight) + log_prior,
                                        math.log1p(-prior_weight) + _gaussian_log_prob(u, *fit))
                log_w = log_prior + log_lik - log_q
            log_w = torch.where(torch.isfinite(log_w), log_w, torch.full_like(log_w, -math.inf))
            if not bool(torch.isfinite(log_w).any()):
                raise InvalidInput("y", "observations with positive likelihood under the model's prior",
                                   "data that every proposal draw finds impossible")
            w = torch.softmax(log_w, 0)
            ess = float(1.0 / w.pow(2).sum())
            if ess >= min_ess:
                break
            mean, L = _gaussian_fit(u, w)
            fit = (mean, L * inflation)
        idx = torch.multinomial(w, num_samples, replacement=True)
    return {k: v[idx] for k, v in theta.items()}, ess


def nuts_posterior(model: DesignModel, designs: list[torch.Tensor], ys: list[torch.Tensor],
                   num_samples: int = 500, warmup_steps: int = 300, num_chains: int = 2,
                   initial: Theta | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Posterior draws ``{name: [num_chains, num_samples, *event]}`` by Pyro's NUTS on the
    unconstrained log density ``log p_u(u) + Σ_k log p(y_k | θ(u), d_k)``.

    The chains run one after the other in this process (no multiprocessing), each from a draw
    of ``initial`` (e.g. an importance-sampling posterior) or of the prior.
    """
    try:
        from pyro.infer import MCMC, NUTS
    except ImportError:
        raise ImportError("inference='nuts' needs Pyro: pip install pyro-ppl") from None
    model._require_density("nuts_posterior")

    def potential(params):
        u = params["u"].unsqueeze(0)
        theta, log_prior = model.log_prior_unconstrained(u)
        return -(log_prior + _data_log_likelihood(model, theta, designs, ys))[0]

    chains = []
    with seeded(seed, model.device):
        source = initial if initial is not None else model.sample_prior((num_chains,))
        count = next(iter(source.values())).shape[0]
        starts = model.to_unconstrained({k: v[torch.randint(0, count, (num_chains,))] for k, v in source.items()})
        for c in range(num_chains):
            kernel = NUTS(potential_fn=potential, adapt_step_size=True, adapt_mass_matrix=True)
            mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=warmup_steps,
                        initial_params={"u": starts[c].detach().clone()}, num_chains=1, disable_progbar=True)
            mcmc.run()
            chains.append(mcmc.get_samples()["u"].detach())
    u = torch.stack(chains)  # [C, D, P]
    with torch.no_grad():
        theta, _ = model.from_unconstrained(u)
    return theta


class SequentialDesign:
    """Adaptive design: ``ask`` for the most informative design, ``tell`` what was observed.

    Args:
        model: the design model (with a prior density).
        candidates: ``[N, *design_shape]`` a finite set of designs, or None to optimise over
            ``bounds`` (default ``model.bounds``) with :func:`~bayesal.design.optimize_design`.
        estimator: EIG estimator for a finite set (``"pce"``, ``"nmc"``, ``"marginal"``: the
            posterior is represented by samples, so no estimator that needs a prior density);
            ``eig_options`` go to it.
        optimize_options: options of :func:`~bayesal.design.optimize_design` (box only).
        inference: ``"importance"`` or ``"nuts"``.
        num_posterior_samples: K posterior draws kept after each update.
        num_proposal: proposal draws per importance iteration.
        nuts_options: ``num_samples``, ``warmup_steps``, ``num_chains`` for NUTS (then
            K = num_chains · num_samples).
        seed: every round's randomness derives from it.

    >>> seq = SequentialDesign(PsychometricModel(trials=10), candidates=torch.linspace(-6, 6, 49))
    >>> for _ in range(10):
    ...     d = seq.ask()
    ...     seq.tell(d, run_experiment(d))
    >>> seq.summary()          # ArviZ summary: mean, sd, hdi, ess_bulk, r_hat
    """

    def __init__(self, model: DesignModel, candidates: Any = None, bounds: Any = None, estimator: str = "pce",
                 eig_options: dict | None = None, optimize_options: dict | None = None,
                 inference: str = "importance", num_posterior_samples: int = 2000, num_proposal: int = 20000,
                 nuts_options: dict | None = None, seed: int = 0, *, method: str | None = None):
        if not isinstance(model, DesignModel):
            raise InvalidInput("model", "a bayesal.design.DesignModel", describe(model))
        model._require_density("sequential design")
        if method is not None:
            estimator = renamed(None, method, "estimator", "method", "SequentialDesign")
        if estimator not in _SAMPLING_METHODS:
            raise InvalidInput("estimator", "one of " + ", ".join(_SAMPLING_METHODS) +
                               " (the posterior is a set of samples, with no density)", repr(estimator))
        if inference not in INFERENCE:
            raise InvalidInput("inference", "one of " + ", ".join(INFERENCE), repr(inference))
        self.model = model
        self.candidates = None if candidates is None else model.check_designs(candidates, "candidates")
        if self.candidates is None and bounds is None and model.bounds is None:
            raise InvalidInput("candidates", "a candidate set, or bounds for a continuous search", "neither")
        self.bounds = bounds
        self.estimator = estimator
        self.eig_options = dict(eig_options or {})
        self.optimize_options = dict(optimize_options or {})
        self.inference = inference
        self.num_posterior_samples = check_count(num_posterior_samples, "num_posterior_samples", minimum=4)
        self.num_proposal = check_count(num_proposal, "num_proposal", minimum=10)
        self.nuts_options = {"num_samples": 500, "warmup_steps": 300, "num_chains": 2}
        self.nuts_options.update(nuts_options or {})
        self.seed = int(seed)
        self.designs: list[torch.Tensor] = []
        self.observations: list[torch.Tensor] = []
        self.history: list[dict[str, Any]] = []
        self._chains: dict[str, torch.Tensor] | None = None  # {name: [C, D, *event]}
        self.importance_ess: float | None = None
        self._pending: DesignChoice | None = None
        self._set_prior_draws()

    # -- state ------------------------------------------------------------------------------
    def _set_prior_draws(self) -> None:
        with seeded(self.seed, self.model.device), torch.no_grad():
            draws = self.model.sample_prior((self.num_posterior_samples,))
        self._chains = {k: v.unsqueeze(0) for k, v in draws.items()}

    @property
    def num_rounds(self) -> int:
        """Number of rounds run so far (designs chosen and observed)."""
        return len(self.designs)

    @property
    def posterior_samples(self) -> dict[str, torch.Tensor]:
        """Current draws of θ, ``{name: [K, *event]}`` (prior draws before any data)."""
        return {k: v.reshape(-1, *v.shape[2:]) for k, v in self._chains.items()}

    def posterior_mean(self) -> dict[str, torch.Tensor]:
        """Posterior mean of each parameter, ``{name: [*event]}``, from the current draws."""
        return {k: v.mean(0) for k, v in self.posterior_samples.items()}

    def posterior_std(self) -> dict[str, torch.Tensor]:
        """Posterior standard deviation of each parameter, ``{name: [*event]}``, from the current draws."""
        return {k: v.std(0) for k, v in self.posterior_samples.items()}

    # -- the loop ---------------------------------------------------------------------------
    def current_model(self) -> DesignModel:
        """The model whose prior is the current posterior (the prior itself before any data)."""
        if not self.designs:
            return self.model
        return self.model.condition_on_samples(self.posterior_samples)

    def ask(self) -> torch.Tensor:
        """The next design ``[*design_shape]``: the EIG maximiser under the current posterior."""
        round_seed = self.seed + 7919 * (self.num_rounds + 1)
        model = self.current_model()
        if self.candidates is not None:
            choice = select_design(model, self.candidates, 1, self.estimator, seed=round_seed, **self.eig_options)
        else:
            opts = {"final_estimator": self.estimator, "final_options": self.eig_options or None}
            opts.update(self.optimize_options)
            choice = optimize_design(model, self.bounds, seed=round_seed, **opts)
        self._pending = choice
        return choice.design.clone()

    def tell(self, design: Any, y: Any) -> SequentialDesign:
        """Record the observation ``y: [*obs]`` at ``design: [*design_shape]`` and update the
        posterior."""
        d = self.model.check_designs(design, "design")
        if d.shape[0] != 1:
            raise InvalidInput("design", f"one design of shape {list(self.model.design_shape)}", describe(design))
        d = d[0]
        obs_shape = self.model.observation_shape(d.unsqueeze(0))
        y_t = as_tensor(y, "y", dtype=self.model.dtype, device=self.model.device)
        if y_t.numel() != math.prod(obs_shape):
            raise InvalidInput("y", f"one observation of shape {list(obs_shape)}", describe(y))
        y_t = y_t.reshape(obs_shape)
        if not bool(torch.isfinite(y_t).all()):
            raise InvalidInput("y", "a finite observation", f"{y_t.tolist()}")
        self.designs.append(d)
        self.observations.append(y_t)
        try:
            self._update()
        except Exception:
            self.designs.pop()
            self.observations.pop()
            raise
        eig = None
        if self._pending is not None and torch.equal(self._pending.design, d):
            eig = self._pending.eig
        self._pending = None
        sd = self.posterior_std()
        self.history.append({
            "round": self.num_rounds,
            "design": d.detach().clone(),
            "y": y_t.detach().clone(),
            "eig": None if eig is None else float(eig.value),
            "eig_stderr": None if eig is None else float(eig.stderr),
            "posterior_mean": {k: v.detach().clone() for k, v in self.posterior_mean().items()},
            "posterior_std": {k: v.detach().clone() for k, v in sd.items()},
            "importance_ess": self.importance_ess,
        })
        return self

    def _update(self) -> None:
        round_seed = self.seed + 7919 * self.num_rounds + 1
        previous = self.posterior_samples if self.num_rounds > 1 else None
        if self.inference == "importance":
            draws, self.importance_ess = importance_posterior(
                self.model, self.designs, self.observations, self.num_posterior_samples, self.num_proposal,
                previous=previous, seed=round_seed)
            C = 4 if self.num_posterior_samples % 4 == 0 else 1
            self._chains = {k: v.reshape(C, -1, *v.shape[1:]) for k, v in draws.items()}
        else:
            self.importance_ess = None
            self._chains = nuts_posterior(self.model, self.designs, self.observations, initial=previous,
                                          seed=round_seed, **self.nuts_options)

    def run(self, oracle: Callable[[torch.Tensor], Any], num_rounds: int,
            callback: Callable[[SequentialDesign], None] | None = None) -> SequentialDesign:
        """``num_rounds`` of ask → ``oracle(design)`` → tell; ``callback(self)`` after each."""
        num_rounds = check_count(num_rounds, "num_rounds")
        for _ in range(num_rounds):
            d = self.ask()
            try:
                y = oracle(d)
            except Exception as exc:
                raise OracleFailed(f"the oracle raised at round {self.num_rounds + 1}: {exc!r}", self.history) from exc
            self.tell(d, y)
            if callback is not None:
                callback(self)
        return self

    # -- diagnostics ------------------------------------------------------------------------
    def inference_data(self):
        """An ArviZ ``InferenceData``: the posterior draws (chain, draw, …), the observations and
        the designs. With importance sampling the K resampled draws are split into 4 pseudo-chains
        (independent by construction, so r_hat ≈ 1 says nothing; look at ``importance_ess``)."""
        az = _import_arviz()
        posterior = {k: v.detach().cpu().numpy() for k, v in self._chains.items()}
        kwargs = {}
        if self.designs:
            kwargs["observed_data"] = {"y": torch.stack(self.observations).cpu().numpy()}
            kwargs["constant_data"] = {"design": torch.stack(self.designs).cpu().numpy()}
        return az.from_dict(posterior=posterior, **kwargs)

    def summary(self, **kwargs):
        """``arviz.summary`` of the current posterior (mean, sd, HDI, MCSE, ESS, r_hat)."""
        az = _import_arviz()
        return az.summary(self.inference_data(), **kwargs)

    def diagnostics(self) -> dict[str, Any]:
        """``{"r_hat": {var: max}, "ess_bulk": {var: min}, "ess_tail": {var: min},
        "importance_ess": float | None, "inference": str}`` for the current posterior."""
        table = self.summary(kind="diagnostics")
        out: dict[str, Any] = {"r_hat": {}, "ess_bulk": {}, "ess_tail": {}}
        for name in self.model.names:
            rows = [i for i in table.index if i == name or i.startswith(name + "[")]
            out["r_hat"][name] = float(np.nanmax(table.loc[rows, "r_hat"].to_numpy()))
            out["ess_bulk"][name] = float(np.nanmin(table.loc[rows, "ess_bulk"].to_numpy()))
            out["ess_tail"][name] = float(np.nanmin(table.loc[rows, "ess_tail"].to_numpy()))
        out["importance_ess"] = self.importance_ess
        out["inference"] = self.inference
        return out

    def __repr__(self) -> str:
        return f"SequentialDesign(rounds={self.num_rounds}, inference={self.inference!r}, estimator={self.estimator!r})"
