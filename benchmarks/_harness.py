"""Shared plumbing of the speed benchmarks: timing, peak memory in a fresh subprocess, output.

Output follows ../shared/BENCHMARKS.md: one JSON object per case on stdout, human text on stderr.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--reps", type=int, default=3, help="timed repetitions after one warm-up")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for both sides: torch intra-op and the BLAS / OpenMP pools of NumPy (default 1)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: measure memory of one run
    return p


def set_threads(n: int) -> int:
    """Hold torch and every native thread pool NumPy or SciPy loaded (BLAS, OpenMP) to ``n``
    threads, so that ours and the peer run on the same number; returns torch's thread count."""
    import torch

    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        import numpy  # noqa: F401 - load its BLAS before the limit is set

        global _LIMITS
        _LIMITS = threadpool_limits(limits=n)
    return torch.get_num_threads()


_LIMITS = None


def _sync() -> None:
    """Wait for queued CUDA work (a no-op unless CUDA is in use): timings include the kernels."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def alternate_timings(ours: Callable[[], object], peer: Callable[[], object] | None, reps: int):
    """Median wall seconds of ``ours`` and ``peer``, alternating, after one warm-up each."""
    ours()
    if peer is not None:
        peer()
    t_ours, t_peer = [], []
    for _ in range(reps):
        _sync()
        start = time.perf_counter()
        ours()
        _sync()
        t_ours.append(time.perf_counter() - start)
        if peer is not None:
            start = time.perf_counter()
            peer()
            _sync()
            t_peer.append(time.perf_counter() - start)
    return statistics.median(t_ours), (statistics.median(t_peer) if t_peer else None)


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> float:
    """Reset this process's peak-RSS mark where Linux allows it; returns the current RSS in MB.

    Writing 5 to /proc/self/clear_refs resets VmHWM, so that the peak read afterwards belongs to
    the computation alone and not to the set-up (data generation, model fitting) before it.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    current = _status_kb("VmRSS")
    return current / 1024.0 if current is not None else rss_mb()


def rss_mb() -> float:
    """Peak resident set size since the last :func:`reset_peak` (VmHWM), else ru_maxrss, in MB."""
    peak = _status_kb("VmHWM")
    if peak is not None:
        return peak / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_peak_mb(script: str, case: str, which: str, extra: list[str]) -> float | None:
    """Run ``script --child which:case`` in a fresh process; it prints its peak minus baseline."""
    proc = subprocess.run([sys.executable, script, "--child", f"{which}:{case}", *extra],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return float(proc.stdout.strip().splitlines()[-1])


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def paired_ratio_interval(log_ratios: dict, n_boot: int = 10_000, level: float = 0.95, seed: int = 0):
    """Geometric-mean ratio and its percentile-bootstrap interval, paired by seed.

    ``log_ratios`` maps each seed (or any paired unit: seed × data set) to the list of
    ``log(error / reference error)`` of that seed, paired step by step. The statistic is
    ``exp(mean over seeds of each seed's mean log ratio)``; seeds are resampled with replacement
    (the steps of one seed are not independent, so they stay together). Returns
    ``(ratio, low, high)``, or ``(ratio, None, None)`` with fewer than two seeds.
    """
    import numpy as np

    per_seed = np.array([float(np.mean(v)) for v in log_ratios.values() if len(v)])
    if per_seed.size == 0:
        return None, None, None
    ratio = float(np.exp(per_seed.mean()))
    if per_seed.size < 2:
        return ratio, None, None
    rng = np.random.default_rng(seed)
    boots = per_seed[rng.integers(0, per_seed.size, size=(n_boot, per_seed.size))].mean(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return ratio, float(np.exp(lo)), float(np.exp(hi))


def across_sets_interval(per_set: dict, n_boot: int = 10_000, level: float = 0.95, seed: int = 0):
    """Geometric-mean ratio over data sets, each weighted equally, with a stratified bootstrap
    interval: ``per_set`` maps each data set to a ``{seed: [log ratios]}`` dict as
    :func:`paired_ratio_interval` takes; the seeds of each set are resampled within that set.
    Returns ``(ratio, low, high)``, the interval None when a set has fewer than two seeds."""
    import numpy as np

    sets = [np.array([float(np.mean(v)) for v in by_seed.values() if len(v)]) for by_seed in per_set.values()]
    sets = [a for a in sets if a.size]
    if not sets:
        return None, None, None
    ratio = float(np.exp(np.mean([a.mean() for a in sets])))
    if min(a.size for a in sets) < 2:
        return ratio, None, None
    rng = np.random.default_rng(seed)
    boots = np.mean([a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(1) for a in sets], axis=0)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return ratio, float(np.exp(lo)), float(np.exp(hi))


def verdict(low, high) -> str:
    """``"win"`` when the interval of a ratio (ours / reference) lies below 1, ``"loss"`` when
    above, ``"tie"`` when it contains 1, ``"—"`` without an interval."""
    if low is None or high is None:
        return "—"
    return "win" if high < 1 else "loss" if low > 1 else "tie"
