"""Learning curves on real data: strategies × surrogates × data sets × seeds, with the peers beside.

    python benchmarks/learning_curves.py --suite quick --json lc.json --markdown lc.md
    python benchmarks/learning_curves.py --suite standard --executor dask --workers 2 --json std.json --resume
    python benchmarks/learning_curves.py --datasets concrete,yacht --seeds 5 --data-dir DIR

Every run is an independent unit ``(dataset, strategy, seed)`` described by a JSON-able dict
(:func:`units`) and executed by :func:`run_unit`, which returns a JSON-able record with the
learning curve; :func:`summarise` and :func:`markdown` turn the records into the table. So the
units can be spread over any executor (a process pool, a Dask cluster) without changing them.

Data sets (``--datasets``): the UCI regression sets of ``--data-dir`` (default
``bayesal.problems.data.default_uci_dir()``, names as in that folder), scikit-learn's bundled
``diabetes`` (regression) and ``digits`` (classification), and ``heat`` (the 1-D heat-equation
simulator of :mod:`bayesal.problems`, as a pool of random designs).

Strategies (``--strategies``; each names the surrogate it selects with):

* ExactGP (Matérn-5/2, the library's default): ``random``, ``auto`` (the library's default
  strategy, :mod:`bayesal.acquisition.auto`; for an ExactGP it is integrated variance, so its
  curves repeat that strategy's, a check that the default is what it claims), ``max-variance``,
  ``integrated-variance`` (reference set: the pool, i.e. the input distribution),
  ``joint-information``, and the diversity methods ``lcmd`` and ``kmeanspp`` on the GP's own
  posterior kernel (:class:`bayesal.KernelBatch`, TP mode); the peer ``botorch-nipv`` (BoTorch's ``qNegIntegratedPosteriorVariance``
  maximised by ``optimize_acqf_discrete`` over the unlabelled pool, run only on pools of at most
  ``--botorch-max-pool`` candidates: it builds a fantasy model per candidate).
* A fully Bayesian GP (:class:`bayesal.FullyBayesianGP`, NUTS over the hyperparameters of
  BoTorch's Matérn-5/2 model, 2 chains warm-started from the last fit): ``fb-`` followed by the
  criterion it selects with: ``fb-qbmgp``, ``fb-bqbc``, ``fb-hyper-bald``, ``fb-hellinger`` (the
  criteria over hyperparameter draws), ``fb-integrated-variance`` and ``fb-max-variance`` (on the
  mixture). Their labels are scored with the *same ExactGP* as every other strategy (``rmse``),
  and with the fully Bayesian GP itself (``model_rmse``, ``model_nlpd``); a fit's convergence is
  kept (``r_hat_max``, ``divergences``).
* ``integrated-variance-restarts``: integrated variance selected with an ExactGP whose
  hyperparameters are fitted from 5 starts (``ExactGP(restarts=5)``: the default values, then 4
  draws of the priors, the largest marginal likelihood kept); scored like the fully Bayesian ones.
* ``integrated-variance-warp``: integrated variance selected with an ExactGP that learns a
  Kumaraswamy warping of each input (``ExactGP(input_warping=True)``); scored like the fully
  Bayesian ones (``model_rmse`` is the warped GP's own error); ``random-warp``: Random's labels,
  with the warped GP's own error in ``model_rmse`` (the reference of the warped GP's own curve).
* An MLP ``nn.Sequential`` of linear layers, retrained from scratch on the labels at every step:
  the peers ``lcmd-ll`` and ``lcmd-grad`` (bmdal_reg's LCMD-TP with the last-layer kernel, and
  with the gradient kernel sketched to 512 random features; Holzmüller et al. 2023, "A framework
  and benchmark for deep batch active learning for regression"). Their labels are scored with the
  *same ExactGP* as every other strategy (column ``rmse``), and with the MLP itself
  (``net_rmse``, compared with the MLP trained on Random's labels).
* MC dropout (classification, digits): ``random``, ``bald``, ``batchbald``, ``stochastic-bald``
  (power sampling of BALD, Kirsch et al. 2023); the peers ``baal-bald`` and ``baal-batchbald``
  (baal's heuristics on the same network's ``[N, C, K]`` probabilities).

Peers are skipped with a note when their package is not installed (``make peers``).

Suites (``--suite``): ``quick`` (3 seeds, 20 initial labels, batches of 20 up to 100), ``standard``
(the 13 UCI sets, diabetes and heat; 5 seeds; pools of 2,000; 10 initial labels, batches of 10 up
to 150; the variance criteria, ``auto``, bmdal_reg's LCMD-TP and B-QBC over NUTS draws, run
last) and ``full`` (5 seeds, pools of 5,000, 300 labels). ``--resume`` keeps the finished units of
``--json`` and runs the others, so a long suite can be run in parts; each record keeps its wall
time (``wall_s``).

The overview table gives, per strategy, the geometric-mean RMSE ratio to Random over the UCI sets
(each set weighted equally, seeds resampled within each set for the 95 % interval), its wins, ties
and losses set by set (95 % paired intervals), and the sets where the interval lies above 1.

Summary per (data set, strategy), over seeds: RMSE (or accuracy) and NLPD (or NLL) at fixed
budgets; the area under the log-RMSE curve (mean of log error over the label range, trapezoid
rule); the geometric-mean ratio of error to Random over the curve (paired by seed and step,
initial design excluded; error = RMSE, or 1 − accuracy); seconds fitting and acquiring per run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore", module="bmdal_reg")  # its deprecated-indexing and backward-hook warnings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import across_sets_interval, paired_ratio_interval, say, verdict  # noqa: E402

FULLY_BAYESIAN = ("fb-qbmgp", "fb-bqbc", "fb-hyper-bald", "fb-hellinger", "fb-integrated-variance", "fb-max-variance")
#: strategies run with a variant of the ExactGP: (its options, the criterion). Hyperparameters fitted
#: from several starts (the default values, then 4 draws of the priors; the largest marginal
#: likelihood kept), or a learned input warping
GP_VARIANTS = {"integrated-variance-restarts": (dict(restarts=5), "integrated-variance"),
               "integrated-variance-warp": (dict(input_warping=True), "integrated-variance"),
               "random-warp": (dict(input_warping=True), "random")}
REGRESSION_GP = ("random", "max-variance", "integrated-variance", "joint-information", "auto", "lcmd", "kmeanspp",
                 "botorch-nipv", "lcmd-ll", "lcmd-grad", *FULLY_BAYESIAN, *GP_VARIANTS)
#: NUTS settings of the fb- strategies: 2 chains × 64 draws thinned to 16, warm-up 128 (32 warm)
FB_NUTS = dict(num_samples=64, warmup=128, warm_warmup=32, thinning=8, num_chains=2)
CLASSIFICATION = ("random", "bald", "batchbald", "stochastic-bald", "baal-bald", "baal-batchbald")
PEERS = {"botorch-nipv": "botorch", "lcmd-ll": "bmdal_reg", "lcmd-grad": "bmdal_reg",
         "baal-bald": "baal", "baal-batchbald": "baal"}
SKLEARN_SETS = ("diabetes", "digits")
SIMULATORS = ("heat",)

#: suite name -> settings. The quick suite is sized to take under 15 minutes single-threaded on a
#: shared 2-core machine: batches of 20 (5 GP fits per run), max-variance and joint information
#: only in the full suite, BoTorch's NIPV (30 s per run on a 277-point pool) on one seed.
SUITES: dict[str, dict[str, Any]] = {
    "quick": dict(datasets="uci,diabetes,digits,heat", seeds=3, max_pool=2000, budget=100, q=20, initial=20,
                  strategies="random,integrated-variance,lcmd-ll,lcmd-grad,botorch-nipv,"
                             "bald,batchbald,stochastic-bald,baal-bald,baal-batchbald",
                  class_budget=100, class_q=10, class_initial=20, botorch_max_pool=300, botorch_seeds=1,
                  budgets="40,60,100"),
    # between quick and full: 13 UCI sets + diabetes + heat, 5 seeds, 10 random labels then
    # batches of 10 up to 150 (15 GP fits per run); measured at 89 minutes over 2 Dask workers
    # (49 for the six GP and MLP strategies, 40 for B-QBC over NUTS draws). A second fully
    # Bayesian criterion (fb-integrated-variance, about 60 s a run) would add 40 more: name it
    # with --strategies to run it.
    "standard": dict(datasets="uci,diabetes,heat", seeds=5, max_pool=2000, budget=150, q=10, initial=10,
                     strategies="random,max-variance,integrated-variance,joint-information,auto,lcmd-ll,fb-bqbc",
                     class_budget=150, class_q=10, class_initial=10, botorch_max_pool=0, botorch_seeds=0,
                     budgets="20,50,100,150"),
    "full": dict(datasets="uci,diabetes,digits,heat", seeds=5, max_pool=5000, budget=300, q=10, initial=20,
                 strategies="random,max-variance,integrated-variance,joint-information,lcmd-ll,lcmd-grad,"
                            "botorch-nipv,bald,batchbald,stochastic-bald,baal-bald,baal-batchbald",
                 class_budget=300, class_q=10, class_initial=20, botorch_max_pool=500, botorch_seeds=5,
                 budgets="50,100,200,300"),
}


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def task_of(dataset: str) -> str:
    return "classification" if dataset == "digits" else "regression"


def strategies_for(dataset: str, strategies: list[str]) -> list[str]:
    allowed = CLASSIFICATION if task_of(dataset) == "classification" else REGRESSION_GP
    return [s for s in strategies if s in allowed]


# -- data ----------------------------------------------------------------------------------------
def load(unit: dict[str, Any]):
    """The problem of a unit: a :class:`~bayesal.problems.DatasetProblem` (inputs standardised
    with the pool's statistics, labels hidden in its pool) for regression, or ``(pool, X_test
    [n, 64], y_test [n])`` for digits. The split and pool subsample depend on the seed only."""
    from bayesal import Pool
    from bayesal.problems import DatasetProblem, make_problem

    name, seed, max_pool = unit["dataset"], unit["seed"], unit["max_pool"]
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        perm = np.random.default_rng(1000 + seed).permutation(len(X))
        test, pool = perm[:500], perm[500:]
        return Pool(X[pool] / 16.0, y[pool].astype(float), bounds=[[0.0] * 64, [1.0] * 64]), X[test] / 16.0, y[test]
    if name == "diabetes":
        from sklearn.datasets import load_diabetes

        X, y = load_diabetes(return_X_y=True)
        return DatasetProblem.from_arrays(X, y, test_fraction=0.25, seed=seed, name="diabetes")
    if name == "heat":
        problem = make_problem("heat")
        X = problem.space.sample(max_pool, seed=seed, method="uniform")
        X_test, y_test = problem.test_set()
        return DatasetProblem(X, problem.evaluate(X), X_test, y_test, name="heat", standardize_inputs=False)
    return make_problem(f"uci-{name}", data_dir=unit.get("data_dir"), split=seed % 10, max_pool=max_pool, seed=seed)


# -- the MLP shared by the bmdal_reg peers -------------------------------------------------------
def fit_mlp(X: torch.Tensor, y: torch.Tensor, seed: int, hidden: int = 64, epochs: int = 300) -> torch.nn.Sequential:
    """An ``nn.Sequential`` of linear layers (d → 64 → 64 → 1, SiLU) fitted by full-batch Adam to
    standardised labels; ``X: [n, d]``, ``y: [n, 1]``. Returns the network with its label scale
    attached (``net.y_mean``, ``net.y_std``)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.SiLU(),
                                  torch.nn.Linear(hidden, hidden), torch.nn.SiLU(), torch.nn.Linear(hidden, 1))
    X, y = X.float(), y.float()
    mu, sd = y.mean(0), y.std(0).clamp_min(1e-8)
    target = (y - mu) / sd
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    for _ in range(epochs):
        opt.zero_grad()
        loss = (net(X) - target).pow(2).mean()
        loss.backward()
        opt.step()
    net.y_mean, net.y_std = mu, sd
    return net


