"""Acquisitions over hyperparameter draws: what a fully Bayesian GP's mixture posterior adds.

A :class:`~bayesal.models.FullyBayesianGP` answers with a
:class:`~bayesal.posteriors.MixturePosterior`: S Gaussian components ``N(μ_s, σ²_s)``, one per
hyperparameter draw θ_s, with observation noise ``σ²_n,s``. Each criterion here reads the
components (on any other Gaussian posterior it sees a single component, S = 1):

* :class:`HyperBALD` — BALD about the hyperparameters, ``I[y; θ] = H[p(y)] − E_s H[p(y | θ_s)]``,
  the mutual information between the next label and the draw (Houlsby et al. 2011; BoTorch's
  ``qBayesianActiveLearningByDisagreement``, which it equals given the same normal draws). The
  mixture's entropy has no closed form: Gauss–Hermite quadrature for one point, quasi-Monte Carlo
  (Sobol normal draws, as BoTorch) for a batch. S = 1: zero.
* :class:`BQBC` — Bayesian query-by-committee (Riis et al. 2022): ``Var_s[μ_s(x)]``, the
  disagreement of the draws' means. S = 1: zero.
* :class:`QBMGP` — query by mixture of GPs (Riis et al. 2022): the mixture's predictive variance
  ``E_s[σ²_s] + Var_s[μ_s]``. S = 1: max variance.
* :class:`HellingerDistance` — the statistical-distance criterion of Hvarfner et al. (2023,
  "Self-Correcting Bayesian Optimization through Bayesian Active Learning", SAL): the mean
  Hellinger distance between each draw's predictive ``N(μ_s, σ²_s + σ²_n,s)`` and the mixture's
  moment-matched predictive. S = 1: zero.

Integrated variance and EPIG need nothing new: on a fully Bayesian GP they read the mixture's
moments and cross-covariances (law of total covariance), and reduce to their point-estimate
forms at S = 1.

A batch of q > 1 on a pool is built greedily with each draw conditioned on the points chosen
(labels at each draw's mean: :meth:`~bayesal.models.FullyBayesianGP.condition_on`); on a box, the
continuous selector does the same with pending points.

References: Riis, Antunes, Hüttel, Llorente Hernández, Rodrigues & Pereira (NeurIPS 2022),
"Bayesian Active Learning with Fully Bayesian Gaussian Processes"; Hvarfner, Hellsten, Hutter &
Nardi (ICML 2023); Houlsby, Huszár, Ghahramani & Lengyel (2011), "Bayesian Active Learning for
Classification and Preference Learning".
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InvalidInput
from ..posteriors import GaussianPosterior, MixturePosterior
from ..settings import rows_per_chunk
from ..validation import check_count
from .base import Acquisition, require_gaussian

__all__ = ["HyperAcquisition", "HyperBALD", "BQBC", "QBMGP", "HellingerDistance", "components",
           "hyper_bald_mc", "hyper_bald_quadrature"]

_LOG_2PI_E = math.log(2 * math.pi * math.e)


def components(posterior) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean, variance, noise)`` of the components: ``[S, N, m]``, ``[S, N, m]``, ``[S, m]``;
    a plain Gaussian posterior is one component (S = 1), with zero noise when it has none."""
    if isinstance(posterior, MixturePosterior):
        noise = posterior.component_noise_variance
        mu, var = posterior.component_mean, posterior.component_variance
    else:
        mu, var = posterior.mean.unsqueeze(0), posterior.variance.unsqueeze(0)
        noise = None if posterior.noise_variance is None else posterior.noise_variance.reshape(1, -1)
    if noise is None:
        noise = torch.zeros(mu.shape[0], mu.shape[-1], dtype=mu.dtype, device=mu.device)
    return mu, var, noise.to(mu).expand(mu.shape[0], mu.shape[-1])


class HyperAcquisition(Acquisition):
    """What the criteria over hyperparameter draws share: a score from the components, summed
    over outputs, and greedy pool batches on THE engine run over the draws.

    A pool batch is greedy (:class:`~bayesal.selection.greedy.GreedyConditioning`): the engine
    conditions every draw's variance on each point chosen (each draw's own covariance column,
    labels at each draw's mean), and the criterion is scored from the conditioned draws. On a
    box, one point is optimised at a time, the surrogate conditioned on the points chosen."""

    def _score_components(self, mu, var, noise) -> torch.Tensor:
        raise NotImplementedError

    def score(self, posterior, generator=None) -> torch.Tensor:
        require_gaussian(self, posterior)
        mu, var, noise = components(posterior)
        return self._score_components(mu, var, noise)

    def greedy_scorer(self, surrogate, X: torch.Tensor, mean: torch.Tensor, noise: torch.Tensor):
        draws = surrogate.hyperparameter_draws()
        if draws is None:  # a point estimate: one component, the engine's own variances
            return _OneComponentScorer(self, mean, noise)
        return _DrawsScorer(self, draws, X)

    def batch_value(self, surrogate, X: torch.Tensor) -> torch.Tensor:
        """Value ``[b]`` of single points ``X: [b, 1, d]`` on a box, from each draw's posterior."""
        if X.shape[-2] != 1:
            raise InvalidInput("q", f"1 for {self.name} on a box (batches are built point by point)", str(X.shape[-2]))
        draws = surrogate.hyperparameter_draws()
        model = surrogate if draws is None else draws
        mean, cov = model.joint_posterior(X)  # [b, 1, S], [b, S, 1, 1]
        mu, var = mean[:, 0, :].T.unsqueeze(-1), cov[..., 0, 0].T.unsqueeze(-1)  # [S, b, 1]
        nv = model.noise_variance
        noise = (torch.zeros(mu.shape[0]) if nv is None else nv.reshape(-1)).to(mu).reshape(-1, 1)
        return self._score_components(mu, var.clamp_min(0.0), noise.expand(mu.shape[0], 1))


