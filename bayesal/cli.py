"""The ``bayesal`` command line.

    bayesal run [--problem P] [--model M] [--strategy S] [--budget N] [--batch-size q]
                [--initial n0] [--seed s] [--out DIR]
    bayesal list

Bad names or values print one ``bayesal: error: ...`` line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

__all__ = ["main"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line instead of usage + message
        raise _UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bayesal", description="Bayesian active learning: choose which label to buy next.")
    sub = parser.add_subparsers(dest="command", metavar="{run,list}", parser_class=_Parser)

    run = sub.add_parser("run", help="run an active-learning campaign on a benchmark problem")
    run.add_argument("--problem", default="branin", help="problem name (see `bayesal list`; default branin)")
    run.add_argument("--model", default="exact-gp", help="surrogate model (default exact-gp)")
    run.add_argument("--strategy", default="joint-information", help="acquisition strategy (default joint-information)")
    run.add_argument("--selector", default="auto", help="auto, topk or greedy (pools only)")
    run.add_argument("--budget", type=int, default=40, help="labels to buy, initial design included (default 40)")
    run.add_argument("--batch-size", "-q", type=int, default=4, dest="q", help="points per batch (default 4)")
    run.add_argument("--initial", type=int, default=None, help="initial random design size (default d+1)")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--noise-std", type=float, default=0.0, help="label noise added by analytic problems")
    run.add_argument("--pool-size", type=int, default=None,
                     help="discretise a box problem into a pool of this many Sobol candidates")
    run.add_argument("--data-dir", default=None, help="folder of UCI data sets (default ../shared/data/uci)")
    run.add_argument("--out", default="runs/latest", help="output folder (default runs/latest)")
    run.add_argument("--baseline", default=None,
                     help="also run this strategy (e.g. random) with the same seed and budget, for comparison")
    run.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    lst = sub.add_parser("list", help="list problems, models and strategies")
    lst.add_argument("--data-dir", default=None, help="folder of UCI data sets")
    return parser


def _cmd_list(args) -> int:
    from .acquisition import ACQUISITIONS
    from .models import MODELS
    from .problems import problem_names

    print("problems:   " + ", ".join(problem_names(args.data_dir)))
    print("models:     " + ", ".join(MODELS))
    print("strategies: " + ", ".join(ACQUISITIONS))
    return 0


def _cmd_run(args) -> int:
    from .acquisition import make_acquisition
    from .errors import OracleFailed
    from .loop import ActiveLearner
    from .models import make_model
    from .plotting import plot_learning_curves
    from .problems import make_problem
    from .select import SELECTORS
    from .spaces import Box
    from .validation import check_count

    if args.selector not in SELECTORS:
        raise _UsageError(f"argument --selector: expected one of {', '.join(SELECTORS)}, got {args.selector!r}")
    check_count(args.budget, "--budget")
    check_count(args.q, "--batch-size")
    if args.initial is not None:
        check_count(args.initial, "--initial", minimum=0, maximum=args.budget, maximum_reason="the budget")
    if args.noise_std < 0:
        raise _UsageError(f"argument --noise-std: expected a non-negative number, got {args.noise_std}")
    make_model(args.model)  # fail on a bad name before any work
    make_acquisition(args.strategy)
    if args.baseline is not None:
        make_acquisition(args.baseline)
    problem = make_problem(args.problem, noise_std=args.noise_std, seed=args.seed, data_dir=args.data_dir)
    space = problem.space
    if args.pool_size is not None:
        check_count(args.pool_size, "--pool-size")
        if not isinstance(space, Box):
            raise _UsageError(f"argument --pool-size: problem {args.problem} already is a pool")
        space = space.to_pool(args.pool_size, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {k: v for k, v in vars(args).items() if k != "command"}
    if not args.quiet:
        print(f"bayesal: {args.strategy} on {problem.name} ({problem.description}), {args.model}, "
              f"budget {args.budget}, batches of {args.q}, seed {args.seed}", file=sys.stderr)
    start = time.perf_counter()

    def campaign(strategy: str, space):
        learner = ActiveLearner(space, surrogate=args.model, acquisition=strategy, selector=args.selector,
                                seed=args.seed, test_set=problem.test_set())
        try:
            learner.run(problem, budget=args.budget, q=args.q, initial=args.initial, progress=not args.quiet)
        except OracleFailed as exc:
            return learner.history, str(exc)
        return learner.history, None

    records, failure = campaign(args.strategy, space)
    (out / "results.json").write_text(json.dumps(records, indent=1))
    curves = {args.strategy: records}
    baseline = None
    if args.baseline is not None and failure is None:
        fresh = make_problem(args.problem, noise_std=args.noise_std, seed=args.seed, data_dir=args.data_dir).space
        if args.pool_size is not None:
            fresh = fresh.to_pool(args.pool_size, seed=args.seed)
        baseline, failure = campaign(args.baseline, fresh)
        (out / "baseline_results.json").write_text(json.dumps(baseline, indent=1))
        curves[f"{args.baseline} (baseline)"] = baseline
    (out / "config.json").write_text(json.dumps({**config, "seconds": time.perf_counter() - start,
                                                 "failed": failure}, indent=1))
    if records:
        plot_learning_curves(curves, out / "learning_curve.png", title=f"{problem.name}: {args.model}")
    if failure is not None:
        print(f"bayesal: oracle failed: {failure}; results so far in {out}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{'labels':>7} {'rmse':>10} {'nlpd':>9} {'mean std':>10} {'fit s':>7} {'acq s':>7}")
        for r in records:
            print(f"{r['n_labels']:>7} {r['rmse']:>10.4g} {r['nlpd']:>9.3f} {r['mean_std']:>10.4g} "
                  f"{r['fit_s']:>7.2f} {r['acq_s']:>7.2f}")
        if baseline:
            ratio = records[-1]["rmse"] / baseline[-1]["rmse"]
            print(f"final RMSE {records[-1]['rmse']:.4g} ({args.strategy}) vs {baseline[-1]['rmse']:.4g} "
                  f"({args.baseline}): ratio {ratio:.2f}")
        print(f"wrote {out / 'results.json'} and {out / 'learning_curve.png'} "
              f"({time.perf_counter() - start:.1f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayesal`` command: parses ``argv`` (default ``sys.argv[1:]``), runs, returns the
    exit status (2 on bad input)."""
    from .errors import BayesalError

    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "run":
            return _cmd_run(args)
        parser.print_help()
        return 2
    except (_UsageError, BayesalError) as exc:
        print(f"bayesal: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayesal: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