def mlp_rmse(net, X_test: torch.Tensor, y_test: torch.Tensor) -> float:
    with torch.no_grad():
        pred = net(X_test.float()) * net.y_std + net.y_mean
    return float((pred.double() - y_test).pow(2).mean().sqrt())


def lcmd_select(net, X_train: torch.Tensor, X_pool: torch.Tensor, y_train: torch.Tensor, q: int, kernel: str,
                seed: int = 0):
    """bmdal_reg's LCMD-TP batch of q pool rows (indices into ``X_pool: [N, d]``); ``seed`` seeds
    the random sketch of the gradient kernel (bmdal_reg draws it from torch's global generator)."""
    if not hasattr(np, "Inf"):  # bmdal_reg 3.0.2 still uses np.Inf, removed in NumPy 2
        np.Inf = np.inf
    from bmdal_reg.bmdal.algorithms import select_batch
    from bmdal_reg.bmdal.feature_data import TensorFeatureData

    data = {"train": TensorFeatureData(X_train.float()), "pool": TensorFeatureData(X_pool.float())}
    transforms = [("rp", [512])] if kernel == "grad" else []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        idx, _ = select_batch(batch_size=q, models=[net], data=data, y_train=y_train.float(), base_kernel=kernel,
                              kernel_transforms=transforms, selection_method="lcmd", sel_with_train=True)
    return idx.long()


