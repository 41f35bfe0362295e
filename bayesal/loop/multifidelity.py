"""The multi-fidelity ask / tell loop: each label has a fidelity and a cost; campaigns stop on a
cost budget.

An oracle is called as ``oracle(X [q, d], fidelity [q]) -> y [q] or [q, 1]``; a
:class:`~bayesal.problems.multifidelity.MultiFidelityProblem` is one.

>>> learner = MultiFidelityLearner(problem.space, costs=problem.costs, test_set=problem.test_set())
>>> records = learner.run(problem, cost_budget=20.0, q=2)
>>> records[-1]["cumulative_cost"], records[-1]["rmse"]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm.std import tqdm

from ..acquisition.multifidelity import MF_ACQUISITIONS, MultiFidelityAcquisition, MultiFidelitySelection
from ..errors import InvalidInput, OracleFailed, UnknownName
from ..metrics import evaluate
from ..models.multifidelity import BoTorchMultiFidelityGP, CoKriging, MultiFidelitySurrogate, augment
from ..problems.multifidelity import check_fidelity
from ..spaces import Box
from ..validation import DEFAULT_DTYPE, as_tensor, check_count, check_X, check_y, describe

__all__ = ["MultiFidelityLearner", "MF_MODELS"]

#: registry name -> factory(num_fidelities, seed) of the multi-fidelity surrogates
MF_MODELS: dict[str, Callable[..., MultiFidelitySurrogate]] = {
    "co-kriging": lambda num_fidelities, seed=0: CoKriging(num_fidelities, seed=seed),
    "botorch-mf-gp": lambda num_fidelities, seed=0: BoTorchMultiFidelityGP(num_fidelities, seed=seed),
}


class MultiFidelityLearner:
    """Chooses which simulations to run, and at which fidelity, under a cost budget.

    Args:
        space: the :class:`~bayesal.spaces.Box` of inputs.
        costs: ``[S]`` cost of one evaluation at each fidelity level (lowest first; the last
            level is the target).
        surrogate: a :class:`~bayesal.models.multifidelity.MultiFidelitySurrogate` or a name
            (``"co-kriging"``, default, or ``"botorch-mf-gp"``).
        acquisition: a :class:`~bayesal.acquisition.multifidelity.MultiFidelityAcquisition` or a
            name (``"mf-integrated-variance"``, default, or ``"mf-information"``).
        fidelities: the levels on offer to the acquisition (default: all).
        n_candidates: size of the scrambled Sobol candidate set drawn in the box at each ask.
        seed: makes every batch reproducible.
        test_set: optional ``(X_test [n, d], y_test [n, 1])`` of the target (the truth), on which
            :meth:`run` records RMSE, NLPD and mean posterior std of the target fidelity.
    """

    def __init__(self, space: Box, costs: Any, surrogate: str | MultiFidelitySurrogate = "co-kriging",
                 acquisition: str | MultiFidelityAcquisition = "mf-integrated-variance", fidelities: Any = None,
                 n_candidates: int = 1024, seed: int = 0, test_set: tuple[Any, Any] | None = None):
        if not isinstance(space, Box):
            raise InvalidInput("space", "a bayesal Box", describe(space))
        self.space = space
        self.costs = as_tensor(costs, "costs").reshape(-1)
        if self.costs.numel() < 1 or not bool((self.costs > 0).all()) or not bool(torch.isfinite(self.costs).all()):
            raise InvalidInput("costs", "positive finite costs, one per fidelity", repr(self.costs.tolist()))
        S = self.costs.numel()
        self.seed = int(seed)
        if isinstance(surrogate, str):
            if surrogate not in MF_MODELS:
                raise UnknownName("multi-fidelity model", surrogate, list(MF_MODELS))
            surrogate = MF_MODELS[surrogate](S, seed=self.seed)
        if not isinstance(surrogate, MultiFidelitySurrogate) or surrogate.num_fidelities != S:
            raise InvalidInput("surrogate", f"a MultiFidelitySurrogate with {S} fidelities", describe(surrogate))
        if isinstance(acquisition, str):
            if acquisition not in MF_ACQUISITIONS:
                raise UnknownName("multi-fidelity strategy", acquisition, list(MF_ACQUISITIONS))
            acquisition = MF_ACQUISITIONS[acquisition]()
        if not isinstance(acquisition, MultiFidelityAcquisition):
            raise InvalidInput("acquisition", "a MultiFidelityAcquisition", describe(acquisition))
        self.surrogate, self.acquisition = surrogate, acquisition
        self.fidelities = torch.arange(S) if fidelities is None else check_fidelity(
            fidelities, len(fidelities), S, "fidelities")
        self.n_candidates = check_count(n_candidates, "n_candidates")
        self.test_set = None
        if test_set is not None:
            Xt = check_X(test_set[0], "test_set[0]", dim=space.dim)
            self.test_set = (Xt, check_y(test_set[1], "test_set[1]", n=Xt.shape[0], m=1))
        self.X = torch.empty(0, space.dim, dtype=DEFAULT_DTYPE)
        self.fidelity = torch.empty(0, dtype=torch.long)
        self.y = torch.empty(0, 1, dtype=DEFAULT_DTYPE)
        self.cumulative_cost = 0.0
        self.history: list[dict[str, Any]] = []
        self._stale = True
        self._asks = 0

    @property
    def num_fidelities(self) -> int:
        return self.costs.numel()

    @property
    def n_labels(self) -> int:
        return self.X.shape[0]

    def counts(self) -> list[int]:
        """Labels bought at each fidelity level."""
        return torch.bincount(self.fidelity, minlength=self.num_fidelities).tolist()

    def __repr__(self) -> str:
        return (f"MultiFidelityLearner(costs={self.costs.tolist()}, surrogate={self.surrogate!r}, "
                f"acquisition={self.acquisition!r}, counts={self.counts()}, cost={self.cumulative_cost:.4g})")

    # -- data -------------------------------------------------------------------------------------
    def tell(self, X: Any, fidelity: Any, y: Any) -> None:
        """Add labels ``y: [k]`` of ``X: [k, d]`` at levels ``fidelity: [k]`` (their cost is added
        to :attr:`cumulative_cost`). Nothing is added unless every row is valid."""
        X = self.space.check(X, "X")
        f = check_fidelity(fidelity, X.shape[0], self.num_fidelities)
        y = check_y(y, "y", n=X.shape[0], m=1)
        self.X = torch.cat([self.X, X.to(self.X)])
        self.fidelity = torch.cat([self.fidelity, f])
        self.y = torch.cat([self.y, y.to(self.y)])
        self.cumulative_cost += float(self.costs[f].sum())
        self._stale = True

    def fit(self) -> float:
        """Refit the surrogate on all labels if they changed; returns the seconds spent."""
        if not self._stale:
            return 0.0
        start = time.perf_counter()
        self.surrogate.fit(augment(self.X, self.fidelity), self.y, bounds=self.space.bounds)
        self._stale = False
        return time.perf_counter() - start

    def target(self):
        """The surrogate of the target fidelity (an ordinary d-input Gaussian surrogate)."""
        self.fit()
        return self.surrogate.at_target()

    def evaluate(self) -> dict[str, float]:
        """Test-set RMSE, NLPD and mean posterior std of the target fidelity (empty without a test set)."""
        if self.test_set is None:
            return {}
        return evaluate(self.target(), *self.test_set)

    # -- choosing -----------------------------------------------------------------------------------
    def initial_design(self, counts: Any) -> MultiFidelitySelection:
        """A nested space-filling design: ``counts[s]`` scrambled Sobol points at level s, the
        points of a higher level being the first ones of every lower level's (Kennedy & O'Hagan
        2000 recommend nested designs)."""
        counts = [check_count(c, "initial", minimum=0) for c in counts]
        if len(counts) != self.num_fidelities:
            raise InvalidInput("initial", f"{self.num_fidelities} counts, one per level", f"{len(counts)}")
        pts = self.space.sample(max(counts), seed=self.seed * 7919 + 17, method="sobol")
        X = torch.cat([pts[:c] for c in counts])
        f = torch.cat([torch.full((c,), s, dtype=torch.long) for s, c in enumerate(counts)])
        return MultiFidelitySelection(X, f, torch.full((X.shape[0],), float("nan"), dtype=DEFAULT_DTYPE), self.costs[f])

    def ask(self, q: int = 1, budget: float | None = None) -> MultiFidelitySelection:
        """Propose up to q (point, fidelity) pairs costing at most ``budget`` in total; an empty
        selection when nothing fits."""
        q = check_count(q, "q")
        if self.n_labels == 0:
            raise InvalidInput("learner", "labels at every level before asking (see initial_design)", "none")
        self.fit()
        seed = self.seed * 1_000_003 + self._asks
        self._asks += 1
        candidates = self.space.sample(self.n_candidates, seed=seed, method="sobol")
        return self.acquisition.select(self.surrogate, candidates, self.costs, q=q, fidelities=self.fidelities,
                                       budget=budget, space=self.space)

    # -- loop -------------------------------------------------------------------------------------
    def run(self, oracle: Callable[[torch.Tensor, torch.Tensor], Any], cost_budget: float, q: int = 1,
            initial: Any = None, step_cost: float | None = None,
            callback: Callable[[dict[str, Any]], Any] | None = None, progress: bool = True) -> list[dict[str, Any]]:
        """Buy labels from ``oracle(X, fidelity)`` until ``cost_budget`` (in cost units, the initial
        design included) cannot pay for another evaluation; record a learning curve.

        Args:
            oracle: ``oracle(X [q, d], fidelity [q]) -> y``, e.g. a MultiFidelityProblem.
            cost_budget: total cost this call may spend.
            q: batch size (batches may mix fidelities).
            initial: labels per level for the initial design when the learner is empty
                (default ``2(d+1)`` at each lower level and ``d+1`` at the target, all reduced
                together, down to 2, until the design costs at most half the budget).
            step_cost: the most one batch may cost (default: no limit but the budget left), so
                that cheap levels are bought in batches of about the same cost as one expensive
                evaluation.
            callback: called with each step's record; returning ``False`` stops the run.
            progress: show a tqdm bar (in cost units).

        Returns the records of this run (also appended to :attr:`history`), each with ``step,
        n_labels, counts, batch_size, batch_cost, cumulative_cost, rmse, nlpd, mean_std, fit_s,
        acq_s, oracle_s``. An oracle failure raises :class:`~bayesal.errors.OracleFailed` with the
        labels so far kept and the records attached.
        """
        budget = float(cost_budget)
        if not (budget > 0) or not math.isfinite(budget):
            raise InvalidInput("cost_budget", "a positive finite cost", repr(cost_budget))
        q = check_count(q, "q")
        if step_cost is not None and not (float(step_cost) > 0):
            raise InvalidInput("step_cost", "a positive cost or None", repr(step_cost))
        if not callable(oracle):
            raise InvalidInput("oracle", "a callable oracle(X, fidelity)", type(oracle).__name__)
        spent_at_start = self.cumulative_cost
        records: list[dict[str, Any]] = []
        bar = tqdm(total=budget, disable=not progress, unit="cost", desc=self.acquisition.name, leave=False)
        try:
            if self.n_labels == 0:
                counts = self._default_initial(budget) if initial is None else list(initial)
                batch = self.initial_design(counts)
                if batch.total_cost > budget + 1e-12:
                    raise InvalidInput("initial", f"a design costing at most the budget {budget:g}",
                                       f"a design costing {batch.total_cost:g}")
                self._step(oracle, batch, 0.0, records, bar)
            while True:
                left = budget - (self.cumulative_cost - spent_at_start)
                if left < float(self.costs[self.fidelities].min()) - 1e-12:
                    break
                start = time.perf_counter()
                batch = self.ask(q, budget=left if step_cost is None else min(left, float(step_cost)))
                acq_s = time.perf_counter() - start
                if len(batch) == 0:
                    break
                record = self._step(oracle, batch, acq_s, records, bar)
                if callback is not None and callback(record) is False:
                    break
        finally:
            bar.close()
        return records

    def _default_initial(self, budget: float) -> list[int]:
        d, S = self.space.dim, self.num_fidelities
        counts = [2 * (d + 1)] * (S - 1) + [d + 1]
        while float((torch.tensor(counts, dtype=DEFAULT_DTYPE) * self.costs).sum()) > 0.5 * budget and max(counts) > 2:
            counts = [max(2, c - 1) for c in counts]
        return counts

    def _step(self, oracle, batch: MultiFidelitySelection, acq_s: float, records: list, bar) -> dict[str, Any]:
        start = time.perf_counter()
        where = f"at label {self.n_labels + 1} (batch of {len(batch)})"
        kept = f"the {self.n_labels} labels collected so far are kept in the learner"
        try:
            y = oracle(batch.X, batch.fidelity)
        except Exception as exc:  # any failure of user code ends here, with the data kept
            raise OracleFailed(f"oracle raised {type(exc).__name__}: {exc} {where}; {kept}", records) from exc
        try:
            y = check_y(y, "oracle output", n=len(batch), m=1)
        except InvalidInput as exc:
            raise OracleFailed(f"oracle returned unusable labels {where}: {exc}; {kept}", records) from exc
        oracle_s = time.perf_counter() - start
        self.tell(batch.X, batch.fidelity, y)
        fit_s = self.fit()
        record = {"step": len(self.history), "n_labels": self.n_labels, "counts": self.counts(),
                  "batch_size": len(batch), "batch_fidelities": batch.fidelity.tolist(),
                  "batch_cost": batch.total_cost, "cumulative_cost": self.cumulative_cost,
                  "rmse": None, "nlpd": None, "mean_std": None, "fit_s": fit_s, "acq_s": acq_s, "oracle_s": oracle_s}
        record.update(self.evaluate())
        self.history.append(record)
        records.append(record)
        bar.update(batch.total_cost)
        return record
