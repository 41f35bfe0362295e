"""Smoke test of the surrogates and selectors on one device (``--device cuda`` in gpu_check.sh).

Fits an :class:`~bayesal.ExactGP` (regression, 4-D) and an :class:`~bayesal.MCDropoutNet`
(sample surrogate, 10 classes) on the device, scores a pool and selects a batch with a few
acquisitions and selectors, and checks that every posterior, score and batch is finite, on the
device, and that a batch has q distinct pool rows. One JSON line per check on stdout
(``{"bench": "smoke", "case": ..., "ok": ..., "seconds": ..., "detail": ...}``), a summary line
last; exit status 1 when any check fails. Run: ``python benchmarks/gpu_smoke.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

Q, DIM, C = 8, 4, 10


def on_device(t: torch.Tensor, device: str) -> bool:
    return t.device.type == torch.device(device).type


def check_tensor(name: str, t: torch.Tensor, device: str) -> list[str]:
    problems = []
    if not on_device(t, device):
        problems.append(f"{name} on {t.device}, expected {device}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        problems.append(f"{name} not finite")
    return problems


def check_selection(sel, device: str, q: int, n_pool: int) -> list[str]:
    problems = check_tensor("X", sel.X, device) + check_tensor("scores", sel.scores, device)
    if sel.indices is not None:
        idx = sel.indices.tolist()
        if len(set(idx)) != q or min(idx) < 0 or max(idx) >= n_pool:
            problems.append(f"indices {idx} are not {q} distinct pool rows")
    if sel.X.shape[0] != q:
        problems.append(f"{sel.X.shape[0]} points, expected {q}")
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--pool", type=int, default=2000, help="pool size")
    args = p.parse_args()
    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"bench": "smoke", "case": "cuda", "ok": None, "detail": "no CUDA device"}))
        return 0
    from bayesal import (BALD, EPIG, BatchBALD, Entropy, ExactGP, IntegratedVarianceReduction, KernelBatch,
                         MaxVariance, MCDropoutNet, Pool, select, select_greedy, select_topk)

    gen = torch.Generator().manual_seed(0)
    bounds = [[0.0] * DIM, [1.0] * DIM]
    X = torch.rand(120, DIM, generator=gen, dtype=torch.float64)
    y = torch.sin(3 * X).sum(-1) + 0.05 * torch.randn(120, generator=gen, dtype=torch.float64)
    pool_X = torch.rand(args.pool, DIM, generator=gen, dtype=torch.float64)
    labels = (X[:, :2].sum(-1) * 5).floor().clamp_max(C - 1)
    results = []

    def run(case: str, fn):
        start = time.perf_counter()
        try:
            problems = fn()
        except Exception as exc:  # noqa: BLE001 - a smoke test reports every failure and goes on
            problems = [f"{type(exc).__name__}: {exc}"]
            traceback.print_exc(file=sys.stderr)
        if device == "cuda":
            torch.cuda.synchronize()
        record = {"bench": "smoke", "case": f"{case},{device}", "ok": not problems,
                  "seconds": round(time.perf_counter() - start, 3), "detail": "; ".join(problems) or None}
        results.append(record)
        print(json.dumps(record), flush=True)

    state = {}

    def fit_gp():
        gp = ExactGP().fit(X.to(device), y.to(device), bounds=bounds)
        state["gp"] = gp
        post = gp.posterior(pool_X.to(device))
        return check_tensor("mean", post.mean, device) + check_tensor("variance", post.variance, device)

    def fit_net():
        net = MCDropoutNet(num_classes=C, hidden=(32,), num_samples=20, max_epochs=30, seed=0, device=device)
        net.fit(X.to(device), labels.to(device), bounds=bounds)
        state["net"] = net
        post = net.posterior(pool_X.to(device))
        return check_tensor("samples", post.samples, device)

    pool = Pool(pool_X.to(device), bounds=bounds)
    run("fit ExactGP + posterior", fit_gp)
    run("fit MCDropoutNet + posterior", fit_net)
    gp_cases = [("ExactGP MaxVariance select_topk", lambda: select_topk(state["gp"], MaxVariance(), pool, Q)),
                ("ExactGP MaxVariance select_greedy", lambda: select_greedy(state["gp"], MaxVariance(), pool, Q)),
                ("ExactGP BALD select_greedy", lambda: select_greedy(state["gp"], BALD(), pool, Q)),
                ("ExactGP IntegratedVarianceReduction select_greedy",
                 lambda: select_greedy(state["gp"], IntegratedVarianceReduction(n_reference=256, seed=0), pool, Q)),
                ("ExactGP KernelBatch(lcmd) select", lambda: select(state["gp"], KernelBatch("lcmd"), pool, Q, seed=0))]
    net_cases = [("MCDropoutNet BALD select_topk", lambda: select_topk(state["net"], BALD(), pool, Q)),
                 ("MCDropoutNet Entropy select_topk", lambda: select_topk(state["net"], Entropy(), pool, Q)),
                 ("MCDropoutNet BatchBALD select_greedy", lambda: select_greedy(state["net"], BatchBALD(), pool, Q)),
                 ("MCDropoutNet EPIG select_topk", lambda: select_topk(state["net"], EPIG(), pool, Q))]
    for case, fn in gp_cases + net_cases:
        needs = "gp" if case.startswith("ExactGP") else "net"
        if needs not in state:
            run(case, lambda n=needs: [f"skipped: the {n} did not fit"])
            continue
        run(case, lambda fn=fn: check_selection(fn(), device, Q, args.pool))
    failed = [r["case"] for r in results if not r["ok"]]
    print(json.dumps({"bench": "smoke_summary", "case": device, "ok": not failed, "checks": len(results),
                      "failed": failed}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
