"""BALD and BatchBALD on class probabilities [K, N, C]: bayesal vs baal and batchbald_redux.

Cases (all inputs seeded; softmax of Gaussian logits):

* ``bald``: BALD scores, N = 100,000, K = 20, C = 10, float32. Ours:
  ``bayesal.acquisition.mutual_information`` on ``[K, N, C]``; peer: baal's ``BALD().compute_score``
  on the same numbers laid out as baal wants them, ``[N, C, K]``, both float32 and single-threaded
  (torch held to ``--threads``, NumPy's BLAS/OpenMP pools too through threadpoolctl; baal's
  element-wise NumPy code runs on one thread anyway). Second row: batchbald_redux's
  ``get_bald_batch`` (its BALD top-k on log-probabilities ``[N, K, C]``, float32) against our
  scores plus ``topk``. Target: 5× faster than baal, peak memory at most twice the input array.
* ``batchbald``: a batch of b = 10 from N = 5,000, K = 20, C = 10, float32. Ours:
  ``BatchBALD().select_from_samples`` (exact joint entropies while they are small, then 500 sampled
  configurations); peers: baal's ``BatchBALD`` (``num_draw`` 50 by default here, 500 = baal's own
  default with ``--baal-num-draw 500``: about 500 s and 12 GB) and batchbald_redux's
  ``get_batchbald_batch`` (500 samples, float32 like ours: ``dtype=None`` keeps the input's dtype;
  its README passes float64, which is the ``exact`` case's dtype). Target: under 2 s, under 1 GB.
* ``batchbald_exact``: b = 3 from N = 5,000 in float64, where both we and batchbald_redux
  enumerate every label configuration: the joint information after each step must agree to 1e-5.
* ``bald_stream``: BALD top-10 over a pool of 1,000,000 points scored by an MC-dropout network
  (``select_topk``, the pool streamed chunk by chunk, K = 20, C = 10). Target: peak under 2 GB.
  No peer: baal needs the whole ``[N, C, K]`` array in memory.

Peak memory: VmHWM of a fresh subprocess, reset after the inputs are built, minus its RSS then.
Single-threaded by default (``--threads``). Run: ``python benchmarks/speed_bald.py [--quick]``.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")  # batchbald_redux's progress bars would flood stderr

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import alternate_timings, child_peak_mb, emit, parser, reset_peak, rss_mb, say, set_threads  # noqa: E402

K, C, B = 20, 10, 10
NOTE_PEAK = "peak = VmHWM of a fresh subprocess, reset after building the inputs, minus its RSS then"


def probs_of(n: int, dtype=torch.float32, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.softmax(2.0 * torch.randn(K, n, C, generator=gen), -1).to(device, dtype)


# -- implementations ---------------------------------------------------------------------------------
def ours_bald(p):
    from bayesal.acquisition import mutual_information

    return mutual_information(p)


def baal_bald(p_nck):
    from baal.active.heuristics import BALD

    return BALD().compute_score(p_nck)


def ours_batchbald(p, b=B, exact=False):
    from bayesal.acquisition import BatchBALD

    acq = BatchBALD(max_configs=10**9) if exact else BatchBALD()
    return acq.select_from_samples(p, b)


def baal_batchbald(p_nck, num_draw):
    from baal.active.heuristics import BatchBALD

    ranks, _ = BatchBALD(num_samples=B, num_draw=num_draw).get_ranks(p_nck)
    return ranks[:B]


def redux_batchbald(log_p_nkc, b=B, num_samples=500):
    """batchbald_redux in the dtype of its input (float32 here, float64 in the exact case)."""
    from batchbald_redux.batchbald import get_batchbald_batch

    return get_batchbald_batch(log_p_nkc, b, num_samples, dtype=log_p_nkc.dtype, device=log_p_nkc.device)


class toma_gc:
    """batchbald_redux chunks its loops with toma, which calls ``gc.collect()`` (and empties the
    CUDA cache) before and after every 1,024-row chunk: in a process with a large Python heap that
    is most of its time. ``toma_gc(False)`` patches it out, leaving the peer's computation alone."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __enter__(self):
        import toma

        self.saved = toma.gc_cuda
        if not self.enabled:
            toma.gc_cuda = lambda: None
        return self

    def __exit__(self, *exc):
        import toma

        toma.gc_cuda = self.saved
        return False


REDUX_GC = {True: "as shipped: toma's gc.collect() around every 1,024-row chunk",
            False: "toma's per-chunk gc.collect() patched out (the peer's computation alone)"}


