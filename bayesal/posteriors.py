"""Posterior predictive objects passed from surrogates to acquisitions.

Two kinds, one contract each (DESIGN.md):

* :class:`GaussianPosterior`: marginal mean and variance ``[..., N, m]`` of the latent function,
  the observation-noise variance ``[m]`` of a new label, and, on request, the joint covariance
  ``[..., m, k, k]`` of any subset of the N points.
* :class:`MixturePosterior`: a :class:`GaussianPosterior` whose marginals are the moments of an
  equal-weight mixture of S Gaussians (a fully Bayesian GP's S hyperparameter draws); the
  components ``[S, N, m]`` stay available to the criteria that need them.
* :class:`SamplePosterior`: ``K`` joint draws ``[K, N, m]`` (regression) or class probabilities
  ``[K, N, C]`` (classification); the model-sample axis K always comes first.

Model-free acquisitions (Random) are scored on an :class:`EmptyPosterior`, which knows only how
many points there are, so that every acquisition has the one signature ``score(posterior)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import InvalidInput

__all__ = ["GaussianPosterior", "MixturePosterior", "SamplePosterior", "EmptyPosterior"]


def _real(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise InvalidInput(name, "a real tensor", f"dtype {value.dtype}")
        return value if value.is_floating_point() else value.to(torch.float64)
    raise InvalidInput(name, "a torch tensor", type(value).__name__)


def _finite(value: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(value).all()):
        raise InvalidInput(name, "finite values", "NaN or inf entries")


class GaussianPosterior:
    """Gaussian marginals of the latent function over N points, with optional joint covariance.

    Args:
        mean: ``[..., N, m]`` posterior mean.
        variance: ``[..., N, m]`` posterior variance of the latent function f (no noise).
        noise_variance: ``[m]`` variance of the observation noise on a new label, or None when
            the model has none (noise-free simulator).
        covariance_fn: ``indices [k] -> [..., m, k, k]`` joint covariance of a subset, computed
            lazily so that a pool of a million points never builds ``[N, N]``.
    """

    def __init__(
        self,
        mean: torch.Tensor,
        variance: torch.Tensor,
        noise_variance: torch.Tensor | None = None,
        covariance_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        mean = _real(mean, "mean")
        variance = _real(variance, "variance")
        if mean.dim() < 2:
            raise InvalidInput("mean", "a tensor of shape [..., N, m]", f"shape {list(mean.shape)}")
        if mean.shape != variance.shape:
            raise InvalidInput("variance", f"the shape of mean {list(mean.shape)}", f"{list(variance.shape)}")
        # a NaN here would surface much later as NaN scores, and a "best" point chosen from them
        _finite(mean, "mean")
        _finite(variance, "variance")
        if noise_variance is not None:
            noise_variance = _real(noise_variance, "noise_variance")
            _finite(noise_variance, "noise_variance")
            if noise_variance.numel() == 0 or noise_variance.dim() > 1 and noise_variance.shape != mean.shape[-noise_variance.dim():] or (
                    noise_variance.dim() <= 1 and noise_variance.numel() not in (1, mean.shape[-1])):
                raise InvalidInput("noise_variance", f"one variance per output [{mean.shape[-1]}]",
                                   f"shape {list(noise_variance.shape)}")
            if bool((noise_variance < 0).any()):
                raise InvalidInput("noise_variance", "non-negative variances", str(noise_variance.tolist())[:120])
        self.mean = mean
        self.variance = variance.clamp_min(0.0)
        self.noise_variance = noise_variance
        self._covariance_fn = covariance_fn

    @property
    def num_points(self) -> int:
        """N, the number of points."""
        return self.mean.shape[-2]

    @property
    def num_outputs(self) -> int:
        """m, the number of outputs."""
        return self.mean.shape[-1]

    @property
    def stddev(self) -> torch.Tensor:
        """``[..., N, m]`` posterior standard deviation of f."""
        return self.variance.sqrt()

    @property
    def predictive_variance(self) -> torch.Tensor:
        """``[..., N, m]`` variance of a new noisy label: var f + noise variance."""
        if self.noise_variance is None:
            return self.variance
        return self.variance + self.noise_variance.to(self.variance)

    def covariance(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Joint covariance ``[..., m, k, k]`` of f at the points ``indices`` (all when None)."""
        if self._covariance_fn is None:
            raise InvalidInput("posterior", "a posterior built with a covariance function", "marginals only")
        if indices is None:
            indices = torch.arange(self.num_points, device=self.mean.device)
        return self._covariance_fn(torch.as_tensor(indices, device=self.mean.device).long())

    def __repr__(self) -> str:
        return f"GaussianPosterior(mean={list(self.mean.shape)}, joint={'yes' if self._covariance_fn else 'no'})"


