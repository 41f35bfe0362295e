"""Greedy integrated-variance batches over a pool: bayesal vs BoTorch's qNegIntegratedPosteriorVariance.

Case (issue 4): SingleTaskGP (Matérn-5/2) on 200 points of a 4-D function, 512 reference points,
a batch of q = 10 from a pool of N candidates.

* ours: ``select_greedy`` with :class:`IntegratedVarianceReduction`: one O(n²(N + M)) set-up,
  then O(M N) per chosen point by rank-1 updates of the reference × pool cross-covariance;
* peer: ``qNegIntegratedPosteriorVariance`` maximised with ``optimize_acqf_discrete`` (q = 10,
  unique), which builds a fantasy model for every candidate batch (run at N = 1,000 only).

At N = 1,000 both must pick the same indices. Larger pools measure ours alone: N = 20,000 in
memory, N = 1,000,000 streamed in chunks (``--quick`` skips it).
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import alternate_timings, child_peak_mb, emit, parser, reset_peak, rss_mb, say, set_threads  # noqa: E402

N_TRAIN, DIM, M_REF, Q = 200, 4, 512, 10


def setup(n_pool: int, device: str):
    from bayesal import ExactGP, Pool

    gen = torch.Generator().manual_seed(0)
    X = torch.rand(N_TRAIN, DIM, generator=gen, dtype=torch.float64)
    y = torch.sin(3 * X).sum(-1) + 0.3 * torch.cos(7 * X[:, 0] * X[:, 1]) + 0.01 * torch.randn(N_TRAIN, generator=gen, dtype=torch.float64)
    unit = torch.tensor([[0.0] * DIM, [1.0] * DIM], dtype=torch.float64)
    gp = ExactGP().fit(X.to(device), y.to(device), bounds=unit)
    R = torch.rand(M_REF, DIM, generator=gen, dtype=torch.float64).to(device)
    pool_X = torch.rand(n_pool, DIM, generator=gen, dtype=torch.float64).to(device)
    return gp, R, Pool(pool_X, bounds=unit)


def ours(gp, R, pool):
    from bayesal import IntegratedVarianceReduction, select_greedy

    return select_greedy(gp, IntegratedVarianceReduction(reference_points=R), pool, Q).indices.tolist()


def peer(gp, R, pool):
    from botorch.acquisition.active_learning import qNegIntegratedPosteriorVariance
    from botorch.optim import optimize_acqf_discrete

    acq = qNegIntegratedPosteriorVariance(gp.model, mc_points=R)
    # max_batch_size bounds memory: at its default (2,048 candidates evaluated at once) the
    # fantasy models of a 1,000-point pool take over 24 GB here.
    cand, _ = optimize_acqf_discrete(acq, q=Q, choices=pool.X, unique=True, max_batch_size=64)
    return [int(torch.nonzero((pool.X - c).abs().sum(-1) < 1e-12)[0]) for c in cand]


def main():
    args = parser(__doc__).parse_args()
    set_threads(args.threads)
    if args.child:
        which, case = args.child.split(":")
        gp, R, pool = setup(int(case), args.device)
        base = reset_peak()
        (ours if which == "ours" else peer)(gp, R, pool)
        print(rss_mb() - base)
        return
    import botorch

    sizes = [1_000, 20_000] if args.quick else [1_000, 20_000, 1_000_000]
    for n in sizes:
        gp, R, pool = setup(n, args.device)
        with_peer = n <= 1_000
        note = "peak = VmHWM of a fresh subprocess, reset after set-up, minus its RSS then"
        if with_peer:
            a, b = ours(gp, R, pool), peer(gp, R, pool)
            t_ours, t_peer = alternate_timings(lambda: ours(gp, R, pool), lambda: peer(gp, R, pool), args.reps)
            agree = a == b
            note = "agree = same selected indices; " + note
        else:
            reps = 1 if n >= 1_000_000 else args.reps
            t_ours, t_peer = alternate_timings(lambda: ours(gp, R, pool), None, reps)
            agree = None
            note += "; peer not run (a fantasy model per candidate: about half an hour at N=20,000)"
        extra = ["--device", args.device, "--threads", str(args.threads)]
        m_ours = child_peak_mb(__file__, str(n), "ours", extra)
        m_peer = child_peak_mb(__file__, str(n), "peer", extra) if with_peer else None
        emit({"bench": "ivr_greedy_batch", "case": f"n={N_TRAIN},d={DIM},M={M_REF},N={n},q={Q},float64,{args.device}",
              "ours_s": round(t_ours, 4), "ours_peak_mb": None if m_ours is None else round(m_ours, 1),
              "peer": f"botorch {botorch.__version__} qNegIntegratedPosteriorVariance + optimize_acqf_discrete" if with_peer else None,
              "peer_s": None if t_peer is None else round(t_peer, 3),
              "peer_peak_mb": None if m_peer is None else round(m_peer, 1),
              "ratio": None if t_peer is None else round(t_peer / t_ours, 1), "agree": agree, "note": note})
        say(f"N={n}: ours {t_ours:.3f}s" + (f", botorch {t_peer:.2f}s, ratio {t_peer / t_ours:.0f}x, same indices {agree}" if with_peer else ""))


if __name__ == "__main__":
    main()
