"""Stochastic batch selection (Kirsch, Farquhar, Atighehchian, Jesson, Branchaud-Charron & Gal
2023, "Stochastic Batch Acquisition: A Simple Baseline for Deep Active Learning", TMLR).

Top-k of a single-point score picks near-duplicates; sampling the batch from a distribution that
favours high scores gives diversity at no extra cost. With scores s_i and temperature β:

* ``"power"``:    p_i ∝ s_i^β          (scores must be non-negative, e.g. BALD);
* ``"softmax"``:  p_i ∝ exp(β s_i);
* ``"softrank"``: p_i ∝ r_i^(−β), r_i the rank of s_i (1 for the highest), which ignores the
  scale of the scores.

β → ∞ recovers top-k, β = 0 uniform random selection. A batch of q is drawn without replacement
with the Gumbel-top-k trick: the q largest of ``log p_i + G_i`` with i.i.d. standard Gumbel
G_i, which is exactly sequential sampling without replacement from p (Kool, van Hoof & Welling
2019, "Stochastic Beams and Where to Find Them"). Partial pool scoring scores only a random
subset of the candidates (Kirsch et al. §5), and the batch indices are mapped back to the pool.

:class:`StochasticBatch` is a *selector*: ``select(surrogate, BALD(), pool, q,
selector=StochasticBatch("power"))``, or ``selector="stochastic"`` for power sampling at β = 1.
"""

from __future__ import annotations

import math
import warnings

import torch

from ..errors import InvalidInput
from ..validation import check_count
from ..spaces import Pool
from .base import Selection, check_arguments, from_pool, make_generator, prepare
from .scoring import score_points

__all__ = ["StochasticBatch", "STOCHASTIC_MODES", "sampling_log_weights", "gumbel_top_k", "select_stochastic",
           "split_selector"]

STOCHASTIC_MODES = ("power", "softmax", "softrank")


def sampling_log_weights(scores: torch.Tensor, mode: str = "power", temperature: float = 1.0) -> torch.Tensor:
    """Unnormalised log-probabilities ``[N]`` of choosing each candidate from ``scores: [N]``.

    ``-inf`` (or NaN) scores get probability zero. ``temperature`` is β (see the module doc).
    """
    if mode not in STOCHASTIC_MODES:
        raise InvalidInput("mode", "one of " + ", ".join(STOCHASTIC_MODES), repr(mode))
    beta = float(temperature)
    if not beta >= 0 or math.isinf(beta):
        raise InvalidInput("temperature", "a finite β >= 0", repr(temperature))
    s = torch.nan_to_num(scores.to(torch.float64), nan=-math.inf)
    excluded = torch.isneginf(s)
    if mode == "power":
        if bool((s[~excluded] < 0).any()):
            raise InvalidInput("scores", "non-negative scores for power sampling (use 'softmax' or 'softrank')",
                               f"minimum {float(s[~excluded].min()):.4g}")
        logw = beta * torch.log(s.clamp_min(1e-300))
    elif mode == "softmax":
        logw = beta * s
    else:
        ranks = torch.empty_like(s)
        ranks[torch.argsort(s, descending=True)] = torch.arange(1, s.numel() + 1, dtype=s.dtype, device=s.device)
        logw = -beta * torch.log(ranks)
    return logw.masked_fill(excluded, -math.inf)


