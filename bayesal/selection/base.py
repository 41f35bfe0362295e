"""What every selector shares: the :class:`Selection` it returns, seeded generators, and the
preparation of an acquisition for a space and a surrogate."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..posteriors import GaussianPosterior, SamplePosterior

__all__ = ["Selection", "SELECTORS", "make_generator", "prepare", "noise_of"]

#: the selector names accepted by :func:`bayesal.selection.select` (a
#: :class:`~bayesal.selection.stochastic.StochasticBatch` instance is accepted too)
SELECTORS = ("auto", "topk", "greedy", "stochastic")


@dataclass
class Selection:
    """A proposed batch.

    Attributes:
        X: the points ``[q, d]``.
        indices: their pool indices ``[q]`` (None on a box).
        scores: ``[q]`` the acquisition value of each point when it was chosen (for greedy
            selection, its gain given the points chosen before it).
        fidelity: ``[q]`` (long) the fidelity level of each evaluation in a multi-fidelity batch
            (None otherwise).
        cost: ``[q]`` the cost of each evaluation when the selection knew a cost model (None
            otherwise).

    A multi-fidelity batch is a Selection with ``fidelity`` and ``cost`` filled (it is also
    importable as ``MultiFidelitySelection``): one batch type for every learner, so a loop never
    asks which kind it got.
    """

    X: torch.Tensor
    indices: torch.Tensor | None
    scores: torch.Tensor
    fidelity: torch.Tensor | None = None
    cost: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def total_cost(self) -> float:
        """Total cost of the batch, the sum of ``cost [q]`` (0 when no cost is known)."""
        return 0.0 if self.cost is None else float(self.cost.sum())


def from_pool(pool, indices: torch.Tensor, scores: torch.Tensor) -> Selection:
    """The :class:`Selection` of the pool rows ``indices: [q]`` with their ``scores: [q]``."""
    indices = indices.to("cpu", torch.long)
    return Selection(pool.X[indices.to(pool.X.device)], indices, scores.to("cpu", torch.float64))


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (a fresh random seed when None)."""
    gen = torch.Generator()
    if seed is not None:
        gen.manual_seed(int(seed))
    else:
        gen.seed()
    return gen


def prepare(acquisition, space, surrogate):
    """The acquisition resolved for ``space`` (reference sets, targets) and bound to
    ``surrogate`` (posteriors it needs at other points); model-free acquisitions are only
    resolved for the space."""
    acquisition = acquisition.for_space(space)
    if acquisition.needs_posterior and surrogate is not None:
        acquisition = acquisition.bind(surrogate)
    return acquisition


def noise_of(posterior: GaussianPosterior | SamplePosterior) -> torch.Tensor:
    """The observation-noise variance ``[m]`` of a new label under ``posterior`` (zeros for a
    noise-free model), in its dtype and on its device."""
    like = posterior.variance
    if posterior.noise_variance is not None:
        return posterior.noise_variance.to(like).reshape(-1).expand(like.shape[-1]).clone()
    return torch.zeros(like.shape[-1], dtype=like.dtype, device=like.device)
