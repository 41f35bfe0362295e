"""Deep batch active learning for regression in bmdal_reg's own regime, with bmdal_reg beside.

    python benchmarks/deep_batch_curves.py --json dbal.json --markdown dbal.md
    python benchmarks/deep_batch_curves.py --quick            # two data sets, 2 seeds, small
    python benchmarks/deep_batch_curves.py --summarise dbal.json --markdown dbal.md

The setting of Holzmüller et al. (2023, JMLR, "A Framework and Benchmark for Deep Batch Active
Learning for Regression"): an MLP (:class:`bayesal.MLPRegressor`: 2 × 512 ReLU, NTK
parametrisation, Adam 0.375 with linear decay, 256 epochs, batches of 256 — their training,
matched step for step by tests/test_mlp.py), retrained from scratch at every step; 256 random
initial labels, then batches of 256 up to ``--budget`` (default 1,280) labels; test RMSE of the
network's predictions on the UCI split's test set.

Strategies, all on the same network at each step (so they differ only in the batch chosen):

* ``random``;
* ours, :class:`bayesal.KernelBatch` on the network's sketched gradients (512 features):
  ``lcmd`` (TP mode), ``kmeanspp`` (TP), ``bait-f`` (P mode, scale + posterior σ = 0.1),
  ``maxdiag`` (P, scale + posterior: top-k posterior variance);
* the peer ``bmdal-lcmd``: bmdal_reg's ``select_batch`` with its ``grad`` kernel, ``("rp", [512])``
  and ``lcmd`` in TP mode, on a bmdal_reg copy of the same network (same weights).

Every strategy of one (data set, seed) starts from the same split, pool, initial labels and
network seed. Ratios to Random are paired by seed and step (initial design excluded), with a 95 %
percentile-bootstrap interval over seeds (``_harness.paired_ratio_interval``); a win or a loss is
counted only where the interval excludes 1. With 5 seeds the bootstrap interval is coarse (it has
at most 126 distinct values) and somewhat narrow; the per-seed ratios are in the JSON.

Units ``(dataset, strategy, seed)`` run in ``--workers`` processes (one torch thread each) and are
appended to ``--json`` as they finish (JSON lines), so an interrupted run keeps what it measured
and ``--resume`` skips the units already there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import paired_ratio_interval, say, verdict  # noqa: E402

DATASETS = "bike,elevators,kin40k,parkinsons,pol,protein"
STRATEGIES = ("random", "lcmd", "bmdal-lcmd", "kmeanspp", "bait-f", "maxdiag")
OURS = ("lcmd", "kmeanspp", "bait-f", "maxdiag")


def _bmdal_ready() -> bool:
    if not hasattr(np, "Inf"):  # bmdal_reg 3.0.2 uses np.Inf, removed in NumPy 2
        np.Inf = np.inf
    try:
        import bmdal_reg  # noqa: F401
        return True
    except ImportError:
        return False


def bmdal_copy(model) -> torch.nn.Module:
    """bmdal_reg's NTK MLP with the weights of ``model`` (a fitted :class:`bayesal.MLPRegressor`)."""
    from bmdal_reg.models import create_tabular_model

    layers = [m for m in model.net if hasattr(m, "weight")]
    d, hidden = layers[0].weight.shape[1], [m.weight.shape[0] for m in layers[:-1]]
    theirs = create_tabular_model(1, d, hidden_sizes=hidden, act=model.activation, n_outputs=1,
                                  weight_gain=model.weight_gain, bias_gain=model.bias_gain).get_single_model(0)
    mine = [layer for layer in theirs.layers if hasattr(layer, "weight")]
    with torch.no_grad():
        for a, b in zip(layers, mine):
            b.weight.copy_(a.weight.T)  # bmdal_reg stores W as [in, out]
            b.bias.copy_(a.bias.reshape(b.bias.shape))
    return theirs.to(next(model.net.parameters()).dtype)


def bmdal_lcmd(model, X_train, X_pool, q: int, seed: int) -> torch.Tensor:
    from bmdal_reg.bmdal.algorithms import select_batch
    from bmdal_reg.bmdal.feature_data import TensorFeatureData

    net = bmdal_copy(model)
    data = {"train": TensorFeatureData(model.preprocess(X_train)), "pool": TensorFeatureData(model.preprocess(X_pool))}
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)  # bmdal_reg draws its sketch from the global generator
        idx, _ = select_batch(batch_size=q, models=[net], data=data, y_train=None, base_kernel="grad",
                              kernel_transforms=[("rp", [512])], selection_method="lcmd", sel_with_train=True,
                              verbosity=0)
    return idx.long().cpu()


def initial_indices(n: int, k: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(10_007 * seed + 1))[:k]