def gumbel_top_k(log_weights: torch.Tensor, q: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``q`` distinct indices ``[q]`` drawn without replacement with probabilities ∝
    ``exp(log_weights)`` (Gumbel-top-k), in the order in which sequential sampling draws them."""
    u = torch.rand(log_weights.shape, generator=generator, dtype=log_weights.dtype).to(log_weights.device)
    gumbel = -torch.log(-torch.log(u.clamp(1e-300, 1.0 - 1e-16)))
    keys = log_weights + gumbel
    if int(torch.isfinite(keys).sum()) < q:
        raise InvalidInput("q", f"at most {int(torch.isfinite(keys).sum())} (candidates with a finite score)", str(q))
    return torch.topk(keys, q).indices


class StochasticBatch:
    """A selector that samples the batch from any single-point acquisition's scores.

    Args:
        acquisition: deprecated. ``StochasticBatch(BALD(), ...)`` used to be passed where an
            acquisition goes; it still works there (the learner and :func:`select` split it into
            the acquisition and this selector), with a ``DeprecationWarning``.
        mode: ``"power"`` (default), ``"softmax"`` or ``"softrank"``.
        temperature: β (1 by default, as recommended by Kirsch et al. for power sampling).
        subset_size: when given, only this many randomly chosen unlabelled candidates are scored
            (partial pool scoring); None scores the whole pool.

    The seed of the selector makes the batch reproducible.

    >>> learner = ActiveLearner(pool, acquisition="bald", selector=StochasticBatch(mode="power", subset_size=10_000))
    """

    name = "stochastic"

    def __init__(self, acquisition=None, mode: str = "power", temperature: float = 1.0,
                 subset_size: int | None = None):
        if isinstance(acquisition, str) and acquisition in STOCHASTIC_MODES:
            raise InvalidInput("acquisition", f"an acquisition or None (pass mode={acquisition!r} by keyword)",
                               repr(acquisition))
        if acquisition is not None:
            from ..acquisition import make_acquisition

            acquisition = make_acquisition(acquisition)
        self.acquisition = acquisition
        if mode not in STOCHASTIC_MODES:
            raise InvalidInput("mode", "one of " + ", ".join(STOCHASTIC_MODES), repr(mode))
        sampling_log_weights(torch.ones(1), mode, temperature)  # validates temperature
        self.mode, self.temperature = mode, float(temperature)
        self.subset_size = None if subset_size is None else check_count(subset_size, "subset_size")

    def __repr__(self) -> str:
        acq = "" if self.acquisition is None else f"{self.acquisition!r}, "
        return (f"StochasticBatch({acq}mode={self.mode!r}, temperature={self.temperature}, "
                f"subset_size={self.subset_size})")

    @property
    def selector(self) -> "StochasticBatch":
        """This selector without the (deprecated) wrapped acquisition."""
        return StochasticBatch(None, self.mode, self.temperature, self.subset_size)

    def log_weights(self, scores: torch.Tensor) -> torch.Tensor:
        """Sampling log-weights ``[N]`` from scores ``[N]`` (see :func:`sampling_log_weights`)."""
        return sampling_log_weights(scores, self.mode, self.temperature)

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """The distribution ``[N]`` of the first point of the batch."""
        return torch.softmax(self.log_weights(scores), 0)

    def sample(self, scores: torch.Tensor, q: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``q`` distinct positions ``[q]`` into ``scores: [N]``, drawn without replacement."""
        return gumbel_top_k(self.log_weights(scores), check_count(q, "q"), generator)

    def select(self, surrogate, acquisition, pool, q: int, seed: int | None = None,
               chunk_size: int | None = None) -> Selection:
        """A batch of q pool candidates sampled without replacement from the acquisition's scores."""
        check_arguments(surrogate, acquisition, pool, Pool, "a bayesal Pool")
        q = check_count(q, "q")
        gen = make_generator(seed)
        pool.check_batch_size(q)
        acquisition = prepare(acquisition, pool, surrogate)
        candidates = pool.available.cpu()
        if self.subset_size is not None and self.subset_size < candidates.numel():
            if self.subset_size < q:
                raise InvalidInput("subset_size", f"at least q = {q}", str(self.subset_size))
            pick = torch.randperm(candidates.numel(), generator=gen)[: self.subset_size]
            candidates = candidates[torch.sort(pick).values]
        scores = score_points(surrogate, acquisition, pool.X, rows=candidates, generator=gen, chunk_size=chunk_size)
        positions = self.sample(scores, q, generator=gen)
        return from_pool(pool, candidates[positions], scores[positions])


def split_selector(acquisition, selector):
    """``(acquisition, selector)`` with a deprecated ``StochasticBatch(acquisition)`` passed as
    the acquisition split into its acquisition and its selector (with a ``DeprecationWarning``)."""
    if isinstance(acquisition, StochasticBatch):
        warnings.warn("StochasticBatch is a selector: pass the acquisition and selector=StochasticBatch(...) "
                      "(or selector='stochastic') instead of StochasticBatch(acquisition)", DeprecationWarning,
                      stacklevel=3)
        inner = acquisition.acquisition
        if inner is None:
            from ..acquisition import BALD

            inner = BALD()
        return inner, acquisition.selector
    return acquisition, selector


def select_stochastic(surrogate, acquisition, pool, q: int, seed: int | None = None,
                      chunk_size: int | None = None, selector: StochasticBatch | None = None) -> Selection:
    """A batch sampled without replacement from a distribution over the candidates that favours
    high single-point scores: ``selector`` (default: power sampling at β = 1); a deprecated
    ``StochasticBatch(acquisition)`` as ``acquisition`` brings its own settings."""
    if isinstance(acquisition, StochasticBatch):
        inner = acquisition.acquisition
        if inner is None:
            from ..acquisition import BALD

            inner = BALD()
        acquisition, selector = inner, acquisition.selector
    selector = selector or StochasticBatch()
    return selector.select(surrogate, acquisition, pool, q, seed=seed, chunk_size=chunk_size)
