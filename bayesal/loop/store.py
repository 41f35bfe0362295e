"""A campaign store: one SQLite file (standard library, WAL mode) that survives crashes.

The store holds the campaign (its configuration: problem, model, strategy, settings, seed and the
bayesal version that created it) and every proposed experiment with its state::

    pending ──claim──► running ──complete──► done
       ▲                  │
       └──── retry ───────┴──fail (attempts left: pending, else failed)

together with its inputs, pool index, fidelity, output, cost, error text, timestamps, the number
of attempts and the acquisition step and score that proposed it. Every state change is one
transaction (``BEGIN IMMEDIATE``, so two writers never interleave), and a result is committed
before any caller sees it acknowledged. Several processes may share one store: :meth:`claim`
selects and marks pending experiments inside one write transaction, so no two claimants ever take
the same experiment. A process killed at any moment (even SIGKILL in the middle of a write) leaves
the last committed state: SQLite's write-ahead log rolls an unfinished transaction back on the
next open.

A file that is not a bayesal store (another SQLite database, a text file, a truncated or corrupt
database, a store from a newer schema, rows edited by hand into invalid JSON or non-numbers) is
refused with a :class:`~bayesal.errors.StoreError` naming the file and what is wrong with it; a
foreign file is never modified. A store that cannot be written (a read-only file, or a folder
where SQLite cannot create its ``-wal`` and ``-shm`` files) is refused by :meth:`CampaignStore.open`
with a StoreError saying so, and opened for reading with ``readonly=True`` (``bayesal status``,
``bayesal report``).

One proposer holds a campaign at a time: :meth:`CampaignStore.take_lease` records the holder (its
name, pid, host and lease) in the ``proposer`` table in one write transaction, and refuses while
another holder is alive (its heartbeat in ``workers`` younger than its lease, and, on this host,
its process still running).

>>> store = CampaignStore.create("run.db", {"problem": "branin", "budget": 20, "seed": 0})
>>> ids = store.add_experiments(step=0, points=[[0.1, 0.2], [0.3, 0.4]], seed=123)
>>> [e] = store.claim("worker-1")             # pending -> running, atomically
>>> store.complete(e.id, [1.25], cost=0.5)    # running -> done, committed on return
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, StoreError

__all__ = ["CampaignStore", "Experiment", "STATES", "SCHEMA_VERSION"]

#: the value of the ``magic`` row that marks a file as a bayesal campaign store
MAGIC = "bayesal campaign store"
#: schema of the files this version writes; older schemas are upgraded, newer ones refused
SCHEMA_VERSION = 1
STATES = ("pending", "running", "done", "failed")
_SQLITE_HEADER = b"SQLite format 3\x00"
# Files this process has open as stores, by (device, inode). POSIX drops every lock a process
# holds on a file when *any* descriptor of that file is closed, so reading the header of a file
# that a connection of this process already holds would silently release that connection's
# locks (another process could then checkpoint and reset the write-ahead log under it).
_OPEN_FILES: dict[tuple[int, int], int] = {}
_OPEN_LOCK = threading.Lock()

# the one process that proposes (``bayesal run``/``resume``); added to older stores when first taken
_PROPOSER_TABLE = ("CREATE TABLE IF NOT EXISTS proposer (id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL,"
                   " pid INTEGER NOT NULL, host TEXT NOT NULL, lease REAL NOT NULL, since REAL NOT NULL)")

_SCHEMA = (
    "CREATE TABLE bayesal_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE campaign (id INTEGER PRIMARY KEY CHECK (id = 1), config TEXT NOT NULL,"
    " bayesal_version TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE experiments ("
    " id INTEGER PRIMARY KEY,"
    " step INTEGER NOT NULL, slot INTEGER NOT NULL,"
    " state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),"
    " x TEXT NOT NULL, pool_index INTEGER, fidelity REAL,"
    " y TEXT, cost REAL, error TEXT, score REAL,"
    " attempts INTEGER NOT NULL DEFAULT 0, worker TEXT,"
    " created REAL NOT NULL, started REAL, finished REAL,"
    " UNIQUE (step, slot))",
    "CREATE INDEX experiments_by_state ON experiments (state, id)",
    # one row per claim: the audit trail that shows no experiment was ever claimed twice at once
    "CREATE TABLE claims (experiment INTEGER NOT NULL REFERENCES experiments (id), attempt INTEGER NOT NULL,"
    " worker TEXT NOT NULL, time REAL NOT NULL, PRIMARY KEY (experiment, attempt))",
    # the last sign of life of every claimant: running experiments of a silent one are requeued
    "CREATE TABLE workers (name TEXT PRIMARY KEY, heartbeat REAL NOT NULL)",
    # the derived random seed and timing of each acquisition step
    "CREATE TABLE steps (step INTEGER PRIMARY KEY, seed INTEGER NOT NULL, size INTEGER NOT NULL,"
    " acq_s REAL, created REAL NOT NULL)",
    # learning-curve records, one per number of completed labels
    "CREATE TABLE records (n_labels INTEGER PRIMARY KEY, record TEXT NOT NULL, created REAL NOT NULL)",
    _PROPOSER_TABLE,
)


@dataclass(frozen=True)
class Experiment:
    """One proposed experiment as stored.

    Attributes:
        id: its number in the store (proposal order).
        step, slot: the acquisition step that proposed it and its position in that batch.
        state: ``pending``, ``running``, ``done`` or ``failed``.
        x: the inputs ``[d]``; pool_index: the pool row (None on a box); fidelity: None unless
            the campaign is multi-fidelity.
        y: the outputs ``[m]`` once done; cost: the oracle's cost (seconds by default).
        error: why the last attempt failed (kept when a retry later succeeds).
        score: the acquisition value that chose it (NaN for random designs).
        attempts: how many times it was claimed; worker: who claimed it last.
        created, started, finished: Unix timestamps.
    """

    id: int
    step: int
    slot: int
    state: str
    x: list[float]
    pool_index: int | None
    fidelity: float | None
    y: list[float] | None
    cost: float | None
    error: str | None
    score: float | None
    attempts: int
    worker: str | None
    created: float
    started: float | None
    finished: float | None


_COLUMNS = ("id, step, slot, state, x, pool_index, fidelity, y, cost, error, score, attempts, worker,"
            " created, started, finished")


def _experiment(row: tuple, strict: bool = False) -> Experiment:
    values = list(row)
    values[4] = json.loads(values[4])
    values[7] = None if values[7] is None else json.loads(values[7])
    if strict:  # the checks of an opened store (every row, once): columns of the types written
        for i, name in ((4, "x"), (7, "y")):
            if values[i] is not None and (not isinstance(values[i], list) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values[i])):
                raise ValueError(f"{name} is not a list of finite numbers: {str(values[i])[:60]}")
        if values[3] == "done" and values[7] is None:
            raise ValueError("done without outputs")
        for i, name in ((1, "step"), (2, "slot"), (5, "pool_index"), (11, "attempts")):
            if values[i] is not None and not isinstance(values[i], int):
                raise ValueError(f"{name} is not an integer: {values[i]!r}")
        for i, name in ((6, "fidelity"), (8, "cost"), (10, "score"), (13, "created"), (14, "started"),
                        (15, "finished")):
            if values[i] is not None and not isinstance(values[i], (int, float)):
                raise ValueError(f"{name} is not a number: {values[i]!r}")
    return Experiment(*values)


def _process_exists(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _finite_list(values: Any, name: str) -> list[float]:
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise InvalidInput(name, "a sequence of numbers", repr(values)[:80]) from None
    if not all(math.isfinite(v) for v in out):
        raise InvalidInput(name, "finite numbers", repr(out)[:80])
    return out


class CampaignStore:
    """A campaign and its experiments in one SQLite file; open with :meth:`create` or :meth:`open`.

    Args:
        path: the store file.
        timeout: seconds a writer waits for another process's transaction before giving up.

    Each instance holds its own connection: share the *file* between processes (and threads),
    not the instance.
    """

    def __init__(self, path: str | os.PathLike, timeout: float = 60.0, _create: dict | None = None,
                 readonly: bool = False):
        self.path = Path(path)
        self.timeout = float(timeout)
        self.readonly = bool(readonly)
        if _create is None:
            self._conn = self._open_existing()
        else:
            self._conn = self._create_new(_create)

    # -- opening -----------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, config: dict[str, Any], timeout: float = 60.0) -> "CampaignStore":
        """A new store at ``path`` holding a campaign with this (JSON-serialisable) ``config``.

        Refuses a path that already holds anything: an existing campaign is continued with
        :meth:`open` (``bayesal resume``), and a foreign file is never overwritten.
        """
        if not isinstance(config, dict):
            raise InvalidInput("config", "a dict of campaign settings", type(config).__name__)
        try:
            json.dumps(config)
        except (TypeError, ValueError) as exc:
            raise InvalidInput("config", "JSON-serialisable settings", str(exc)) from None
        return cls(path, timeout=timeout, _create=config)

    @classmethod
    def open(cls, path: str | os.PathLike, timeout: float = 60.0, readonly: bool = False) -> "CampaignStore":
        """Open an existing store; a missing, foreign or corrupt file raises :class:`StoreError`, and
        so does one that cannot be written unless ``readonly`` (then every write raises StoreError)."""
        return cls(path, timeout=timeout, readonly=readonly)

    def _connect(self, mode: str | None = None) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; every write below opens its own.
        if mode is None:
            return sqlite3.connect(str(self.path), timeout=self.timeout, isolation_level=None)
        from urllib.parse import quote

        return sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?{mode}", uri=True, timeout=self.timeout,
                               isolation_level=None)

    def _unwritable(self) -> str | None:
        """Why this store cannot be written (None when it can): SQLite writes the file and, in WAL
        mode, creates ``FILE-wal`` and ``FILE-shm`` next to it."""
        folder = self.path.resolve().parent
        if not os.access(self.path, os.W_OK):
            return "the file is read-only"
        if not os.access(folder, os.W_OK | os.X_OK):
            for side in ("-wal", "-shm"):
                if not os.access(f"{self.path}{side}", os.W_OK):
                    return (f"its folder {folder} is read-only (SQLite needs to create {self.path.name}-wal and "
                            f"{self.path.name}-shm there)")
        return None

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before it returns, so an acknowledged result survives even a
        # power cut, not only a killed process.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")

    def _refuse(self, why: str) -> StoreError:
        return StoreError(f"{self.path} is not a usable bayesal campaign store: {why}")

    def _open_existing(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise StoreError(f"no campaign store at {self.path} (start one with `bayesal run --store {self.path}`)")
        if not self.path.is_file():
            raise self._refuse("it is not a file")
        key = self._file_key()
        with _OPEN_LOCK:
            already_open = _OPEN_FILES.get(key, 0) > 0
        if not already_open:
            with open(self.path, "rb") as fh:
                header = fh.read(len(_SQLITE_HEADER))
            if header != _SQLITE_HEADER:
                raise self._refuse("not an SQLite database" if header else "the file is empty")
        unwritable = self._unwritable()
        if unwritable is not None and not self.readonly:
            raise StoreError(f"cannot write the campaign store {self.path}: {unwritable}; copy it to a writable "
                             "folder (`bayesal status` and `bayesal report` can read it where it is)")
        if self.readonly:
            # a read-only connection; where SQLite cannot create the WAL index next to a read-only
            # file, the file is read as immutable (nobody can be writing it there either)
            modes = ["mode=ro"] + (["mode=ro&immutable=1"] if unwritable is not None else [])
        else:
            modes = [None]
        for i, mode in enumerate(modes):
            conn = self._connect(mode)
            try:
                self._validate(conn)
                if not self.readonly:
                    self._configure(conn)
                break
            except sqlite3.OperationalError as exc:
                conn.close()
                if i + 1 < len(modes):
                    continue
                if "readonly" in str(exc) or "unable to open" in str(exc):
                    raise StoreError(f"cannot open the campaign store {self.path}: {exc}") from None
                raise self._refuse(f"corrupt SQLite database ({exc})") from None
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise self._refuse(f"corrupt SQLite database ({exc})") from None
            except StoreError:
                conn.close()
                raise
        self._register()
        return conn

    def _file_key(self) -> tuple[int, int]:
        st = os.stat(self.path)
        return st.st_dev, st.st_ino

    def _register(self) -> None:
        self._key = self._file_key()
        with _OPEN_LOCK:
            _OPEN_FILES[self._key] = _OPEN_FILES.get(self._key, 0) + 1

    def _validate(self, conn: sqlite3.Connection) -> None:
        check = conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise self._refuse(f"corrupt SQLite database (integrity check: {check[0] if check else 'no answer'})")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "bayesal_meta" not in tables:
            raise self._refuse("an SQLite database of another program (no bayesal_meta table)")
        meta = dict(conn.execute("SELECT key, value FROM bayesal_meta").fetchall())
        if meta.get("magic") != MAGIC:
            raise self._refuse(f"its bayesal_meta table does not mark a campaign store (magic {meta.get('magic')!r})")
        try:
            version = int(meta.get("schema_version", ""))
        except ValueError:
            raise self._refuse(f"unreadable schema version {meta.get('schema_version')!r}") from None
        if version > SCHEMA_VERSION:
            raise self._refuse(f"written with store schema {version} by a newer bayesal; this one reads "
                               f"schema {SCHEMA_VERSION} and older")
        missing = {"campaign", "experiments", "claims", "workers", "steps", "records"} - tables
        if missing:
            raise self._refuse(f"tables missing: {', '.join(sorted(missing))}")
        if conn.execute("SELECT count(*) FROM campaign").fetchone()[0] != 1:
            raise self._refuse("it holds no campaign")
        self._validate_rows(conn)

    def _validate_rows(self, conn: sqlite3.Connection) -> None:
        """Every row parses: the settings are a JSON object, inputs and outputs JSON lists of finite
        numbers, records JSON objects (a store edited by hand is refused here, not half-way through)."""
        config = conn.execute("SELECT config FROM campaign WHERE id = 1").fetchone()[0]
        try:
            if not isinstance(json.loads(config), dict):
                raise ValueError("not a JSON object")
        except (TypeError, ValueError) as exc:
            raise self._refuse(f"unreadable campaign settings ({exc})") from None
        dim = None
        for row in conn.execute(f"SELECT {_COLUMNS} FROM experiments"):
            try:
                e = _experiment(row, strict=True)
                dim = len(e.x) if dim is None else dim
                if len(e.x) != dim:
                    raise ValueError(f"{len(e.x)} inputs where the others have {dim}")
            except (TypeError, ValueError) as exc:
                raise self._refuse(f"experiment {row[0]} is unreadable ({exc})") from None
        for n, record in conn.execute("SELECT n_labels, record FROM records"):
            try:
                if not isinstance(json.loads(record), dict):
                    raise ValueError("not a JSON object")
            except (TypeError, ValueError) as exc:
                raise self._refuse(f"the learning-curve record for {n} labels is unreadable ({exc})") from None

    def _create_new(self, config: dict) -> sqlite3.Connection:
        if self.path.exists() and self.path.stat().st_size > 0:
            try:
                CampaignStore.open(self.path).close()
            except StoreError:
                raise StoreError(f"{self.path} exists and is not a bayesal campaign store; "
                                 "refusing to overwrite it") from None
            raise StoreError(f"{self.path} already holds a campaign; continue it with "
                             f"`bayesal resume --store {self.path}` or choose another path")
        above = self.path.parent
        while not above.exists() and above != above.parent:
            above = above.parent
        if not above.is_dir():
            raise StoreError(f"cannot create a campaign store at {self.path}: {above} is a file, not a folder")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create a campaign store at {self.path}: cannot make its folder "
                             f"({exc.strerror or exc})") from None
        if self.path.is_dir():
            raise StoreError(f"cannot create a campaign store at {self.path}: it is a folder")
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            # SQLite would only say "unable to open database file"
            raise StoreError(f"cannot create a campaign store at {self.path}: its folder "
                             f"{self.path.parent.resolve()} is read-only")
        from .. import __version__

        try:
            conn = self._connect()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot create a campaign store at {self.path}: {exc}") from None
        try:
            self._configure(conn)
            now = time.time()
            # one transaction: a process killed while creating leaves a file without the magic
            # row, which open() refuses as "not a campaign store" rather than misreading it
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.executemany("INSERT INTO bayesal_meta (key, value) VALUES (?, ?)",
                             [("magic", MAGIC), ("schema_version", str(SCHEMA_VERSION)), ("created", repr(now))])
            conn.execute("INSERT INTO campaign (id, config, bayesal_version, created) VALUES (1, ?, ?, ?)",
                         (json.dumps(config, sort_keys=True), __version__, now))
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(f"cannot create a campaign store at {self.path}: {exc}") from None
        self._register()
        return conn

    def close(self) -> None:
        """Close this process's connection to the store file."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            with _OPEN_LOCK:
                _OPEN_FILES[self._key] -= 1
                if not _OPEN_FILES[self._key]:
                    del _OPEN_FILES[self._key]

    def __enter__(self) -> "CampaignStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CampaignStore({str(self.path)!r})"

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """One write transaction: taken with the database's write lock, committed on success."""
        if self._conn is None:
            raise StoreError(f"the store {self.path} is closed")
        if self.readonly:
            raise StoreError(f"the store {self.path} was opened read-only")
        cur = self._conn.cursor()
        self._execute_write(cur, "BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self._execute_write(cur, "COMMIT")

    def _execute_write(self, cur: sqlite3.Cursor, sql: str) -> None:
        """``sql`` (BEGIN / COMMIT), with SQLite's read-only refusal as a one-line StoreError."""
        try:
            cur.execute(sql)
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc):
                raise StoreError(f"cannot write the campaign store {self.path}: {exc}") from None
            raise

    def _read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        if self._conn is None:
            raise StoreError(f"the store {self.path} is closed")
        return self._conn.execute(sql, params).fetchall()

    # -- campaign ----------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """The campaign's settings as stored at creation."""
        return json.loads(self._read("SELECT config FROM campaign WHERE id = 1")[0][0])

    @property
    def bayesal_version(self) -> str:
        """The bayesal version that created the store."""
        return self._read("SELECT bayesal_version FROM campaign WHERE id = 1")[0][0]

    # -- experiments -------------------------------------------------------------------------
    def add_experiments(self, step: int, points: Sequence[Sequence[float]], seed: int,
                        pool_indices: Sequence[int] | None = None, scores: Sequence[float] | None = None,
                        fidelities: Sequence[float] | None = None, acq_s: float | None = None) -> list[int]:
        """Record the batch proposed by acquisition ``step`` (its points ``[q, d]`` become pending)
        together with the step's random seed, in one transaction; returns the new ids.

        A step is proposed once: adding a step that already exists raises :class:`StoreError`.
        """
        rows = [_finite_list(p, f"points[{i}]") for i, p in enumerate(points)]
        if not rows:
            raise InvalidInput("points", "at least one point", "an empty batch")
        q = len(rows)
        pool_indices = [None] * q if pool_indices is None else [int(i) for i in pool_indices]
        scores = [None] * q if scores is None else [None if not math.isfinite(float(s)) else float(s) for s in scores]
        fidelities = [None] * q if fidelities is None else [float(f) for f in fidelities]
        if not len(pool_indices) == len(scores) == len(fidelities) == q:
            raise InvalidInput("pool_indices/scores/fidelities", f"{q} values each (one per point)",
                               f"{len(pool_indices)}, {len(scores)}, {len(fidelities)}")
        now = time.time()
        try:
            with self._write() as cur:
                cur.execute("INSERT INTO steps (step, seed, size, acq_s, created) VALUES (?, ?, ?, ?, ?)",
                            (int(step), int(seed), q, acq_s, now))
                ids = []
                for slot in range(q):
                    cur.execute("INSERT INTO experiments (step, slot, state, x, pool_index, fidelity, score, created)"
                                " VALUES (?, ?, 'pending', ?, ?, ?, ?, ?)",
                                (int(step), slot, json.dumps(rows[slot]), pool_indices[slot], fidelities[slot],
                                 scores[slot], now))
                    ids.append(cur.lastrowid)
        except sqlite3.IntegrityError:
            raise StoreError(f"step {step} of the campaign in {self.path} was already proposed") from None
        return ids

    def claim(self, worker: str, limit: int = 1) -> list[Experiment]:
        """Atomically move up to ``limit`` pending experiments (oldest first) to running for
        ``worker``; returns them (an empty list when none is pending)."""
        now = time.time()
        with self._write() as cur:
            ids = [r[0] for r in cur.execute("SELECT id FROM experiments WHERE state = 'pending' ORDER BY id LIMIT ?",
                                             (int(limit),))]
            cur.execute("INSERT OR REPLACE INTO workers (name, heartbeat) VALUES (?, ?)", (worker, now))
            for i in ids:
                cur.execute("UPDATE experiments SET state = 'running', worker = ?, started = ?, attempts = attempts + 1"
                            " WHERE id = ?", (worker, now, i))
                cur.execute("INSERT INTO claims (experiment, attempt, worker, time)"
                            " SELECT id, attempts, ?, ? FROM experiments WHERE id = ?", (worker, now, i))
        return self.get(ids)

    def complete(self, experiment_id: int, y: Sequence[float], cost: float | None = None) -> bool:
        """Store the outputs ``y [m]`` of a claimed experiment; committed before this returns.

        Returns False (and stores nothing) when the experiment is no longer pending or running,
        e.g. a late answer for an experiment already completed elsewhere.
        """
        y = _finite_list(y, "y")
        with self._write() as cur:
            cur.execute("UPDATE experiments SET state = 'done', y = ?, cost = ?, finished = ?"
                        " WHERE id = ? AND state IN ('running', 'pending')",
                        (json.dumps(y), None if cost is None else float(cost), time.time(), int(experiment_id)))
            return cur.rowcount == 1

    def fail(self, experiment_id: int, error: str, max_attempts: int = 1, cost: float | None = None) -> str | None:
        """Record a failed attempt with its reason. The experiment goes back to pending while it
        has had fewer than ``max_attempts`` attempts, else it is failed for good. Returns the new
        state (None when the experiment was not running)."""
        with self._write() as cur:
            cur.execute("UPDATE experiments SET error = ?, cost = ?, finished = ?,"
                        " state = CASE WHEN attempts < ? THEN 'pending' ELSE 'failed' END"
                        " WHERE id = ? AND state = 'running'",
                        (str(error), None if cost is None else float(cost), time.time(), int(max_attempts),
                         int(experiment_id)))
            if cur.rowcount != 1:
                return None
            return cur.execute("SELECT state FROM experiments WHERE id = ?", (int(experiment_id),)).fetchone()[0]

    def requeue_running(self, worker: str | None = None, reason: str = "interrupted", prefix: str | None = None) -> int:
        """Put running experiments (all, ``worker``'s, or those of claimants whose names start
        with ``prefix``) back in the queue, e.g. after a crash; returns how many. Their attempt
        stays counted in the claims log."""
        with self._write() as cur:
            if worker is not None:
                cur.execute("UPDATE experiments SET state = 'pending', error = ? WHERE state = 'running' AND worker = ?",
                            (reason, worker))
            elif prefix is not None:
                cur.execute("UPDATE experiments SET state = 'pending', error = ? WHERE state = 'running'"
                            " AND substr(worker, 1, ?) = ?", (reason, len(prefix), prefix))
            else:
                cur.execute("UPDATE experiments SET state = 'pending', error = ? WHERE state = 'running'", (reason,))
            return cur.rowcount

    def heartbeat(self, worker: str) -> None:
        """Record that ``worker`` is alive (claimants call this while they evaluate)."""
        with self._write() as cur:
            cur.execute("INSERT OR REPLACE INTO workers (name, heartbeat) VALUES (?, ?)", (worker, time.time()))

    def requeue_stale(self, lease: float, exclude: str | None = None) -> int:
        """Put back in the queue the running experiments of claimants silent for more than
        ``lease`` seconds (a worker process that died); returns how many."""
        cutoff = time.time() - float(lease)
        with self._write() as cur:
            cur.execute("UPDATE experiments SET state = 'pending', error = 'requeued: its worker stopped answering'"
                        " WHERE state = 'running' AND worker IS NOT ? AND worker NOT IN"
                        " (SELECT name FROM workers WHERE heartbeat >= ?)", (exclude, cutoff))
            return cur.rowcount

    def get(self, ids: Sequence[int]) -> list[Experiment]:
        """The experiments with these ids, in the order given."""
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        found = {r[0]: _experiment(r) for r in self._read(f"SELECT {_COLUMNS} FROM experiments WHERE id IN ({marks})",
                                                           [int(i) for i in ids])}
        return [found[int(i)] for i in ids if int(i) in found]

    def experiments(self, states: str | Sequence[str] | None = None) -> list[Experiment]:
        """Every experiment (or those in ``states``), in proposal order."""
        if states is None:
            rows = self._read(f"SELECT {_COLUMNS} FROM experiments ORDER BY id")
        else:
            states = [states] if isinstance(states, str) else list(states)
            bad = [s for s in states if s not in STATES]
            if bad:
                raise InvalidInput("states", "some of " + ", ".join(STATES), repr(bad))
            marks = ", ".join("?" * len(states))
            rows = self._read(f"SELECT {_COLUMNS} FROM experiments WHERE state IN ({marks}) ORDER BY id", states)
        return [_experiment(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """How many experiments are in each state: ``{"pending", "running", "done", "failed"}``."""
        out = dict.fromkeys(STATES, 0)
        out.update(dict(self._read("SELECT state, count(*) FROM experiments GROUP BY state")))
        return out

    def claims(self) -> list[tuple[int, int, str]]:
        """The claim log: ``(experiment, attempt, worker)`` for every claim ever made."""
        return [tuple(r) for r in self._read("SELECT experiment, attempt, worker FROM claims ORDER BY time, experiment")]

    # -- the proposer's lease ------------------------------------------------------------------
    def take_lease(self, holder: str, lease: float, pid: int | None = None, host: str | None = None) -> None:
        """Become the one proposer of this campaign (``bayesal run``/``resume``), atomically.

        Refused with :class:`StoreError` naming the holder and since when while another holder is
        alive: its heartbeat (the ``workers`` row of its name) is younger than its own lease and,
        when it runs on this host, its process still exists. A dead or silent holder's lease is
        taken over. Taking a lease one already holds renews it."""
        import socket

        pid = os.getpid() if pid is None else int(pid)
        host = socket.gethostname() if host is None else host
        now = time.time()
        with self._write() as cur:
            cur.execute(_PROPOSER_TABLE)
            row = cur.execute("SELECT holder, pid, host, lease, since FROM proposer WHERE id = 1").fetchone()
            if row is not None and row[0] != holder:
                other, other_pid, other_host, other_lease, since = row
                beat = cur.execute("SELECT heartbeat FROM workers WHERE name = ?", (other,)).fetchone()
                last = since if beat is None else max(beat[0], since)
                alive = now - last <= other_lease
                if alive and other_host == host:
                    alive = _process_exists(other_pid)
                if alive:
                    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since))
                    raise StoreError(f"the campaign in {self.path} is held by another proposer: {other} (pid "
                                     f"{other_pid} on {other_host}) since {started}, last heartbeat "
                                     f"{max(0.0, now - last):.0f} s ago; wait for it to finish or stop it (its lease "
                                     f"lapses {other_lease:g} s after its last heartbeat)")
            cur.execute("INSERT OR REPLACE INTO proposer (id, holder, pid, host, lease, since) VALUES (1, ?, ?, ?, ?, ?)",
                        (holder, pid, host, float(lease), now if row is None or row[0] != holder else row[4]))
            cur.execute("INSERT OR REPLACE INTO workers (name, heartbeat) VALUES (?, ?)", (holder, now))

    def release_lease(self, holder: str) -> None:
        """Give up the proposer's lease if ``holder`` holds it."""
        with self._write() as cur:
            cur.execute(_PROPOSER_TABLE)
            cur.execute("DELETE FROM proposer WHERE id = 1 AND holder = ?", (holder,))

    def lease_holder(self) -> dict[str, Any] | None:
        """The proposer holding the campaign: ``{"holder", "pid", "host", "lease", "since"}``, or None."""
        try:
            row = self._read("SELECT holder, pid, host, lease, since FROM proposer WHERE id = 1")
        except sqlite3.OperationalError:  # an older store without the table
            return None
        return dict(zip(("holder", "pid", "host", "lease", "since"), row[0])) if row else None

    # -- steps and records -------------------------------------------------------------------
    def steps(self) -> list[dict[str, Any]]:
        """Every acquisition step: ``{"step", "seed", "size", "acq_s"}`` in order."""
        return [dict(zip(("step", "seed", "size", "acq_s"), r))
                for r in self._read("SELECT step, seed, size, acq_s FROM steps ORDER BY step")]

    def next_step(self) -> int:
        """Index of the next acquisition step: one more than the last stored step, 0 for a new campaign."""
        return int(self._read("SELECT coalesce(max(step) + 1, 0) FROM steps")[0][0])

    def add_record(self, record: dict[str, Any]) -> bool:
        """Store a learning-curve record (keyed by its ``n_labels``; a second record for the same
        number of labels is ignored, so a resumed campaign never writes one twice)."""
        with self._write() as cur:
            cur.execute("INSERT OR IGNORE INTO records (n_labels, record, created) VALUES (?, ?, ?)",
                        (int(record["n_labels"]), json.dumps(record), time.time()))
            return cur.rowcount == 1

    def records(self) -> list[dict[str, Any]]:
        """The learning-curve records, by number of labels."""
        return [json.loads(r[0]) for r in self._read("SELECT record FROM records ORDER BY n_labels")]
