"""Global settings as context managers, in the style of ``gpytorch.settings``.

>>> with bayesal.settings.memory_budget(256 * 2**20):   # 256 MiB per score chunk
...     learner.ask(10)
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import platform
import threading

__all__ = ["memory_budget", "get_memory_budget", "rows_per_chunk", "stream_rows"]

_state = threading.local()
_DEFAULT_BUDGET = 512 * 2**20  # bytes one chunk of scoring work may allocate
# Work that is recomputed chunk by chunk (streamed pools) runs in pieces of at most this size,
# whatever the budget: glibc serves every allocation above 32 MiB with a fresh mmap, whose pages
# fault in one by one on each use. Measured on the streamed IVR benchmark (N = 100,000): 512 MiB
# chunks spent most of their time in the kernel (sys time) and were ~3x slower than 32 MiB ones.
_STREAM_CHUNK = 24 * 2**20


def get_memory_budget() -> int:
    """Bytes that one chunk of pool scoring may allocate (default 512 MiB)."""
    return getattr(_state, "budget", _DEFAULT_BUDGET)


@contextlib.contextmanager
def memory_budget(n_bytes: int):
    """Temporarily set the memory budget that sizes pool chunks."""
    if int(n_bytes) < 1:
        raise ValueError(f"memory_budget expects a positive number of bytes, got {n_bytes}")
    previous = get_memory_budget()
    _state.budget = int(n_bytes)
    try:
        yield
    finally:
        _state.budget = previous


def rows_per_chunk(bytes_per_row: float, budget: int | None = None, minimum: int = 1) -> int:
    """How many rows of ``bytes_per_row`` bytes fit in the memory budget (at least ``minimum``)."""
    budget = get_memory_budget() if budget is None else budget
    return max(minimum, int(budget // max(bytes_per_row, 1.0)))


_allocator_tuned = False


def _tune_allocator() -> None:
    """Keep streamed chunks in glibc's heap instead of a fresh ``mmap`` per temporary.

    glibc serves an allocation from ``mmap`` when it is at least its dynamic threshold, which
    only ever rises to the size of the last ``mmap``-ed block freed; a loop allocating the same
    chunk-sized temporaries therefore maps and page-faults every one of them afresh. Streaming
    IVR over 300,000 candidates spent 61 s in the kernel against 26 s of computation; with fixed
    thresholds (mmap above 64 MiB, trim above 128 MiB) the kernel time is 0.4 s and the peak
    memory unchanged. Applied once, on glibc only, the first time streamed work is sized; set
    ``BAYESAL_TUNE_MALLOC=0`` to leave the allocator alone.
    """
    global _allocator_tuned
    if _allocator_tuned:
        return
    _allocator_tuned = True
    if os.environ.get("BAYESAL_TUNE_MALLOC", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 64 * 2**20)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def stream_rows(bytes_per_row: float, minimum: int = 1) -> int:
    """Rows per chunk for work that is streamed (recomputed for every pass over a pool): sized
    from the memory budget but never above a small working set (24 MiB), which keeps each
    temporary inside the allocator's reusable heap (see :func:`_tune_allocator`)."""
    _tune_allocator()
    return rows_per_chunk(bytes_per_row, budget=min(get_memory_budget(), _STREAM_CHUNK), minimum=minimum)