class MixturePosterior(GaussianPosterior):
    """An equal-weight mixture of S Gaussian posteriors over the same N points.

    ``mean`` and ``variance`` ``[N, m]`` are the mixture's moments, so every acquisition that
    reads a Gaussian posterior scores the mixture's predictive (law of total variance:
    ``var = E_s[σ²_s] + Var_s[μ_s]``). ``component_mean`` / ``component_variance`` ``[S, N, m]``
    and ``component_noise_variance`` ``[S, m]`` are the draws themselves, for the criteria over
    hyperparameters (:mod:`bayesal.acquisition.hyper`).

    Args:
        component_mean: ``[S, N, m]`` the S components' means.
        component_variance: ``[S, N, m]`` their variances of f.
        component_noise_variance: ``[S, m]`` each component's observation-noise variance, or None.
        covariance_fn: ``indices [k] -> [m, k, k]`` the mixture's joint covariance of a subset.
    """

    def __init__(self, component_mean: torch.Tensor, component_variance: torch.Tensor,
                 component_noise_variance: torch.Tensor | None = None,
                 covariance_fn: Callable[[torch.Tensor], torch.Tensor] | None = None):
        mu = _real(component_mean, "component_mean")
        var = _real(component_variance, "component_variance")
        if mu.dim() != 3 or mu.shape[0] < 1:
            raise InvalidInput("component_mean", "a tensor of shape [S, N, m] with S >= 1", f"shape {list(mu.shape)}")
        if var.shape != mu.shape:
            raise InvalidInput("component_variance", f"the shape of component_mean {list(mu.shape)}", f"{list(var.shape)}")
        _finite(mu, "component_mean")
        _finite(var, "component_variance")
        var = var.clamp_min(0.0)
        noise = None
        if component_noise_variance is not None:
            cn = _real(component_noise_variance, "component_noise_variance")
            if cn.dim() != 2 or cn.shape[0] != mu.shape[0] or cn.shape[1] not in (1, mu.shape[-1]):
                raise InvalidInput("component_noise_variance", f"one variance per component and output [{mu.shape[0]}, "
                                   f"{mu.shape[-1]}]", f"shape {list(cn.shape)}")
            _finite(cn, "component_noise_variance")
            if bool((cn < 0).any()):
                raise InvalidInput("component_noise_variance", "non-negative variances", "negative entries")
            cn = cn.expand(mu.shape[0], mu.shape[-1])
            noise = cn.mean(0)
        self.component_mean = mu
        self.component_variance = var
        self.component_noise_variance = cn if component_noise_variance is not None else None
        mean = mu.mean(0)
        mixture_var = (var + (mu - mean).pow(2)).mean(0)  # E_s[σ²_s] + Var_s[μ_s], no cancellation
        super().__init__(mean, mixture_var, noise_variance=noise, covariance_fn=covariance_fn)

    @property
    def num_components(self) -> int:
        """S, the number of mixture components."""
        return self.component_mean.shape[0]

    @property
    def component_predictive_variance(self) -> torch.Tensor:
        """``[S, N, m]``: each component's variance of a new noisy label."""
        if self.component_noise_variance is None:
            return self.component_variance
        return self.component_variance + self.component_noise_variance.unsqueeze(1).to(self.component_variance)

    def __repr__(self) -> str:
        return f"MixturePosterior(S={self.num_components}, mean={list(self.mean.shape)})"


