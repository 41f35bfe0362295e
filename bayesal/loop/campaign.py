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
from ..problems import Problem, make_problem
from ..spaces import Box, Pool
from ..validation import DEFAULT_DTYPE
from .executors import (CallableOracleSpec, Executor, ExperimentTask, InProcessExecutor, ProblemOracleSpec,
                        WorkerDied, run_experiment)
from .config import CAMPAIGN_DEFAULTS, STORE_ONLY, check_config
from .learner import ActiveLearner
from .store import CampaignStore

__all__ = ["run_campaign", "Campaign", "campaign_status", "campaign_space", "CAMPAIGN_DEFAULTS"]


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
    ``problem`` is a name or a :class:`~bayesal.problems.Problem`.

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
    if isinstance(problem, str):
        problem = make_problem(problem, noise_std=config["noise_std"], seed=config["seed"],
                               data_dir=config["data_dir"])
    learner = ActiveLearner(campaign_space(problem, config), surrogate=config["model"],
                            acquisition=config["strategy"], selector=config["selector"], seed=config["seed"],
                            test_set=problem.test_set())
    records = learner.run(problem, budget=config["budget"], q=config["q"], initial=config["initial"],
                          callback=callback, progress=progress)
    return learner, records


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
            counts as dead and its running experiments go back to the queue.

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
        self.retries = cfg["retries"]
        self.max_failures = cfg["max_failures"] or max(10, 2 * self.budget)
        problem = make_problem(cfg["problem"], seed=cfg["seed"], data_dir=cfg["data_dir"])
        self.problem = problem
        self.learner = ActiveLearner(campaign_space(problem, cfg), surrogate=cfg["model"], acquisition=cfg["strategy"],
                                     selector=cfg["selector"], seed=cfg["seed"], test_set=problem.test_set())
        if oracle is not None:
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
        self.lease = float(lease)
        self._bar = None

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, oracle: Any = None, executor: Executor | None = None,
               progress: bool = False, verbose: bool = False, shard_pools_from: int = 100_000,
               **settings) -> "Campaign":
        """A new campaign in a new store at ``path``.

        ``settings``: ``problem, model, strategy, selector, budget, q, initial, seed, noise_std,
        pool_size, data_dir, oracle ("module:function"), asynchronous, timeout, retries,
        max_failures`` (see :data:`bayesal.loop.config.SETTINGS`). A Python callable ``oracle`` labels
        instead of the problem (the problem still gives the space and the test set).
        """
        if oracle is not None and not isinstance(oracle, str):
            settings["oracle"] = "python"
        elif oracle is not None:
            settings["oracle"], oracle = oracle, None
        config = check_config(settings)
        make_problem(config["problem"], seed=config["seed"], data_dir=config["data_dir"])  # a bad name fails here
        store = CampaignStore.create(path, config)
        return cls(store, oracle=oracle, executor=executor, progress=progress, verbose=verbose,
                   shard_pools_from=shard_pools_from)

    @classmethod
    def resume(cls, path: str | os.PathLike, oracle: Any = None, executor: Executor | None = None,
               progress: bool = False, verbose: bool = False, shard_pools_from: int = 100_000) -> "Campaign":
        """The campaign stored at ``path``, ready to :meth:`run` on."""
        return cls(CampaignStore.open(path), oracle=oracle, executor=executor, progress=progress, verbose=verbose,
                   shard_pools_from=shard_pools_from)

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

    def _load(self):
        """Put the stored results into the learner, in proposal order; returns the experiments."""
        exps = self.store.experiments()
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
        fit_s = self.learner.fit()
        record = {"n_labels": len(done), "step": self.store.next_step(),
                  "failed": sum(e.state == "failed" for e in exps),
                  "rmse": None, "nlpd": None, "mean_std": None, "fit_s": fit_s,
                  "cost": float(sum(e.cost or 0.0 for e in exps if e.state in ("done", "failed")))}
        record.update(self.learner.evaluate())
        self.store.add_record(record)
        if record["rmse"] is not None:
            self._log(f"{len(done)} labels: test RMSE {record['rmse']:.4g}")
        if self._bar is not None and record["rmse"] is not None:
            self._bar.set_postfix(rmse=f"{record['rmse']:.4g}")

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

    def _select(self, surrogate, acquisition, space, q, selector="auto", seed=None):
        """:func:`bayesal.selection.select`, or its sharded equivalent for a large pool on Dask."""
        from ..selection import distributable, distributed_select, select
        from .executors import DaskExecutor

        if (isinstance(self.executor, DaskExecutor) and isinstance(space, Pool) and surrogate is not None
                and space.n_available >= self.shard_pools_from
                and distributable(surrogate, acquisition, space, selector)):
            self._log(f"scoring {space.n_available} candidates in shards on the cluster")
            return distributed_select(self.executor.client, surrogate, acquisition, space, q, selector=selector)
        return select(surrogate, acquisition, space, q, selector=selector, seed=seed)

    def _dispatch(self, in_flight: dict) -> None:
        free = self.executor.max_workers - len(in_flight)
        if free <= 0:
            return
        for e in self.store.claim(self.worker, free):
            task = ExperimentTask(e.id, tuple(e.x), e.pool_index, self._experiment_seed(e.step, e.slot),
                                  self.config["timeout"], outputs=self.learner.test_set[1].shape[-1])
            in_flight[self.executor.submit(run_experiment, self.oracle_spec, task)] = e

    def _collect(self, in_flight: dict) -> None:
        finished = self.executor.wait(list(in_flight))
        for handle in finished:
            e = in_flight.pop(handle)
            try:
                result = self.executor.outcome(handle)
            except WorkerDied as exc:
                # a dead worker is not the oracle's fault: at least one retry whatever --retries says
                state = self.store.fail(e.id, f"worker died: {exc}", max_attempts=max(self.retries, 1) + 1)
                self._log(f"experiment {e.id}: worker died ({exc}); {state}")
                continue
            except Exception as exc:  # the task could not even run (e.g. could not be pickled)
                state = self.store.fail(e.id, f"{type(exc).__name__}: {exc}", max_attempts=self.retries + 1)
                self._log(f"experiment {e.id}: {type(exc).__name__}: {exc}; {state}")
                continue
            if result["ok"]:
                if self.store.complete(e.id, result["y"], result["cost"]) and self._bar is not None:
                    self._bar.update(1)
                self._log(f"experiment {e.id} done: y = {result['y']} ({result['cost']:.3g} s on {result['worker']})")
            else:
                state = self.store.fail(e.id, result["error"], max_attempts=self.retries + 1, cost=result["cost"])
                self._log(f"experiment {e.id} attempt {e.attempts} failed: {result['error']} -> {state}")

    def run(self) -> list[dict[str, Any]]:
        """Run (or continue) the campaign until ``budget`` experiments are done; returns the
        learning-curve records.

        Experiments left running by an earlier campaign process are requeued first, so one
        campaign process runs this loop on a store at a time; any number of :meth:`work`
        processes may evaluate its experiments alongside (their running experiments are requeued
        only when they fall silent for longer than the lease).
        """
        self.store.requeue_running(prefix="campaign-", reason="requeued: the campaign process stopped while it ran")
        self.store.requeue_stale(self.lease, exclude=self.worker)
        counts = self.store.counts()
        self._bar = tqdm(total=self.budget, initial=min(counts["done"], self.budget), disable=not self.progress,
                         unit="label", desc=self.config["strategy"], leave=False)
        in_flight: dict = {}
        heartbeat = _Heartbeat(self.store.path, self.worker, self.lease / 4)
        checked = time.monotonic()
        try:
            while True:
                if time.monotonic() - checked > self.lease / 2:
                    self.store.requeue_stale(self.lease, exclude=self.worker)
                    checked = time.monotonic()
                counts = self.store.counts()
                if counts["done"] >= self.budget and not in_flight:
                    break
                if counts["failed"] >= self.max_failures:
                    raise OracleFailed(f"{counts['failed']} experiments failed (the limit is {self.max_failures}); "
                                       f"the last: {self._last_error()}; {counts['done']} results are kept in "
                                       f"{self.store.path}", self.store.records())
                outstanding = counts["pending"] + counts["running"]
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
            heartbeat.stop()
            self._bar.close()
            self._bar = None
        return self.store.records()

    def work(self, idle_timeout: float | None = None) -> int:
        """Evaluate this campaign's pending experiments, proposed by the process that runs
        :meth:`run`, until the campaign is complete (or nothing was pending for ``idle_timeout``
        seconds); returns how many this process completed. Claims are atomic, so any number of
        workers (and the campaign process) share the queue without taking an experiment twice."""
        self.worker = f"worker-{socket.gethostname()}-{os.getpid()}"
        counts = self.store.counts()
        self._bar = tqdm(total=self.budget, initial=min(counts["done"], self.budget), disable=not self.progress,
                         unit="label", desc="work", leave=False)
        in_flight: dict = {}
        heartbeat = _Heartbeat(self.store.path, self.worker, self.lease / 4)
        idle_since = time.monotonic()
        try:
            while True:
                counts = self.store.counts()
                if not in_flight and (counts["done"] >= self.budget or counts["failed"] >= self.max_failures):
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

    def _last_error(self) -> str:
        failed = self.store.experiments("failed")
        return failed[-1].error if failed else "none"

    def status(self) -> dict[str, Any]:
        """A summary of the stored campaign (see :func:`campaign_status`)."""
        return campaign_status(self.store)


def campaign_status(store: CampaignStore) -> dict[str, Any]:
    """A summary of a stored campaign: ``{"done", "failed", "pending", "running", "budget",
    "complete", "steps", "experiments", "cost", "last" (latest record), "campaign" (settings),
    "bayesal_version", "store"}``."""
    config = store.config
    counts = store.counts()
    records = store.records()
    exps = store.experiments()
    budget = int(config.get("budget", 0))
    out: dict[str, Any] = {**counts, "budget": budget, "complete": counts["done"] >= budget,
                           "steps": store.next_step(), "experiments": len(exps),
                           "cost": float(sum(e.cost or 0.0 for e in exps)),
                           "last": records[-1] if records else None,
                           "errors": [{"id": e.id, "state": e.state, "error": e.error} for e in exps
                                      if e.error is not None][-5:],
                           "campaign": config, "bayesal_version": store.bayesal_version, "store": str(store.path)}
    if out["last"] is not None:
        out["last"] = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out["last"].items()}
    return out
