"""A fully Bayesian Gaussian process: NUTS over the hyperparameters, a mixture posterior.

With 10–200 labels, lengthscales fitted by maximum likelihood are often poor, and an acquisition
then chases the wrong directions. Integrating over the hyperparameters instead (Riis et al.,
NeurIPS 2022, "Bayesian Active Learning with Fully Bayesian Gaussian Processes") gives a
posterior that is a mixture of S Gaussian processes, one per draw θ_s of the hyperparameters:
``p(f | D) = (1/S) Σ_s N(μ_s, σ²_s)``.

The models and priors are BoTorch's: ``FullyBayesianSingleTaskGP`` (Matérn-5/2 with a
dimension-scaled log-normal lengthscale prior) and ``SaasFullyBayesianSingleTaskGP`` (the
sparse axis-aligned subspace prior of Eriksson & Jankowiak, UAI 2021, for many inputs). NUTS
(Hoffman & Gelman 2014) runs in NumPyro, in several chains so that convergence can be judged,
and is warm-started from the previous fit's posterior: a campaign refits after every batch, and
a chain started where the last posterior sat, with that posterior's covariance as its mass
matrix, needs a fraction of the warm-up. The sampler is compiled once per size bucket and reused
by every later fit in the process (:mod:`bayesal.models.nuts`). The chains are
kept as ArviZ ``InferenceData`` (:attr:`FullyBayesianGP.inference_data`), with r_hat, bulk and
tail effective sample sizes and the divergences in :meth:`FullyBayesianGP.diagnostics`.

Needs the optional ``fully-bayesian`` extra (JAX, NumPyro): ``pip install "bayesal[fully-bayesian]"``.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import gpytorch
import torch

from ..errors import InvalidInput, NotFitted, Unsupported
from ..posteriors import MixturePosterior
from ..validation import check_count, check_seed, check_X, check_y, fit_bounds
from .algebra import ExactGaussianAlgebra
from .base import AlgebraSurrogate, Surrogate
from .gp import clamped, rescale_outcome, scale_free

__all__ = ["FullyBayesianGP", "HyperparameterDraws", "PRIORS", "ConvergenceWarning", "diagnostic_lines"]

#: the hyperparameter priors: BoTorch's Matérn-5/2 model and its SAAS model
PRIORS = ("matern", "saas")
#: r_hat above this is reported as a convergence problem (Vehtari et al. 2021 recommend 1.01 for
#: final inference; 1.05 is the customary threshold for "the chains have not mixed")
RHAT_WARNING = 1.05


class ConvergenceWarning(UserWarning):
    """The chains of a fully Bayesian fit have not mixed (r_hat above the threshold) or diverged."""


def diagnostic_lines(hyper: dict) -> list[str]:
    """Lines for ``bayesal status`` and the report from :meth:`FullyBayesianGP.fit_diagnostics`:
    NUTS convergence, the lengthscales' and the noise's posterior, and a warning when the chains
    have not mixed."""
    r_hat = hyper.get("r_hat_max")
    lines = [f"NUTS       r_hat max {'n/a' if r_hat is None else f'{r_hat:.3f}'}, ESS bulk min "
             f"{hyper['ess_bulk_min']:.0f}, tail min {hyper['ess_tail_min']:.0f}, {hyper['divergences']} divergences "
             f"({hyper['chains']} chains x {hyper['draws']} draws{', warm start' if hyper.get('warm_start') else ''})"]
    ls = hyper.get("lengthscale") or []
    if ls:
        med = ", ".join(f"{q[1]:.3g}" for q in ls)
        rng = ", ".join(f"[{q[0]:.3g}, {q[2]:.3g}]" for q in ls)
        lines.append(f"lengthscale median {med} (unit-cube inputs); 95 % {rng}")
    if hyper.get("noise"):
        n = hyper["noise"]
        lines.append(f"noise var  median {n[1]:.3g}; 95 % [{n[0]:.3g}, {n[2]:.3g}]")
    if r_hat is not None and r_hat > RHAT_WARNING or hyper.get("divergences"):
        lines.append(f"warning    the NUTS chains have not converged (r_hat above {RHAT_WARNING} or divergent "
                     "transitions): more warm-up or draws may help")
    return lines

def _require_numpyro():
    try:
        import jax
        import numpyro
    except ImportError as err:  # the optional extra
        raise Unsupported("FullyBayesianGP", "JAX and NumPyro (NUTS over the hyperparameters)",
                          'fully Bayesian inference; install them with pip install "bayesal[fully-bayesian]"') from err
    return jax, numpyro


class FullyBayesianGP(Surrogate):
    """A Gaussian process with its hyperparameters integrated out by NUTS.

    Its posterior is a :class:`~bayesal.posteriors.MixturePosterior` over S hyperparameter
    draws (``S = num_chains · num_samples / thinning``): component means and variances
    ``[S, N, 1]``, and the mixture's moments ``[N, 1]`` for every acquisition that reads a
    Gaussian posterior. The hyperparameter criteria of :mod:`bayesal.acquisition.hyper` read the
    components.

    Args:
        prior: ``"matern"`` (Matérn-5/2, BoTorch's dimension-scaled log-normal lengthscale prior)
            or ``"saas"`` (sparse axis-aligned subspaces, for many inputs).
        num_samples: NUTS draws kept per chain before thinning.
        warmup: NUTS warm-up steps of a cold start.
        warm_warmup: warm-up steps when started from the previous fit's posterior: the chains
            start at its median, the mass matrix is the covariance of its draws, and only the
            step size is adapted again (the data changed).
        thinning: keep every ``thinning``-th draw.
        num_chains: independent chains (at least 2 for r_hat), run one after the other.
        max_tree_depth: NUTS's maximum tree depth (BoTorch's default 6).
        warm_start: start each refit from the last posterior's median, with ``warm_warmup``.
        seed: seed of the chains (each fit of a campaign adds its fit count).
    """

    posterior_kind = "gaussian"

    def __init__(self, prior: str = "matern", num_samples: int = 128, warmup: int = 256, warm_warmup: int = 64,
                 thinning: int = 16, num_chains: int = 2, max_tree_depth: int = 6, warm_start: bool = True,
                 seed: int = 0):
        if prior not in PRIORS:
            raise InvalidInput("prior", f"one of {', '.join(PRIORS)}", repr(prior))
        self.prior = prior
        self.num_samples = check_count(num_samples, "num_samples")
        self.warmup = check_count(warmup, "warmup")
        self.warm_warmup = check_count(warm_warmup, "warm_warmup")
        self.thinning = check_count(thinning, "thinning")
        self.num_chains = check_count(num_chains, "num_chains")
        self.max_tree_depth = check_count(max_tree_depth, "max_tree_depth")
        if self.thinning > self.num_samples:
            raise InvalidInput("thinning", f"at most num_samples ({self.num_samples})", str(thinning))
        self.warm_start = bool(warm_start)
        self.seed = check_seed(seed)
        self.model = None
        self.inference_data = None
        self._fits = 0
        self._chain_state: tuple | None = None  # per chain: last position, step size, inverse mass matrix
        self._sites_dim: int | None = None  # the input dimension the warm-start values belong to
        self._diagnostics: dict[str, Any] | None = None  # of the last fit, computed once
        self._pending = None  # (points [p, d], internal-unit labels [S, p]) after condition_on
        self._cache = None
        self._fitted = False

    def __repr__(self) -> str:
        return (f"FullyBayesianGP(prior={self.prior!r}, S={self.num_components}, chains={self.num_chains}, "
                f"fitted={self._fitted})")

    @property
    def num_components(self) -> int:
        """S, the number of hyperparameter draws in the mixture."""
        per_chain = len(range(0, self.num_samples, self.thinning))
        return self.num_chains * per_chain

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, bounds: Any = None) -> "FullyBayesianGP":
        """NUTS over the hyperparameters given ``X: [n, d]``, ``y: [n]`` or ``[n, 1]``.

        ``bounds: [2, d]`` fixes the input normalisation (the search space's box); without it the
        training data's range is used. A warning (:class:`ConvergenceWarning`) is raised when a
        hyperparameter's r_hat exceeds 1.05 or a chain diverged."""
        jax, _ = _require_numpyro()
        import numpy as np
        from botorch.models.fully_bayesian import FullyBayesianSingleTaskGP, SaasFullyBayesianSingleTaskGP
        from botorch.models.transforms.input import Normalize
        from botorch.models.transforms.outcome import Standardize

        from .nuts import sampler

        X = check_X(X, "X").to(torch.float64)
        y = check_y(y, "y", n=X.shape[0]).to(torch.float64)
        if y.shape[-1] != 1:
            raise InvalidInput("y", "one output column (FullyBayesianGP models a single output; fit one per output)",
                               f"{y.shape[-1]} columns")
        if X.shape[0] < 2:
            raise InvalidInput("X", "at least 2 labelled points for NUTS over the hyperparameters", f"{X.shape[0]}")
        d = X.shape[-1]
        bounds = fit_bounds(X, bounds, "X")
        y, y_shift, y_scale = scale_free(y)
        cls = SaasFullyBayesianSingleTaskGP if self.prior == "saas" else FullyBayesianSingleTaskGP
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # BoTorch's input-scaling notes: we normalise and standardise
            model = cls(X, y, input_transform=Normalize(d=d, bounds=bounds), outcome_transform=Standardize(m=1))
        model.train()
        warm = self.warm_start and self._chain_state is not None and self._sites_dim == d
        nuts = sampler(self.prior, d, X.shape[0], self.warm_warmup if warm else self.warmup, self.num_samples,
                       self.max_tree_depth, adapt_mass=not warm)
        # the data exactly as BoTorch's model sees them (unit cube, standardised), padded
        args = nuts.data(model.pyro_model.train_X, model.pyro_model.train_Y)
        keys = jax.random.split(jax.random.PRNGKey(self.seed * 1009 + self._fits), self.num_chains)
        draws, positions, diverging, steps, state = [], [], [], [], []
        with nuts.lock:
            for c in range(self.num_chains):
                if warm:
                    z0, step, mass = self._chain_state
                else:
                    z0, step, mass = nuts.initial_position(keys[c], args), 1.0, None
                zs, div, n_steps, final = nuts.chain(keys[c], args, z0, step, mass)
                draws.append(nuts.constrain(zs, args))
                positions.append(zs)
                diverging.append(np.asarray(div))
                steps.append(np.asarray(n_steps))
                state.append((float(final.adapt_state.step_size), final.adapt_state.inverse_mass_matrix))
        self._chain_state = self._warm_state(positions, state)
        self._sites_dim = d
        grouped = {k: np.stack([np.asarray(dr[k]) for dr in draws]) for k in draws[0]}  # [chains, draws, ...]
        kept = {k: jax.numpy.asarray(v[:, ::self.thinning].reshape((-1,) + v.shape[2:])) for k, v in grouped.items()}
        samples = model.pyro_model.postprocess_mcmc_samples(mcmc_samples=kept)
        model.load_mcmc_samples(samples)
        model.eval()
        rescale_outcome(model.outcome_transform, y_shift, y_scale)
        self.model = model
        self.num_outputs = 1
        self._pending, self._cache = None, None
        self._fits += 1
        self._warm = warm
        self.inference_data = self._inference_data(grouped, np.stack(diverging), np.stack(steps))
        self._diagnostics = None
        self._fitted = True
        self._warn_if_unconverged()
        return self

    @staticmethod
    def _warm_state(positions: list, state: list) -> tuple:
        """Where the next fit's chains start: every chain at the median of this fit's draws (in
        NUTS's unconstrained space); its inverse mass matrix is the covariance of this fit's draws
        (a better estimate than a short warm-up's), kept fixed while the step size is adapted again
        from the chains' mean."""
        import jax
        import jax.numpy as jnp

        from .nuts import draws_covariance

        median = jax.tree_util.tree_map(lambda *v: jnp.median(jnp.concatenate(v), axis=0), *positions)
        step = float(math.exp(sum(math.log(s) for s, _ in state) / len(state)))
        return median, step, draws_covariance(positions)

    @staticmethod
    def _inference_data(posterior: dict, diverging, steps):
        """ArviZ ``InferenceData`` of the chains: ``posterior`` site -> ``[chains, draws, ...]``,
        ``diverging`` and ``steps`` (leapfrog steps per draw) ``[chains, draws]``."""
        import arviz as az

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return az.from_dict(posterior=posterior, sample_stats={"diverging": diverging, "n_steps": steps})

    # -- diagnostics -------------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, Any]:
        """Convergence of the last fit: ``{"r_hat_max", "ess_bulk_min", "ess_tail_min",
        "divergences", "chains", "draws", "warm_start", "table"}``, where ``table`` is
        ``arviz.summary`` of the hyperparameters (mean, sd, HDI, ESS, r_hat per parameter)."""
        self._require_fitted()
        if self._diagnostics is not None:
            return self._diagnostics
        import arviz as az

        idata = self.inference_data
        names = [v for v in idata.posterior.data_vars]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # arviz warns when a chain has a single draw
            table = az.summary(idata, var_names=names, kind="all")
        div = int(idata.sample_stats["diverging"].values.sum()) if "diverging" in idata.sample_stats else 0
        self._diagnostics = {
            "r_hat_max": float(table["r_hat"].max()) if self.num_chains > 1 else math.nan,
            "ess_bulk_min": float(table["ess_bulk"].min()),
            "ess_tail_min": float(table["ess_tail"].min()),
            "divergences": div,
            "chains": self.num_chains,
            "draws": self.num_samples,
            "warm_start": bool(self._warm),
            "table": table,
        }
        return self._diagnostics

    def fit_diagnostics(self) -> dict[str, Any]:
        """The convergence figures of :meth:`diagnostics` (without the table) and the posterior of
        the lengthscales (inputs scaled to the unit cube) and of the noise variance (y units):
        ``[2.5 %, median, 97.5 %]`` per input, as stored in campaign records."""
        diag = {k: v for k, v in self.diagnostics().items() if k != "table"}
        h = self.hyperparameters()
        probs = torch.tensor([0.025, 0.5, 0.975], dtype=torch.float64)

        def spread(v: torch.Tensor) -> list[float]:
            return [float(x) for x in torch.quantile(v.to(torch.float64), probs)]

        diag["lengthscale"] = [spread(h["lengthscale"][:, i]) for i in range(h["lengthscale"].shape[1])]
        diag["noise"] = spread(self.component_noise_variance[:, 0])
        diag["prior"] = self.prior
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in diag.items()}

    def _warn_if_unconverged(self) -> None:
        diag = self.diagnostics()
        problems = []
        if diag["r_hat_max"] > RHAT_WARNING:
            worst = diag["table"]["r_hat"].idxmax()
            problems.append(f"r_hat {diag['r_hat_max']:.3f} > {RHAT_WARNING} (worst: {worst})")
        if diag["divergences"]:
            problems.append(f"{diag['divergences']} divergent transitions")
        if problems:
            warnings.warn(f"FullyBayesianGP: the NUTS chains have not converged: {'; '.join(problems)}. "
                          "More warm-up or samples (warmup=, num_samples=) may help.", ConvergenceWarning,
                          stacklevel=3)

    def hyperparameters(self) -> dict[str, torch.Tensor]:
        """The S kept draws of each hyperparameter, in the model's units (inputs scaled to the
        unit cube, y standardised): ``lengthscale [S, d]``, ``outputscale [S]`` (ones for the
        Matérn model, whose outputscale is fixed by the standardisation), ``noise [S]``,
        ``mean [S]``."""
        self._require_fitted()
        m, S = self.model, self.num_components
        k = m.covar_module
        base = getattr(k, "base_kernel", k)
        scale = k.outputscale.detach().reshape(S) if hasattr(k, "outputscale") else torch.ones(S, dtype=torch.float64)
        return {
            "lengthscale": base.lengthscale.detach().reshape(S, -1),
            "outputscale": scale,
            "noise": m.likelihood.noise.detach().reshape(S, -1)[:, 0],
            "mean": m.mean_module.constant.detach().reshape(S),
        }

    # -- the posterior: THE exact algebra, with the S draws as its batch of "outputs" ---------------
    def _require_fitted(self) -> None:
        if not self._fitted:
            raise NotFitted("FullyBayesianGP has no data yet: call fit(X, y) (or tell the learner some labels) first")

    def _kernel(self, A: torch.Tensor, B: torch.Tensor, diag: bool = False) -> torch.Tensor:
        """The S draws' prior kernels on transformed inputs ``[..., 1|S, N, d]`` → ``[..., S, Na, Nb]``."""
        batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2], (self.num_components,))
        A = A.expand(*batch, *A.shape[-2:])
        B = B.expand(*batch, *B.shape[-2:])
        with gpytorch.settings.lazily_evaluate_kernels(False):
            k = self.model.covar_module(A, B, diag=diag)
        return k.to_dense() if hasattr(k, "to_dense") else k

    def _algebra(self) -> ExactGaussianAlgebra:
        """The posterior of every draw at once: an :class:`ExactGaussianAlgebra` whose m = S
        "outputs" are the hyperparameter draws (values in y units), conditioned on the pending
        points too when there are any (their labels taken at each draw's own mean)."""
        self._require_fitted()
        if self._cache is None:
            model, S = self.model, self.num_components
            ot = model.outcome_transform
            transform = clamped(model.input_transform)
            Xt = model.train_inputs[0].detach().unsqueeze(0)  # [1, n, d], already transformed
            targets = model.train_targets.detach().reshape(1, -1).expand(S, -1)  # [S, n] internal units
            if self._pending is not None:
                P, mu = self._pending
                Xt = torch.cat([Xt, transform(P).unsqueeze(0)], -2)
                targets = torch.cat([targets, mu], -1)
            with torch.no_grad():
                self._cache = ExactGaussianAlgebra(
                    self._kernel, transform, Xt,
                    noise=model.likelihood.noise.detach().reshape(S, -1)[:, 0],
                    targets=targets, const=model.mean_module.constant.detach().reshape(S),
                    y_mean=ot.means.reshape(1).expand(S), y_std=ot.stdvs.reshape(1).expand(S),
                )
        return self._cache

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        self._require_fitted()
        Xt = self.model.train_inputs[0]
        return check_X(X, name, dim=Xt.shape[-1]).to(dtype=Xt.dtype, device=Xt.device)

    def parameter_like(self) -> torch.Tensor:
        return self.model.train_inputs[0] if self._fitted else torch.empty(0, dtype=torch.float64)

    @property
    def num_train(self) -> int:
        return self._algebra().n_train if self._fitted else 0

    @property
    def component_noise_variance(self) -> torch.Tensor:
        """``[S, 1]`` the observation-noise variance of each draw, in the units of y²."""
        return self._algebra().noise_variance.reshape(-1, 1)

    @property
    def noise_variance(self) -> torch.Tensor:
        """``[1]`` the mixture's mean observation-noise variance, in the units of y²."""
        return self.component_noise_variance.mean(0)

    @property
    def posterior_bytes_per_row(self) -> float:
        return 8.0 * self.num_components * (3 * max(self.num_train, 1) + 8)

    def posterior(self, X: Any, chunk_size: int | None = None) -> MixturePosterior:
        """The mixture posterior of f at ``X: [N, d]`` (components ``[S, N, 1]``), in chunks."""
        X = self._check_points(X)
        mean, var = self._algebra().marginals(X, chunk_size)
        return MixturePosterior(mean.T.unsqueeze(-1), var.T.unsqueeze(-1),
                                component_noise_variance=self.component_noise_variance,
                                covariance_fn=lambda idx: self.covariance(X[idx], X[idx]))

    def component_covariance(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """``[S, Na, Nb]``: the posterior cross-covariance of f under each draw."""
        return self._algebra().covariance(self._check_points(A, "A"), self._check_points(B, "B"))

    def covariance(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """``[1, Na, Nb]``: the mixture's cross-covariance, ``E_s[Σ_s] + Cov_s[μ_s(A), μ_s(B)]``
        (the law of total covariance)."""
        A, B = self._check_points(A, "A"), self._check_points(B, "B")
        algebra = self._algebra()
        mu_a = algebra.marginals(A)[0] if A.shape[0] else A.new_zeros(0, self.num_components)
        mu_b = algebra.marginals(B)[0] if B.shape[0] else B.new_zeros(0, self.num_components)
        S = self.num_components
        between = (mu_a - mu_a.mean(1, keepdim=True)) @ (mu_b - mu_b.mean(1, keepdim=True)).T / S
        return (algebra.covariance(A, B).mean(0) + between).unsqueeze(0)

    def covariance_columns(self, X: torch.Tensor) -> "MixtureColumns":
        """Columns ``j -> Σ(X, X[j]) [1, N]`` of the mixture covariance (the greedy engine's)."""
        X = self._check_points(X)
        algebra = self._algebra()
        return MixtureColumns(algebra.columns(X), algebra.marginals(X)[0].T)

    def component_joint_posterior(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable per-draw mean ``[b, q, S]`` and covariance ``[b, S, q, q]`` on ``X: [b, q, d]``."""
        return self._algebra().joint(X)

    def joint_posterior(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable mixture moments on ``X: [b, q, d]``: mean ``[b, q, 1]`` and covariance
        ``[b, 1, q, q]`` (``E_s[Σ_s] + Cov_s[μ_s]``)."""
        mu, C = self._algebra().joint(X)
        mean = mu.mean(-1, keepdim=True)
        centred = mu - mean  # [b, q, S]
        cov = C.mean(1) + centred @ centred.transpose(-1, -2) / self.num_components
        return mean, cov.unsqueeze(1)

    def hyperparameter_draws(self) -> "HyperparameterDraws":
        """This model draw by draw (:class:`HyperparameterDraws`), for the criteria over draws."""
        self._require_fitted()
        return HyperparameterDraws(self)

    def condition_on(self, X_pending: Any) -> "FullyBayesianGP":
        """A copy conditioned on pending points ``[p, d]``, under every draw, with each draw's
        label taken at its own posterior mean (so each component's mean is unchanged and its
        variance shrinks exactly); the hyperparameter draws are kept, nothing is refitted."""
        Xp = self._check_points(X_pending, "X_pending")
        algebra = self._algebra()
        mu = algebra.marginals(Xp)[0].T  # [S, p] in y units
        internal = (mu - algebra.y_mean.reshape(-1, 1)) / algebra.y_std.reshape(-1, 1)
        clone = copy.copy(self)
        if self._pending is not None:
            P0, m0 = self._pending
            Xp, internal = torch.cat([P0, Xp]), torch.cat([m0, internal], -1)
        clone._pending = (Xp, internal)
        clone._cache = None
        return clone


class HyperparameterDraws(AlgebraSurrogate):
    """A fully Bayesian GP seen draw by draw: a Gaussian surrogate whose m = S "outputs" are the
    S hyperparameter draws of its one output (posterior ``[N, S]``, covariance columns ``[S, N]``,
    noise ``[S]``), so THE greedy engine conditions every draw at once. Only the criteria over
    hyperparameter draws read it (:mod:`bayesal.acquisition.hyper`)."""

    def __init__(self, parent: "FullyBayesianGP"):
        self.parent = parent
        self.num_outputs = parent.num_components
        self._fitted = True

    def __repr__(self) -> str:
        return f"HyperparameterDraws(S={self.num_outputs})"

    def fit(self, X: Any, y: Any, bounds: Any = None):
        raise self._unsupported("fit (fit the FullyBayesianGP it views)", "fit")

    def _algebra(self) -> ExactGaussianAlgebra:
        return self.parent._algebra()

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        return self.parent._check_points(X, name)

    def condition_on(self, X_pending: Any) -> "HyperparameterDraws":
        return HyperparameterDraws(self.parent.condition_on(X_pending))


class MixtureColumns:
    """Columns of the mixture covariance over a fixed set: ``j -> E_s[Σ_s(X, x_j)] +
    Cov_s[μ_s(X), μ_s(x_j)]``, ``[1, N]``, from the draws' columns and means ``[S, N]``."""

    def __init__(self, columns, means: torch.Tensor):
        self.columns = columns
        self.centred = means - means.mean(0, keepdim=True)

    def __call__(self, j: int) -> torch.Tensor:
        c = self.centred
        return (self.columns(j).mean(0) + (c * c[:, j:j + 1]).mean(0)).unsqueeze(0)
