"""Greedy batch selection over a pool with conditioning: bayesal vs the BoTorch fantasy loop.

Case: an exact GP (Matérn-5/2) fitted on n = 200 points of a 4-D function, a batch of q = 10
chosen greedily by posterior variance with conditioning on the points already chosen (equal, with
homoskedastic noise, to greedy joint-information / D-optimal selection).

* ours: ``bayesal.select_greedy``: one O(n² N) setup, then a rank-1 update of the pool variance
  per chosen point;
* peer (the headline row, ``botorch_chunked``): what a careful user writes with BoTorch alone: for
  each of the q points, ``model.condition_on_observations(x_j, mean_j)`` and a fresh pool variance
  from ``model.posterior(chunk).variance`` over chunks of ``--peer-chunk`` rows (default 1,000),
  so that no N × N pool covariance is ever built;
* peer, second row (``botorch_naive``, labelled "naive"): the same loop with one
  ``model.posterior(pool)`` call over the whole pool (it builds the N × N covariance).

Both must pick the same indices (``agree``). Both sides float64, ``--threads`` (default 1) torch
threads. Run: ``python benchmarks/speed_greedy.py [--quick] [--device cpu|cuda] [--threads 1]``.
"""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import alternate_timings, child_peak_mb, emit, parser, reset_peak, rss_mb, say, set_threads  # noqa: E402

N_TRAIN, DIM, Q = 200, 4, 10


def setup(n_pool: int, device: str):
    from bayesal import ExactGP, Pool

    gen = torch.Generator().manual_seed(0)
    X = torch.rand(N_TRAIN, DIM, generator=gen, dtype=torch.float64)
    y = torch.sin(3 * X).sum(-1) + 0.3 * torch.cos(7 * X[:, 0] * X[:, 1]) + 0.01 * torch.randn(N_TRAIN, generator=gen, dtype=torch.float64)
    gp = ExactGP().fit(X.to(device), y.to(device), bounds=torch.tensor([[0.0] * DIM, [1.0] * DIM], dtype=torch.float64))
    pool_X = torch.rand(n_pool, DIM, generator=gen, dtype=torch.float64).to(device)
    return gp, pool_X, Pool


def ours(gp, pool_X, Pool):
    from bayesal import MaxVariance, select_greedy

    return select_greedy(gp, MaxVariance(), Pool(pool_X, bounds=[[0.0] * DIM, [1.0] * DIM]), Q).indices.tolist()


def _pool_variance(model, pool_X, chunk: int | None) -> torch.Tensor:
    if not chunk:
        return model.posterior(pool_X).variance[:, 0].clone()
    return torch.cat([model.posterior(pool_X[s:s + chunk]).variance[:, 0] for s in range(0, pool_X.shape[0], chunk)])


def peer(gp, pool_X, Pool, chunk: int | None = 1000):
    """The BoTorch loop; ``chunk`` rows per posterior call (None: the whole pool at once, naive)."""
    model, chosen = gp.model, []
    with torch.no_grad():
        for _ in range(Q):
            var = _pool_variance(model, pool_X, chunk)
            if chosen:
                var[chosen] = -1.0
            j = int(torch.argmax(var))
            chosen.append(j)
            xj = pool_X[j:j + 1]
            model = model.condition_on_observations(xj, model.posterior(xj).mean)
    return chosen


def main():
    p = parser(__doc__)
    p.add_argument("--peer-chunk", type=int, default=1000,
                   help="rows per posterior call of the chunked BoTorch loop (the headline peer)")
    args = p.parse_args()
    set_threads(args.threads)
    sizes = [1_000, 5_000] if args.quick else [1_000, 5_000, 20_000, 100_000]
    # the naive loop builds the N x N covariance q times: 108 s and 15.5 GB per batch at N = 20,000
    peer_max = {"chunked": 20_000, "naive": 5_000}
    if args.child:
        which, case = args.child.split(":")
        gp, pool_X, Pool = setup(int(case), args.device)
        base = reset_peak()
        if which == "ours":
            ours(gp, pool_X, Pool)
        else:
            peer(gp, pool_X, Pool, args.peer_chunk if which == "chunked" else None)
        print(rss_mb() - base)
        return
    import botorch

    extra = ["--device", args.device, "--threads", str(args.threads), "--peer-chunk", str(args.peer_chunk)]
    note_mem = ("peak = VmHWM of a fresh subprocess, reset after set-up, minus its RSS then"
                if args.device == "cpu" else "peak = VmHWM (host) of a fresh subprocess")
    for n in sizes:
        gp, pool_X, Pool = setup(n, args.device)
        a = ours(gp, pool_X, Pool)
        m_ours = child_peak_mb(__file__, str(n), "ours", extra)
        for kind in ("chunked", "naive"):
            with_peer = n <= peer_max[kind]
            chunk = args.peer_chunk if kind == "chunked" else None
            run_peer = (lambda c=chunk: peer(gp, pool_X, Pool, c)) if with_peer else None
            b = run_peer() if with_peer else None
            t_ours, t_peer = alternate_timings(lambda: ours(gp, pool_X, Pool), run_peer, args.reps)
            m_peer = child_peak_mb(__file__, str(n), kind, extra) if with_peer else None
            label = (f"botorch {botorch.__version__} condition_on_observations loop, posterior over "
                     f"{args.peer_chunk}-row chunks" if kind == "chunked" else
                     f"botorch {botorch.__version__} condition_on_observations loop, naive: one posterior "
                     f"over the whole pool (N x N covariance)")
            note = f"agree = same selected indices; {note_mem}; threads={args.threads}"
            if not with_peer:
                note += f"; {kind} peer skipped above N={peer_max[kind]} (too slow)"
            emit({"bench": "greedy_variance_batch",
                  "case": f"n={N_TRAIN},d={DIM},N={n},q={Q},float64,{args.device},peer={kind}",
                  "ours_s": round(t_ours, 4), "ours_peak_mb": None if m_ours is None else round(m_ours, 1),
                  "peer": label if with_peer else None,
                  "peer_s": None if t_peer is None else round(t_peer, 4),
                  "peer_peak_mb": None if m_peer is None else round(m_peer, 1),
                  "ratio": None if t_peer is None else round(t_peer / t_ours, 2),
                  "agree": (a == b) if with_peer else None, "note": note})
            if with_peer:
                say(f"N={n}: ours {t_ours:.3f}s, botorch loop ({kind}) {t_peer:.3f}s, ratio {t_peer / t_ours:.1f}x, "
                    f"same indices: {a == b}")
            else:
                say(f"N={n}: ours {t_ours:.3f}s ({kind} peer skipped)")


if __name__ == "__main__":
    main()
