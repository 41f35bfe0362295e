"""Stochastic batch acquisition (Kirsch, Farquhar, Atighehchian, Jesson, Branchaud-Charron & Gal
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
subset of m candidates (Kirsch et al. §5), and the batch indices are mapped back to the pool.
"""

from __future__ import annotations

import math

import torch

from ..errors import InvalidInput
from ..validation import check_count
from .base import Acquisition

__all__ = ["StochasticBatch", "STOCHASTIC_MODES", "sampling_log_weights", "gumbel_top_k"]

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


class StochasticBatch(Acquisition):
    """Any single-point acquisition, with the batch sampled instead of taken top-k.

    Args:
        acquisition: the single-point score (an :class:`Acquisition` or registry name).
        mode: ``"power"`` (default), ``"softmax"`` or ``"softrank"``.
        temperature: β (1 by default, as recommended by Kirsch et al. for power sampling).
        subset_size: when given, only this many randomly chosen unlabelled candidates are scored
            (partial pool scoring); None scores the whole pool.

    The seed of the selector makes the batch reproducible. ``select(..., selector="auto")``
    recognises this wrapper and calls :func:`bayesal.select.select_stochastic`.

    >>> acq = StochasticBatch(BALD(), mode="power", temperature=1.0, subset_size=10_000)
    """

    name = "stochastic"
    greedy_by_default = False

    def __init__(self, acquisition: Acquisition | str = "bald", mode: str = "power", temperature: float = 1.0,
                 subset_size: int | None = None):
        from . import make_acquisition

        self.base = make_acquisition(acquisition)
        if mode not in STOCHASTIC_MODES:
            raise InvalidInput("mode", "one of " + ", ".join(STOCHASTIC_MODES), repr(mode))
        sampling_log_weights(torch.zeros(1).add_(1.0), mode, temperature)  # validates temperature
        self.mode, self.temperature = mode, float(temperature)
        self.subset_size = None if subset_size is None else check_count(subset_size, "subset_size")
        self.needs_posterior = self.base.needs_posterior

    def __repr__(self) -> str:
        return (f"StochasticBatch({self.base!r}, mode={self.mode!r}, temperature={self.temperature}, "
                f"subset_size={self.subset_size})")

    def for_space(self, space) -> "StochasticBatch":
        bound = StochasticBatch(self.base.for_space(space), self.mode, self.temperature, self.subset_size)
        return bound

    def bind(self, surrogate) -> "StochasticBatch":
        return StochasticBatch(self.base.bind(surrogate), self.mode, self.temperature, self.subset_size)

    def score(self, posterior) -> torch.Tensor:
        """The wrapped acquisition's single-point scores ``[N]``."""
        return self.base.score(posterior)

    def log_weights(self, scores: torch.Tensor) -> torch.Tensor:
        """Sampling log-weights ``[N]`` from scores ``[N]`` (see :func:`sampling_log_weights`)."""
        return sampling_log_weights(scores, self.mode, self.temperature)

    def probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        """The distribution ``[N]`` of the first point of the batch."""
        return torch.softmax(self.log_weights(scores), 0)

    def sample(self, scores: torch.Tensor, q: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``q`` distinct positions ``[q]`` into ``scores: [N]``, drawn without replacement."""
        return gumbel_top_k(self.log_weights(scores), check_count(q, "q"), generator)
