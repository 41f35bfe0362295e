"""Oracles for the campaign tests, importable by worker processes (not a test module)."""

import os
import time

import torch

from bayesal.problems.analytic import forrester

_calls = {"n": 0}


def _count() -> int:
    _calls["n"] += 1
    return _calls["n"]


def every_fifth_call_fails(X):
    """Forrester, except that every fifth call in a process raises."""
    n = _count()
    if n % 5 == 0:
        raise RuntimeError(f"simulated failure on call {n}")
    return forrester(X)


def misbehaves(X):
    """Forrester, except call 3 returns NaN, call 5 hangs and call 7 returns two labels."""
    n = _count()
    if n == 3:
        return torch.tensor([float("nan")])
    if n == 5:
        time.sleep(8.0)
    if n == 7:
        return torch.zeros(2)
    return forrester(X)


def dies_once(X):
    """Forrester, but the first process to call it dies without a word (os._exit)."""
    marker = os.environ["BAYESAL_TEST_MARKER"]
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return forrester(X)


def with_cost(X):
    """Forrester reporting its own cost: 10 per unit of x."""
    return {"y": forrester(X), "cost": 10.0 * float(X[0, 0])}


def hangs_where_told(X):
    """Forrester after a 0.5 s pause, except in a process started with BAYESAL_TEST_HANG set,
    where the call hangs (for an hour) until the process is killed."""
    if os.environ.get("BAYESAL_TEST_HANG"):
        time.sleep(3600.0)
    time.sleep(0.5)
    return forrester(X)
