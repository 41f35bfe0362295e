"""A campaign: a problem, a model and a strategy run for a budget.

:func:`run_campaign` runs one in memory. :class:`Campaign` runs one through a
:class:`~bayesal.loop.store.CampaignStore`, so that it survives crashes: every proposal and every
result is committed to the store before the loop moves on, and :meth:`Campaign.resume` continues
a campaign killed at any moment. On resume, experiments that were running go back to the queue,
the surrogate is refitted from the stored results (in proposal order, so the fit is the one an
uninterrupted run makes), and each acquisition step draws its randomness from a seed derived from
``(seed, step)`` and stored with the step, so a synchronous campaign with a deterministic oracle
ends exactly where an uninterrupted one would.

Synchronous mode proposes a batch of q, evaluates it (results stored one by one as they return),
then refits. With ``asynchronous=True`` up to q experiments are in flight, and each time one
returns a new point is proposed from the surrogate conditioned on the pending ones.

A campaign on a multi-fidelity problem (``heat-mf``, ``forrester-mf``, ...; see
:data:`~bayesal.problems.MF_PROBLEMS`) proposes ``(x, fidelity)`` pairs with a
:class:`~bayesal.loop.multifidelity.MultiFidelityLearner`, stores each experiment's fidelity
(the store's ``fidelity`` column) and, once evaluated, the level's nominal cost
(``problem.costs[fidelity]``, in target-fidelity evaluations) as its cost, and stops when
``cost_budget`` cannot pay for another evaluation at the cheapest level. It never overspends:
each batch is chosen with the budget left after the nominal cost of every done, failed, pending
and running experiment. Its first step is the learner's nested initial design
(:func:`multifidelity_initial_counts`); each later step refits a fresh learner on the done
experiments in proposal order, with a seed derived from ``(seed, step)``, so a resumed campaign
fits and proposes exactly what an uninterrupted one does.
"""

from __future__ import annotations

import math
import os
import socket
import sys
import time
from typing import Any

import torch
from tqdm.std import tqdm

from ..errors import InvalidInput, OracleFailed, StoreError
from ..problems import MultiFidelityProblem, Problem, is_multifidelity, make_problem
from ..selection.cold_start import resolve_design
from ..spaces import Box, Pool
from ..validation import DEFAULT_DTYPE
from .executors import (CallableOracleSpec, Executor, ExperimentTask, InProcessExecutor, ProblemOracleSpec,
                        WorkerDied, run_experiment)
from .config import (CAMPAIGN_DEFAULTS, COST_TOLERANCE as _COST_TOLERANCE, STORE_ONLY, campaign_strategy, check_config,
                     check_initial_cost, multifidelity_initial_counts)
from .learner import ActiveLearner
from .multifidelity import MultiFidelityLearner
from .store import CampaignStore

__all__ = ["run_campaign", "Campaign", "campaign_status", "campaign_space", "CAMPAIGN_DEFAULTS",
           "multifidelity_initial_counts", "multifidelity_learner"]

# test sets of the multi-fidelity problems, by name: deterministic, and the PDE ones take seconds
# to compute on their reference grids (a report or a resume in the same process reuses them)
_MF_TEST_SETS: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


def _mf_test_set(problem: MultiFidelityProblem):
    if problem.name not in _MF_TEST_SETS:
        _MF_TEST_SETS[problem.name] = problem.test_set()
    return _MF_TEST_SETS[problem.name]


def _checked_initial_counts(problem: MultiFidelityProblem, cost_budget: float) -> list[int]:
    return check_initial_cost(problem, cost_budget)[0]


def multifidelity_learner(problem: MultiFidelityProblem, config: dict[str, Any], seed: int,
                          test_set=None) -> MultiFidelityLearner:
    """The (empty) learner of a multi-fidelity campaign with these (checked) settings."""
    extra = {} if config["n_candidates"] is None else {"n_candidates": config["n_candidates"]}
    return MultiFidelityLearner(problem.space, problem.costs, surrogate=config["model"],
                                acquisition=campaign_strategy(config), seed=seed,
                                test_set=problem.test_set() if test_set is None else test_set, **extra)


def campaign_space(problem: Problem, config: dict[str, Any]):
    """The space a campaign searches: the problem's, discretised into ``pool_size`` Sobol
    candidates when that setting is given (box problems only)."""
    space = problem.space
    if config["pool_size"] is not None:
        if not isinstance(space, Box):
            raise InvalidInput("pool_size", "a box problem to discretise", f"the pool problem {problem.name}")
        space = space.to_pool(config["pool_size"], seed=config["seed"])
    return space


