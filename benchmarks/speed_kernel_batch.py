"""Kernel batch selection (LCMD-TP, BAIT-F-P): bayesal vs bmdal_reg's ``select_batch``.

Cases (batch q = 256, n_train = 256 labelled rows, float32, ``--threads`` torch threads on both sides):

* ``select``: the same features ``[n_train + N, 512]`` given to both sides (bmdal_reg's
  ``linear`` base kernel on them), so both must choose the same indices (``agree``). LCMD in TP
  mode without transforms, BAIT-F in P mode on the ``scale`` + posterior (σ = 0.1) kernel —
  bmdal_reg's ``lcmd-tp`` and ``bait-f-p`` configurations of Holzmüller et al. (2023).
* ``grad``: end to end from a width-512 MLP (3 hidden layers): the sketched per-example gradient
  features (512 columns) and the selection, ours against bmdal_reg's ``grad`` kernel with
  ``("rp", [512])``. The two sketches are independent random projections, so ``agree`` is null;
  the ``select`` rows show that the selections agree given the same features.
* ``stream``: LCMD-TP over a pool of 10⁶ rows (10⁵ with ``--quick``), features of a 512-column
  random-feature map kept compact (float16 directions + float32 norms); ours only. The target is a
  peak under 2 GB.

Peak memory: VmHWM of a fresh subprocess, reset after set-up (data and network built), minus its
RSS then. Run: ``python benchmarks/speed_kernel_batch.py [--quick] [--threads 1]``.
"""

from __future__ import annotations

import math
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import alternate_timings, child_peak_mb, emit, parser, reset_peak, rss_mb, say, set_threads  # noqa: E402

F, Q, N_TRAIN, SIGMA = 512, 256, 256, 0.1
METHODS = {"lcmd-tp": ("lcmd", "lcmd", True, []), "bait-f-p": ("bait", "bait-f", False, [("train", [SIGMA, None])])}
#: BAIT runs in float64 on both sides: ours always does, and bmdal_reg's own BAIT configurations
#: set allow_float64 (in float32 the two part after ~120 rows, both losing the gains to rounding)
DTYPES = {"lcmd-tp": torch.float32, "bait-f-p": torch.float64}


def have_bmdal() -> bool:
    try:
        if not hasattr(np, "Inf"):  # bmdal_reg 3.0.2 uses np.Inf, removed in NumPy 2
            np.Inf = np.inf
        import bmdal_reg  # noqa: F401
        return True
    except ImportError:
        return False


def features(n_pool: int, device: str, seed: int = 0):
    """Features with a spread of norms (rows of a random network's last layer would do as well:
    the selections' cost does not depend on the values)."""
    g = torch.Generator().manual_seed(seed)
    T = torch.randn(N_TRAIN, F, generator=g)
    P = torch.randn(n_pool, F, generator=g) * torch.rand(n_pool, 1, generator=g)
    return T.to(device), P.to(device)


def mlp(d: int, device: str, seed: int = 0) -> torch.nn.Sequential:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(d, 512), torch.nn.SiLU(), torch.nn.Linear(512, 512), torch.nn.SiLU(),
                                  torch.nn.Linear(512, 512), torch.nn.SiLU(), torch.nn.Linear(512, 1))
    return net.to(device)


def selection_features(n_pool: int, device: str, method: str):
    """The features both sides select on in the ``select`` case: for BAIT-F-P, the scale +
    posterior transform applied once beforehand (ours, in float64, cast back to float32), so the
    two selections see identical float32 features; bmdal_reg would otherwise transform in float32
    (its default) or run everything in float64 (allow_float64)."""
    from bayesal.kernels import KernelRows

    T, P = features(n_pool, device)
    if METHODS[method][3]:
        rows = KernelRows.from_features(T, P).scaled().posterior(SIGMA)
        T, P = rows.features[:rows.n_train], rows.features[rows.n_train:]
    return T.to(DTYPES[method]), P.to(DTYPES[method])


def ours_select(T, P, method):
    from bayesal.kernels import KernelRows
    from bayesal.selection.kernel_batch import kernel_batch_indices

    _, name, tp, _ = METHODS[method]
    rows = KernelRows.from_features(T, P)
    return kernel_batch_indices(rows, Q, name, mode="tp" if tp else "p", sigma=SIGMA)[0].tolist()


