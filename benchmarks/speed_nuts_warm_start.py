"""NUTS warm start: a campaign's refits of a FullyBayesianGP, started cold or from the last posterior.

A campaign refits after every batch (each mode runs in its own process, so that neither reuses
the other's compiled JAX code). Cold, each fit runs NUTS's full warm-up (``warmup`` steps, 256
by default) from the prior's median; warm (the default), the chains start at the previous
posterior's median with the covariance of its draws as mass matrix, and adapt the step size for
``warm_warmup`` steps (64). The sampler is compiled once per size bucket (32 rows), so a refit
in a bucket already met costs only the sampling. This script runs the same sequence of
fits both ways — Hartmann-6 labels, n = 20, 30, …, ``--max-n`` — and reports, per fit, the seconds,
the largest r_hat and the smallest bulk ESS, so the time saved is shown with what it costs in
convergence. No peer: BoTorch's ``fit_fully_bayesian_model_nuts`` always starts cold, as the
``cold`` rows do.

``--device`` places the data and the fitted GP's tensors; the sampler itself runs on JAX's default
backend. Run: ``python benchmarks/speed_nuts_warm_start.py [--quick] [--threads 1] [--device cpu|cuda]``.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import emit, parser, say, set_threads  # noqa: E402


def run(warm: bool, sizes: list[int], seed: int = 0, device: str = "cpu") -> list[dict]:
    from bayesal import FullyBayesianGP
    from bayesal.models.bayesian import ConvergenceWarning
    from bayesal.problems import make_problem

    problem = make_problem("hartmann6")
    X = problem.space.sample(max(sizes), seed=seed, method="uniform")
    y = problem.evaluate(X).reshape(-1)
    X, y = X.to(device), y.to(device)
    gp = FullyBayesianGP(warm_start=warm, seed=seed)
    rows = []
    for n in sizes:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gp.fit(X[:n], y[:n], bounds=problem.space.bounds)
        seconds = time.perf_counter() - start
        d = gp.diagnostics()
        rows.append({"n": n, "seconds": seconds, "r_hat_max": d["r_hat_max"], "ess_bulk_min": d["ess_bulk_min"],
                     "divergences": d["divergences"], "warm_start": d["warm_start"]})
    return rows


def main():
    import json
    import subprocess

    p = parser(__doc__)
    p.add_argument("--max-n", type=int, default=60)
    args = p.parse_args()
    set_threads(args.threads)
    sizes = list(range(20, (30 if args.quick else args.max_n) + 1, 10))
    if args.child is not None:  # one mode in a fresh process: no JIT cache shared between the modes
        print(json.dumps(run(args.child == "warm", sizes, device=args.device)))
        return
    totals = {}
    for label in ("cold", "warm"):
        cmd = [sys.executable, os.path.abspath(__file__), "--child", label, "--threads", str(args.threads),
               "--max-n", str(args.max_n), "--device", args.device] + (["--quick"] if args.quick else [])
        rows = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        totals[label] = sum(r["seconds"] for r in rows[1:])  # the first fit is cold either way
        for r in rows:
            say(f"{label} n={r['n']}: {r['seconds']:.1f} s, r_hat max {r['r_hat_max']:.3f}, "
                f"ESS bulk min {r['ess_bulk_min']:.0f}, {r['divergences']} divergences")
        emit({"bench": "nuts_warm_start", "case": f"{label}: hartmann6, n={sizes}, 2 chains x 128 draws, "
              f"threads={args.threads}", "seconds_per_refit": [round(r["seconds"], 2) for r in rows],
              "r_hat_max": [r["r_hat_max"] for r in rows], "ess_bulk_min": [r["ess_bulk_min"] for r in rows],
              "divergences": [r["divergences"] for r in rows]})
    say(f"refits after the first: cold {totals['cold']:.1f} s, warm {totals['warm']:.1f} s "
        f"({totals['cold'] / max(totals['warm'], 1e-9):.1f}x)")


if __name__ == "__main__":
    main()