class _OneComponentScorer:
    def __init__(self, acquisition, mean, noise):
        self.acquisition, self.mean, self.noise = acquisition, mean, noise

    def scores(self, var):
        return self.acquisition.score(GaussianPosterior(self.mean, var, self.noise))

    def update(self, j, v_new, denom):
        pass


class _NoScores:
    def scores(self, var):
        return var.sum(-1)

    def update(self, j, v_new, denom):
        pass


class _DrawsScorer:
    """The criterion from the draws' own conditioned variances: a second
    :class:`~bayesal.selection.greedy.GreedyConditioning` over ``[N, S]`` (one column of each
    draw per step), means fixed (the pending labels at each draw's mean)."""

    def __init__(self, acquisition, draws, X):
        from ..selection.greedy import GreedyConditioning  # selection builds on acquisition

        post = draws.posterior(X)  # Gaussian, [N, S]: the draws as outputs
        columns = draws.covariance_columns(X)
        self.acquisition = acquisition
        self.mu = post.mean.T.unsqueeze(-1)  # [S, N, 1]
        self.noise = draws.noise_variance.reshape(-1, 1)
        self.state = GreedyConditioning(post.variance, draws.noise_variance, _NoScores(), column=lambda j: columns(j).T)

    def scores(self, var):
        return self.acquisition._score_components(self.mu, self.state.var.T.unsqueeze(-1), self.noise)

    def update(self, j, v_new, denom):
        if j is None:
            raise InvalidInput("selector", "a single pool for a hyperparameter criterion", "shards")
        self.state.choose(j)


class BQBC(HyperAcquisition):
    """Bayesian query-by-committee (Riis et al. 2022): ``Var_s[μ_s(x)]``, the spread of the
    hyperparameter draws' posterior means, summed over outputs.

    It reads the means only, and a pending label taken at each draw's mean leaves them unchanged:
    a greedy batch is therefore the q best single points (Riis et al. label one at a time)."""

    name = "bqbc"

    def _score_components(self, mu, var, noise):
        return (mu - mu.mean(0, keepdim=True)).pow(2).mean(0).sum(-1)


class QBMGP(HyperAcquisition):
    """Query by a mixture of GPs (Riis et al. 2022): the mixture's variance of f,
    ``E_s[σ²_s(x)] + Var_s[μ_s(x)]``, summed over outputs (max variance when S = 1)."""

    name = "qbmgp"

    def _score_components(self, mu, var, noise):
        return (var + (mu - mu.mean(0, keepdim=True)).pow(2)).mean(0).sum(-1)


class HellingerDistance(HyperAcquisition):
    """Statistical distance (Hvarfner et al. 2023): the mean over draws of the Hellinger distance
    between the draw's predictive ``N(μ_s, σ²_s + σ²_n,s)`` and the mixture's moment-matched
    predictive ``N(μ̄, v̄)``, summed over outputs.

    For two Gaussians, ``H² = 1 − sqrt(2 s₁ s₂ / (s₁² + s₂²)) exp(−(μ₁ − μ₂)² / (4 (s₁² + s₂²)))``.
    """

    name = "hellinger"

    def _score_components(self, mu, var, noise):
        v_s = var + noise.unsqueeze(1)  # [S, N, m] predictive variances
        mean = mu.mean(0, keepdim=True)
        v_bar = (v_s + (mu - mean).pow(2)).mean(0, keepdim=True)
        tiny = torch.finfo(mu.dtype).tiny
        total = (v_s + v_bar).clamp_min(tiny)
        # two point masses (a noise-free posterior at a labelled point): coefficient 1 where they
        # coincide, 0 where they do not (the limit of the formula, which reads 0/0 there)
        ratio = torch.where(v_s + v_bar > tiny, 2 * torch.sqrt(v_s * v_bar) / total, torch.ones_like(total))
        bc = torch.sqrt(ratio) * torch.exp(-(mu - mean).pow(2) / (4 * total))
        return torch.sqrt((1 - bc).clamp_min(0.0)).mean(0).sum(-1)