def redux_bald(log_p_nkc, b=B):
    from batchbald_redux.batchbald import get_bald_batch

    return get_bald_batch(log_p_nkc, b)


def ours_bald_topk(p, b=B):
    return ours_bald(p).topk(b)


def stream_setup(n: int, device: str):
    from bayesal import MCDropoutNet, Pool

    gen = torch.Generator().manual_seed(1)
    d = 8
    X_train = torch.rand(300, d, generator=gen, dtype=torch.float64)
    y_train = (X_train[:, :2].sum(-1) * 5).floor().clamp_max(C - 1)
    net = MCDropoutNet(num_classes=C, hidden=(32,), num_samples=K, max_epochs=30, seed=0, device=device)
    net.fit(X_train, y_train, bounds=[[0.0] * d, [1.0] * d])
    pool = Pool(torch.rand(n, d, generator=gen, dtype=torch.float64).to(device), bounds=[[0.0] * d, [1.0] * d])
    return net, pool


def ours_stream(net, pool):
    from bayesal import BALD
    from bayesal.selection import select_topk

    return select_topk(net, BALD(), pool, 10)


def _have(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:  # noqa: BLE001 - any import failure means the peer is unavailable
        return None
    from importlib.metadata import PackageNotFoundError, version

    dist = {"baal": "baal", "batchbald_redux": "batchbald_redux"}[module]
    try:
        return f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return f"{dist} {getattr(mod, '__version__', '?')}"


# -- child processes (peak memory) -----------------------------------------------------------------
def child(which: str, case: str, args) -> None:
    n = int(case)
    if which.startswith("stream"):
        net, pool = stream_setup(n, args.device)
        from bayesal import Pool

        ours_stream(net, Pool(pool.X[:2000], bounds=pool.bounds))  # warm-up: first-call code paths
        base = reset_peak()
        ours_stream(net, pool)
        print(rss_mb() - base)
        return
    dtype = torch.float64 if which.endswith("exact") else torch.float32
    p = probs_of(n, dtype, device=args.device)
    p_nck = log_p = None
    if which.startswith("baal"):
        p_nck = p.permute(1, 2, 0).contiguous().cpu().numpy()
        p = None
    elif which.startswith("redux"):
        log_p = p.permute(1, 0, 2).log().contiguous()
        p = None
    _run_child(which, p, p_nck, log_p, small=True)  # warm-up on a slice: first-call code paths
    base = reset_peak()
    _run_child(which, p, p_nck, log_p, small=False)
    print(rss_mb() - base)


def _run_child(which, p, p_nck, log_p, small):
    if small:
        p = None if p is None else p[:, :50]
        p_nck = None if p_nck is None else p_nck[:50]
        log_p = None if log_p is None else log_p[:50]
    if which == "ours_bald":
        ours_bald(p)
    elif which == "baal_bald":
        baal_bald(p_nck)
    elif which == "ours_batchbald":
        ours_batchbald(p)
    elif which.startswith("baal_batchbald"):
        baal_batchbald(p_nck, int(which.split("_")[-1]))
    elif which == "redux_batchbald":
        redux_batchbald(log_p)
    elif which == "redux_bald":
        redux_bald(log_p)
    elif which == "ours_batchbald_exact":
        ours_batchbald(p, 3, exact=True)
    elif which == "redux_batchbald_exact":
        redux_batchbald(log_p, 3, 10**6)


def _with_gc(gc_on: bool, fn):
    with toma_gc(gc_on):
        return fn()


def _r(x, nd=4):
    return None if x is None else round(x, nd)


def main():
    p = parser(__doc__)
    p.add_argument("--cases", default="bald,batchbald,exact,stream",
                   help="comma-separated subset of the cases: bald, batchbald, exact, stream")
    p.add_argument("--baal-num-draw", type=int, default=50,
                   help="num_draw of baal's BatchBALD (its default, 500, takes about 500 s and 12 GB)")
    args = p.parse_args()
    set_threads(args.threads)
    if args.child:
        which, case = args.child.split(":")
        child(which, case, args)
        return
    extra = ["--device", args.device, "--threads", str(args.threads)]
    baal = _have("baal")
    redux = _have("batchbald_redux")
    if baal:
        import importlib

        importlib.import_module("baal.active.heuristics")  # loads SciPy's / scikit-learn's native pools
    set_threads(args.threads)  # again: hold the pools the peers' imports loaded too
    import warnings

    warnings.filterwarnings("ignore")

    cases = set(args.cases.split(","))
    if "bald" in cases:
        bald_case(args, extra, baal, redux)
    if cases & {"batchbald", "exact"}:
        batchbald_cases(args, extra, baal, redux, cases)
    if "stream" in cases:
        stream_case(args, extra)


def _thread_note(threads: int) -> str:
    try:
        from threadpoolctl import threadpool_info

        pools = sorted({f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()})
    except ImportError:
        pools = ["threadpoolctl not installed: NumPy pools not held"]
    return f"torch threads={torch.get_num_threads()}, native pools: {', '.join(pools)}"


def bald_case(args, extra, baal, redux):
    n = 20_000 if args.quick else 100_000
    probs = probs_of(n, device=args.device)
    p_nck = probs.permute(1, 2, 0).contiguous().cpu().numpy()
    a = ours_bald(probs)
    b = baal_bald(p_nck) if baal else None
    agree = None if b is None else bool(np.abs(a.cpu().numpy() - b).max() < 1e-5)
    t_ours, t_peer = alternate_timings(lambda: ours_bald(probs), (lambda: baal_bald(p_nck)) if baal else None,
                                       max(args.reps, 5))
    m_ours = child_peak_mb(__file__, str(n), "ours_bald", extra)
    m_peer = child_peak_mb(__file__, str(n), "baal_bald", extra) if baal else None
    input_mb = probs.numel() * probs.element_size() / 2**20
    threads = _thread_note(args.threads)
    emit({"bench": "bald", "case": f"N={n},K={K},C={C},float32,{args.device},threads={args.threads}",
          "ours_s": _r(t_ours), "ours_peak_mb": _r(m_ours, 1), "peer": baal, "peer_s": _r(t_peer),
          "peer_peak_mb": _r(m_peer, 1), "ratio": None if t_peer is None else round(t_peer / t_ours, 2),
          "agree": agree,
          "note": f"agree = max abs difference < 1e-5; both float32; input array {input_mb:.0f} MB; {NOTE_PEAK}; "
                  f"{threads}"})
    say(f"BALD N={n}: ours {t_ours:.4f}s ({m_ours} MB), baal {t_peer}s ({m_peer} MB), input {input_mb:.0f} MB")
    if not redux:
        return
    log_p = probs.permute(1, 0, 2).log().contiguous()
    top_ours = ours_bald_topk(probs).indices.tolist()
    m_ours = child_peak_mb(__file__, str(n), "ours_bald", extra)
    m_peer = child_peak_mb(__file__, str(n), "redux_bald", extra)
    for gc_on in (False, True):
        with toma_gc(gc_on):
            top_redux = list(redux_bald(log_p).indices)
            t_ours, t_peer = alternate_timings(lambda: ours_bald_topk(probs), lambda: redux_bald(log_p),
                                               max(args.reps, 5))
        emit({"bench": "bald_topk",
              "case": f"N={n},K={K},C={C},b={B},float32,{args.device},threads={args.threads},toma_gc={gc_on}",
              "ours_s": _r(t_ours), "ours_peak_mb": _r(m_ours, 1), "peer": f"{redux} get_bald_batch, {REDUX_GC[gc_on]}",
              "peer_s": _r(t_peer), "peer_peak_mb": _r(m_peer, 1), "ratio": round(t_peer / t_ours, 2),
              "agree": top_ours == top_redux,
              "note": f"agree = same top-{B} indices in the same order; ours = mutual_information(probs [K, N, C])"
                      f".topk, peer on log-probabilities [N, K, C] (each side's own input layout); both float32; "
                      f"{NOTE_PEAK}; {threads}"})
        say(f"BALD top-{B} N={n}: ours {t_ours:.4f}s, batchbald_redux ({REDUX_GC[gc_on]}) {t_peer:.4f}s, "
            f"same indices {top_ours == top_redux}")


def batchbald_cases(args, extra, baal, redux, cases):
    n = 1_000 if args.quick else 5_000
    probs = probs_of(n, device=args.device)
    p_nck = probs.permute(1, 2, 0).contiguous().cpu().numpy()
    log_p = probs.permute(1, 0, 2).log().contiguous()
    ours_idx, ours_gain = ours_batchbald(probs)
    peers = []
    if baal:
        draw = args.baal_num_draw
        peers.append((f"{baal} BatchBALD num_draw={draw}" + ("" if draw == 500 else " (its default is 500)"),
                      lambda: baal_batchbald(p_nck, draw), f"baal_batchbald_{draw}"))
    if redux:
        for gc_on in (False, True):
            peers.append((f"{redux} get_batchbald_batch num_samples=500 float32, {REDUX_GC[gc_on]}",
                          lambda gc_on=gc_on: _with_gc(gc_on, lambda: redux_batchbald(log_p)),
                          "redux_batchbald" if not gc_on else None))
    if not peers:
        peers.append((None, None, None))
    if "batchbald" not in cases:
        peers = []
    m_ours = child_peak_mb(__file__, str(n), "ours_batchbald", extra) if peers else None
    for name, fn, key in peers:
        reps = args.reps if (key or "").startswith("redux") or args.baal_num_draw <= 50 else 1
        t_ours, t_peer = alternate_timings(lambda: ours_batchbald(probs), fn, reps)
        other = fn() if fn is not None else None
        if other is not None:
            theirs = list(other.indices) if hasattr(other, "indices") else [int(i) for i in other]
            common = len(set(theirs) & set(ours_idx.tolist()))
        m_peer = child_peak_mb(__file__, str(n), key, extra) if key else None
        emit({"bench": "batchbald", "case": f"N={n},K={K},C={C},b={B},float32,{args.device},threads={args.threads}",
              "ours_s": _r(t_ours),
              "ours_peak_mb": _r(m_ours, 1), "peer": name, "peer_s": _r(t_peer), "peer_peak_mb": _r(m_peer, 1),
              "ratio": None if t_peer is None else round(t_peer / t_ours, 2), "agree": None,
              "note": ("both sample label configurations beyond a few points, so batches may differ: "
                       f"{common}/{B} indices in common; " if other is not None else "")
                      + f"ours: exact while C^|A|*C <= 5000, then 500 sampled configurations; both float32; "
                        f"{NOTE_PEAK}; {_thread_note(args.threads)}"})
        say(f"BatchBALD N={n}: ours {t_ours:.3f}s ({m_ours} MB), {name}: {t_peer}s ({m_peer} MB)")

    if redux and "exact" in cases:
        p64 = probs.double()
        log64 = p64.permute(1, 0, 2).log().contiguous()
        idx3, gain3 = ours_batchbald(p64, 3, exact=True)
        theirs = redux_batchbald(log64, 3, 10**6)
        diff = float((gain3.cumsum(0) - torch.tensor(theirs.scores, dtype=torch.float64)).abs().max())
        same = idx3.tolist() == list(theirs.indices)
        with toma_gc(False):
            t_ours, t_peer = alternate_timings(lambda: ours_batchbald(p64, 3, exact=True),
                                               lambda: redux_batchbald(log64, 3, 10**6), args.reps)
        emit({"bench": "batchbald_exact", "case": f"N={n},K={K},C={C},b=3,float64,{args.device},threads={args.threads}",
              "ours_s": _r(t_ours), "ours_peak_mb": _r(child_peak_mb(__file__, str(n), "ours_batchbald_exact", extra), 1),
              "peer": f"{redux} get_batchbald_batch (exact), {REDUX_GC[False]}", "peer_s": _r(t_peer),
              "peer_peak_mb": _r(child_peak_mb(__file__, str(n), "redux_batchbald_exact", extra), 1),
              "ratio": round(t_peer / t_ours, 2), "agree": bool(same and diff < 1e-5),
              "note": f"agree = same indices and joint information I(y_1:t; θ) within 1e-5 at every step "
                      f"(max difference {diff:.1e}); both float64; {NOTE_PEAK}; {_thread_note(args.threads)}"})
        say(f"BatchBALD exact b=3: same indices {same}, max joint-information difference {diff:.2e}")



def stream_case(args, extra):
    n = 100_000 if args.quick else 1_000_000
    net, pool = stream_setup(n, args.device)
    t_ours, _ = alternate_timings(lambda: ours_stream(net, pool), None, 1 if not args.quick else args.reps)
    m_ours = child_peak_mb(__file__, str(n), "stream", extra)
    emit({"bench": "bald_stream", "case": f"N={n},K={K},C={C},d=8,MCDropoutNet(32),float32,{args.device}",
          "ours_s": _r(t_ours), "ours_peak_mb": _r(m_ours, 1), "peer": None, "peer_s": None, "peer_peak_mb": None,
          "ratio": None, "agree": None,
          "note": f"select_topk(MCDropoutNet, BALD, q=10) with the network's forward passes included; pool chunks "
                  f"sized from the 512 MiB memory budget; no peer (baal needs the whole [N, C, K] array, "
                  f"{n * K * C * 4 / 2**20:.0f} MB at float32); {NOTE_PEAK}"})
    say(f"streamed BALD N={n}: {t_ours:.2f}s, peak {m_ours} MB")


if __name__ == "__main__":
    main()