def run_campaign(problem: str | Problem = CAMPAIGN_DEFAULTS["problem"], *, progress: bool = True, callback=None,
                 store=None, executor: Executor | None = None, **settings) -> tuple[ActiveLearner, list[dict[str, Any]]]:
    """Run active learning on a benchmark problem; returns the learner and its step records.

    ``settings`` are those of :data:`bayesal.loop.config.SETTINGS` (``model, strategy, selector,
    budget, q, initial, seed, noise_std, pool_size, data_dir``; store-only ones need ``store``),
    with the defaults of that table: the same as ``bayesal run`` and :meth:`Campaign.create`.
    ``problem`` is a name or a :class:`~bayesal.problems.Problem`. On a multi-fidelity problem name
    (``heat-mf``, ...) it needs ``cost_budget`` and returns a
    :class:`~bayesal.loop.multifidelity.MultiFidelityLearner` and its records (with
    ``cumulative_cost`` and ``counts`` per level).

    With ``store`` (a path), the campaign runs through a :class:`Campaign` written to that
    SQLite file (a new one, or the campaign it holds is resumed) on ``executor``; ``problem``
    must then be a problem name. An oracle failure raises
    :class:`~bayesal.errors.OracleFailed` with the records so far attached.
    """
    name = problem if isinstance(problem, str) else CAMPAIGN_DEFAULTS["problem"]
    config = check_config({**settings, "problem": name})
    if store is not None:
        if not isinstance(problem, str):
            raise InvalidInput("problem", "a problem name for a stored campaign", type(problem).__name__)
        if os.path.exists(store) and os.path.getsize(store) > 0:
            campaign = Campaign.resume(store, executor=executor, progress=progress)
        else:
            campaign = Campaign.create(store, executor=executor, progress=progress, **settings, problem=problem)
        with campaign:
            records = campaign.run()
            return campaign.learner, records
    used = [key for key in STORE_ONLY if config[key] != CAMPAIGN_DEFAULTS[key]]
    if used:
        raise InvalidInput(used[0], "a stored campaign (store=PATH) for this setting", repr(config[used[0]]))
    if isinstance(problem, str) and is_multifidelity(problem):
        return _run_multifidelity_in_memory(make_problem(problem), config, callback, progress)
    if isinstance(problem, str):
        problem = make_problem(problem, noise_std=config["noise_std"], seed=config["seed"],
                               data_dir=config["data_dir"])
    learner = ActiveLearner(campaign_space(problem, config), surrogate=config["model"],
                            acquisition=campaign_strategy(config), selector=config["selector"], seed=config["seed"],
                            test_set=problem.test_set(), initial_design=config["initial_design"])
    records = learner.run(problem, budget=config["budget"], q=config["q"], initial=config["initial"],
                          callback=callback, progress=progress)
    return learner, records


def _run_multifidelity_in_memory(problem: MultiFidelityProblem, config: dict[str, Any], callback, progress):
    counts = _checked_initial_counts(problem, config["cost_budget"])
    learner = multifidelity_learner(problem, config, config["seed"], test_set=_mf_test_set(problem))
    oracle = problem
    if config["noise_std"] > 0:
        gen = torch.Generator().manual_seed(config["seed"])

        def oracle(X, fidelity):
            y = problem.evaluate(X, fidelity)
            return y + config["noise_std"] * torch.randn(y.shape, generator=gen, dtype=y.dtype)

    records = learner.run(oracle, cost_budget=config["cost_budget"], q=config["q"], initial=counts,
                          callback=callback, progress=progress)
    return learner, records


def check_budget_fits(problem, config: dict[str, Any]) -> None:
    """A pool campaign cannot buy more labels than the pool has candidates, and the initial
    design must be one for the campaign's space (``sobol`` is for boxes, ``typiclust`` for pools):
    raises :class:`~bayesal.errors.InvalidInput` (``budget``, ``initial_design``) before anything
    starts."""
    if isinstance(problem, MultiFidelityProblem):
        return
    space = campaign_space(problem, config)
    if config.get("initial_design") is not None:
        resolve_design(config["initial_design"], space)
    if isinstance(space, Pool) and config["budget"] > space.n_available:
        raise InvalidInput("budget", f"at most {space.n_available} (the unlabelled candidates left in the pool)",
                           str(config["budget"]))


def _check_picklable(oracle, executor) -> None:
    """A Python oracle for an executor of other processes must pickle (refused at once, not per experiment)."""
    from .executors import DaskExecutor, ProcessExecutor

    if oracle is None or isinstance(oracle, str) or not isinstance(executor, (ProcessExecutor, DaskExecutor)):
        return
    import pickle

    try:
        pickle.dumps(CallableOracleSpec(oracle))
    except Exception as exc:
        raise InvalidInput("oracle", f"a picklable callable (a function defined at module level, not a lambda or "
                           f"a local function) for the {executor.name} executor",
                           f"{getattr(oracle, '__qualname__', type(oracle).__name__)} ({type(exc).__name__}: "
                           f"{exc})") from None


