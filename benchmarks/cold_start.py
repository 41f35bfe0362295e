"""Cold start on pools: the test RMSE of an exact GP fitted on the initial design alone.

For each data set (a UCI set, or a box problem discretised into a Sobol pool) and seed, every
pool method of :func:`bayesal.selection.initial_design` picks the same number of rows from the
same pool (the seed's standard train/test split of a UCI set, its Sobol pool for a box
problem); an ``exact-gp`` is fitted on their labels and scored on the test
split. Each method is compared with ``random`` paired by seed: the geometric-mean RMSE ratio
with a 95 % bootstrap interval over seeds (../shared/BENCHMARKS.md, "Learning curves"), per
data set and over all (data set, seed) pairs.

    python benchmarks/cold_start.py --datasets concrete,airfoil --n 20 --seeds 10 --json cs.json --markdown cs.md
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from bayesal import Pool, make_problem
from bayesal.metrics import evaluate
from bayesal.models import make_model
from bayesal.selection import initial_design
from bayesal.selection.cold_start import POOL_DESIGNS

DEFAULT_SETS = "hartmann6,concrete,airfoil,energy,housing,yacht,wine"


def bootstrap_ratio(log_ratios: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Geometric-mean ratio and its 95 % percentile-bootstrap interval from paired log ratios."""
    rng = np.random.default_rng(seed)
    means = rng.choice(log_ratios, (reps, log_ratios.size)).mean(1)
    low, high = np.exp(np.quantile(means, [0.025, 0.975]))
    return float(np.exp(log_ratios.mean())), float(low), float(high)


def run(datasets: list[str], n: int, seeds: int, pool_size: int, data_dir: str | None) -> dict:
    rmse: dict[str, dict[str, list[float]]] = {}
    for name in datasets:
        problem_name = name if name in ("hartmann6", "branin", "heat") else f"uci-{name}"
        rmse[name] = {m: [] for m in POOL_DESIGNS}
        for seed in range(seeds):
            extra = {} if problem_name == name else {"split": seed % 10}  # the seed's standard UCI split
            problem = make_problem(problem_name, seed=seed, data_dir=data_dir, **extra)
            space = problem.space if isinstance(problem.space, Pool) else problem.space.to_pool(pool_size, seed=seed)
            X_test, y_test = problem.test_set()
            for method in POOL_DESIGNS:
                sel = initial_design(space, n, method, seed=seed)
                y = space.reveal(sel.indices) if space.has_labels else problem.evaluate(sel.X)
                gp = make_model("exact-gp", seed=seed).fit(sel.X, y, bounds=space.bounds)
                rmse[name][method].append(evaluate(gp, X_test, y_test)["rmse"])
            print(f"{name} seed {seed}: " + ", ".join(f"{m} {rmse[name][m][-1]:.4g}" for m in POOL_DESIGNS),
                  file=sys.stderr)
    table = {}
    for method in POOL_DESIGNS:
        if method == "random":
            continue
        rows = {}
        pooled = []
        for name in datasets:
            lr = np.log(np.array(rmse[name][method]) / np.array(rmse[name]["random"]))
            pooled.append(lr)
            rows[name] = bootstrap_ratio(lr)
        rows["all"] = bootstrap_ratio(np.concatenate(pooled))
        table[method] = rows
    return {"n": n, "seeds": seeds, "pool_size": pool_size, "rmse": rmse, "ratio_to_random": table}


def markdown(result: dict, datasets: list[str]) -> str:
    head = "| method | " + " | ".join(datasets + ["all"]) + " |\n|---|" + "---|" * (len(datasets) + 1) + "\n"
    lines = []
    for method, rows in result["ratio_to_random"].items():
        cells = [f"{g:.2f} [{lo:.2f}, {hi:.2f}]" + (" **" if hi < 1 else "") for g, lo, hi in
                 (rows[d] for d in datasets + ["all"])]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return (f"RMSE ratio to random after {result['n']} initial labels (exact GP, {result['seeds']} seeds; "
            "geometric mean [95 % bootstrap]; ** the interval is below 1)\n\n" + head + "\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=DEFAULT_SETS)
    p.add_argument("--n", type=int, default=20, help="initial labels")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--pool-size", type=int, default=2000, help="Sobol pool of a box problem")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--quick", action="store_true", help="two data sets, three seeds")
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    datasets = ["hartmann6", "concrete"] if args.quick else args.datasets.split(",")
    seeds = 3 if args.quick else args.seeds
    result = run(datasets, args.n, seeds, args.pool_size, args.data_dir)
    md = markdown(result, datasets)
    print(md, file=sys.stderr)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(md)


if __name__ == "__main__":
    main()
