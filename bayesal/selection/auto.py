"""``select``: the right selector for the space, the surrogate and the acquisition."""

from __future__ import annotations

from ..errors import InvalidInput
from ..validation import check_count
from ..spaces import Box, Pool
from .base import SELECTORS, Selection, check_arguments
from .continuous import select_continuous
from .greedy import select_greedy
from .kernel_batch import select_kernel_batch
from .stochastic import StochasticBatch, split_selector
from .topk import select_topk

__all__ = ["select", "check_selector", "uses_greedy"]


def check_selector(selector) -> str | StochasticBatch:
    """``selector`` if it is one of :data:`SELECTORS` or a :class:`StochasticBatch`, else
    :class:`~bayesal.errors.InvalidInput`."""
    if isinstance(selector, StochasticBatch) or (isinstance(selector, str) and selector in SELECTORS):
        return selector
    raise InvalidInput("selector", "one of " + ", ".join(SELECTORS) + " or a StochasticBatch", repr(selector))


def uses_greedy(surrogate, acquisition, q: int, selector: str) -> bool:
    """Whether :func:`select` builds this pool batch greedily: ``selector="greedy"``, or
    ``"auto"`` for a model-based criterion when q > 1; on a sample posterior only for an
    acquisition with a batch objective on samples (BatchBALD), the others take top-k."""
    greedy = selector == "greedy" or (selector == "auto" and acquisition.greedy_by_default and q > 1)
    if not greedy or not acquisition.needs_posterior:
        return False
    return surrogate.posterior_kind == "gaussian" or acquisition.batch_from_samples


def select(surrogate, acquisition, space: Pool | Box, q: int, selector="auto", seed: int | None = None,
           X_observed=None, X_pending=None) -> Selection:
    """Choose a batch of q points with the right selector for the space and acquisition.

    On a box, :func:`~bayesal.selection.continuous.select_continuous`, which keeps a noise-free
    model from proposing the labelled points ``X_observed: [n, d]`` again (a pool excludes its
    labelled rows itself and ignores ``X_observed``). On a pool:
    ``selector="stochastic"`` (or a :class:`StochasticBatch`) samples the batch from the
    acquisition's scores; ``"greedy"`` conditions on each chosen point
    (:func:`~bayesal.selection.greedy.select_greedy`); ``"topk"`` takes the q best single-point
    scores; ``"auto"`` is greedy for model-based criteria when q > 1 (see :func:`uses_greedy`)
    and top-k otherwise.

    ``X_pending: [p, d]`` (boxes only): points being labelled; the box selector conditions the
    surrogate on them (:func:`~bayesal.selection.continuous.select_continuous`). On a pool, pass
    a surrogate conditioned on them (``surrogate.condition_on``) and keep their rows out.
    """
    acquisition, selector = split_selector(acquisition, check_selector(selector))
    check_arguments(surrogate, acquisition, space, (Pool, Box), "a bayesal Pool or Box")
    q = check_count(q, "q")
    if acquisition.selects_batch:
        if isinstance(selector, StochasticBatch) or selector == "stochastic":
            raise InvalidInput("selector", f"'auto' for the kernel batch strategy {acquisition.name} (it chooses "
                               "its batch itself)", repr(selector))
        if X_pending is not None and surrogate is not None and acquisition.needs_posterior:
            surrogate = surrogate.condition_on(X_pending)
        return select_kernel_batch(surrogate, acquisition, space, q, seed=seed, X_observed=X_observed)
    if isinstance(space, Box):
        return select_continuous(surrogate, acquisition, space, q, seed=seed, X_observed=X_observed,
                                 X_pending=X_pending)
    if X_pending is not None:
        raise InvalidInput("X_pending", "None on a pool (condition the surrogate on them and keep their rows out; "
                           "ActiveLearner.ask(q, pending=...) does both)", "pending points")
    if not isinstance(space, Pool):
        raise InvalidInput("space", "a Pool or a Box", type(space).__name__)
    if isinstance(selector, StochasticBatch):
        return selector.select(surrogate, acquisition, space, q, seed=seed)
    if selector == "stochastic":
        return StochasticBatch().select(surrogate, acquisition, space, q, seed=seed)
    if uses_greedy(surrogate, acquisition, q, selector):
        return select_greedy(surrogate, acquisition, space, q)
    return select_topk(surrogate, acquisition, space, q, seed=seed)
