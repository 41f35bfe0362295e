"""SparseGP on a large UCI set against an ExactGP on a 5,000-point subset (issue 4).

    python benchmarks/sparse_gp_uci.py --dataset protein [--data-dir DIR] [--json OUT]

Fits ``SparseGP`` on the whole training split (protein: 41,157 points, 9 inputs; 2,048 k-means
inducing points, hyperparameters from an exact GP on 1,500 points, optimal q(u) over all the data)
and ``ExactGP`` on a random 5,000-point subset of the same split; reports test RMSE and NLPD of
both in the units of y, and the fit times, as one JSON object on stdout. ``--elbo`` trains the
sparse model's hyperparameters on the ELBO instead (under ``--max-seconds``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from bayesal import ExactGP, SparseGP
from bayesal.metrics import nlpd, rmse
from bayesal.problems import load_uci


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--dataset", default="protein")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--subset", type=int, default=5000, help="ExactGP training subset size")
    p.add_argument("--num-inducing", type=int, default=2048)
    p.add_argument("--hyper-subset", type=int, default=1500, help="exact-GP subset that sets the sparse model's hyperparameters")
    p.add_argument("--elbo", action="store_true", help="train the sparse model's hyperparameters on the ELBO")
    p.add_argument("--max-seconds", type=float, default=480.0, help="SparseGP training time limit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None)
    args = p.parse_args()

    problem = load_uci(args.dataset, data_dir=args.data_dir)
    X, y = problem.space.X, problem.space.reveal(torch.arange(len(problem.space)))
    X_test, y_test = problem.test_set()
    result = {"dataset": args.dataset, "n_train": X.shape[0], "n_test": X_test.shape[0], "dim": X.shape[1]}
    print(f"{args.dataset}: {X.shape[0]} training points, {X_test.shape[0]} test points", file=sys.stderr)

    start = time.perf_counter()
    sparse = SparseGP(num_inducing=args.num_inducing, hyperparameters="elbo" if args.elbo else "subset",
                      subset_size=args.hyper_subset, batch_size=1024, lr=0.02, max_epochs=500,
                      max_seconds=args.max_seconds, seed=args.seed).fit(X, y)
    post = sparse.posterior(X_test)
    result["sparse"] = {"fit_s": round(time.perf_counter() - start, 1), "mode": sparse.hyperparameters,
                        "history": sparse.history if not args.elbo else sparse.history[-1:],
                        "rmse": rmse(post.mean, y_test), "nlpd": nlpd(post.mean, post.predictive_variance, y_test),
                        "num_inducing": args.num_inducing}
    print(f"SparseGP: {result['sparse']}", file=sys.stderr)

    gen = torch.Generator().manual_seed(args.seed)
    subset = torch.randperm(X.shape[0], generator=gen)[: args.subset]
    start = time.perf_counter()
    exact = ExactGP(seed=args.seed).fit(X[subset], y[subset])
    post = exact.posterior(X_test)
    result["exact_subset"] = {"fit_s": round(time.perf_counter() - start, 1), "n": args.subset,
                              "rmse": rmse(post.mean, y_test), "nlpd": nlpd(post.mean, post.predictive_variance, y_test)}
    print(f"ExactGP on {args.subset}: {result['exact_subset']}", file=sys.stderr)
    result["sparse_rmse_no_worse"] = result["sparse"]["rmse"] <= result["exact_subset"]["rmse"]
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