def _log_mixture_density(y: torch.Tensor, mu: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``log (1/S) Σ_s N(y; μ_s, v_s)`` for ``y: [..., N]`` against components ``mu, v: [S, N]``
    broadcast on the leading axes."""
    lp = -0.5 * ((y.unsqueeze(-2) - mu) ** 2 / v + torch.log(2 * math.pi * v))  # [..., S, N]
    return torch.logsumexp(lp, -2) - math.log(mu.shape[0])


def hyper_bald_quadrature(mu: torch.Tensor, v: torch.Tensor, nodes: int = 48) -> torch.Tensor:
    """``I[y; θ]`` at single points: ``mu, v: [S, N]`` the components' predictive means and
    variances (noise included) → ``[N]``. The mixture's entropy
    ``−(1/S) Σ_s E_{y∼N(μ_s, v_s)} log p(y)`` by Gauss–Hermite quadrature in each component,
    the components' entropies exactly."""
    t, w = np.polynomial.hermite.hermgauss(nodes)
    t = torch.as_tensor(t, dtype=mu.dtype, device=mu.device)
    w = torch.as_tensor(w / math.sqrt(math.pi), dtype=mu.dtype, device=mu.device)
    step = max(1, rows_per_chunk(8.0 * nodes * mu.shape[0] ** 2 * 3))
    out = []
    for i in range(0, mu.shape[1], step):
        m, s2 = mu[:, i:i + step], v[:, i:i + step]
        y = m.unsqueeze(0) + math.sqrt(2) * t.reshape(-1, 1, 1) * s2.sqrt().unsqueeze(0)  # [K, S, n]
        logp = _log_mixture_density(y, m, s2)  # [K, S, n]
        h_mix = -(w.reshape(-1, 1, 1) * logp).sum(0).mean(0)
        h_comp = 0.5 * (torch.log(s2) + _LOG_2PI_E).mean(0)
        out.append(h_mix - h_comp)
    return torch.cat(out).clamp_min(0.0)


def hyper_bald_mc(mean: torch.Tensor, cov: torch.Tensor, base_samples: torch.Tensor) -> torch.Tensor:
    """``I[y; θ]`` of q-batches by Monte Carlo, as BoTorch's ``qBayesianActiveLearningByDisagreement``.

    Args:
        mean: ``[b, S, q]`` each draw's predictive mean; cov: ``[b, S, q, q]`` its predictive
            covariance (noise included).
        base_samples: ``[K, q]`` standard normal draws, shared by every component and batch.

    Each component's K draws ``y = μ_s + L_s z`` are scored under every component; the mixture's
    entropy is ``−mean log((1/S) Σ_s' p_s'(y))`` and the components' ``−mean log p_s(y)``."""
    from torch.distributions import MultivariateNormal

    L = torch.linalg.cholesky(cov)  # [b, S, q, q]
    y = mean.unsqueeze(0) + (L.unsqueeze(0) @ base_samples.reshape(-1, 1, 1, base_samples.shape[-1], 1)
                             .to(mean)).squeeze(-1)  # [K, b, S, q]
    dist = MultivariateNormal(mean, scale_tril=L)  # batch [b, S]
    own = dist.log_prob(y)  # [K, b, S]
    S = mean.shape[1]
    every = MultivariateNormal(mean.unsqueeze(1), scale_tril=L.unsqueeze(1))  # batch [b, 1, S']
    cross = every.log_prob(y.unsqueeze(-2))  # y [K, b, S, 1, q] under every component: [K, b, S, S']
    mix = torch.logsumexp(cross, -1) - math.log(S)  # [K, b, S]
    return (-mix.mean((0, 2))) - (-own.mean((0, 2)))


class HyperBALD(HyperAcquisition):
    """BALD about the hyperparameters: ``I[y; θ]``, the expected information a label gives about
    which hyperparameter draw is right (Houlsby et al. 2011; BoTorch's
    ``qBayesianActiveLearningByDisagreement``), summed over outputs.

    Args:
        nodes: Gauss–Hermite nodes per component for the mixture's entropy at one point (a
            batch's is :func:`hyper_bald_mc`, BoTorch's estimator).
    """

    name = "hyper-bald"

    def __init__(self, nodes: int = 48):
        self.nodes = check_count(nodes, "nodes")

    def __repr__(self) -> str:
        return f"HyperBALD(nodes={self.nodes})"

    def _score_components(self, mu, var, noise):
        v = (var + noise.unsqueeze(1)).clamp_min(torch.finfo(mu.dtype).tiny)
        if mu.shape[0] == 1:
            return torch.zeros(mu.shape[1], dtype=mu.dtype, device=mu.device)
        return sum(hyper_bald_quadrature(mu[..., k], v[..., k], self.nodes) for k in range(mu.shape[-1]))
