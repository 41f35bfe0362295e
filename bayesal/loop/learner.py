"""The ask / tell active-learning loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm.std import tqdm

from ..acquisition import Acquisition, Random, make_acquisition
from ..errors import InvalidInput, OracleFailed
from ..metrics import evaluate
from ..models import Surrogate, make_model
from ..selection import Selection, StochasticBatch, check_selector, select
from ..selection.stochastic import split_selector
from ..spaces import Box, Pool
from ..validation import DEFAULT_DTYPE, check_count, check_indices, check_X, check_y, describe
from .oracles import Oracle, as_oracle

__all__ = ["ActiveLearner"]


class ActiveLearner:
    """Chooses which labels to buy: ``ask`` for a batch, ``tell`` the labels, repeat.

    Args:
        space: a :class:`~bayesal.spaces.Pool` of candidates or a :class:`~bayesal.spaces.Box`.
        surrogate: a :class:`~bayesal.models.Surrogate` or a model name (``"exact-gp"``).
        acquisition: an :class:`~bayesal.acquisition.Acquisition` or a name (``"max-variance"``,
            ``"bald"``, ``"joint-information"``, ``"random"``).
        selector: ``"auto"``, ``"topk"``, ``"greedy"``, ``"stochastic"`` or a
            :class:`~bayesal.selection.StochasticBatch` (pools only; see :func:`bayesal.selection.select`).
        seed: makes every batch reproducible: the same seed gives the same points.
        test_set: optional ``(X_test [n, d], y_test [n, m])`` on which :meth:`run` records
            RMSE, NLPD and the mean posterior standard deviation after every step.

    >>> learner = ActiveLearner(Box([0, 0], [1, 1]), acquisition="joint-information")
    >>> batch = learner.ask(5)                  # batch.X: [5, d]
    >>> learner.tell(batch.X, simulate(batch.X))
    """

    def __init__(self, space: Pool | Box, surrogate: str | Surrogate = "exact-gp",
                 acquisition: str | Acquisition = "max-variance", selector: str | StochasticBatch = "auto",
                 seed: int = 0, test_set: tuple[Any, Any] | None = None):
        if not isinstance(space, (Pool, Box)):
            raise InvalidInput("space", "a bayesal Pool or Box", describe(space))
        self.space = space
        self.seed = int(seed)
        self.surrogate = make_model(surrogate, seed=self.seed)
        self.acquisition, self.selector = split_selector(make_acquisition(acquisition), check_selector(selector))
        self.test_set = None
        if test_set is not None:
            Xt = check_X(test_set[0], "test_set[0]", dim=space.dim)
            self.test_set = (Xt, check_y(test_set[1], "test_set[1]", n=Xt.shape[0]))
        self.X = torch.empty(0, space.dim, dtype=DEFAULT_DTYPE)
        self.y: torch.Tensor | None = None
        self.history: list[dict[str, Any]] = []
        self._stale = True
        self._asks = 0

    # -- data ---------------------------------------------------------------------------------
    @property
    def n_labels(self) -> int:
        """Number of labelled observations told so far."""
        return self.X.shape[0]

    def __repr__(self) -> str:
        return (f"ActiveLearner({self.space!r}, surrogate={self.surrogate!r}, "
                f"acquisition={self.acquisition!r}, n_labels={self.n_labels})")

    def tell(self, X: Any, y: Any, indices: Any = None) -> None:
        """Add labelled observations ``X: [k, d]``, ``y: [k]`` or ``[k, m]``.

        On a pool, ``indices`` are the candidates' pool indices (found from ``X`` when omitted;
        ``X`` may then be None). Nothing is added unless every row is valid.
        """
        if isinstance(self.space, Pool):
            pool = self.space
            if indices is None:
                if X is None:
                    raise InvalidInput("indices", "pool indices when X is None", "None")
                idx = pool.index_of(X)
            else:
                idx = check_indices(indices, "indices", len(pool))
            already = idx[pool.labelled[idx.to(pool.labelled.device)].cpu()]
            if already.numel():
                raise InvalidInput("indices", "candidates not labelled yet", f"already labelled {already.tolist()[:10]}")
            X = pool.X[idx.to(pool.X.device)]
        else:
            idx = None
            X = self.space.check(X, "X")
        m = None if self.y is None else self.y.shape[-1]
        y = check_y(y, "y", n=X.shape[0], m=m)
        self.X = torch.cat([self.X, X.to(self.X)])
        self.y = y if self.y is None else torch.cat([self.y, y.to(self.y)])
        if idx is not None:
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
        self.surrogate.fit(self.X, self.y, bounds=self.space.bounds)
        self._stale = False
        return time.perf_counter() - start

    def step_seed(self, step: int) -> int:
        """The random seed of acquisition step ``step`` (0 for the first ask): a function of the
        learner's seed and the step alone, so a campaign restored at step k draws what an
        uninterrupted one would."""
        return self.seed * 1_000_003 + int(step)

    def ask(self, q: int = 1, pending: Any = None, step: int | None = None,
            select_function: Callable[..., Selection] | None = None) -> Selection:
        """Propose a batch of q points (and their pool indices); refits the surrogate if needed.

        Before any label has been told, the batch is a space-filling random design.

        Args:
            q: batch size.
            pending: ``[p, d]`` points being evaluated whose labels are not known yet: the batch
                is chosen from the surrogate conditioned on them (``Surrogate.condition_on``),
                so it does not repeat their information. A surrogate that cannot condition
                (a classifier's sample posterior) raises :class:`~bayesal.errors.Unsupported`.
                On a pool they must be pool rows: they are not proposed again by this ask, and
                are told later as usual.
            step: the acquisition step whose seed to use (default: the number of asks so far).
            select_function: used instead of :func:`bayesal.selection.select`, with its signature
                ``(surrogate, acquisition, space, q, selector=..., seed=...)`` (e.g. a pool
                scored on a cluster, :func:`bayesal.loop.distributed_select`).
        """
        q = check_count(q, "q")
        if isinstance(self.space, Pool):
            self.space.check_batch_size(q)
        if step is not None:
            self._asks = int(step)
        seed = self.step_seed(self._asks)
        self._asks += 1
        if self.n_labels == 0:
            return self._initial_design(q, seed)
        if self.acquisition.needs_posterior:
            self.fit()
        model = self.acquisition.selection_model(self.X, self.surrogate)
        excluded = None
        if pending is not None:
            X_pending = check_X(pending, "pending", dim=self.space.dim, allow_empty=True)
            if X_pending.shape[0] and isinstance(self.space, Pool):
                rows = self.space.index_of(X_pending)
                excluded = rows[~self.space.labelled[rows.to(self.space.labelled.device)].cpu()]
                self.space.check_batch_size(q + excluded.numel())
            if X_pending.shape[0] and self.acquisition.needs_posterior:
                model = model.condition_on(X_pending)
        if excluded is None or excluded.numel() == 0:
            return (select_function or select)(model, self.acquisition, self.space, q, selector=self.selector, seed=seed)
        self.space.mark_labelled(excluded)
        try:
            return (select_function or select)(model, self.acquisition, self.space, q, selector=self.selector, seed=seed)
        finally:
            self.space.labelled[excluded.to(self.space.labelled.device)] = False

    def replace_data(self, X: Any, y: Any, excluded: Any = None) -> None:
        """Replace every observation with ``X: [n, d]``, ``y: [n, m]`` (e.g. reloaded from a
        store); on a pool, ``excluded`` are the pool indices never to propose again (labelled,
        pending or failed). The surrogate is refitted on the next :meth:`fit` or :meth:`ask`."""
        X = check_X(X, "X", dim=self.space.dim, allow_empty=True)
        self.X = X.to(DEFAULT_DTYPE)
        self.y = None if X.shape[0] == 0 else check_y(y, "y", n=X.shape[0])
        if isinstance(self.space, Pool):
            self.space.labelled.zero_()
            if excluded is not None and len(excluded):
                self.space.mark_labelled(excluded)
        self._stale = True

    def _initial_design(self, q: int, seed: int) -> Selection:
        if isinstance(self.space, Box):
            X = self.space.sample(q, seed=seed, method="sobol")
            return Selection(X, None, torch.full((q,), float("nan"), dtype=torch.float64))
        return select(None, Random(), self.space, q, selector="topk", seed=seed)

    def posterior(self, X: Any):
        """The surrogate's posterior at ``X: [N, d]``, after refitting on all labels if needed."""
        self.fit()
        return self.surrogate.posterior(check_X(X, "X", dim=self.space.dim))

    def evaluate(self) -> dict[str, float]:
        """Test-set RMSE, NLPD and mean posterior std of the current surrogate (empty without a test set)."""
        if self.test_set is None:
            return {}
        self.fit()
        return evaluate(self.surrogate, *self.test_set)

    # -- loop ---------------------------------------------------------------------------------
    def run(self, oracle: Any = None, budget: int = 20, q: int = 1, initial: int | None = None,
            callback: Callable[[dict[str, Any]], Any] | None = None, progress: bool = True) -> list[dict[str, Any]]:
        """Buy ``budget`` labels from ``oracle`` in batches of ``q`` and record a learning curve.

        Args:
            oracle: ``oracle(X [q, d], indices) -> y`` or ``f(X) -> y``; for a pool with hidden
                labels it may be omitted.
            budget: labels to buy in this call, the initial design included.
            q: batch size (the last batch is cut to fit the budget).
            initial: size of the random initial design when the learner has no labels yet
                (default ``max(2, d + 1)``, capped by the budget).
            callback: called with each step's record; returning ``False`` stops the run.
            progress: show a tqdm progress bar.

        Returns the records of this run's steps (also appended to :attr:`history`), each with
        ``step, n_labels, batch_size, rmse, nlpd, mean_std, fit_s, acq_s, oracle_s``.
        On an oracle failure, :class:`~bayesal.errors.OracleFailed` is raised; every label
        collected before it stays in the learner and the records so far are attached.
        """
        budget = check_count(budget, "budget")
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
                self.tell(batch.X, y, indices=batch.indices)
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

    def _label(self, oracle: Oracle, batch: Selection, records: list) -> torch.Tensor:
        where = f"at label {self.n_labels + 1} (batch of {len(batch)})"
        kept = f"the {self.n_labels} labels collected so far are kept in the learner"
        try:
            y = oracle(batch.X, batch.indices)
        except Exception as exc:  # any failure of user code ends here, with the data kept
            raise OracleFailed(f"oracle raised {type(exc).__name__}: {exc} {where}; {kept}", records) from exc
        try:
            m = None if self.y is None else self.y.shape[-1]
            return check_y(y, "oracle output", n=len(batch), m=m)
        except InvalidInput as exc:
            raise OracleFailed(f"oracle returned unusable labels {where}: {exc}; {kept}", records) from exc