def run_unit(unit: dict[str, Any]) -> dict[str, Any]:
    """One learning curve; returns the unit plus ``curve`` (n_labels, rmse, fit_s, acq_s per step)."""
    torch.set_num_threads(1)
    from bayesal import KernelBatch, MLPRegressor
    from bayesal.problems import make_problem

    name, strategy, seed = unit["dataset"], unit["strategy"], unit["seed"]
    if strategy == "bmdal-lcmd" and not _bmdal_ready():
        return {**unit, "skipped": "bmdal_reg not installed (make peers)"}
    problem = make_problem(f"uci-{name}", data_dir=unit.get("data_dir"), split=seed % 10,
                           max_pool=unit["max_pool"], seed=seed)
    pool = problem.space
    X_test, y_test = problem.test_set()
    budget = min(unit["budget"], len(pool))
    labelled = initial_indices(len(pool), unit["initial"], seed)
    y_all = pool.reveal(labelled)
    X_lab = pool.X[labelled]
    pool.mark_labelled(labelled)
    gen = torch.Generator().manual_seed(7919 * seed + 3)
    curve, acq_s = [], 0.0
    while True:
        start = time.perf_counter()
        model = MLPRegressor(seed=seed).fit(X_lab, y_all)
        fit_s = time.perf_counter() - start
        with torch.no_grad():
            pred = model.posterior(X_test).mean.reshape(-1).double()
        rmse = float((pred - y_test.reshape(-1).double()).pow(2).mean().sqrt())
        curve.append({"n_labels": int(X_lab.shape[0]), "rmse": rmse, "fit_s": fit_s, "acq_s": acq_s})
        if X_lab.shape[0] >= budget:
            break
        q = min(unit["q"], budget - X_lab.shape[0])
        avail = pool.available
        start = time.perf_counter()
        step_seed = 10_007 * seed + X_lab.shape[0]
        if strategy == "random":
            local = torch.randperm(avail.numel(), generator=gen)[:q]
        elif strategy == "bmdal-lcmd":
            local = bmdal_lcmd(model, X_lab, pool.X[avail], q, step_seed)
        else:
            local, _ = KernelBatch(strategy, kernel="grad").select_batch(model, X_lab, pool.X[avail], q, seed=step_seed)
        acq_s = time.perf_counter() - start
        chosen = avail[local.cpu()]
        X_lab = torch.cat([X_lab, pool.X[chosen]])
        y_all = torch.cat([y_all, pool.reveal(chosen)])
        pool.mark_labelled(chosen)
    return {**unit, "curve": curve}


# -- summary --------------------------------------------------------------------------------------
def _log_ratios(runs, strategy, reference):
    """seed -> [log(rmse / reference rmse)] paired by step, initial design excluded."""
    out = {}
    for seed, curve in runs.get(strategy, {}).items():
        ref = {s["n_labels"]: s["rmse"] for s in runs.get(reference, {}).get(seed, [])[1:]}
        logs = [math.log(s["rmse"] / ref[s["n_labels"]]) for s in curve[1:] if s["n_labels"] in ref]
        if logs:
            out[seed] = logs
    return out


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, dict[str, dict[int, list]]] = {}
    for r in results:
        if "curve" in r:
            by.setdefault(r["dataset"], {}).setdefault(r["strategy"], {})[r["seed"]] = r["curve"]
    rows = []
    for dataset, runs in by.items():
        for strategy, seeds in runs.items():
            row = {"dataset": dataset, "strategy": strategy, "seeds": len(seeds),
                   "rmse_final": float(np.mean([c[-1]["rmse"] for c in seeds.values()])),
                   "n_final": max(c[-1]["n_labels"] for c in seeds.values()),
                   "acq_s": float(np.mean([sum(s["acq_s"] for s in c) for c in seeds.values()])),
                   "fit_s": float(np.mean([sum(s["fit_s"] for s in c) for c in seeds.values()]))}
            if strategy != "random":
                row["ratio"], row["low"], row["high"] = paired_ratio_interval(_log_ratios(runs, strategy, "random"))
            if strategy == "lcmd" and "bmdal-lcmd" in runs:
                row["vs_peer"], row["vs_peer_low"], row["vs_peer_high"] = paired_ratio_interval(
                    _log_ratios(runs, "lcmd", "bmdal-lcmd"))
            rows.append(row)
    overall = {}
    for strategy in STRATEGIES[1:]:
        pooled = {}  # (dataset, seed) units: the geometric mean over data sets, seeds resampled within
        for dataset, runs in by.items():
            for seed, logs in _log_ratios(runs, strategy, "random").items():
                pooled[(dataset, seed)] = logs
        if pooled:
            overall[strategy] = _over_datasets(pooled)
    return {"rows": rows, "overall": overall}