def botorch_nipv_select(surrogate, X_pool: torch.Tensor, q: int):
    """BoTorch's qNegIntegratedPosteriorVariance over the unlabelled pool ``X_pool: [N, d]``
    (integration points: the same pool), maximised by sequential greedy ``optimize_acqf_discrete``."""
    from botorch.acquisition.active_learning import qNegIntegratedPosteriorVariance
    from botorch.optim import optimize_acqf_discrete

    acq = qNegIntegratedPosteriorVariance(surrogate.model, mc_points=X_pool)
    chosen, _ = optimize_acqf_discrete(acq, q=q, choices=X_pool, max_batch_size=64, unique=True)
    return torch.cdist(chosen, X_pool).argmin(-1)


# -- one unit ------------------------------------------------------------------------------------
def initial_indices(n: int, k: int, seed: int) -> torch.Tensor:
    """The same random initial design for every strategy of one (data set, seed)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(10_007 * seed + 1))[:k]


def run_unit(unit: dict[str, Any]) -> dict[str, Any]:
    """Run one (dataset, strategy, seed) learning curve; returns a JSON-able record.

    ``unit`` keys: dataset, strategy, seed, budget, q, initial, max_pool, data_dir, botorch_max_pool.
    The record repeats the unit and adds ``curve``: one dict per step with ``n_labels``, ``rmse``,
    ``nlpd`` (or ``accuracy``, ``nll``), ``fit_s``, ``acq_s`` (and ``net_rmse`` for the MLP runs),
    or ``skipped`` with the reason.
    """
    torch.set_num_threads(unit.get("threads", 1))
    strategy, seed = unit["strategy"], unit["seed"]
    if strategy in PEERS and not have(PEERS[strategy]):
        return {**unit, "skipped": f"{PEERS[strategy]} not installed (make peers)"}
    if task_of(unit["dataset"]) == "classification":
        return {**unit, "curve": _run_classification(unit)}
    return _run_regression(unit)


def _run_regression(unit):
    from bayesal import ActiveLearner, ExactGP
    from bayesal.metrics import evaluate

    strategy, seed, q = unit["strategy"], unit["seed"], unit["q"]
    problem = load(unit)
    pool = problem.space
    if strategy == "botorch-nipv" and len(pool) > unit["botorch_max_pool"]:
        return {**unit, "skipped": f"pool of {len(pool)} > --botorch-max-pool {unit['botorch_max_pool']}"}
    X_test, y_test = problem.test_set()
    budget = min(unit["budget"], len(pool))
    bayesal_acq = strategy not in PEERS
    fully_bayesian = strategy in FULLY_BAYESIAN
    if fully_bayesian:
        from bayesal import FullyBayesianGP

        surrogate, acquisition = FullyBayesianGP(seed=seed, **FB_NUTS), strategy[len("fb-"):]
    elif strategy in GP_VARIANTS:
        options, acquisition = GP_VARIANTS[strategy]
        surrogate = ExactGP(seed=seed, **options)
    else:
        surrogate, acquisition = ExactGP(seed=seed), strategy if bayesal_acq else "random"
    learner = ActiveLearner(pool, surrogate=surrogate, acquisition=acquisition, seed=seed, test_set=(X_test, y_test))
    with_net = strategy in ("random", "lcmd-ll", "lcmd-grad")
    idx = initial_indices(len(pool), unit["initial"], seed)
    start = time.perf_counter()
    learner.tell(None, pool.reveal(idx), indices=idx)
    acq_s, curve = time.perf_counter() - start, []
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a ConvergenceWarning is kept in the record instead
            fit_s = learner.fit()
        net_s = 0.0
        record = {"n_labels": learner.n_labels, "acq_s": acq_s, **learner.evaluate()}
        if fully_bayesian or strategy in GP_VARIANTS:  # the labels scored by the same ExactGP as every other strategy
            record.update(model_rmse=record["rmse"], model_nlpd=record["nlpd"])
            if fully_bayesian:
                diag = learner.surrogate.fit_diagnostics()
                record.update(r_hat_max=diag["r_hat_max"], divergences=diag["divergences"])
            record.update(evaluate(ExactGP(seed=seed).fit(learner.X, learner.y, bounds=pool.bounds), X_test, y_test))
        if with_net:
            start = time.perf_counter()
            net = fit_mlp(learner.X, learner.y, seed)
            net_s = time.perf_counter() - start
            record["net_rmse"] = mlp_rmse(net, X_test, y_test)
        record["fit_s"] = fit_s + net_s
        curve.append(record)
        if learner.n_labels >= budget:
            break
        size = min(q, budget - learner.n_labels)
        start = time.perf_counter()
        if bayesal_acq:
            chosen = learner.ask(size).indices
        else:
            avail = pool.available
            if strategy == "botorch-nipv":
                local = botorch_nipv_select(learner.surrogate, pool.X[avail], size)
            else:
                local = lcmd_select(net, learner.X, pool.X[avail], learner.y, size, strategy.split("-")[1],
                                    seed=10_007 * seed + learner.n_labels)
            chosen = avail[local]
        acq_s = time.perf_counter() - start
        learner.tell(None, pool.reveal(chosen), indices=chosen)
    return {**unit, "curve": curve}


def _run_classification(unit):
    from bayesal import BALD, ActiveLearner, BatchBALD, MCDropoutNet, Random, StochasticBatch

    strategy, seed, q = unit["strategy"], unit["seed"], unit["q"]
    pool, X_test, y_test = load(unit)
    net = MCDropoutNet(num_classes=10, hidden=(64,), dropout=0.25, num_samples=20, max_epochs=150,
                       batch_size=256, holdout=0.0, lr=3e-3, seed=seed)
    acquisitions = {"random": Random(), "bald": BALD(), "batchbald": BatchBALD(), "stochastic-bald": BALD()}
    selector = StochasticBatch(mode="power") if strategy == "stochastic-bald" else "auto"
    learner = ActiveLearner(pool, surrogate=net, acquisition=acquisitions.get(strategy, Random()), selector=selector,
                            seed=seed, test_set=(X_test, y_test))
    idx = initial_indices(len(pool), unit["initial"], seed)
    learner.tell(None, pool.reveal(idx), indices=idx)
    acq_s, curve = 0.0, []
    while True:
        fit_s = learner.fit()
        curve.append({"n_labels": learner.n_labels, "fit_s": fit_s, "acq_s": acq_s, **learner.evaluate()})
        if learner.n_labels >= unit["budget"]:
            return curve
        size = min(q, unit["budget"] - learner.n_labels)
        start = time.perf_counter()
        if strategy in acquisitions:
            chosen = learner.ask(size).indices
        else:
            avail = pool.available
            probs = learner.surrogate.posterior(pool.X[avail]).samples  # [K, N, C]
            p_nck = probs.permute(1, 2, 0).contiguous().numpy()
            from baal.active.heuristics import BALD as BaalBALD, BatchBALD as BaalBatchBALD

            if strategy == "baal-bald":
                ranks = BaalBALD().get_ranks(p_nck)[0]
            else:
                with torch.random.fork_rng():  # baal samples label configurations from torch's global generator
                    torch.manual_seed(10_007 * seed + learner.n_labels)
                    ranks = BaalBatchBALD(num_samples=size, num_draw=50).get_ranks(p_nck)[0]
            chosen = avail[torch.as_tensor(np.array(ranks[:size], copy=True), dtype=torch.long)]
        acq_s = time.perf_counter() - start
        learner.tell(None, pool.reveal(chosen), indices=chosen)


# -- the plan ------------------------------------------------------------------------------------
def units(datasets: list[str], strategies: list[str], seeds: int, settings: dict[str, Any],
          data_dir: str | None) -> list[dict[str, Any]]:
    """Every (dataset, strategy, seed) unit, as JSON-able dicts (the input of :func:`run_unit`)."""
    out = []
    for dataset in datasets:
        cls = task_of(dataset) == "classification"
        for strategy in strategies_for(dataset, strategies):
            for seed in range(min(seeds, settings.get("botorch_seeds", seeds)) if strategy == "botorch-nipv" else seeds):
                out.append({
                    "dataset": dataset, "strategy": strategy, "seed": seed,
                    "surrogate": ("mc-dropout" if cls else "mlp" if strategy.startswith("lcmd") else "exact-gp"),
                    "budget": settings["class_budget" if cls else "budget"], "q": settings["class_q" if cls else "q"],
                    "initial": settings["class_initial" if cls else "initial"], "max_pool": settings["max_pool"],
                    "botorch_max_pool": settings["botorch_max_pool"], "data_dir": data_dir,
                })
    return out


def resolve_datasets(spec: str, data_dir: str | None) -> list[str]:
    from bayesal.problems.data import UCI_DATASETS, uci_available

    out = []
    for name in spec.split(","):
        name = name.strip()
        if name == "uci":
            out += [n for n in UCI_DATASETS if uci_available(n, data_dir)]
        elif name.startswith("uci-"):
            out.append(name[4:])
        elif name:
            out.append(name)
    for name in out:
        if name not in SKLEARN_SETS + SIMULATORS and not uci_available(name, data_dir):
            raise SystemExit(f"learning_curves: error: no data set {name!r} (not a UCI folder in the data "
                             f"directory, nor one of {', '.join(SKLEARN_SETS + SIMULATORS)})")
    return out


# -- summary -------------------------------------------------------------------------------------
def _error(record: dict[str, Any], key: str) -> float | None:
    if key == "accuracy":
        return None if record.get("accuracy") is None else max(1.0 - record["accuracy"], 1e-6)
    return record.get(key)


def _curves(results: list[dict[str, Any]], regression_only: bool = False) -> dict[tuple[str, str], dict[int, list]]:
    """``{(dataset, strategy): {seed: curve}}`` of the finished runs (regression sets only on request)."""
    runs: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for r in results:
        if "curve" in r and not (regression_only and task_of(r["dataset"]) != "regression"):
            runs.setdefault((r["dataset"], r["strategy"]), {})[r["seed"]] = r["curve"]
    return runs


def _log_ratios(runs: dict, dataset: str, strategy: str, reference: str = "random",
                metric: str = "rmse", reference_metric: str | None = None) -> dict[int, list[float]]:
    """``{seed: [log(error / reference's error) per step]}``, paired by seed and step, initial
    design excluded (error: :func:`_error` of ``metric``, the reference's of ``reference_metric``,
    by default the same; steps where either is missing are skipped)."""
    A, B = runs.get((dataset, strategy), {}), runs.get((dataset, reference), {})
    out = {}
    for seed, curve in A.items():
        ref = {s["n_labels"]: _error(s, reference_metric or metric) for s in B.get(seed, [])[1:]}
        logs = [math.log(e / ref[s["n_labels"]]) for s in curve[1:]
                if (e := _error(s, metric)) is not None and ref.get(s["n_labels"]) is not None]
        if logs:
            out[seed] = logs
    return out


def summarise(results: list[dict[str, Any]], budgets: list[int]) -> list[dict[str, Any]]:
    """One row per (dataset, strategy): means over seeds, ratios to Random paired by seed and step."""
    runs = _curves(results)
    rows = []
    for (dataset, strategy), by_seed in runs.items():
        cls = task_of(dataset) == "classification"
        key = "accuracy" if cls else "rmse"
        row = {"dataset": dataset, "strategy": strategy, "seeds": len(by_seed), "metric": key}
        for b in budgets:
            at = [c[i] for c in by_seed.values() for i in range(len(c)) if c[i]["n_labels"] == b]
            if at:
                row[f"{key}@{b}"] = float(np.mean([a[key] for a in at]))
                second = "nll" if cls else "nlpd"
                row[f"{second}@{b}"] = float(np.mean([a[second] for a in at]))
        aucs = []
        for c in by_seed.values():
            n = np.array([s["n_labels"] for s in c], float)
            e = np.log([_error(s, key) for s in c])
            aucs.append(float(np.trapezoid(e, n) / (n[-1] - n[0])) if len(n) > 1 else float(e[0]))
        row["auc_log_error"] = float(np.mean(aucs))
        for metric, label in ((key, "ratio_to_random"), ("net_rmse", "net_ratio_to_random")):
            ratio, low, high = paired_ratio_interval(_log_ratios(runs, dataset, strategy, "random", metric))
            if strategy == "random":  # 1 by construction: no interval to give
                low = high = None
            row[label] = ratio
            if metric == key:
                row["ratio_low"], row["ratio_high"] = low, high
        if not cls:
            finals = [c[-1].get("net_rmse") for c in by_seed.values()]
            row["net_rmse_final"] = float(np.mean(finals)) if None not in finals else None
        row["fit_s"] = float(np.mean([sum(s["fit_s"] for s in c) for c in by_seed.values()]))
        row["acq_s"] = float(np.mean([sum(s["acq_s"] for s in c) for c in by_seed.values()]))
        rows.append(row)
    return rows


#: (strategy, reference) pairs compared head to head when both ran: diversity against variance, the
#: default against the peer (bmdal_reg's LCMD-TP), the fully Bayesian criteria and the restarts
#: against the default
VERSUS = (("lcmd", "integrated-variance"), ("kmeanspp", "integrated-variance"), ("lcmd", "joint-information"),
          ("auto", "lcmd-ll"), ("fb-bqbc", "auto"), ("fb-integrated-variance", "auto"),
          ("integrated-variance-restarts", "integrated-variance"), ("integrated-variance-warp", "integrated-variance"))


#: pairs whose first (or both) RMSEs are a GP variant's own (``model_rmse``), not the shared
#: ExactGP's: (strategy, its metric, reference, the reference's metric). The warped GP with
#: integrated variance against the warped GP on Random's labels (the default criterion where the
#: model warps), the warped GP against the plain one on the same labels (Random's), and what a
#: user switching model gets (warped GP + integrated variance against plain GP + integrated variance)
MODEL_VERSUS = (("integrated-variance-warp", "model_rmse", "random-warp", "model_rmse"),
                ("random-warp", "model_rmse", "random", "rmse"),
                ("integrated-variance-warp", "model_rmse", "integrated-variance", "rmse"))


def _label(strategy: str, metric: str) -> str:
    return f"{strategy} (own GP)" if metric == "model_rmse" else strategy


def versus(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per data set, the ratio of each pair of :data:`VERSUS` and :data:`MODEL_VERSUS` (RMSE of the
    first over the second, paired by seed and step, initial design excluded) with its bootstrap
    interval and verdict."""
    runs = _curves(results, regression_only=True)
    pairs = [(a, "rmse", b, "rmse") for a, b in VERSUS] + list(MODEL_VERSUS)
    out = []
    for dataset in dict.fromkeys(d for d, _ in runs):
        for a, ma, b, mb in pairs:
            if not runs.get((dataset, a)) or not runs.get((dataset, b)):
                continue
            logs = _log_ratios(runs, dataset, a, b, ma, mb)
            ratio, low, high = paired_ratio_interval(logs)
            if ratio is not None:
                out.append({"dataset": dataset, "strategy": _label(a, ma), "reference": _label(b, mb), "ratio": ratio,
                            "low": low, "high": high, "verdict": verdict(low, high), "log_ratios": logs})
    return out


def overview(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per regression strategy: its geometric-mean RMSE ratio to Random over the UCI sets (each set
    weighted equally; stratified bootstrap interval over seeds), the same over every regression
    set, and its wins, ties and losses against Random set by set (95 % intervals)."""
    runs = _curves(results, regression_only=True)
    datasets = list(dict.fromkeys(d for d, _ in runs))
    out = []
    for strategy in dict.fromkeys(s for _, s in runs):
        if strategy == "random":
            continue
        per_set = {d: _log_ratios(runs, d, strategy) for d in datasets if (d, strategy) in runs}
        per_set = {d: v for d, v in per_set.items() if v}
        uci = {d: v for d, v in per_set.items() if d not in SKLEARN_SETS + SIMULATORS}
        verdicts = {d: verdict(*paired_ratio_interval(v)[1:]) for d, v in uci.items()}
        above = [d for d, v in uci.items() if verdicts[d] == "loss"]
        out.append({"strategy": strategy, "uci_sets": len(uci), "uci": across_sets_interval(uci),
                    "all_sets": len(per_set), "all": across_sets_interval(per_set),
                    "wins": sum(v == "win" for v in verdicts.values()),
                    "ties": sum(v == "tie" for v in verdicts.values()), "losses": len(above), "above_1": above})
    return out


def overview_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""

    def ci(t):
        r, lo, hi = t
        return "—" if r is None else f"{r:.3f}" + ("" if lo is None else f" [{lo:.3f}, {hi:.3f}]")

    lines = ["| strategy | UCI sets | geometric-mean ratio to Random over the UCI sets [95 % CI] | wins / ties / losses "
             "(UCI) | sets with the interval above 1 | all regression sets | their geometric-mean ratio |",
             "|---|---:|---:|:---:|---|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['strategy']} | {r['uci_sets']} | {ci(r['uci'])} | {r['wins']} / {r['ties']} / "
                     f"{r['losses']} | {', '.join(r['above_1']) or 'none'} | {r['all_sets']} | {ci(r['all'])} |")
    return "\n".join(lines) + "\n"


def matrix_markdown(rows: list[dict[str, Any]]) -> str:
    """Regression sets × strategies: each strategy's RMSE ratio to Random with its 95 % interval,
    ``+`` where the interval lies below 1 (a win), ``−`` where above (a loss)."""
    sel = [r for r in rows if task_of(r["dataset"]) == "regression" and r["strategy"] != "random"]
    if not sel:
        return ""
    strategies = list(dict.fromkeys(r["strategy"] for r in sel))
    by = {(r["dataset"], r["strategy"]): r for r in sel}
    lines = ["| data set | " + " | ".join(strategies) + " |", "|---|" + "---:|" * len(strategies)]
    for dataset in dict.fromkeys(r["dataset"] for r in sel):
        cells = []
        for s in strategies:
            r = by.get((dataset, s))
            if r is None or r["ratio_to_random"] is None:
                cells.append("—")
                continue
            mark = {"win": " +", "loss": " −"}.get(verdict(r.get("ratio_low"), r.get("ratio_high")), "")
            ci = "" if r.get("ratio_low") is None else f" [{r['ratio_low']:.2f}, {r['ratio_high']:.2f}]"
            cells.append(f"{r['ratio_to_random']:.3f}{ci}{mark}")
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _f(x, fmt="{:.3g}"):
    return "—" if x is None else fmt.format(x)


def versus_markdown(pairs: list[dict[str, Any]]) -> str:
    """The head-to-head table of :func:`versus` and its win / tie / loss count per pair."""
    if not pairs:
        return ""
    lines = ["| data set | strategy | against | RMSE ratio [95 % CI] | verdict |", "|---|---|---|---:|:---:|"]
    for p in pairs:
        ci = "" if p["low"] is None else f" [{p['low']:.3f}, {p['high']:.3f}]"
        lines.append(f"| {p['dataset']} | {p['strategy']} | {p['reference']} | {p['ratio']:.3f}{ci} | {p['verdict']} |")
    lines.append("")
    for a, b in dict.fromkeys((p["strategy"], p["reference"]) for p in pairs):
        sel = [p for p in pairs if (p["strategy"], p["reference"]) == (a, b)]
        count = {v: sum(p["verdict"] == v for p in sel) for v in ("win", "tie", "loss")}
        uci = {p["dataset"]: p["log_ratios"] for p in sel if p["dataset"] not in SKLEARN_SETS + SIMULATORS}
        geo = ""
        if len(uci) > 1:
            r, lo, hi = across_sets_interval(uci)
            geo = f"; over the {len(uci)} UCI sets {r:.3f} [{lo:.3f}, {hi:.3f}]"
        lines.append(f"{a} against {b}: {count['win']} wins, {count['tie']} ties, {count['loss']} losses "
                     f"over {len(sel)} data sets{geo}.")
    return "\n".join(lines) + "\n"


def markdown(rows: list[dict[str, Any]], budgets: list[int]) -> str:
    """Two tables: the detailed one (every dataset × strategy), and a per-UCI-set headline of the
    best bayesal strategy against LCMD."""
    lines = []
    for cls in (False, True):
        sel = [r for r in rows if (task_of(r["dataset"]) == "classification") == cls]
        if not sel:
            continue
        m1, m2 = ("accuracy", "nll") if cls else ("rmse", "nlpd")
        head = ["data set", "strategy", "seeds"] + [f"{m1} @{b}" for b in budgets] + [f"{m2} @{b}" for b in budgets]
        head += ["AUC log " + ("error" if cls else "RMSE"), "ratio to Random [95 % CI]", "verdict"]
        if not cls:
            head += ["MLP RMSE (final)", "MLP ratio to Random"]
        head += ["fit s", "acq s"]
        lines += ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
        for r in sel:
            cells = [r["dataset"], r["strategy"], str(r["seeds"])]
            cells += [_f(r.get(f"{m1}@{b}")) for b in budgets] + [_f(r.get(f"{m2}@{b}")) for b in budgets]
            ci = ("" if r.get("ratio_low") is None else
                  f" [{_f(r['ratio_low'], '{:.3f}')}, {_f(r['ratio_high'], '{:.3f}')}]")
            cells += [_f(r["auc_log_error"]), _f(r["ratio_to_random"], "{:.3f}") + ci,
                      verdict(r.get("ratio_low"), r.get("ratio_high")) if r["strategy"] != "random" else ""]
            if not cls:
                cells += [_f(r.get("net_rmse_final")), _f(r.get("net_ratio_to_random"), "{:.3f}")]
            cells += [_f(r["fit_s"], "{:.1f}"), _f(r["acq_s"], "{:.2f}")]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    head_rows = headline(rows)
    if head_rows:
        lines += ["| data set | best bayesal strategy | its ratio to Random | LCMD-TP ll: ratio (GP / MLP) | "
                  "LCMD-TP grad: ratio (GP / MLP) | below 1 |", "|---|---|---:|---:|---:|:---:|"]
        for h in head_rows:
            lines.append(f"| {h['dataset']} | {h['best']} | {_f(h['best_ratio'], '{:.3f}')} | "
                         f"{_f(h['lcmd_ll'], '{:.3f}')} / {_f(h['lcmd_ll_net'], '{:.3f}')} | "
                         f"{_f(h['lcmd_grad'], '{:.3f}')} / {_f(h['lcmd_grad_net'], '{:.3f}')} | "
                         f"{'yes' if h['best_ratio'] is not None and h['best_ratio'] < 1 else 'no'} |")
        below = [h for h in head_rows if h["best_ratio"] is not None and h["best_ratio"] < 1]
        uci = [h for h in head_rows if h["dataset"] not in SKLEARN_SETS + SIMULATORS]
        n_uci = sum(1 for h in below if h in uci)
        lines += ["", f"Best bayesal strategy below Random on {len(below)} of {len(head_rows)} regression sets "
                      f"({n_uci} of {len(uci)} UCI sets)."]
    return "\n".join(lines) + "\n"


def headline(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per regression data set: the bayesal strategy with the lowest ratio to Random, and LCMD's."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        if task_of(dataset) == "classification":
            continue
        by = {r["strategy"]: r for r in rows if r["dataset"] == dataset}
        ours = [r for s, r in by.items() if s not in PEERS and s != "random" and r["ratio_to_random"] is not None]
        if not ours:
            continue
        best = min(ours, key=lambda r: r["ratio_to_random"])
        get = lambda s, k: by[s][k] if s in by else None  # noqa: E731
        out.append({"dataset": dataset, "best": best["strategy"], "best_ratio": best["ratio_to_random"],
                    "lcmd_ll": get("lcmd-ll", "ratio_to_random"), "lcmd_ll_net": get("lcmd-ll", "net_ratio_to_random"),
                    "lcmd_grad": get("lcmd-grad", "ratio_to_random"),
                    "lcmd_grad_net": get("lcmd-grad", "net_ratio_to_random")})
    return out


def read_results(path: str) -> dict[str, Any]:
    """A ``--json`` file, plain or gzipped (``.gz``: how the committed suite tables are kept)."""
    if str(path).endswith(".gz"):
        import gzip

        with gzip.open(path, "rt") as fh:
            return json.load(fh)
    return json.loads(Path(path).read_text())


def _key(unit: dict[str, Any]) -> tuple:
    """What identifies a unit's result: its data set, strategy, seed and sizes."""
    return tuple(unit.get(k) for k in ("dataset", "strategy", "seed", "budget", "q", "initial", "max_pool"))


def _timed_unit(unit: dict[str, Any]) -> tuple[dict[str, Any], float]:
    t = time.perf_counter()
    return run_unit(unit), time.perf_counter() - t


def execute(plan: list[dict[str, Any]], executor: str = "inprocess", workers: int = 2,
            cluster: str | None = None):
    """Run the units of ``plan``, yielding ``(unit, record, seconds)`` as each one finishes.

    ``executor="inprocess"`` runs them one after another; ``"dask"`` submits every unit to a Dask
    cluster (a ``LocalCluster`` of ``workers`` single-threaded processes, or the scheduler at
    ``cluster``), this module being sent to the workers, and yields in order of completion. The
    units are independent and seeded, so the records do not depend on where they ran.
    """
    if executor == "inprocess":
        for unit in plan:
            record, seconds = _timed_unit(unit)
            yield unit, record, seconds
        return
    from dask.distributed import Client, LocalCluster, as_completed

    local = None if cluster else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                              dashboard_address=None)
    client = Client(cluster or local)
    try:
        client.upload_file(__file__)  # the workers import this module to unpickle run_unit
        import learning_curves as module  # by module name, so that tasks pickle by reference

        futures = {client.submit(module._timed_unit, unit, pure=False): unit for unit in plan}
        for future in as_completed(futures):
            record, seconds = future.result()
            yield futures[future], record, seconds
    finally:
        client.close()
        if local is not None:
            local.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=sorted(SUITES), default="quick")
    p.add_argument("--datasets", default=None, help="comma-separated: UCI names, 'uci' (all found), diabetes, digits, heat")
    p.add_argument("--strategies", default=None, help="comma-separated strategy names (see the module docstring)")
    p.add_argument("--data-dir", default=None, help="folder laid out like ../shared/data/uci")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--budget", type=int, default=None, help="labels per regression run, initial design included")
    p.add_argument("--max-pool", type=int, default=None, help="pool subsample size")
    p.add_argument("--json", default=None, help="write settings, every run's curve and the summary here")
    p.add_argument("--markdown", default=None, help="write the markdown tables here (also printed to stderr)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--executor", choices=("inprocess", "dask"), default="inprocess",
                   help="where the runs execute: one after another here, or spread over a Dask cluster")
    p.add_argument("--workers", type=int, default=2, help="--executor dask: LocalCluster worker processes")
    p.add_argument("--cluster", default=None, metavar="tcp://HOST:PORT",
                   help="--executor dask: connect to this scheduler instead of starting a LocalCluster")
    p.add_argument("--resume", action="store_true",
                   help="keep the finished units of --json and run only the others (same suite and settings)")
    p.add_argument("--summarise", default=None, metavar="JSON",
                   help="print the tables of an earlier --json file (complete or interrupted) and exit")
    args = p.parse_args(argv)
    if args.summarise:
        saved = read_results(args.summarise)
        rows = summarise(saved["runs"], saved["meta"]["budgets"])
        table = markdown(rows, saved["meta"]["budgets"]) + "\n" + matrix_markdown(rows) + "\n"
        table += overview_markdown(overview(saved["runs"])) + "\n" + versus_markdown(versus(saved["runs"]))
        print(table)
        if args.markdown:
            Path(args.markdown).write_text(table)
        return 0

    settings = dict(SUITES[args.suite])
    for key in ("seeds", "budget", "max_pool"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.budget is not None:
        settings["class_budget"] = args.budget
    top = max(settings["budget"], settings["class_budget"])
    budgets = sorted({int(b) for b in settings["budgets"].split(",") if int(b) <= top}
                     | {settings["budget"], settings["class_budget"]})
    datasets = resolve_datasets(args.datasets or settings["datasets"], args.data_dir)
    strategies = [s.strip() for s in (args.strategies or settings["strategies"]).split(",") if s.strip()]
    unknown = [s for s in strategies if s not in REGRESSION_GP + CLASSIFICATION]
    if unknown:
        raise SystemExit(f"learning_curves: error: unknown strategies {unknown}; known: "
                         f"{', '.join(dict.fromkeys(REGRESSION_GP + CLASSIFICATION))}")
    plan = units(datasets, strategies, settings["seeds"], settings, args.data_dir)
    for u in plan:
        u["threads"] = args.threads
    say(f"{len(plan)} runs: {len(datasets)} data sets, strategies {', '.join(strategies)}, {settings['seeds']} seeds")
    meta = {"suite": args.suite, "settings": settings, "datasets": datasets, "strategies": strategies,
            "budgets": budgets, "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
                       f"{args.threads} thread(s) per run"}
    if args.executor == "dask":
        meta["machine"] += f", Dask ({args.cluster or f'LocalCluster of {args.workers} worker processes'})"
    start, results = time.perf_counter(), []
    if args.resume and args.json and os.path.exists(args.json):
        done = {_key(r): r for r in read_results(args.json)["runs"]}
        results = [done[_key(u)] for u in plan if _key(u) in done]
        plan = [u for u in plan if _key(u) not in done]
        say(f"--resume: {len(results)} runs kept from {args.json}, {len(plan)} to run")
    # the slow NUTS units last, one fully Bayesian strategy after the other (in the order named)
    plan.sort(key=lambda u: strategies.index(u["strategy"]) if u["strategy"] in FULLY_BAYESIAN else -1)
    for i, (u, r, seconds) in enumerate(execute(plan, args.executor, args.workers, args.cluster)):
        r = {**r, "wall_s": seconds}
        results.append(r)
        last = r["curve"][-1] if "curve" in r else {}
        err = last.get("rmse", last.get("accuracy"))
        say(f"[{i + 1}/{len(plan)}] {u['dataset']} {u['strategy']} seed {u['seed']}: "
            + (f"skipped ({r['skipped']})" if "skipped" in r else f"final {_f(err)} in {seconds:.1f} s"))
        if args.json:  # every finished unit is kept, so an interrupted run can still be summarised
            with open(args.json, "w") as fh:
                json.dump({"meta": {**meta, "complete": False}, "runs": results}, fh)
    total = time.perf_counter() - start
    rows = summarise(results, budgets)
    table = (markdown(rows, budgets) + "\n" + matrix_markdown(rows) + "\n" + overview_markdown(overview(results)) + "\n"
             + versus_markdown(versus(results)))
    say(table)
    unit_s = sum(r.get("wall_s", 0.0) for r in results)
    say(f"total {total:.0f} s this invocation; {unit_s:.0f} unit-seconds over all {len(results)} runs")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": {**meta, "seconds": total, "unit_seconds": unit_s, "complete": True}, "summary": rows, "runs": results}, fh, indent=1)
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
