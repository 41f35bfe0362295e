"""Where experiments run: in this process, in a local process pool, or on a Dask cluster.

An executor evaluates one experiment per task (:func:`run_experiment`), so each result can be
stored the moment it returns. The task itself turns everything the oracle can do wrong into a
failed result with its reason: an exception (``sys.exit`` included), a NaN, huge (beyond
:data:`MAX_LABEL`) or wrongly shaped output, or running past the
per-experiment timeout (the oracle then runs in a watchdog thread that is abandoned, since Python
cannot kill a thread; its result is never used). Only the death of the worker process itself
reaches the executor, as :class:`WorkerDied`, and the campaign retries that experiment.

Large pools are scored on a Dask cluster by :mod:`bayesal.selection.distributed`. Dask
(``pip install "bayesal[dask]"``) is imported only when used.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import multiprocessing
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InvalidInput
from ..validation import DEFAULT_DTYPE

__all__ = ["ExperimentTask", "ProblemOracleSpec", "CallableOracleSpec", "run_experiment", "WorkerDied",
           "MAX_LABEL", "Executor", "InProcessExecutor", "ProcessExecutor", "DaskExecutor", "make_executor", "EXECUTORS"]

EXECUTORS = ("inprocess", "process", "dask")

#: the largest label magnitude an experiment may return: a label beyond it (1e200, say) is an
#: unusable label (a failed experiment with its reason), since squares and products of such
#: numbers overflow float64 in the surrogate's fit
MAX_LABEL = 1e100


class WorkerDied(Exception):
    """The process evaluating an experiment died (killed, crashed, lost its connection)."""


# -- oracles that travel to workers ------------------------------------------------------------
_ORACLE_CACHE: dict[Any, Any] = {}


@dataclass(frozen=True)
class ProblemOracleSpec:
    """A benchmark problem's oracle, rebuilt (once per worker process) from its name.

    Label noise, when the problem has some, is drawn from a generator seeded by the experiment's
    own seed, so the same experiment gets the same label whichever worker runs it and however
    often the campaign is interrupted. A multi-fidelity problem (``heat-mf``, ...) is evaluated
    at the experiment's fidelity, ``problem.evaluate(X, fidelity)``, and reports the level's
    nominal cost (``problem.costs[fidelity]``) as the experiment's cost.
    """

    problem: str
    noise_std: float = 0.0
    seed: int = 0
    data_dir: str | None = None

    def build(self):
        """The oracle ``(X [q, d], indices [q] | None, seed) -> y [q, m]`` of this spec, built in the
        worker (the problem is loaded once per process and cached)."""
        key = ("problem", self.problem, self.seed, self.data_dir)
        if key not in _ORACLE_CACHE:
            from ..problems import make_problem

            _ORACLE_CACHE[key] = make_problem(self.problem, noise_std=0.0, seed=self.seed, data_dir=self.data_dir)
        problem = _ORACLE_CACHE[key]
        noise_std = self.noise_std
        from ..problems import MultiFidelityProblem

        multifidelity = isinstance(problem, MultiFidelityProblem)

        def oracle(X: torch.Tensor, indices: torch.Tensor | None, seed: int, fidelity: int | None = None):
            if multifidelity:
                if fidelity is None:
                    raise InvalidInput("fidelity", f"a fidelity level for the multi-fidelity problem {self.problem}",
                                       "None")
                y = torch.as_tensor(problem.evaluate(X, int(fidelity)), dtype=DEFAULT_DTYPE).reshape(X.shape[0], -1)
            else:
                y = torch.as_tensor(problem.evaluate(X, indices), dtype=DEFAULT_DTYPE).reshape(X.shape[0], -1)
            # function problems and multi-fidelity simulators take label noise, data sets do not
            if noise_std > 0 and (multifidelity or hasattr(problem, "noise_std")):
                gen = torch.Generator().manual_seed(int(seed))
                y = y + noise_std * torch.randn(y.shape, generator=gen, dtype=y.dtype)
            if multifidelity:
                return {"y": y, "cost": float(problem.costs[int(fidelity)])}
            return y

        return oracle


@dataclass(frozen=True)
class CallableOracleSpec:
    """A user oracle: a picklable callable, or ``"package.module:function"`` imported in the worker.

    It is called as ``f(X [1, d])`` or ``f(X [1, d], indices [1] | None)`` (by its signature) and
    returns ``y [1]``/``[1, m]``, or a dict ``{"y": ..., "cost": ...}`` to report its own cost.
    """

    target: Any

    def __post_init__(self):
        if isinstance(self.target, str):
            module, _, name = self.target.partition(":")
            if not module or not name:
                raise InvalidInput("oracle", "'package.module:function'", repr(self.target))
        elif not callable(self.target):
            raise InvalidInput("oracle", "a callable or 'package.module:function'", type(self.target).__name__)

    def build(self):
        """The oracle ``(X [1, d], indices [1] | None, seed) -> y`` of this spec, built in the worker (a
        ``module:function`` target is imported there)."""
        from .oracles import as_oracle

        target = self.target
        if isinstance(target, str):
            key = ("import", target)
            if key not in _ORACLE_CACHE:
                module, _, name = target.partition(":")
                if not module or not name:
                    raise InvalidInput("oracle", "'package.module:function'", repr(target))
                obj = importlib.import_module(module)
                for part in name.split("."):
                    obj = getattr(obj, part)
                _ORACLE_CACHE[key] = obj
            target = _ORACLE_CACHE[key]
        oracle = as_oracle(target)
        return lambda X, indices, seed: oracle(X, indices)


@dataclass(frozen=True)
class ExperimentTask:
    """What a worker needs to run one experiment.

    Attributes:
        experiment: the store id; x: inputs ``[d]``; pool_index: the pool row or None;
        seed: the experiment's own random seed (label noise); timeout: seconds, or None;
        outputs: the number m of outputs each label must have (None: any);
        fidelity: the fidelity level of a multi-fidelity experiment (None otherwise).
    """

    experiment: int
    x: tuple[float, ...]
    pool_index: int | None
    seed: int
    timeout: float | None = None
    outputs: int | None = None
    fidelity: int | None = None


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _call_oracle(spec, task: ExperimentTask) -> Any:
    oracle = spec.build()
    X = torch.tensor([list(task.x)], dtype=DEFAULT_DTYPE)
    indices = None if task.pool_index is None else torch.tensor([task.pool_index], dtype=torch.long)
    if task.fidelity is not None:
        return oracle(X, indices, task.seed, fidelity=task.fidelity)
    return oracle(X, indices, task.seed)


def _parse_output(out: Any, outputs: int | None = None) -> tuple[list[float], float | None]:
    cost = None
    if isinstance(out, dict):
        if "y" not in out:
            raise ValueError(f"a dict without 'y' (keys {sorted(out)})")
        cost = None if out.get("cost") is None else float(out["cost"])
        out = out["y"]
    if isinstance(out, torch.Tensor):
        y = out.detach().to("cpu", DEFAULT_DTYPE)
    else:
        import numpy as np

        y = torch.as_tensor(np.asarray(out, dtype=float), dtype=DEFAULT_DTYPE)
    # one point: y [1] (one label per point, as ActiveLearner.tell reads a 1-D y) or [1, m]
    y = y.reshape(-1, 1) if y.dim() <= 1 else y.reshape(y.shape[0], -1)
    if y.shape[0] != 1:
        raise ValueError(f"{y.shape[0]} rows of labels for one point")
    y = y[0]
    if y.numel() == 0:
        raise ValueError("an empty label")
    if outputs is not None and y.numel() != outputs:
        raise ValueError(f"{y.numel()} outputs, expected {outputs}")
    if not bool(torch.isfinite(y).all()):
        kinds = [k for k, bad in (("NaN", torch.isnan(y).any()), ("inf", torch.isinf(y).any())) if bool(bad)]
        raise ValueError(f"{' and '.join(kinds)} output {y.tolist()}")
    if bool((y.abs() > MAX_LABEL).any()):
        raise ValueError(f"output {y.tolist()} beyond the largest usable label magnitude {MAX_LABEL:g}")
    if cost is not None and not (cost == cost and abs(cost) != float("inf")):
        raise ValueError(f"a non-finite cost {cost}")
    return [float(v) for v in y], cost


def run_experiment(spec, task: ExperimentTask) -> dict[str, Any]:
    """Evaluate one experiment; never raises for anything the oracle does.

    Returns ``{"experiment", "ok", "y" [m] | None, "error" | None, "cost", "worker"}``; the cost
    is the oracle's own when it reports one, else the wall-clock seconds.
    """
    start = time.perf_counter()
    result = {"experiment": task.experiment, "ok": False, "y": None, "error": None, "cost": None,
              "worker": _worker_name()}
    try:
        if task.timeout is None:
            out = _call_oracle(spec, task)
        else:
            box: dict[str, Any] = {}

            def target():
                try:
                    box["out"] = _call_oracle(spec, task)
                except BaseException as exc:  # reported below as the reason of the failure
                    box["exc"] = exc

            thread = threading.Thread(target=target, daemon=True, name=f"bayesal-oracle-{task.experiment}")
            thread.start()
            thread.join(task.timeout)
            if thread.is_alive():
                result["error"] = f"oracle timed out after {task.timeout:g} s"
                result["cost"] = time.perf_counter() - start
                return result
            if "exc" in box:
                raise box["exc"]
            out = box["out"]
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:  # sys.exit() or an argparse error inside the oracle: its failure, not ours
        result["error"] = f"oracle exited (SystemExit with status {exc.code!r})"
        result["cost"] = time.perf_counter() - start
        return result
    except BaseException as exc:
        result["error"] = f"oracle raised {type(exc).__name__}: {exc}"
        result["cost"] = time.perf_counter() - start
        return result
    try:
        y, cost = _parse_output(out, task.outputs)
    except Exception as exc:  # whatever the output does when read
        result["error"] = f"oracle returned an unusable label: {exc}"
        result["cost"] = time.perf_counter() - start
        return result
    result.update(ok=True, y=y, cost=time.perf_counter() - start if cost is None else cost)
    return result


# -- executors -----------------------------------------------------------------------------------
class _Done:
    """A finished in-process task."""

    def __init__(self, value=None, error: BaseException | None = None):
        self.value, self.error = value, error


class Executor:
    """Runs tasks; ``submit`` returns a handle, ``wait`` returns the handles that finished, and
    ``outcome`` the task's value (raising :class:`WorkerDied` when its process died).

    Attributes:
        name: ``inprocess``, ``process`` or ``dask``.
        max_workers: how many tasks run at once.
    """

    name = "executor"
    max_workers = 1

    def submit(self, fn, *args):
        """Start ``fn(*args)``; returns a handle to pass to :meth:`wait` and :meth:`outcome`."""
        raise NotImplementedError

    def wait(self, handles: list, timeout: float | None = None) -> list:
        """The handles of ``handles`` that have finished, waiting up to ``timeout`` seconds (None: until at
        least one has)."""
        raise NotImplementedError

    def outcome(self, handle) -> Any:
        """The value of a finished task; re-raises its exception (:class:`WorkerDied` when its worker
        process died)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (waits for running tasks); the executor is also a context manager."""
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_workers={self.max_workers})"


class InProcessExecutor(Executor):
    """Runs each task in this process, when it is submitted (the default)."""

    name = "inprocess"
    max_workers = 1

    def submit(self, fn, *args):
        try:
            return _Done(fn(*args))
        except Exception as exc:
            return _Done(error=exc)

    def wait(self, handles, timeout=None):
        return list(handles)

    def outcome(self, handle):
        if handle.error is not None:
            raise handle.error
        return handle.value


class ProcessExecutor(Executor):
    """A local pool of worker processes (``spawn``ed, so nothing of this process's torch state is
    inherited). A worker that dies breaks the pool: its tasks report :class:`WorkerDied` and the
    pool is rebuilt for the next submission."""

    name = "process"

    def __init__(self, workers: int | None = None):
        self.max_workers = int(workers or max(1, (os.cpu_count() or 2) - 1))
        if self.max_workers < 1:
            raise InvalidInput("workers", "a positive number of processes", str(workers))
        self._pool: cf.ProcessPoolExecutor | None = None
        self._owner: dict = {}  # future -> the pool that runs it

    def _ensure(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(self.max_workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def submit(self, fn, *args):
        try:
            handle = self._ensure().submit(fn, *args)
        except cf.process.BrokenProcessPool:
            self._reset()
            handle = self._ensure().submit(fn, *args)
        self._owner[handle] = self._pool
        return handle

    def wait(self, handles, timeout=None):
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return [h for h in handles if h in done]

    def outcome(self, handle):
        pool = self._owner.pop(handle, None)
        exc = handle.exception()
        if isinstance(exc, cf.process.BrokenProcessPool):
            if pool is self._pool:  # not a stale future of a pool already replaced
                self._reset()
            raise WorkerDied(f"a worker process died ({exc})")
        if exc is not None:
            raise exc
        return handle.result()

    def _reset(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class DaskExecutor(Executor):
    """Tasks on a Dask cluster: an existing ``client``, a scheduler ``address``
    (``tcp://HOST:PORT``), or a new ``LocalCluster`` of ``workers`` single-threaded processes.

    Dask reruns a task whose worker died on another worker; a task that has killed too many
    workers (``KilledWorker``) reports :class:`WorkerDied`.
    """

    name = "dask"

    def __init__(self, workers: int | None = None, address: str | None = None, client=None):
        try:
            import distributed
        except ImportError:
            raise InvalidInput("executor", "dask installed (pip install 'bayesal[dask]') for --executor dask",
                               "no module named distributed") from None
        self._distributed = distributed
        self._own_cluster = None
        self._own_client = client is None
        if client is not None:
            self.client = client
        elif address is not None:
            try:
                self.client = distributed.Client(address, timeout=30)
            except OSError as exc:
                raise InvalidInput("cluster", "the address of a running Dask scheduler", f"{address!r} ({exc})") from None
        else:
            n = int(workers or max(1, (os.cpu_count() or 2) - 1))
            self._own_cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                                         dashboard_address=":0")
            self.client = distributed.Client(self._own_cluster)
        self.max_workers = max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info()["workers"].values()))

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def wait(self, handles, timeout=None):
        try:
            done, _ = self._distributed.wait(handles, timeout=timeout, return_when="FIRST_COMPLETED")
        except (TimeoutError, self._distributed.TimeoutError):
            return []
        return [h for h in handles if h in done]

    def outcome(self, handle):
        if handle.status == "error":
            exc = handle.exception()
            if type(exc).__name__ == "KilledWorker":
                raise WorkerDied(f"the experiment's worker died ({exc})")
            raise exc
        if handle.status == "cancelled":
            raise WorkerDied("the task was cancelled (worker lost)")
        return handle.result()

    def close(self) -> None:
        if self._own_client:
            self.client.close()
        if self._own_cluster is not None:
            self._own_cluster.close()


def make_executor(name: str = "inprocess", workers: int | None = None, cluster: str | None = None) -> Executor:
    """An executor by name: ``inprocess``, ``process`` (``workers`` processes) or ``dask``
    (a LocalCluster of ``workers`` processes, or the scheduler at ``cluster``)."""
    if name not in EXECUTORS:
        raise InvalidInput("executor", "one of " + ", ".join(EXECUTORS), repr(name))
    if workers is not None and int(workers) < 1:
        raise InvalidInput("workers", "a positive number of workers", str(workers))
    if cluster is not None and name != "dask":
        raise InvalidInput("cluster", "--executor dask with a scheduler address", f"executor {name!r}")
    if name == "inprocess":
        return InProcessExecutor()
    if name == "process":
        return ProcessExecutor(workers)
    return DaskExecutor(workers, address=cluster)