def _over_datasets(pooled: dict, n_boot: int = 10_000, seed: int = 0):
    """Geometric mean over data sets of each data set's paired ratio, with a stratified bootstrap
    (seeds resampled within each data set)."""
    per = {}
    for (dataset, s), logs in pooled.items():
        per.setdefault(dataset, []).append(float(np.mean(logs)))
    arrays = [np.array(v) for v in per.values()]
    stat = float(np.exp(np.mean([a.mean() for a in arrays])))
    rng = np.random.default_rng(seed)
    boots = np.mean([a[rng.integers(0, a.size, size=(n_boot, a.size))].mean(1) for a in arrays], axis=0)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"ratio": stat, "low": float(np.exp(lo)), "high": float(np.exp(hi)), "datasets": len(arrays)}


def _f(x, fmt="{:.3f}"):
    return "—" if x is None else fmt.format(x)


def markdown(summary: dict[str, Any]) -> str:
    lines = ["| data set | strategy | seeds | RMSE at the end | ratio to Random [95 % CI] | verdict | "
             "LCMD: ours / bmdal_reg [95 % CI] | select s / run |",
             "|---|---|---:|---:|---:|:---:|---:|---:|"]
    for r in summary["rows"]:
        ratio = "—" if r["strategy"] == "random" else f"{_f(r['ratio'])} [{_f(r['low'])}, {_f(r['high'])}]"
        v = "" if r["strategy"] == "random" else verdict(r["low"], r["high"])
        peer = (f"{_f(r['vs_peer'])} [{_f(r['vs_peer_low'])}, {_f(r['vs_peer_high'])}]"
                if r.get("vs_peer") is not None else "")
        lines.append(f"| {r['dataset']} | {r['strategy']} | {r['seeds']} | {r['rmse_final']:.4g} (n={r['n_final']}) | "
                     f"{ratio} | {v} | {peer} | {r['acq_s']:.1f} |")
    lines += ["", "| strategy | geometric-mean ratio to Random over the data sets [95 % CI] | data sets | verdict |",
              "|---|---:|---:|:---:|"]
    for s, o in summary["overall"].items():
        lines.append(f"| {s} | {o['ratio']:.3f} [{o['low']:.3f}, {o['high']:.3f}] | {o['datasets']} | "
                     f"{verdict(o['low'], o['high'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default=DATASETS)
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--initial", type=int, default=256)
    p.add_argument("--q", type=int, default=256)
    p.add_argument("--budget", type=int, default=1280)
    p.add_argument("--max-pool", type=int, default=20_000)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", default=None, help="JSON lines, one finished unit per line (appended)")
    p.add_argument("--markdown", default=None)
    p.add_argument("--resume", action="store_true", help="skip the units already in --json")
    p.add_argument("--summarise", default=None, metavar="JSON", help="only summarise this file")
    p.add_argument("--quick", action="store_true", help="2 data sets, 2 seeds, 64 + 2 x 64 labels")
    args = p.parse_args(argv)
    if args.summarise:
        results = [json.loads(line) for line in Path(args.summarise).read_text().splitlines() if line.strip()]
    else:
        if args.quick:
            args.datasets, args.seeds, args.initial, args.q, args.budget, args.max_pool = \
                "parkinsons,kin40k", 2, 64, 64, 192, 3000
        from bayesal.problems.data import default_uci_dir

        data_dir = args.data_dir or str(default_uci_dir())
        datasets = [d for d in args.datasets.split(",") if (Path(data_dir) / d).is_dir()]
        missing = sorted(set(args.datasets.split(",")) - set(datasets))
        if missing:
            say(f"skipping data sets not found under {data_dir}: {', '.join(missing)}")
        done = set()
        if args.resume and args.json and os.path.exists(args.json):
            for line in Path(args.json).read_text().splitlines():
                r = json.loads(line)
                done.add((r["dataset"], r["strategy"], r["seed"]))
        plan = [dict(dataset=d, strategy=s, seed=seed, initial=args.initial, q=args.q, budget=args.budget,
                     max_pool=args.max_pool, data_dir=data_dir)
                for seed in range(args.seeds) for d in datasets for s in args.strategies.split(",")
                if (d, s, seed) not in done]
        say(f"{len(plan)} units on {args.workers} workers")
        results = []
        if args.resume and args.json and os.path.exists(args.json):
            results = [json.loads(line) for line in Path(args.json).read_text().splitlines() if line.strip()]
        with ProcessPoolExecutor(max_workers=args.workers) as ex:
            futures = {ex.submit(run_unit, u): u for u in plan}
            for fut in as_completed(futures):
                u = futures[fut]
                try:
                    r = fut.result()
                except Exception as exc:  # one failed unit must not lose the others
                    r = {**u, "skipped": f"{type(exc).__name__}: {exc}"}
                results.append(r)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps(r) + "\n")
                last = r["curve"][-1]["rmse"] if "curve" in r else r.get("skipped")
                say(f"{u['dataset']} {u['strategy']} seed {u['seed']}: {last}")
    summary = summarise(results)
    text = markdown(summary)
    say(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
