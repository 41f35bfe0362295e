"""The ask / tell active-learning loop, for labels of one fidelity or of several with a cost
model (DESIGN.md: multi-fidelity is a learner with a cost model, not a second learner)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm.std import tqdm

from ..acquisition import Acquisition, make_acquisition
from ..acquisition.cost import ConstantCost, CostModel, FidelityCost, as_cost_model
from ..acquisition.multifidelity import MF_ACQUISITIONS
from ..errors import InvalidInput, OracleFailed, UnknownName
from ..metrics import evaluate
from ..models import MF_MODELS, Surrogate, make_model
from ..models.multifidelity import MultiFidelitySurrogate, augment
from ..problems.multifidelity import check_fidelity
from ..selection import Selection, StochasticBatch, check_selector, select
from ..selection.cold_start import initial_design as cold_start_design, resolve_design
from ..selection.multifidelity import fidelity_candidates, select_augmented
from ..selection.stochastic import split_selector
from ..spaces import MAX_POINTS, Box, Pool
from ..validation import (
    DEFAULT_DTYPE, MAX_USER_SEED, check_count, check_indices, check_seed, check_X, check_y, describe,
)
from .oracles import Oracle, as_oracle

__all__ = ["ActiveLearner"]


class ActiveLearner:
    """Chooses which labels to buy: ``ask`` for a batch, ``tell`` the labels, repeat.

    With a multi-fidelity surrogate (:class:`~bayesal.models.multifidelity.MultiFidelitySurrogate`
    or a name in :data:`~bayesal.models.MF_MODELS`) and per-level ``costs``, the learner asks for
    (point, fidelity) pairs: every candidate is offered at every level in ``fidelities``, the
    acquisition (a multi-fidelity criterion, per unit cost when cost-aware) is maximised greedily
    on the one greedy engine, a batch never costs more than the budget given to :meth:`ask`, and
    :meth:`run` stops on a ``cost_budget``. On a box the candidates are ``n_candidates`` seeded
    scrambled Sobol points drawn afresh at each ask; on a pool, the pool rows × levels not yet
    labelled at that level (a row may be bought at a low level, then at a higher one).

    Args:
        space: a :class:`~bayesal.spaces.Pool` of candidates or a :class:`~bayesal.spaces.Box`.
        surrogate: a :class:`~bayesal.models.Surrogate` or a model name (``"exact-gp"``,
            or ``"co-kriging"`` / ``"botorch-mf-gp"`` with ``costs``).
        acquisition: an :class:`~bayesal.acquisition.Acquisition` or a name (``"auto"``, the
            default for one fidelity: the strategy measured best for the surrogate, see
            :mod:`bayesal.acquisition.auto`; ``"integrated-variance"``, ``"max-variance"``,
            ``"bald"``, ``"joint-information"``, ``"random"``, ...; with a multi-fidelity surrogate
            ``"mf-integrated-variance"``, default, or ``"mf-information"``).
        selector: ``"auto"``, ``"topk"``, ``"greedy"``, ``"stochastic"`` or a
            :class:`~bayesal.selection.StochasticBatch` (pools only; see :func:`bayesal.selection.select`;
            multi-fidelity batches are always greedy).
        seed: makes every batch reproducible: the same seed gives the same points.
        test_set: optional ``(X_test [n, d], y_test [n, m])`` on which :meth:`run` records
            RMSE, NLPD and the mean posterior standard deviation after every step (of the target
            fidelity for a multi-fidelity learner).
        costs: ``[S]`` cost of one evaluation at each fidelity level (lowest first, the last is
            the target), or one number for every label; shorthand for ``cost_model``.
        cost_model: a :class:`~bayesal.acquisition.cost.CostModel` (``FidelityCost``,
            ``ConstantCost``, ``CallableCost``) or what :func:`~bayesal.acquisition.cost.as_cost_model`
            accepts. With one fidelity, a non-constant cost makes the acquisition per unit cost
            (:class:`~bayesal.acquisition.cost.CostAware`).
        fidelities: the levels on offer to the acquisition (default: all).
        n_candidates: size of the Sobol candidate set of a multi-fidelity ask on a box.
        initial_design: how the first batch is chosen, before any label (a name of
            :data:`~bayesal.selection.INITIAL_DESIGNS`: ``"sobol"``, ``"maximin"`` or ``"random"``
            on a box; ``"random"``, ``"kcenter"``, ``"kmeanspp"``, ``"typiclust"`` or
            ``"probcover"`` on a pool; ``"auto"``: Sobol / k-center; see
            :func:`~bayesal.selection.initial_design`). Default: scrambled Sobol on a box,
            random rows on a pool. Its size is :meth:`run`'s ``initial`` (or the q of the
            first :meth:`ask`). Kept, resolved (``"auto"`` replaced), as :attr:`initial_method`.
            Single fidelity only.

    >>> learner = ActiveLearner(Box([0, 0], [1, 1]), acquisition="joint-information")
    >>> ActiveLearner(pool, initial_design="typiclust").run(budget=30, initial=10)   # 10 typical rows first
    >>> batch = learner.ask(5)                  # batch.X: [5, d]
    >>> learner.tell(batch.X, simulate(batch.X))
    >>> mf = ActiveLearner(box, surrogate="co-kriging", costs=[0.1, 1.0])
    >>> mf.tell(X, y, fidelity=f); batch = mf.ask(4, budget=2.0)   # batch.fidelity, batch.cost: [k]
    """

    def __init__(self, space: Pool | Box, surrogate: str | Surrogate = "exact-gp",
                 acquisition: str | Acquisition | None = None, selector: str | StochasticBatch = "auto",
                 seed: int = 0, test_set: tuple[Any, Any] | None = None, costs: Any = None, cost_model: Any = None,
                 fidelities: Any = None, n_candidates: int = 1024, initial_design: str | None = None):
        if not isinstance(space, (Pool, Box)):
            raise InvalidInput("space", "a bayesal Pool or Box", describe(space))
        self.space = space
        self.initial_method = None if initial_design is None else resolve_design(initial_design, space)
        self.seed = check_seed(seed, allow_none=False, maximum=MAX_USER_SEED)
        if costs is not None and cost_model is not None:
            raise InvalidInput("cost_model", "either costs or cost_model", "both")
        cost = costs if costs is not None else cost_model
        self.cost_model: CostModel | None = None if cost is None else as_cost_model(cost)
        self.multi_fidelity = isinstance(surrogate, MultiFidelitySurrogate) or (
            isinstance(surrogate, str) and surrogate in MF_MODELS)
        if self.multi_fidelity:
            if initial_design is not None:
                raise InvalidInput("initial_design", "None for a multi-fidelity learner (its first labels are the "
                                   "nested design of initial_design(counts))", repr(initial_design))
            self._init_multifidelity(surrogate, acquisition, fidelities)
        else:
            self.surrogate = make_model(surrogate, seed=self.seed)
            self.acquisition, self.selector = split_selector(make_acquisition(acquisition, self.surrogate),
                                                             check_selector(selector))
            self.fidelity = None
        self.n_candidates = check_count(n_candidates, "n_candidates")
        self.test_set = None
        if test_set is not None:
            Xt = check_X(test_set[0], "test_set[0]", dim=space.dim)
            self.test_set = (Xt, check_y(test_set[1], "test_set[1]", n=Xt.shape[0],
                                         m=1 if self.multi_fidelity else None))
        self.X = torch.empty(0, space.dim, dtype=DEFAULT_DTYPE)
        self.y: torch.Tensor | None = torch.empty(0, 1, dtype=DEFAULT_DTYPE) if self.multi_fidelity else None
        self.cumulative_cost = 0.0
        self.history: list[dict[str, Any]] = []
        self._stale = True
        self._asks = 0

    def _init_multifidelity(self, surrogate, acquisition, fidelities) -> None:
        if not isinstance(self.cost_model, FidelityCost):
            raise InvalidInput("costs", "one cost per fidelity level [S] for a multi-fidelity surrogate",
                               describe(self.cost_model))
        S = self.cost_model.num_fidelities
        if isinstance(surrogate, str):
            surrogate = MF_MODELS[surrogate](S, seed=self.seed)
        if surrogate.num_fidelities != S:
            raise InvalidInput("surrogate", f"a MultiFidelitySurrogate with {S} fidelities", describe(surrogate))
        acquisition = "mf-integrated-variance" if acquisition is None else acquisition
        if isinstance(acquisition, str):
            if acquisition not in MF_ACQUISITIONS:
                raise UnknownName("multi-fidelity strategy", acquisition, list(MF_ACQUISITIONS))
            acquisition = MF_ACQUISITIONS[acquisition]()
        if not isinstance(acquisition, Acquisition):
            raise InvalidInput("acquisition", "a multi-fidelity Acquisition", describe(acquisition))
        self.surrogate, self.acquisition, self.selector = surrogate, acquisition, "greedy"
        self.fidelities = torch.arange(S) if fidelities is None else check_fidelity(
            fidelities, len(fidelities), S, "fidelities")
        self.fidelity = torch.empty(0, dtype=torch.long)
        if isinstance(self.space, Pool):  # which (row, level) pairs are labelled
            self._told = torch.zeros(len(self.space), S, dtype=torch.bool)

    # -- data ---------------------------------------------------------------------------------
    @property
    def n_labels(self) -> int:
        """Number of labelled observations told so far (all fidelities together)."""
        return self.X.shape[0]

    @property
    def num_fidelities(self) -> int:
        """Number of fidelity levels (1 for a single-fidelity learner)."""
        return self.cost_model.num_fidelities if self.multi_fidelity else 1

    @property
    def costs(self) -> torch.Tensor | None:
        """``[S]`` cost per fidelity level of a multi-fidelity learner (None otherwise)."""
        return self.cost_model.costs if self.multi_fidelity else None

    def counts(self) -> list[int]:
        """Labels bought at each fidelity level."""
        if not self.multi_fidelity:
            return [self.n_labels]
        return torch.bincount(self.fidelity, minlength=self.num_fidelities).tolist()

    def __repr__(self) -> str:
        return (f"ActiveLearner({self.space!r}, surrogate={self.surrogate!r}, "
                f"acquisition={self.acquisition!r}, n_labels={self.n_labels})")

    def tell(self, X: Any, y: Any, indices: Any = None, fidelity: Any = None) -> None:
        """Add labelled observations ``X: [k, d]``, ``y: [k]`` or ``[k, m]`` (at levels
        ``fidelity: [k]`` for a multi-fidelity learner; their cost is added to
        :attr:`cumulative_cost` when there is a cost model).

        On a pool, ``indices`` are the candidates' pool indices (found from ``X`` when omitted;
        ``X`` may then be None). Nothing is added unless every row is valid.
        """
        self._add(X, y, indices, fidelity)

    def _add(self, X: Any, y: Any, indices: Any, fidelity: Any) -> None:
        # tell's body, called by the loop too (subclasses may reorder tell's arguments)
        if isinstance(self.space, Pool):
            pool = self.space
            if indices is None:
                if X is None:
                    raise InvalidInput("indices", "pool indices when X is None", "None")
                idx = pool.index_of(X)
            elif self.multi_fidelity:  # a row may come at several levels: the pairs must be distinct
                raw = torch.as_tensor(indices).reshape(-1)
                check_indices(raw.unique(), "indices", len(pool))  # integers in range
                idx = raw.long().cpu()
            else:
                idx = check_indices(indices, "indices", len(pool))
            rows = pool.X[idx.to(pool.X.device)]
            if X is not None:
                # X and indices name the same points twice: a disagreement is a bug in the
                # caller's bookkeeping, not something to resolve silently in favour of indices
                given = check_X(X, "X", dim=pool.dim).to(rows)
                if given.shape != rows.shape:
                    raise InvalidInput("X", f"{rows.shape[0]} rows, one per index", f"{given.shape[0]} rows")
                width = (pool.bounds[1] - pool.bounds[0]).to(rows)
                off = ((given - rows).abs() > 1e-9 * width + 1e-12 * rows.abs()).any(-1)
                if bool(off.any()):
                    i = int(torch.nonzero(off)[0])
                    raise InvalidInput("X", "the pool rows at indices (or X=None)",
                                       f"row {i} = {given[i].tolist()} but pool row {int(idx[i])} is {rows[i].tolist()}")
            X = rows
        else:
            idx = None
            X = self.space.check(X, "X")
        f = None
        if self.multi_fidelity:
            if fidelity is None:
                raise InvalidInput("fidelity", "the levels [k] of the labels (multi-fidelity learner)", "None")
            f = check_fidelity(fidelity, X.shape[0], self.num_fidelities)
            if idx is not None and torch.unique(idx * self.num_fidelities + f).numel() != idx.numel():
                raise InvalidInput("indices", "distinct (row, fidelity) pairs", "a pair repeated")
            if idx is not None and bool(self._told[idx, f].any()):
                raise InvalidInput("indices", "candidates not labelled yet at that fidelity",
                                   f"already labelled {idx[self._told[idx, f]].tolist()[:10]}")
        elif idx is not None:
            already = idx[self.space.labelled[idx.to(self.space.labelled.device)].cpu()]
            if already.numel():
                raise InvalidInput("indices", "candidates not labelled yet", f"already labelled {already.tolist()[:10]}")
        m = None if self.y is None or self.y.shape[0] == 0 else self.y.shape[-1]
        y = check_y(y, "y", n=X.shape[0], m=1 if self.multi_fidelity else m)
        if self.cost_model is not None:
            self.cumulative_cost += float(self.cost_model(X if f is None else augment(X.to(self.X), f)).sum())
        self.X = torch.cat([self.X, X.to(self.X)])
        self.y = y if self.y is None else torch.cat([self.y, y.to(self.y)])
        if f is not None:
            self.fidelity = torch.cat([self.fidelity, f])
            if idx is not None:
                self._told[idx, f] = True
        elif idx is not None:
            self.space.mark_labelled(idx)
        self._stale = True

    # -- model --------------------------------------------------------------------------------
    def fit(self) -> float:
        """Refit the surrogate on all observations if they changed; returns the seconds spent."""
        if not self._stale:
            return 0.0
        if self.n_labels == 0:
            raise InvalidInput("learner", "at least one labelled observation before fitting", "none (call tell first)")
        start = time.perf_counter()
        X = augment(self.X, self.fidelity) if self.multi_fidelity else self.X
        self.surrogate.fit(X, self.y, bounds=self.space.bounds)
        self._stale = False
        return time.perf_counter() - start

    def target(self) -> Surrogate:
        """The fitted surrogate of what is being learned: the surrogate itself, or the target
        fidelity's d-input surrogate for a multi-fidelity learner."""
        self.fit()
        return self.surrogate.at_target() if self.multi_fidelity else self.surrogate

    def step_seed(self, step: int) -> int:
        """The random seed of acquisition step ``step`` (0 for the first ask): a function of the
        learner's seed and the step alone, so a campaign restored at step k draws what an
        uninterrupted one would."""
        return self.seed * 1_000_003 + int(step)

    def ask(self, q: int = 1, pending: Any = None, step: int | None = None,
            select_function: Callable[..., Selection] | None = None, budget: float | None = None) -> Selection:
        """Propose a batch of q points (and their pool indices); refits the surrogate if needed.

        Before any label has been told, the batch is the learner's ``initial_design`` (by
        default scrambled Sobol points on a box, random rows on a pool; a multi-fidelity learner
        needs labels at every level first: see :meth:`initial_design`).

        Args:
            q: batch size.
            pending: ``[p, d]`` points being evaluated whose labels are not known yet: the batch
                is chosen from the surrogate conditioned on them (``Surrogate.condition_on``),
                so it does not repeat their information. A surrogate that cannot condition
                (a classifier's sample posterior) raises :class:`~bayesal.errors.Unsupported`.
                On a pool they must be pool rows: they are not proposed again by this ask, and
                are told later as usual. (Single fidelity only.)
            step: the acquisition step whose seed to use (default: the number of asks so far).
            select_function: used instead of :func:`bayesal.selection.select`, with its signature
                ``(surrogate, acquisition, space, q, selector=..., seed=...)`` (e.g. a pool
                scored on a cluster, :func:`bayesal.loop.distributed_select`); on a box it is also
                given ``X_observed=`` the labelled and pending points ``[n, d]``, which a noise-free
                model must not propose again. (Single fidelity only.)
            budget: the most the batch may cost (needs a cost model). Multi-fidelity batches
                never choose a candidate that does not fit and stop early when nothing fits;
                single-fidelity batches keep their longest prefix that fits.

        Returns a :class:`~bayesal.selection.Selection`; ``fidelity`` and ``cost`` are filled for a
        multi-fidelity learner, ``cost`` whenever there is a cost model. It is empty when
        nothing fits the budget.
        """
        q = check_count(q, "q", maximum=MAX_POINTS if isinstance(self.space, Box) else None,
                        maximum_reason="points proposed at once on a box")
        if budget is not None and self.cost_model is None:
            raise InvalidInput("budget", "a learner with a cost model (costs=...) to price the batch", repr(budget))
        if self.multi_fidelity:
            if pending is not None or select_function is not None:
                raise InvalidInput("pending/select_function", "None for a multi-fidelity learner", "given")
            return self._ask_multifidelity(q, budget, step)
        if isinstance(self.space, Pool):
            self.space.check_batch_size(q)
        if step is not None:
            self._asks = int(step)
        seed = self.step_seed(self._asks)
        self._asks += 1
        if self.n_labels == 0:
            return self._priced(self._initial_design(q, seed), budget)
        if self.acquisition.needs_posterior:
            self.fit()
        acquisition = self.acquisition
        if self.cost_model is not None and not isinstance(self.cost_model, ConstantCost):
            # a constant cost ranks as the plain criterion: keep its own (chunked) scoring path
            acquisition = acquisition.with_cost(self.cost_model)
        model = acquisition.selection_model(self.X, self.surrogate)
        excluded = pending_for_box = None
        observed = self.X
        if pending is not None:
            X_pending = check_X(pending, "pending", dim=self.space.dim, allow_empty=True)
            if X_pending.shape[0] and isinstance(self.space, Pool):
                rows = self.space.index_of(X_pending)
                excluded = rows[~self.space.labelled[rows.to(self.space.labelled.device)].cpu()]
                self.space.check_batch_size(q + excluded.numel())
            observed = torch.cat([self.X, X_pending.to(self.X)])
            if X_pending.shape[0] and acquisition.needs_posterior:
                if isinstance(self.space, Box):
                    # the box selector conditions on them itself, and judges the model's noise
                    # before conditioning (a conditioned model looks noisier at its pending points)
                    pending_for_box = X_pending
                else:
                    model = model.condition_on(X_pending)
        # a box selector keeps a noise-free model off the labelled and pending points (a pool
        # excludes its labelled rows itself, so pool selectors keep their signature)
        extra = {"X_observed": observed} if isinstance(self.space, Box) else {}
        if pending_for_box is not None:
            extra["X_pending"] = pending_for_box
        if excluded is None or excluded.numel() == 0:
            batch = (select_function or select)(model, acquisition, self.space, q, selector=self.selector, seed=seed,
                                                **extra)
            return self._priced(batch, budget)
        self.space.mark_labelled(excluded)
        try:
            batch = (select_function or select)(model, acquisition, self.space, q, selector=self.selector, seed=seed,
                                                **extra)
            return self._priced(batch, budget)
        finally:
            self.space.labelled[excluded.to(self.space.labelled.device)] = False

    def _priced(self, batch: Selection, budget: float | None) -> Selection:
        """The batch with its costs, cut to its longest prefix within ``budget`` (greedy gains of
        a prefix are unchanged)."""
        if self.cost_model is None:
            return batch
        cost = self.cost_model(batch.X.to(self.X)).reshape(-1)
        k = len(batch)
        if budget is not None:
            k = int((torch.cumsum(cost, 0) <= float(budget) + 1e-12).sum())
        return Selection(batch.X[:k], None if batch.indices is None else batch.indices[:k], batch.scores[:k],
                         cost=cost[:k])

    def _ask_multifidelity(self, q: int, budget: float | None, step: int | None) -> Selection:
        if self.n_labels == 0:
            raise InvalidInput("learner", "labels at every level before asking (see initial_design)", "none")
        self.fit()
        if step is not None:
            self._asks = int(step)
        seed = self.step_seed(self._asks)
        self._asks += 1
        rows = None
        if isinstance(self.space, Box):
            C = fidelity_candidates(self.space.sample(self.n_candidates, seed=seed, method="sobol"), self.fidelities)
        else:
            N = len(self.space)
            C = fidelity_candidates(self.space.X.to(self.X), self.fidelities)
            # grouped by level, like C: position l·N + r is row r at the l-th level on offer
            free = (~self._told[:, self.fidelities]).T.reshape(-1)
            rows = torch.nonzero(free).reshape(-1)
            C = C[rows.to(C.device)]
        acquisition = self.acquisition.for_space(self.space).with_cost(self.cost_model)
        chosen, gains, cost = select_augmented(self.surrogate, acquisition, C, q, cost_model=self.cost_model,
                                               budget=budget)
        indices = None if rows is None else (rows[chosen.cpu()] % N)
        return Selection(C[chosen, :-1], indices, gains, fidelity=C[chosen, -1].round().long().cpu(), cost=cost)

    def initial_design(self, counts: Any) -> Selection:
        """A nested space-filling design for a multi-fidelity learner: ``counts[s]`` points at
        level s, the points of a higher level being the first ones of every lower level's
        (Kennedy & O'Hagan 2000 recommend nested designs): scrambled Sobol points on a box,
        seeded random rows on a pool."""
        if not self.multi_fidelity:
            raise InvalidInput("learner", "a multi-fidelity learner for a design with counts per level",
                               "a single-fidelity learner")
        counts = [check_count(c, "initial", minimum=0) for c in counts]
        if len(counts) != self.num_fidelities:
            raise InvalidInput("initial", f"{self.num_fidelities} counts, one per level", f"{len(counts)}")
        indices = None
        if isinstance(self.space, Box):
            pts = self.space.sample(max(counts), seed=self.seed * 7919 + 17, method="sobol")
        else:
            gen = torch.Generator().manual_seed(self.seed * 7919 + 17)
            rows = torch.randperm(len(self.space), generator=gen)[:max(counts)]
            pts = self.space.X[rows.to(self.space.X.device)]
            indices = torch.cat([rows[:c] for c in counts])
        X = torch.cat([pts[:c] for c in counts])
        f = torch.cat([torch.full((c,), s, dtype=torch.long) for s, c in enumerate(counts)])
        return Selection(X, indices, torch.full((X.shape[0],), float("nan"), dtype=DEFAULT_DTYPE), fidelity=f,
                         cost=self.cost_model.of_levels(f))

    def replace_data(self, X: Any, y: Any, excluded: Any = None) -> None:
        """Replace every observation with ``X: [n, d]``, ``y: [n, m]`` (e.g. reloaded from a
        store); on a pool, ``excluded`` are the pool indices never to propose again (labelled,
        pending or failed). The surrogate is refitted on the next :meth:`fit` or :meth:`ask`.
        (Single fidelity.)"""
        if self.multi_fidelity:
            raise InvalidInput("learner", "a single-fidelity learner for replace_data", "a multi-fidelity learner")
        X = check_X(X, "X", dim=self.space.dim, allow_empty=True)
        self.X = X.to(DEFAULT_DTYPE)
        self.y = None if X.shape[0] == 0 else check_y(y, "y", n=X.shape[0])
        if isinstance(self.space, Pool):
            self.space.labelled.zero_()
            if excluded is not None and len(excluded):
                self.space.mark_labelled(excluded)
        self._stale = True

    def _initial_design(self, q: int, seed: int) -> Selection:
        method = self.initial_method
        if method is None:
            method = "sobol" if isinstance(self.space, Box) else "random"
        return cold_start_design(self.space, q, method, seed=seed)

    def posterior(self, X: Any):
        """The surrogate's posterior at ``X: [N, d]`` (of the target fidelity for a
        multi-fidelity learner), after refitting on all labels if needed."""
        return self.target().posterior(check_X(X, "X", dim=self.space.dim))

    def evaluate(self) -> dict[str, float]:
        """Test-set RMSE, NLPD and mean posterior std of the current surrogate (of the target
        fidelity for a multi-fidelity learner; empty without a test set)."""
        if self.test_set is None:
            return {}
        return evaluate(self.target(), *self.test_set)

    # -- loop ---------------------------------------------------------------------------------
    def run(self, oracle: Any = None, budget: int | None = None, q: int = 1, initial: Any = None,
            callback: Callable[[dict[str, Any]], Any] | None = None, progress: bool = True,
            cost_budget: float | None = None, step_cost: float | None = None) -> list[dict[str, Any]]:
        """Buy ``budget`` labels (or labels worth ``cost_budget``) from ``oracle`` in batches of
        ``q`` and record a learning curve.

        Args:
            oracle: ``oracle(X [q, d], indices) -> y`` or ``f(X) -> y``; for a pool with hidden
                labels it may be omitted. A multi-fidelity learner calls ``oracle(X [q, d],
                fidelity [q]) -> y`` (e.g. a :class:`~bayesal.problems.MultiFidelityProblem`).
            budget: labels to buy in this call, the initial design included (default 20 when
                no ``cost_budget`` is given).
            q: batch size (the last batch is cut to fit the budget; multi-fidelity batches may
                mix fidelities).
            initial: size of the initial design (``initial_design``) when the learner has no labels yet
                (default ``max(2, d + 1)``, capped by the budget); for a multi-fidelity learner,
                labels per level (default ``2(d+1)`` at each lower level and ``d+1`` at the
                target, all reduced together, down to 2, until the design costs at most half
                the cost budget).
            callback: called with each step's record; returning ``False`` stops the run.
            progress: show a tqdm progress bar.
            cost_budget: total cost this call may spend, in cost units (needs a cost model; the
                only budget of a multi-fidelity learner): the run stops when not even the
                cheapest evaluation fits any more.
            step_cost: the most one batch may cost (cost runs; default: the budget left), so
                that cheap levels are bought in batches of about the cost of one expensive run.

        Returns the records of this run's steps (also appended to :attr:`history`), each with
        ``step, n_labels, batch_size, rmse, nlpd, mean_std, fit_s, acq_s, oracle_s``, and in cost
        runs also ``counts, batch_fidelities, batch_cost, cumulative_cost``.
        On an oracle failure, :class:`~bayesal.errors.OracleFailed` is raised; every label
        collected before it stays in the learner and the records so far are attached.
        """
        if cost_budget is not None or self.multi_fidelity:
            if budget is not None:
                raise InvalidInput("budget", "None when the run stops on a cost_budget", repr(budget))
            return self._run_cost(oracle, cost_budget, q, initial, step_cost, callback, progress)
        budget = check_count(20 if budget is None else budget, "budget")
        q = check_count(q, "q")
        if oracle is None:
            if isinstance(self.space, Pool) and self.space.has_labels:
                oracle = self.space
            else:
                raise InvalidInput("oracle", "a labelling function (or a pool with hidden labels)", "None")
        oracle = as_oracle(oracle)
        if isinstance(self.space, Pool):
            self.space.check_batch_size(1)
            check_count(budget, "budget", maximum=self.space.n_available,
                        maximum_reason="the unlabelled candidates left in the pool")
        if initial is None:
            initial = min(budget, max(2, self.space.dim + 1)) if self.n_labels == 0 else 0
        initial = check_count(initial, "initial", minimum=0, maximum=budget, maximum_reason="the budget")
        if self.n_labels == 0 and initial == 0:
            initial = min(q, budget)

        records: list[dict[str, Any]] = []
        bar = tqdm(total=budget, disable=not progress, unit="label", desc=self.acquisition.name, leave=False)
        bought = 0
        try:
            while bought < budget:
                size = initial if bought == 0 and initial > 0 else min(q, budget - bought)
                start = time.perf_counter()
                batch = self.ask(size)
                acq_s = time.perf_counter() - start
                start = time.perf_counter()
                y = self._label(oracle, batch, records)
                oracle_s = time.perf_counter() - start
                self._add(batch.X, y, batch.indices, None)
                bought += len(batch)
                fit_s = self.fit()
                record = {"step": len(self.history), "n_labels": self.n_labels, "batch_size": len(batch),
                          "rmse": None, "nlpd": None, "mean_std": None,
                          "fit_s": fit_s, "acq_s": acq_s, "oracle_s": oracle_s}
                record.update(self.evaluate())
                self.history.append(record)
                records.append(record)
                bar.update(len(batch))
                if record["rmse"] is not None:
                    bar.set_postfix(rmse=f"{record['rmse']:.4g}")
                if callback is not None and callback(record) is False:
                    break
        finally:
            bar.close()
        return records

    def _run_cost(self, oracle, cost_budget, q, initial, step_cost, callback, progress) -> list[dict[str, Any]]:
        if self.cost_model is None:
            raise InvalidInput("cost_budget", "a learner with a cost model (costs=... or cost_model=...)",
                               repr(cost_budget))
        budget = math.nan if cost_budget is None else float(cost_budget)
        if not (budget > 0) or not math.isfinite(budget):
            raise InvalidInput("cost_budget", "a positive finite cost", repr(cost_budget))
        q = check_count(q, "q")
        if step_cost is not None and not (float(step_cost) > 0):
            raise InvalidInput("step_cost", "a positive cost or None", repr(step_cost))
        if oracle is None and not self.multi_fidelity and isinstance(self.space, Pool) and self.space.has_labels:
            oracle = self.space
        if not callable(oracle):
            raise InvalidInput("oracle", "a callable oracle(X, fidelity)" if self.multi_fidelity
                               else "a labelling function (or a pool with hidden labels)", type(oracle).__name__)
        if not self.multi_fidelity:
            oracle = as_oracle(oracle)
        spent_at_start = self.cumulative_cost
        records: list[dict[str, Any]] = []
        bar = tqdm(total=budget, disable=not progress, unit="cost", desc=self.acquisition.name, leave=False)
        try:
            if self.n_labels == 0:
                batch = self._first_batch(budget, initial, q)
                if batch.total_cost > budget + 1e-12:
                    raise InvalidInput("initial", f"a design costing at most the budget {budget:g}",
                                       f"a design costing {batch.total_cost:g}")
                self._step(oracle, batch, 0.0, records, bar)
            while True:
                left = budget - (self.cumulative_cost - spent_at_start)
                if self.multi_fidelity and left < float(self.cost_model.of_levels(self.fidelities).min()) - 1e-12:
                    break  # not even the cheapest level on offer fits
                if isinstance(self.space, Pool) and not self.multi_fidelity and self.space.n_available == 0:
                    break
                start = time.perf_counter()
                size = q if not isinstance(self.space, Pool) or self.multi_fidelity else min(q, self.space.n_available)
                batch = self.ask(size, budget=left if step_cost is None else min(left, float(step_cost)))
                acq_s = time.perf_counter() - start
                if len(batch) == 0:
                    break
                record = self._step(oracle, batch, acq_s, records, bar)
                if callback is not None and callback(record) is False:
                    break
        finally:
            bar.close()
        return records

    def _first_batch(self, budget: float, initial: Any, q: int) -> Selection:
        if self.multi_fidelity:
            counts = self._default_initial(budget) if initial is None else list(initial)
            return self.initial_design(counts)
        size = max(2, self.space.dim + 1) if initial is None else check_count(initial, "initial")
        return self.ask(size)

    def _default_initial(self, budget: float) -> list[int]:
        d, S = self.space.dim, self.num_fidelities
        counts = [2 * (d + 1)] * (S - 1) + [d + 1]
        while float((torch.tensor(counts, dtype=DEFAULT_DTYPE) * self.costs).sum()) > 0.5 * budget and max(counts) > 2:
            counts = [max(2, c - 1) for c in counts]
        return counts

    def _step(self, oracle, batch: Selection, acq_s: float, records: list, bar) -> dict[str, Any]:
        start = time.perf_counter()
        if self.multi_fidelity:
            y = self._label(lambda X, _: oracle(X, batch.fidelity), batch, records, m=1)
        else:
            y = self._label(oracle, batch, records)
        oracle_s = time.perf_counter() - start
        self._add(batch.X, y, batch.indices, batch.fidelity)
        fit_s = self.fit()
        record = {"step": len(self.history), "n_labels": self.n_labels, "counts": self.counts(),
                  "batch_size": len(batch),
                  "batch_fidelities": None if batch.fidelity is None else batch.fidelity.tolist(),
                  "batch_cost": batch.total_cost, "cumulative_cost": self.cumulative_cost,
                  "rmse": None, "nlpd": None, "mean_std": None, "fit_s": fit_s, "acq_s": acq_s, "oracle_s": oracle_s}
        record.update(self.evaluate())
        self.history.append(record)
        records.append(record)
        bar.update(batch.total_cost)
        return record

    def _label(self, oracle: Oracle, batch: Selection, records: list, m: int | None = None) -> torch.Tensor:
        where = f"at label {self.n_labels + 1} (batch of {len(batch)})"
        kept = f"the {self.n_labels} labels collected so far are kept in the learner"
        try:
            y = oracle(batch.X, batch.indices)
        except Exception as exc:  # any failure of user code ends here, with the data kept
            raise OracleFailed(f"oracle raised {type(exc).__name__}: {exc} {where}; {kept}", records) from exc
        try:
            if m is None:
                m = None if self.y is None else self.y.shape[-1]
            return check_y(y, "oracle output", n=len(batch), m=m)
        except InvalidInput as exc:
            raise OracleFailed(f"oracle returned unusable labels {where}: {exc}; {kept}", records) from exc