def check_oracle(spec, space, outputs: int | None = None, timeout: float | None = None,
                 executor: Executor | None = None) -> None:
    """Call the oracle of ``spec`` once on a valid point of ``space`` (a pool's first candidate, a
    box's centre) as an experiment would, on ``executor`` (where the experiments will run: a
    module importable only on a cluster's workers is imported there); raises
    :class:`~bayesal.errors.InvalidInput` (``oracle``) with the reason of a failure. Nothing is
    stored."""
    if isinstance(space, Pool):
        x, index = space.X[0].tolist(), 0
    else:
        x, index = ((space.lower + space.upper) / 2).tolist(), None
    task = ExperimentTask(0, tuple(x), index, 0, timeout, outputs=outputs)
    if executor is None:
        result = run_experiment(spec, task)
    else:
        handle = executor.submit(run_experiment, spec, task)
        executor.wait([handle])
        try:
            result = executor.outcome(handle)
        except Exception as exc:  # the worker died, or the task could not be sent
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    if not result["ok"]:
        target = spec.target if isinstance(spec.target, str) else getattr(spec.target, "__qualname__", "the oracle")
        raise InvalidInput("oracle", f"an oracle that labels a valid point (checked once before the campaign "
                           f"starts, on x = {[round(v, 4) for v in x]})", f"{target}: {result['error']}")


