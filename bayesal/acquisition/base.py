"""The acquisition contract (DESIGN.md).

An acquisition turns a posterior into a single-point score ``[N]`` (higher is better). Batch
criteria also define the joint value of a q-batch from its joint Gaussian posterior, which the
continuous optimiser maximises directly; on pools the selector builds batches greedily by scoring
the posterior conditioned on the points already chosen (see :mod:`bayesal.select`), which for
the joint criteria here is exactly the marginal gain of the batch objective.
"""

from __future__ import annotations

import torch

from ..errors import InvalidInput, Unsupported
from ..posteriors import EmptyPosterior, GaussianPosterior, SamplePosterior
from ..validation import as_tensor, check_finite, describe

__all__ = ["Acquisition", "MarginalScorer", "output_weights", "check_output_weights", "require_gaussian"]


class Acquisition:
    """Base class: subclasses implement :meth:`score`.

    Attributes:
        name: registry name (``"max-variance"``).
        needs_posterior: False for acquisitions that ignore the model (``Random``).
        greedy_by_default: whether a batch of q > 1 should be built greedily with conditioning
            (True for every model-based criterion: top-k of a marginal score picks clusters).
        joint: True when :meth:`joint_score` values a whole q-batch, so a box optimiser can
            optimise the batch jointly rather than one point at a time.
    """

    name: str = "acquisition"
    needs_posterior: bool = True
    greedy_by_default: bool = True
    joint: bool = False
    #: False when the score needs more than marginals (cross-covariances with reference points)
    scores_from_marginals: bool = True
    #: True when :meth:`select_from_samples` builds a greedy batch from a sample posterior (BatchBALD)
    batch_from_samples: bool = False
    #: True when :meth:`select_batch` chooses the whole batch itself from a kernel over the
    #: labelled and candidate points (the kernel batch methods: LCMD, BAIT, k-means++, ...)
    selects_batch: bool = False

    def for_space(self, space) -> "Acquisition":
        """This acquisition bound to a search space (criteria with reference sets resolve them
        here); the default needs nothing and returns itself."""
        return self

    def bind(self, surrogate) -> "Acquisition":
        """This acquisition bound to the surrogate whose posterior it will score (criteria that
        need the posterior at other points, such as EPIG's targets, compute it here); the default
        needs nothing and returns itself. Selectors call it after :meth:`for_space`."""
        return self

    def with_cost(self, cost_model) -> "Acquisition":
        """This acquisition valued per unit cost under ``cost_model``: a
        :class:`~bayesal.acquisition.cost.CostAware` wrapper (criteria built with
        ``cost_aware=False`` return themselves)."""
        from .cost import CostAware  # cost.py builds on this module

        return CostAware(self, cost_model)

    def selection_model(self, X_train: torch.Tensor, surrogate):
        """The model whose posterior drives selection (the learner's surrogate by default)."""
        return surrogate

    def batch_value(self, surrogate, X: torch.Tensor) -> torch.Tensor:
        """Value ``[b]`` of b candidate batches ``X: [b, q, d]`` (differentiable), for box
        optimisation: the joint Gaussian posterior of each batch through :meth:`joint_score`."""
        mean, cov = surrogate.joint_posterior(X)
        return self.joint_score(mean, cov, surrogate.noise_variance)

    def greedy_scorer(self, surrogate, X: torch.Tensor, mean: torch.Tensor, noise: torch.Tensor):
        """State for greedy pool selection: ``scores(var [N, m]) -> [N]`` and
        ``update(j, v_new [N, m], denom [m])`` after candidate j is chosen. The default scores the
        conditioned marginals with :meth:`score`."""
        return MarginalScorer(self, mean, noise)

    def score(self, posterior: GaussianPosterior | SamplePosterior | EmptyPosterior,
              generator: torch.Generator | None = None) -> torch.Tensor:
        """Single-point scores ``[..., N]`` for the N points of ``posterior`` (``generator``: the
        randomness of stochastic scores, unused by deterministic criteria)."""
        raise NotImplementedError(f"{type(self).__name__} does not define score()")

    def select_from_samples(self, posterior: SamplePosterior, q: int,
                            available: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A greedy batch ``(indices [q], gains [q])`` from a sample posterior, for acquisitions with
        a batch objective on samples (``batch_from_samples``)."""
        raise Unsupported(type(self).__name__, "a batch objective on samples", "greedy selection from samples")

    def select_batch(self, surrogate, X_train: torch.Tensor, X_pool: torch.Tensor, q: int,
                     seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch ``(indices [q] into X_pool, scores [q])`` chosen from the labelled points
        ``X_train: [n, d]`` and the candidates ``X_pool: [N, d]``, for strategies that select a
        batch themselves (``selects_batch``)."""
        raise Unsupported(type(self).__name__, "its own batch selection", "kernel batch selection")

    def joint_score(self, mean: torch.Tensor, covariance: torch.Tensor,
                    noise_variance: torch.Tensor | None) -> torch.Tensor:
        """Value ``[b]`` of b candidate batches from their joint Gaussian posterior.

        Args:
            mean: ``[b, q, m]``; covariance: ``[b, m, q, q]`` of f; noise_variance: ``[m]``.

        The default handles q = 1 through :meth:`score`; joint criteria override it.
        """
        if mean.shape[-2] != 1:
            raise InvalidInput("q", f"1 for the single-point acquisition {self.name}", str(mean.shape[-2]))
        variance = covariance.diagonal(dim1=-2, dim2=-1).transpose(-1, -2)  # [b, 1, m]
        return self.score(GaussianPosterior(mean, variance, noise_variance)).squeeze(-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def require_gaussian(acquisition: Acquisition, posterior) -> GaussianPosterior:
    """``posterior`` if it is a :class:`GaussianPosterior`, else :class:`InvalidInput` naming the acquisition."""
    if not isinstance(posterior, GaussianPosterior):
        raise InvalidInput(
            "posterior", f"a GaussianPosterior for {type(acquisition).__name__}", type(posterior).__name__
        )
    return posterior


def check_output_weights(weights, name: str = "output_weights"):
    """``weights``, unchanged, once checked at construction: None, or finite non-negative
    per-output weights ``[m]`` (a NaN weight would make every score NaN, and a name is not a
    weight)."""
    if weights is None:
        return None
    w = as_tensor(weights, name)
    if w.dim() > 1 or w.numel() == 0:
        raise InvalidInput(name, "a 1-D array of per-output weights [m]", describe(weights))
    check_finite(w, name, "finite weights")
    if bool((w < 0).any()):
        raise InvalidInput(name, "non-negative weights", str(w.tolist())[:120])
    return weights


def output_weights(weights, m: int, like: torch.Tensor) -> torch.Tensor:
    """Per-output weights ``[m]`` (ones when None)."""
    if weights is None:
        return torch.ones(m, dtype=like.dtype, device=like.device)
    w = torch.as_tensor(weights, dtype=like.dtype, device=like.device).reshape(-1)
    if w.numel() != m:
        raise InvalidInput("weights", f"{m} output weight(s)", f"{w.numel()}")
    return w


class MarginalScorer:
    """Scores from the conditioned marginals alone (mean unchanged, variance updated)."""

    def __init__(self, acquisition: Acquisition, mean: torch.Tensor, noise: torch.Tensor):
        self.acquisition, self.mean, self.noise = acquisition, mean, noise

    def scores(self, var: torch.Tensor) -> torch.Tensor:
        """Scores ``[N]`` of the conditioned marginals ``var: [N, m]``."""
        return self.acquisition.score(GaussianPosterior(self.mean, var, self.noise))

    def update(self, j: int | None, v_new: torch.Tensor, denom: torch.Tensor) -> None:
        """Nothing beyond the variances (which the engine updates) to condition."""
