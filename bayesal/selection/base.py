"""What every selector shares: the :class:`Selection` it returns, seeded generators, and the
preparation of an acquisition for a space and a surrogate."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..acquisition.base import Acquisition
from ..errors import InvalidInput
from ..models.base import Surrogate
from ..posteriors import GaussianPosterior, SamplePosterior
from ..validation import check_seed, check_type, describe

__all__ = ["Selection", "SELECTORS", "make_generator", "prepare", "noise_of", "check_arguments"]

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


def check_arguments(surrogate, acquisition, space, space_kind: type | tuple[type, ...], space_name: str) -> None:
    """Reject, before any work, what a selector cannot use: an acquisition that is not an
    :class:`~bayesal.acquisition.Acquisition` (a name, None), a surrogate that is not a
    :class:`~bayesal.models.Surrogate` (None is allowed only for a model-free acquisition), a
    space of the wrong kind (a tensor instead of a Pool). Without this the call fails with an
    AttributeError several frames down."""
    check_type(acquisition, Acquisition, "acquisition",
               "an Acquisition instance (e.g. bayesal.BALD(); names are resolved by ActiveLearner)")
    if surrogate is None and not acquisition.needs_posterior:
        pass
    elif not isinstance(surrogate, Surrogate):
        raise InvalidInput("surrogate", f"a fitted Surrogate for {type(acquisition).__name__}", describe(surrogate))
    check_type(space, space_kind, "space", space_name)


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (a fresh random seed when None)."""
    seed = check_seed(seed)
    gen = torch.Generator()
    if seed is not None:
        gen.manual_seed(seed)
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
