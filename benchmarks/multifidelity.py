"""Multi-fidelity active learning vs single-fidelity active learning vs Random, in cost units.

    python benchmarks/multifidelity.py --quick --json mf.json
    python benchmarks/multifidelity.py --problems heat-mf,poisson-mf,currin-mf --seeds 10

For every problem and seed, three campaigns with the same cost budget (in units of one
highest-fidelity evaluation):

* ``mf-al``: :class:`bayesal.MultiFidelityLearner` — auto-regressive co-kriging over all
  fidelities, cost-aware integrated variance reduction about the highest fidelity, greedy batches
  that may mix fidelities, each step spending at most one highest-fidelity cost.
* ``sf-al``: :class:`bayesal.ActiveLearner` at the highest fidelity only — ExactGP, greedy
  integrated variance reduction over the same number of Sobol candidates, one label per step.
* ``random``: ExactGP on uniformly random highest-fidelity points.

The error is the test RMSE of the highest-fidelity surrogate against the *truth* (the fine
reference grid for the PDE simulators, the high-fidelity function for the analytic ones) on a
fixed Sobol test set. The summary ``cost_to_match_single_fidelity`` is the fraction of
single-fidelity AL's final cost at which multi-fidelity AL first reaches single-fidelity AL's
final RMSE, both curves being the geometric mean over seeds of the RMSE after a given cost has
been spent (a step function of cost); the median of the per-seed fractions is reported too.

Two cost models, side by side (BENCHMARKS.md): ``nominal`` (the problem's costs, from the grid
sizes; the budget is spent in these units) and ``measured`` (each evaluation charged the measured
wall seconds per evaluation of its level, ``problem.measure_seconds(16)``, in units of one
highest-fidelity evaluation's measured time). Single-fidelity campaigns cost the same under both;
the MF curve is re-costed from the per-level label counts of every step.
Human-readable progress goes to stderr; the JSON summary to stdout (and to ``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bayesal import ActiveLearner, IntegratedVarianceReduction, MultiFidelityLearner  # noqa: E402
from bayesal.acquisition.multifidelity import MultiFidelityVarianceReduction  # noqa: E402
from bayesal.problems.multifidelity import make_multifidelity_problem  # noqa: E402
from bayesal.selection import select_greedy  # noqa: E402
from bayesal.spaces import Pool  # noqa: E402

METHODS = ("mf-al", "sf-al", "random")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_mf(problem, budget: float, seed: int, n_candidates: int, initial, q: int, n_reference: int):
    acq = MultiFidelityVarianceReduction(n_reference=n_reference, seed=seed)
    learner = MultiFidelityLearner(problem.space, problem.costs, acquisition=acq, n_candidates=n_candidates,
                                   seed=seed, test_set=problem.test_set())
    # each step spends at most one highest-fidelity evaluation (the batch may mix levels)
    records = learner.run(problem, cost_budget=budget, q=q, initial=initial, step_cost=1.0, progress=False)
    return [(r["cumulative_cost"], r["rmse"], list(r["counts"])) for r in records], learner.counts()


def recost(curve, unit_costs):
    """A multi-fidelity curve ``(cost, rmse, counts)`` re-costed with other per-level unit costs."""
    return [(float(np.dot(counts, unit_costs)), rmse) for _, rmse, counts in curve]


def match_summary(mf_curves, sf_curves, budget):
    """cost_to_match_single_fidelity and its per-seed values for one cost model."""
    curves = {"mf-al": mf_curves, "sf-al": sf_curves}
    grid = sorted({round(c, 6) for m in curves for cv in curves[m] for c, _ in cv})
    mean_curves = {m: geometric_mean_curve(curves[m], grid) for m in curves}
    sf_final_cost = max(c for cv in sf_curves for c, _ in cv)
    sf_final = float(rmse_at(list(zip(grid, mean_curves["sf-al"])), sf_final_cost))
    hit = first_cost_below(list(zip(grid, mean_curves["mf-al"])), sf_final)
    per_seed = []
    for mf_c, sf_c in zip(mf_curves, sf_curves):
        h = first_cost_below(mf_c, sf_c[-1][1])
        per_seed.append(None if h is None else h / sf_c[-1][0])
    return {"cost_to_match_single_fidelity": None if hit is None else hit / sf_final_cost,
            "per_seed": per_seed,
            "per_seed_median": float(np.median([v if v is not None else math.inf for v in per_seed]))
            if per_seed else None,
            "mf_final_cost": float(np.mean([cv[-1][0] for cv in mf_curves])), "sf_final_rmse": sf_final}


def run_sf(problem, budget: float, seed: int, n_candidates: int, strategy: str, n_reference: int):
    T = problem.target_fidelity
    X_test, y_test = problem.test_set()
    oracle = lambda X, idx=None: problem.evaluate(X, T)  # noqa: E731
    cost = float(problem.costs[T])
    d = problem.dim
    n_labels = int(math.floor(budget / cost + 1e-9))
    curve = []
    if strategy == "random":
        X = problem.space.sample(n_labels, seed=seed + 1000, method="uniform")
        y = oracle(X)
        for n in range(d + 1, n_labels + 1):
            learner = ActiveLearner(problem.space, seed=seed, test_set=(X_test, y_test))
            learner.tell(X[:n], y[:n])
            curve.append((n * cost, learner.evaluate()["rmse"]))
        return curve
    acq = IntegratedVarianceReduction(reference_points="uniform", n_reference=n_reference, seed=seed)
    learner = ActiveLearner(problem.space, acquisition=acq, seed=seed, test_set=(X_test, y_test))
    X0 = problem.space.sample(d + 1, seed=seed * 7919 + 17, method="sobol")
    learner.tell(X0, oracle(X0))
    curve.append(((d + 1) * cost, learner.evaluate()["rmse"]))
    for step in range(n_labels - d - 1):
        candidates = problem.space.sample(n_candidates, seed=seed * 1_000_003 + step, method="sobol")
        learner.fit()
        sel = select_greedy(learner.surrogate, acq, Pool(candidates), 1)
        learner.tell(sel.X, oracle(sel.X))
        curve.append((learner.n_labels * cost, learner.evaluate()["rmse"]))
    return curve


def rmse_at(curve, cost: float) -> float:
    """RMSE after ``cost`` has been spent: the last record at a cumulative cost <= cost."""
    value = math.nan
    for c, r in curve:
        if c <= cost + 1e-9:
            value = r
    return value


def first_cost_below(curve, target: float) -> float | None:
    for c, r in curve:
        if r <= target:
            return c
    return None


def geometric_mean_curve(curves, grid):
    """Geometric mean over seeds of the RMSE after each cost in ``grid`` (seeds with no record yet
    at that cost are left out; NaN where no seed has one)."""
    vals = np.array([[rmse_at(cv, g) for g in grid] for cv in curves])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns before the first record
        return np.exp(np.nanmean(np.log(vals), axis=0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small budgets: heat and Poisson, 5 seeds, a few minutes")
    p.add_argument("--problems", default=None, help="comma-separated names (default heat-mf,poisson-mf)")
    p.add_argument("--seeds", type=int, default=None, help="seeds (default 5; with --quick it may be fewer)")
    p.add_argument("--budget", type=float, default=None, help="cost budget in highest-fidelity evaluations")
    p.add_argument("--json", default=None)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    args.seeds_given = args.seeds is not None
    args.seeds = 5 if args.seeds is None else args.seeds
    torch.set_num_threads(args.threads)
    problems = (args.problems or "heat-mf,poisson-mf").split(",")
    budget = args.budget or (20.0 if args.quick else 40.0)
    n_candidates = 256 if args.quick else 1024
    n_reference = 256 if args.quick else 1024
    q = 16
    seeds = list(range(max(5, args.seeds) if not args.quick else (args.seeds if args.seeds_given else 5)))
    results = {"budget": budget, "seeds": len(seeds), "n_candidates": n_candidates, "n_reference": n_reference,
               "problems": {}}
    for name in problems:
        problem = make_multifidelity_problem(name)
        start = time.perf_counter()
        problem.test_set()
        say(f"{name}: test set of {problem.n_test} truth values in {time.perf_counter() - start:.1f} s")
        d, S = problem.dim, problem.num_fidelities
        initial = [4 * (d + 1)] + [d + 1] * (S - 2) + [2] if S > 2 else [4 * (d + 1), 2]
        entry = {"costs": problem.costs.tolist(), "fidelities": problem.fidelity_names,
                 "measured_seconds_per_eval": problem.measure_seconds(16), "initial_design": initial,
                 "curves": {m: [] for m in METHODS}, "mf_counts": []}
        for seed in seeds:
            t0 = time.perf_counter()
            mf, counts = run_mf(problem, budget, seed, n_candidates, initial, q, n_reference)
            t1 = time.perf_counter()
            sf = run_sf(problem, budget, seed, n_candidates, "ivr", n_reference)
            t2 = time.perf_counter()
            rnd = run_sf(problem, budget, seed, n_candidates, "random", n_reference)
            t3 = time.perf_counter()
            entry["curves"]["mf-al"].append([(c, r) for c, r, _ in mf])
            entry.setdefault("mf_curves_with_counts", []).append(mf)
            entry["curves"]["sf-al"].append(sf)
            entry["curves"]["random"].append(rnd)
            entry["mf_counts"].append(counts)
            say(f"  seed {seed}: final RMSE mf {mf[-1][1]:.3e} (cost {mf[-1][0]:.2f}, counts {counts}, {t1 - t0:.0f} s)"
                f" | sf {sf[-1][1]:.3e} ({t2 - t1:.0f} s) | random {rnd[-1][1]:.3e} ({t3 - t2:.0f} s)")
        grid = sorted({round(c, 6) for m in METHODS for cv in entry["curves"][m] for c, _ in cv})
        mean_curves = {m: geometric_mean_curve(entry["curves"][m], grid) for m in METHODS}
        sf_final_cost = max(c for cv in entry["curves"]["sf-al"] for c, _ in cv)
        sf_final = float(rmse_at(list(zip(grid, mean_curves["sf-al"])), sf_final_cost))
        hit = first_cost_below(list(zip(grid, mean_curves["mf-al"])), sf_final)
        per_seed = []
        for mf_c, sf_c in zip(entry["curves"]["mf-al"], entry["curves"]["sf-al"]):
            h = first_cost_below(mf_c, sf_c[-1][1])
            per_seed.append(None if h is None else h / sf_c[-1][0])
        finite = [v for v in per_seed if v is not None]
        entry["cost_grid"] = grid
        entry["mean_rmse"] = {m: [float(v) for v in mean_curves[m]] for m in METHODS}
        entry["sf_final_rmse"] = sf_final
        entry["sf_final_cost"] = sf_final_cost
        entry["final_rmse"] = {m: float(rmse_at(list(zip(grid, mean_curves[m])), budget)) for m in METHODS}
        entry["cost_to_match_single_fidelity"] = None if hit is None else hit / sf_final_cost
        entry["cost_to_match_single_fidelity_per_seed"] = per_seed
        entry["cost_to_match_single_fidelity_median"] = (
            float(np.median([v if v is not None else math.inf for v in per_seed])) if per_seed else None)
        entry["met_target_0.6"] = entry["cost_to_match_single_fidelity"] is not None and \
            entry["cost_to_match_single_fidelity"] <= 0.6
        say(f"{name}: sf final RMSE {sf_final:.3e} at cost {sf_final_cost:g}; mf reaches it at "
            f"{'never' if hit is None else f'{hit:.2f}'} -> cost_to_match_single_fidelity = "
            f"{entry['cost_to_match_single_fidelity']} (per-seed median {entry['cost_to_match_single_fidelity_median']})")
        measured = entry["measured_seconds_per_eval"]
        unit = [t / measured[-1] for t in measured]
        entry["measured_unit_costs"] = unit
        entry["cost_models"] = {
            "nominal": match_summary(entry["curves"]["mf-al"], entry["curves"]["sf-al"], budget),
            "measured": match_summary([recost(cv, unit) for cv in entry["mf_curves_with_counts"]],
                                      entry["curves"]["sf-al"], budget)}
        for model_name, cm in entry["cost_models"].items():
            say(f"{name}: cost_to_match_single_fidelity, {model_name} costs "
                f"({' / '.join(f'{c:.3g}' for c in (entry['costs'] if model_name == 'nominal' else unit))}): "
                f"{cm['cost_to_match_single_fidelity']} (per seed {cm['per_seed']}; MF spent {cm['mf_final_cost']:.2f})")
        results["problems"][name] = entry
    summary = {n: {"cost_to_match_single_fidelity": e["cost_to_match_single_fidelity"],
                   "per_seed_median": e["cost_to_match_single_fidelity_median"],
                   "cost_to_match_single_fidelity_measured": e["cost_models"]["measured"]["cost_to_match_single_fidelity"],
                   "per_seed_measured": e["cost_models"]["measured"]["per_seed"],
                   "nominal_unit_costs": e["costs"], "measured_unit_costs": e["measured_unit_costs"],
                   "measured_seconds_per_eval": e["measured_seconds_per_eval"],
                   "final_rmse": e["final_rmse"], "met_target_0.6": e["met_target_0.6"]}
               for n, e in results["problems"].items()}
    results["summary"] = summary
    print(json.dumps({"bench": "multifidelity", "summary": summary}))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