class _Heartbeat:
    """A daemon thread that tells the store every ``interval`` seconds that ``worker`` is alive,
    even while this process is busy inside a long oracle call."""

    def __init__(self, path, worker: str, interval: float):
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(path, worker, interval), daemon=True,
                                        name=f"bayesal-heartbeat-{worker}")
        self._thread.start()

    def _beat(self, path, worker: str, interval: float) -> None:
        try:
            with CampaignStore.open(path) as store:
                while True:
                    store.heartbeat(worker)
                    if self._stop.wait(interval):
                        return
        except Exception:  # a missing heartbeat only lets another process requeue our work late
            return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Campaign:
    """An active-learning campaign written through a store; use :meth:`create` or :meth:`resume`.

    Args:
        store: an open :class:`~bayesal.loop.store.CampaignStore`.
        oracle: a Python oracle (``f(X)`` or ``f(X, indices)``; picklable for the process and
            Dask executors) when the campaign was created with one; otherwise the stored
            problem (or ``"module:function"`` oracle) labels the experiments.
        executor: where experiments run (default: in this process).
        progress: a tqdm bar over the budget; verbose: one line per result on stderr.
        shard_pools_from: on a Dask executor, pools of at least this many candidates are scored
            shard by shard on the cluster (:func:`~bayesal.selection.distributed_select`,
            the same batch as in one process).
        poll_interval: seconds between looks at the store while other processes hold all the
            outstanding experiments.
        lease: seconds of silence after which another claimant (a ``bayesal work`` process)
            counts as dead and its running experiments go back to the queue; also the lease of the
            proposer (:meth:`run` beats every ``lease / 4`` seconds, and a second proposer is
            refused until the holder has been silent for its lease or, on the same host, its
            process is gone).

    >>> with Campaign.create("run.db", problem="forrester", budget=12, q=2, seed=0) as campaign:
    ...     campaign.run()
    >>> Campaign.resume("run.db").run()        # after a crash: continues where it stopped
    """

    def __init__(self, store: CampaignStore, oracle: Any = None, executor: Executor | None = None,
                 progress: bool = False, verbose: bool = False, shard_pools_from: int = 100_000,
                 poll_interval: float = 0.05, lease: float = 60.0):
        self.store = store
        try:
            self.config = check_config(store.config)
        except InvalidInput as exc:
            raise StoreError(f"the campaign in {store.path} has unusable settings: {exc}") from None
        cfg = self.config
        self.budget, self.q, self.seed = cfg["budget"], cfg["q"], cfg["seed"]
        self.cost_budget = cfg["cost_budget"]
        self.retries = cfg["retries"]
        problem = make_problem(cfg["problem"], seed=cfg["seed"], data_dir=cfg["data_dir"])
        self.problem = problem
        self.multifidelity = isinstance(problem, MultiFidelityProblem)
        if self.multifidelity:
            self.costs = [float(c) for c in problem.costs]
            self._test_set = _mf_test_set(problem)
            self.learner = multifidelity_learner(problem, cfg, self._mf_seed(0), test_set=self._test_set)
            cheapest_labels = math.ceil(self.cost_budget / min(self.costs))
            self.max_failures = cfg["max_failures"] or max(10, 2 * cheapest_labels)
        else:
            self.max_failures = cfg["max_failures"] or max(10, 2 * self.budget)
            self.learner = ActiveLearner(campaign_space(problem, cfg), surrogate=cfg["model"],
                                         acquisition=campaign_strategy(cfg), selector=cfg["selector"], seed=cfg["seed"],
                                         test_set=problem.test_set(), initial_design=cfg["initial_design"])
        if oracle is not None:
            _check_picklable(oracle, executor)
            self.oracle_spec = CallableOracleSpec(oracle)
        elif cfg["oracle"] == "python":
            raise StoreError(f"the campaign in {store.path} labels with a Python oracle: pass it again, "
                             "Campaign.resume(path, oracle=f)")
        elif cfg["oracle"] is not None:
            self.oracle_spec = CallableOracleSpec(cfg["oracle"])
        else:
            self.oracle_spec = ProblemOracleSpec(cfg["problem"], cfg["noise_std"], cfg["seed"], cfg["data_dir"])
        self.executor = executor or InProcessExecutor()
        self.progress, self.verbose = progress, verbose
        self.worker = f"campaign-{os.getpid()}"
        self.shard_pools_from, self.poll_interval = int(shard_pools_from), float(poll_interval)
        if not (isinstance(lease, (int, float)) and not isinstance(lease, bool) and math.isfinite(lease)
                and lease > 0):
            raise InvalidInput("lease", "a positive number of seconds", repr(lease))
        self.lease = float(lease)
        self._bar = None

    # -- the proposer's lease and the oracle check ---------------------------------------------
    def take_lease(self) -> None:
        """Become the campaign's one proposer (:meth:`run` does this first): raises
        :class:`~bayesal.errors.StoreError` naming the holder while another live process holds it."""
        self.store.take_lease(self.worker, self.lease)

    def release_lease(self) -> None:
        """Give the proposer's lease back (:meth:`run` does this when it returns or raises)."""
        try:
            self.store.release_lease(self.worker)
        except StoreError:  # a closed or unwritable store: the lease lapses by itself
            pass

    def check_oracle(self) -> None:
        """Import and call a user oracle once, on a valid point of the space, before the campaign
        starts; raises :class:`~bayesal.errors.InvalidInput` (``oracle``) with the reason when it
        cannot be imported, raises, exits, times out or returns an unusable label. The call is not
        stored (a benchmark problem's own oracle is not checked)."""
        if isinstance(self.oracle_spec, CallableOracleSpec):
            check_oracle(self.oracle_spec, self.learner.space, self.learner.test_set[1].shape[-1],
                         self.config["timeout"], executor=self.executor)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, oracle: Any = None, executor: Executor | None = None,
               progress: bool = False, verbose: bool = False, shard_pools_from: int = 100_000,
               lease: float = 60.0, **settings) -> "Campaign":
        """A new campaign in a new store at ``path``.

        ``settings``: ``problem, model, strategy, selector, budget, cost_budget, q, initial, seed,
        noise_std, pool_size, n_candidates, data_dir, oracle ("module:function"), asynchronous,
        timeout, retries, max_failures`` (see :data:`bayesal.loop.config.SETTINGS`). A Python callable ``oracle`` labels
        instead of the problem (the problem still gives the space and the test set).
        """
        if oracle is not None and not isinstance(oracle, str):
            settings["oracle"] = "python"
        elif oracle is not None:
            settings["oracle"], oracle = oracle, None
        config = check_config(settings)
        problem = make_problem(config["problem"], seed=config["seed"], data_dir=config["data_dir"])  # bad name
        check_budget_fits(problem, config)
        _check_picklable(oracle, executor)
        store = CampaignStore.create(path, config)
        return cls(store, oracle=oracle, executor=executor, progress=progress, verbose=verbose,
                   shard_pools_from=shard_pools_from, lease=lease)

    @classmethod
    def resume(cls, path: str | os.PathLike, oracle: Any = None, executor: Executor | None = None,
               progress: bool = False, verbose: bool = False, shard_pools_from: int = 100_000,
               lease: float = 60.0) -> "Campaign":
        """The campaign stored at ``path``, ready to :meth:`run` on."""
        store = CampaignStore.open(path)
        try:
            return cls(store, oracle=oracle, executor=executor, progress=progress, verbose=verbose,
                       shard_pools_from=shard_pools_from, lease=lease)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        """Close the campaign's store connection (the campaign is also a context manager)."""
        self.store.close()

    def __enter__(self) -> "Campaign":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the loop -----------------------------------------------------------------------------
    def _experiment_seed(self, step: int, slot: int) -> int:
        return ((self.seed * 1_000_003 + step) * 1_009 + slot) % (2**63 - 1)

    def _log(self, message: str) -> None:
        if self.verbose:
            tqdm.write(f"bayesal: {message}", file=sys.stderr)

    def _mf_seed(self, step: int) -> int:
        """The learner seed of multi-fidelity step ``step`` (its candidates and its fits)."""
        return (self.seed * 1_000_003 + 7_919 * step + 1) % (2**31 - 1)

    def nominal_cost(self, experiment) -> float:
        """The nominal cost of a multi-fidelity experiment: its level's ``problem.costs`` entry."""
        return self.costs[int(experiment.fidelity)]

    def cost_spent(self, exps=None) -> tuple[float, float]:
        """``(spent, reserved)``: the nominal cost of the done and failed experiments, and of the
        pending and running ones (multi-fidelity campaigns)."""
        exps = self.store.experiments() if exps is None else exps
        spent = sum(self.nominal_cost(e) for e in exps if e.state in ("done", "failed"))
        reserved = sum(self.nominal_cost(e) for e in exps if e.state in ("pending", "running"))
        return float(spent), float(reserved)

    def _cost_left(self, exps) -> float:
        spent, reserved = self.cost_spent(exps)
        return self.cost_budget - spent - reserved

    def _affordable(self, exps) -> bool:
        """Whether the cost budget left can pay for one more evaluation at the cheapest level."""
        return self._cost_left(exps) >= min(self.costs) - _COST_TOLERANCE

    def _load(self):
        """Put the stored results into the learner, in proposal order; returns the experiments."""
        exps = self.store.experiments()
        if self.multifidelity:
            # a fresh learner told every result at once: the same learner whatever the history of
            # kills and resumes, seeded for the step it is about to propose
            done = [e for e in exps if e.state == "done"]
            learner = multifidelity_learner(self.problem, self.config, self._mf_seed(self.store.next_step()),
                                            test_set=self._test_set)
            if done:
                X = torch.tensor([e.x for e in done], dtype=DEFAULT_DTYPE).reshape(len(done), self.problem.dim)
                learner.tell(X, [int(e.fidelity) for e in done],
                             torch.tensor([e.y[0] for e in done], dtype=DEFAULT_DTYPE))
            self.learner = learner
            return exps
        done = [e for e in exps if e.state == "done"]
        d = self.learner.space.dim
        X = torch.tensor([e.x for e in done], dtype=DEFAULT_DTYPE).reshape(len(done), d)
        y = torch.tensor([e.y for e in done], dtype=DEFAULT_DTYPE) if done else None
        excluded = [e.pool_index for e in exps if e.pool_index is not None]
        self.learner.replace_data(X, y, excluded=excluded)
        return exps

    def _record(self, exps) -> None:
        """Fit on the stored results and add a learning-curve record (once per label count)."""
        done = [e for e in exps if e.state == "done"]
        if not done or self.store.records() and self.store.records()[-1]["n_labels"] >= len(done):
            return
        step = self.store.next_step()
        if self.multifidelity:
            with torch.random.fork_rng():
                torch.manual_seed(self._mf_seed(step))
                fit_s = self.learner.fit()
                evaluation = self.learner.evaluate()
        else:
            fit_s = self.learner.fit()
            evaluation = self.learner.evaluate()
        record = {"n_labels": len(done), "step": step,
                  "failed": sum(e.state == "failed" for e in exps),
                  "rmse": None, "nlpd": None, "mean_std": None, "fit_s": fit_s,
                  "cost": float(sum(e.cost or 0.0 for e in exps if e.state in ("done", "failed")))}
        if self.multifidelity:  # nominal costs, the ones the budget is charged
            record["cost"] = record["cumulative_cost"] = self.cost_spent(exps)[0]
            record["counts"] = self.learner.counts()
        record.update(evaluation)
        diagnostics = None if self.multifidelity else self.learner.surrogate.fit_diagnostics()
        if diagnostics is not None:
            record["hyperparameters"] = diagnostics
        self.store.add_record(record)
        if record["rmse"] is not None:
            self._log(f"{len(done)} labels: test RMSE {record['rmse']:.4g}")
        if self._bar is not None and record["rmse"] is not None:
            self._bar.set_postfix(rmse=f"{record['rmse']:.4g}")

    def _propose_multifidelity(self) -> bool:
        """Propose the next multi-fidelity step (the initial design first) within the cost left;
        returns False when nothing more fits (the campaign is over)."""
        exps = self._load()
        self._record(exps)
        step = self.store.next_step()
        left = self._cost_left(exps)
        start = time.perf_counter()
        if step > 0:
            # the fit in its own seeded stream (a no-op when _record has just fitted), so that the
            # acquisition's stream is the same whether or not this process wrote the record
            with torch.random.fork_rng():
                torch.manual_seed(self._mf_seed(step))
                self.learner.fit()
        with torch.random.fork_rng():
            torch.manual_seed(self._mf_seed(step))
            if step == 0:
                batch = self.learner.initial_design(_checked_initial_counts(self.problem, self.cost_budget))
            else:
                batch = self.learner.ask(self.q, budget=left)
        acq_s = time.perf_counter() - start
        # never overspend, whatever the acquisition did with the budget: keep the affordable prefix
        keep, total = 0, 0.0
        for f in batch.fidelity.tolist():
            if total + self.costs[f] > left + _COST_TOLERANCE:
                break
            total += self.costs[f]
            keep += 1
        if keep == 0:
            self._log(f"step {step}: nothing fits in the cost budget left ({left:.4g})")
            return False
        self.store.add_experiments(step, batch.X[:keep].tolist(), seed=self._mf_seed(step),
                                   scores=batch.scores[:keep].tolist(), fidelities=batch.fidelity[:keep].tolist(),
                                   acq_s=acq_s)
        self._log(f"step {step}: proposed {keep} point(s) at levels {batch.fidelity[:keep].tolist()}, cost "
                  f"{total:.4g} of {left:.4g} left, in {acq_s:.2f} s")
        return True

    def _propose(self, size: int) -> None:
        exps = self._load()
        self._record(exps)
        step = self.store.next_step()
        pending = [e.x for e in exps if e.state in ("pending", "running")]
        if isinstance(self.learner.space, Box):
            # a failed point counts as observed (label unknown), so the next step does not
            # propose it again; on a pool, failed candidates are excluded instead
            pending += [e.x for e in exps if e.state == "failed"]
        X_pending = torch.tensor(pending, dtype=DEFAULT_DTYPE) if pending else None
        start = time.perf_counter()
        with torch.random.fork_rng():
            torch.manual_seed(self.learner.step_seed(step))
            batch = self.learner.ask(size, pending=X_pending, step=step, select_function=self._select)
        acq_s = time.perf_counter() - start
        indices = None if batch.indices is None else batch.indices.tolist()
        self.store.add_experiments(step, batch.X.tolist(), seed=self.learner.step_seed(step), pool_indices=indices,
                                   scores=batch.scores.tolist(), acq_s=acq_s)
        self._log(f"step {step}: proposed {len(batch)} point(s) in {acq_s:.2f} s")

    def _select(self, surrogate, acquisition, space, q, selector="auto", seed=None, X_observed=None, X_pending=None):
        """:func:`bayesal.selection.select`, or its sharded equivalent for a large pool on Dask."""
        from ..selection import distributable, distributed_select, select
        from .executors import DaskExecutor

        if (isinstance(self.executor, DaskExecutor) and isinstance(space, Pool) and surrogate is not None
                and space.n_available >= self.shard_pools_from
                and distributable(surrogate, acquisition, space, selector)):
            self._log(f"scoring {space.n_available} candidates in shards on the cluster")
            return distributed_select(self.executor.client, surrogate, acquisition, space, q, selector=selector)
        return select(surrogate, acquisition, space, q, selector=selector, seed=seed, X_observed=X_observed,
                      X_pending=X_pending)

    def _dispatch(self, in_flight: dict) -> None:
        free = self.executor.max_workers - len(in_flight)
        if free <= 0:
            return
        for e in self.store.claim(self.worker, free):
            task = ExperimentTask(e.id, tuple(e.x), e.pool_index, self._experiment_seed(e.step, e.slot),
                                  self.config["timeout"], outputs=self.learner.test_set[1].shape[-1],
                                  fidelity=None if e.fidelity is None else int(e.fidelity))
            in_flight[self.executor.submit(run_experiment, self.oracle_spec, task)] = e

    def _collect(self, in_flight: dict) -> None:
        finished = self.executor.wait(list(in_flight))
        for handle in finished:
            e = in_flight.pop(handle)
            # a multi-fidelity experiment costs its level's nominal cost, however long it took
            nominal = self.nominal_cost(e) if self.multifidelity else None
            try:
                result = self.executor.outcome(handle)
            except WorkerDied as exc:
                # a dead worker is not the oracle's fault: at least one retry whatever --retries says
                state = self.store.fail(e.id, f"worker died: {exc}", max_attempts=max(self.retries, 1) + 1,
                                        cost=nominal)
                self._log(f"experiment {e.id}: worker died ({exc}); {state}")
                continue
            except Exception as exc:  # the task could not even run (e.g. could not be pickled)
                state = self.store.fail(e.id, f"{type(exc).__name__}: {exc}", max_attempts=self.retries + 1,
                                        cost=nominal)
                self._log(f"experiment {e.id}: {type(exc).__name__}: {exc}; {state}")
                continue
            if result["ok"]:
                cost = result["cost"] if nominal is None else nominal
                if self.store.complete(e.id, result["y"], cost) and self._bar is not None:
                    self._bar.update(1 if nominal is None else nominal)
                where = f"level {int(e.fidelity)}, cost {cost:.3g}" if self.multifidelity else f"{cost:.3g} s"
                self._log(f"experiment {e.id} done: y = {result['y']} ({where} on {result['worker']})")
            else:
                state = self.store.fail(e.id, result["error"], max_attempts=self.retries + 1,
                                        cost=result["cost"] if nominal is None else nominal)
                self._log(f"experiment {e.id} attempt {e.attempts} failed: {result['error']} -> {state}")

    def run(self) -> list[dict[str, Any]]:
        """Run (or continue) the campaign until ``budget`` experiments are done; returns the
        learning-curve records.

        It first takes the proposer's lease (:meth:`take_lease`; a second proposer on the same
        store is refused with :class:`~bayesal.errors.StoreError` naming the holder), and gives it
        back on return. Experiments left running by an earlier, dead campaign process are then
        requeued, so one campaign process runs this loop on a store at a time; any number of :meth:`work`
        processes may evaluate its experiments alongside (their running experiments are requeued
        only when they fall silent for longer than the lease).
        """
        self.take_lease()
        heartbeat = _Heartbeat(self.store.path, self.worker, self.lease / 4)
        try:
            return self._run()
        finally:
            heartbeat.stop()
            self.release_lease()

    def _run(self) -> list[dict[str, Any]]:
        self.store.requeue_running(prefix="campaign-", reason="requeued: the campaign process stopped while it ran")
        self.store.requeue_stale(self.lease, exclude=self.worker)
        self._bar = self._progress_bar(self.config["strategy"])
        in_flight: dict = {}
        checked = time.monotonic()
        try:
            while True:
                if time.monotonic() - checked > self.lease / 2:
                    self.store.requeue_stale(self.lease, exclude=self.worker)
                    checked = time.monotonic()
                counts = self.store.counts()
                if not self.multifidelity and counts["done"] >= self.budget and not in_flight:
                    break
                if counts["failed"] >= self.max_failures:
                    raise OracleFailed(f"{counts['failed']} experiments failed (the limit is {self.max_failures}); "
                                       f"the last: {self._last_error()}; {counts['done']} results are kept in "
                                       f"{self.store.path}", self.store.records())
                outstanding = counts["pending"] + counts["running"]
                if self.multifidelity:
                    if outstanding == 0 and not in_flight:
                        # synchronous: the next step once the last one is in; over when nothing fits
                        if not self._affordable(self.store.experiments()) or not self._propose_multifidelity():
                            break
                    left = 0
                else:
                    left = self.budget - counts["done"] - outstanding
                if left > 0:
                    first = self.store.next_step() == 0
                    if first:
                        initial = self.config["initial"]
                        if initial is None:
                            initial = min(self.budget, max(2, self.learner.space.dim + 1))
                        self._propose(min(initial, left))
                    elif self.config["asynchronous"]:
                        if outstanding < self.q and (counts["done"] > 0 or outstanding == 0):
                            self._propose(1 if counts["done"] > 0 else min(self.q, left))
                    elif outstanding == 0:
                        self._propose(min(self.q, left))
                self._dispatch(in_flight)
                if in_flight:
                    self._collect(in_flight)
                elif counts["pending"] + counts["running"] > 0:
                    time.sleep(self.poll_interval)  # other processes hold the outstanding experiments
            self._record(self._load())
        finally:
            self._bar.close()
            self._bar = None
        return self.store.records()

    def work(self, idle_timeout: float | None = None) -> int:
        """Evaluate this campaign's pending experiments, proposed by the process that runs
        :meth:`run`, until the campaign is complete (or nothing was pending for ``idle_timeout``
        seconds); returns how many this process completed. Claims are atomic, so any number of
        workers (and the campaign process) share the queue without taking an experiment twice."""
        self.worker = f"worker-{socket.gethostname()}-{os.getpid()}"
        self._bar = self._progress_bar("work")
        in_flight: dict = {}
        heartbeat = _Heartbeat(self.store.path, self.worker, self.lease / 4)
        idle_since = time.monotonic()
        try:
            while True:
                counts = self.store.counts()
                if not in_flight and (self._complete(counts) or counts["failed"] >= self.max_failures):
                    break
                self._dispatch(in_flight)
                if in_flight:
                    self._collect(in_flight)
                    idle_since = time.monotonic()
                elif idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                    break
                else:
                    time.sleep(self.poll_interval)
        finally:
            heartbeat.stop()
            self._bar.close()
            self._bar = None
        return sum(e.worker == self.worker for e in self.store.experiments("done"))

    def _progress_bar(self, desc: str):
        """A bar over the label budget, or over the cost budget of a multi-fidelity campaign."""
        if self.multifidelity:
            spent = self.cost_spent()[0]
            return tqdm(total=self.cost_budget, initial=min(spent, self.cost_budget), disable=not self.progress,
                        unit="cost", desc=desc, leave=False)
        counts = self.store.counts()
        return tqdm(total=self.budget, initial=min(counts["done"], self.budget), disable=not self.progress,
                    unit="label", desc=desc, leave=False)

    def _complete(self, counts) -> bool:
        """Whether the budget is used up (a multi-fidelity one: nothing outstanding, and the cost
        left cannot pay for the cheapest evaluation)."""
        if self.multifidelity:
            return counts["pending"] + counts["running"] == 0 and not self._affordable(self.store.experiments())
        return counts["done"] >= self.budget

    def _last_error(self) -> str:
        failed = self.store.experiments("failed")
        return failed[-1].error if failed else "none"

    def status(self) -> dict[str, Any]:
        """A summary of the stored campaign (see :func:`campaign_status`)."""
        return campaign_status(self.store)