class SamplePosterior:
    """``K`` joint posterior draws over N points; K (model samples) is always the first axis.

    Args:
        samples: ``[K, N, m]`` function draws (regression) or ``[K, N, C]`` class probabilities
            (classification, rows summing to one).
        kind: ``"regression"`` or ``"classification"``.
        noise_variance: ``[m]`` aleatoric noise variance of a label (regression only).
    """

    def __init__(self, samples: torch.Tensor, kind: str = "regression",
                 noise_variance: torch.Tensor | None = None):
        samples = _real(samples, "samples")
        if samples.dim() != 3:
            raise InvalidInput("samples", "a tensor of shape [K, N, m] or [K, N, C]", f"shape {list(samples.shape)}")
        _finite(samples, "samples")
        if kind not in ("regression", "classification"):
            raise InvalidInput("kind", "'regression' or 'classification'", repr(kind))
        if kind == "classification":
            if samples.shape[-1] < 2:  # margins, entropies and BALD need at least two classes
                raise InvalidInput("samples", "class probabilities [K, N, C] with C >= 2 classes",
                                   f"shape {list(samples.shape)}")
            total = samples.sum(-1)
            if not torch.allclose(total, torch.ones_like(total), atol=1e-4) or bool((samples < 0).any()):
                raise InvalidInput("samples", "class probabilities [K, N, C] summing to one over C", "rows that are not distributions")
        if kind == "regression" and samples.shape[0] > 1:
            # draws of magnitude 1e155 and more have an inf variance: every score would be inf
            _finite(samples.var(0), "samples (their variance over K)")
        if noise_variance is not None:
            noise_variance = _real(noise_variance, "noise_variance")
            _finite(noise_variance, "noise_variance")
            if noise_variance.numel() not in (1, samples.shape[-1]) or bool((noise_variance < 0).any()):
                raise InvalidInput("noise_variance", f"non-negative variances, one per output [{samples.shape[-1]}]",
                                   f"shape {list(noise_variance.shape)}")
        self.samples = samples
        self.kind = kind
        self.noise_variance = noise_variance

    @property
    def num_samples(self) -> int:
        """K, the number of model samples (the leading dimension)."""
        return self.samples.shape[0]

    @property
    def num_points(self) -> int:
        """N, the number of points."""
        return self.samples.shape[1]

    @property
    def mean(self) -> torch.Tensor:
        """``[N, m]`` mean over the K draws (the predictive class probabilities when classifying)."""
        return self.samples.mean(0)

    @property
    def variance(self) -> torch.Tensor:
        """``[N, m]`` variance over the K draws (unbiased when K > 1)."""
        if self.num_samples < 2:
            return torch.zeros_like(self.samples[0])
        return self.samples.var(0)

    @property
    def predictive_variance(self) -> torch.Tensor:
        """Variance ``[N, m]`` of a new noisy regression label: variance of the draws plus the noise
        variance."""
        if self.noise_variance is None:
            return self.variance
        return self.variance + self.noise_variance.to(self.samples)

    def covariance(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Sample covariance ``[m, k, k]`` across the K draws at ``indices`` (all when None)."""
        s = self.samples if indices is None else self.samples[:, torch.as_tensor(indices).long()]
        centred = (s - s.mean(0, keepdim=True)).permute(2, 1, 0)  # [m, k, K]
        return centred @ centred.transpose(-1, -2) / max(self.num_samples - 1, 1)

    def __repr__(self) -> str:
        return f"SamplePosterior({self.kind}, samples={list(self.samples.shape)})"


class EmptyPosterior:
    """The "posterior" a model-free acquisition scores: the number of points and nothing else.

    Args:
        num_points: N.
    """

    def __init__(self, num_points: int):
        self.num_points = int(num_points)

    def __repr__(self) -> str:
        return f"EmptyPosterior(N={self.num_points})"