def peer_select(T, P, method, models=None, base_kernel="linear", extra_transforms=None):
    from bmdal_reg.bmdal.algorithms import select_batch
    from bmdal_reg.bmdal.feature_data import TensorFeatureData

    name, _, tp, transforms = METHODS[method]
    transforms = [] if extra_transforms is None else list(extra_transforms) + transforms  # select: pre-transformed
    data = {"train": TensorFeatureData(T), "pool": TensorFeatureData(P)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx, _ = select_batch(batch_size=Q, models=models or [torch.nn.Identity()], data=data, y_train=None,
                              base_kernel=base_kernel, kernel_transforms=transforms,
                              selection_method=name, sel_with_train=tp, bait_sigma=SIGMA, maxdet_sigma=SIGMA,
                              allow_float64=DTYPES[method] == torch.float64, verbosity=0)
    return idx.tolist()


class _NetSurrogate:
    """Just enough of a surrogate for ``batch_kernel("grad")`` on a plain network: the feature
    map the network gives (bayesal's MLPRegressor provides the same through ``feature_map``)."""

    def __init__(self, net):
        from bayesal.kernels.network import NetworkFunction, network_feature_map

        self.net, self.make = NetworkFunction(net), network_feature_map
        self.feature_kinds = ("grad",)
        self.posterior_kind = "gaussian"

    def feature_map(self, kind, n_features=None, seed=None):
        return self.make(self.net, kind, n_features, seed, "regression", "benchmark MLP")


def ours_grad(net, X_train, X_pool, method):
    from bayesal.kernels import batch_kernel
    from bayesal.selection.kernel_batch import kernel_batch_indices

    _, name, tp, transforms = METHODS[method]
    rows = batch_kernel("grad", _NetSurrogate(net), X_train, X_pool, transforms=("scale", "posterior") if transforms else (),
                        sigma=SIGMA, n_features=F, seed=0)
    return kernel_batch_indices(rows, Q, name, mode="tp" if tp else "p", sigma=SIGMA)[0].tolist()


def ours_stream(n_pool: int, device: str):
    from bayesal.kernels import FeatureMap, KernelRows
    from bayesal.selection.kernel_batch import kernel_batch_indices

    class RandomFeatures(FeatureMap):  # Rahimi & Recht (2007) features of an RBF kernel
        def __init__(self, d):
            g = torch.Generator().manual_seed(1)
            self.W = torch.randn(d, F, generator=g).to(device)
            self.b = (2 * math.pi * torch.rand(F, generator=g)).to(device)
            self.n_features = F

        def chunk(self, X):
            return torch.cos(X @ self.W + self.b) * math.sqrt(2.0 / F)

    g = torch.Generator().manual_seed(0)
    X_pool = torch.rand(n_pool, 8, generator=g).to(device)
    X_train = torch.rand(N_TRAIN, 8, generator=g).to(device)
    rows = KernelRows.from_feature_map(RandomFeatures(8), X_train, X_pool, storage=torch.float16)
    return kernel_batch_indices(rows, Q, "lcmd", mode="tp")[0].tolist()


def run_child(args):
    have_bmdal()
    which, case = args.child.split(":", 1)
    kind, rest = case.split("/", 1)
    if kind == "stream":
        base = reset_peak()
        ours_stream(int(rest), args.device)
    else:
        method, n = rest.split("@")
        if kind == "select":
            T, P = selection_features(int(n), args.device, method)
            base = reset_peak()
            ours_select(T, P, method) if which == "ours" else peer_select(T, P, method)
        else:
            net = mlp(8, args.device)
            g = torch.Generator().manual_seed(3)
            X_train, X_pool = torch.rand(N_TRAIN, 8, generator=g), torch.rand(int(n), 8, generator=g)
            base = reset_peak()
            if which == "ours":
                ours_grad(net, X_train, X_pool, method)
            else:
                peer_select(X_train, X_pool, method, models=[net], base_kernel="grad", extra_transforms=[("rp", [F])])
    print(rss_mb() - base)


def main():
    p = parser(__doc__)
    p.add_argument("--cases", default="select,grad,stream")
    args = p.parse_args()
    set_threads(args.threads)
    if args.child:
        run_child(args)
        return
    peer_ok = have_bmdal()
    peer_name = None
    if peer_ok:
        from importlib.metadata import version

        peer_name = f"bmdal_reg {version('bmdal_reg')} select_batch"
    n_pool = 4_000 if args.quick else 20_000
    extra = ["--device", args.device, "--threads", str(args.threads)]
    mem_note = "peak = VmHWM of a fresh subprocess, reset after set-up, minus its RSS then"
    cases = args.cases.split(",")
    for method in METHODS:
        if "select" not in cases:
            break
        T, P = selection_features(n_pool, args.device, method)
        a = ours_select(T, P, method)
        b = peer_select(T, P, method) if peer_ok else None
        t_ours, t_peer = alternate_timings(lambda: ours_select(T, P, method),
                                           (lambda: peer_select(T, P, method)) if peer_ok else None, args.reps)
        case = f"select/{method}@{n_pool}"
        m_ours = child_peak_mb(__file__, case, "ours", extra)
        m_peer = child_peak_mb(__file__, case, "peer", extra) if peer_ok else None
        _emit(f"{method}: same features", f"N={n_pool},n_train={N_TRAIN},F={F},q={Q},{str(DTYPES[method])[6:]},"
              f"{args.device},threads={args.threads}", t_ours, t_peer, m_ours, m_peer, peer_name,
              (a == b) if peer_ok else None, "agree = same indices given the same features (BAIT: the scale + "
              "posterior transform applied once beforehand, the same float32 features to both); " + mem_note)
    for method in METHODS:
        if "grad" not in cases:
            break
        net = mlp(8, args.device)
        g = torch.Generator().manual_seed(3)
        X_train, X_pool = torch.rand(N_TRAIN, 8, generator=g), torch.rand(n_pool, 8, generator=g)
        run_o = lambda: ours_grad(net, X_train, X_pool, method)  # noqa: E731
        run_p = (lambda: peer_select(X_train, X_pool, method, models=[net], base_kernel="grad",
                                     extra_transforms=[("rp", [F])])) if peer_ok else None
        t_ours, t_peer = alternate_timings(run_o, run_p, args.reps)
        case = f"grad/{method}@{n_pool}"
        m_ours = child_peak_mb(__file__, case, "ours", extra)
        m_peer = child_peak_mb(__file__, case, "peer", extra) if peer_ok else None
        _emit(f"{method}: sketched gradients of a width-512 MLP", f"N={n_pool},n_train={N_TRAIN},F={F},q={Q},"
              f"d=8,3x512 SiLU,{str(DTYPES[method])[6:]} selection,{args.device},threads={args.threads}", t_ours, t_peer, m_ours, m_peer,
              peer_name, None, "agree = null: independent random sketches (see the select rows); " + mem_note)
    if "stream" in cases:
        n = 100_000 if args.quick else 1_000_000
        t_ours, _ = alternate_timings(lambda: ours_stream(n, args.device), None, max(1, min(args.reps, 2)))
        m_ours = child_peak_mb(__file__, f"stream/{n}", "ours", extra)
        _emit("lcmd-tp: streamed pool", f"N={n},n_train={N_TRAIN},F={F},q={Q},float16 storage,{args.device},"
              f"threads={args.threads}", t_ours, None, m_ours, None, None, None,
              "ours only; target: peak under 2048 MB; " + mem_note)


def _emit(label, case, t_ours, t_peer, m_ours, m_peer, peer_name, agree, note):
    emit({"bench": "kernel_batch", "case": f"{label}: {case}", "ours_s": round(t_ours, 3),
          "ours_peak_mb": None if m_ours is None else round(m_ours, 1), "peer": peer_name if t_peer else None,
          "peer_s": None if t_peer is None else round(t_peer, 3),
          "peer_peak_mb": None if m_peer is None else round(m_peer, 1),
          "ratio": None if t_peer is None else round(t_peer / t_ours, 2), "agree": agree, "note": note})
    ratio = "" if t_peer is None else f", peer {t_peer:.2f}s, ratio {t_peer / t_ours:.1f}x, agree {agree}"
    say(f"{label} [{case}]: ours {t_ours:.2f}s ({m_ours} MB){ratio} ({m_peer} MB)")


if __name__ == "__main__":
    main()