def campaign_status(store: CampaignStore) -> dict[str, Any]:
    """A summary of a stored campaign: ``{"done", "failed", "pending", "running", "budget",
    "complete", "steps", "experiments", "cost", "last" (latest record), "campaign" (settings),
    "bayesal_version", "store"}``.

    A multi-fidelity campaign (``budget`` None) adds ``"multifidelity": True``, ``"cost_budget"``,
    ``"cost_spent"`` (nominal cost of the done and failed experiments), ``"cost_reserved"``
    (pending and running), ``"fidelity_costs"``, ``"fidelity_names"`` and ``"fidelity_counts"``
    (done experiments per level, lowest first); it is ``complete`` when nothing is outstanding
    and the cost left cannot pay for the cheapest level."""
    config = store.config
    try:
        check_config(config)
    except InvalidInput as exc:
        raise StoreError(f"the campaign in {store.path} has unusable settings: {exc}") from None
    counts = store.counts()
    records = store.records()
    exps = store.experiments()
    problem_name = config.get("problem", "")
    multifidelity = isinstance(problem_name, str) and is_multifidelity(problem_name)
    budget = None if multifidelity else int(config.get("budget") or 0)
    complete = counts["done"] >= budget if budget is not None else False
    out: dict[str, Any] = {**counts, "budget": budget, "complete": complete,
                           "steps": store.next_step(), "experiments": len(exps),
                           "cost": float(sum(e.cost or 0.0 for e in exps)),
                           "last": records[-1] if records else None,
                           "errors": [{"id": e.id, "state": e.state, "error": e.error} for e in exps
                                      if e.error is not None][-5:],
                           "campaign": config, "bayesal_version": store.bayesal_version, "store": str(store.path)}
    if multifidelity:
        out.update(_multifidelity_status(problem_name, config, counts, exps))
    if out["last"] is not None:
        out["last"] = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out["last"].items()}
    return out


def _multifidelity_status(name: str, config: dict[str, Any], counts: dict[str, int], exps) -> dict[str, Any]:
    problem = make_problem(name)  # cheap: the test set is not built
    costs = [float(c) for c in problem.costs]
    spent = sum(costs[int(e.fidelity)] for e in exps if e.state in ("done", "failed") and e.fidelity is not None)
    reserved = sum(costs[int(e.fidelity)] for e in exps if e.state in ("pending", "running") and e.fidelity is not None)
    done_at = [0] * len(costs)
    for e in exps:
        if e.state == "done" and e.fidelity is not None:
            done_at[int(e.fidelity)] += 1
    cost_budget = float(config.get("cost_budget") or 0.0)
    outstanding = counts["pending"] + counts["running"]
    complete = outstanding == 0 and bool(exps) and cost_budget - spent < min(costs) - _COST_TOLERANCE
    return {"multifidelity": True, "cost_budget": cost_budget, "cost_spent": float(spent),
            "cost_reserved": float(reserved), "fidelity_costs": costs, "fidelity_names": list(problem.fidelity_names),
            "fidelity_counts": done_at, "complete": complete}
