"""The ``bayesal`` command line.

    bayesal run [--problem P] [--model M] [--strategy S] [--budget N] [--batch-size q]
                [--initial n0] [--seed s] [--out DIR]
                [--store FILE.db [--executor inprocess|process|dask] [--workers N] [--cluster tcp://HOST:PORT]
                 [--async] [--timeout S] [--retries R]] [--config FILE.toml] [--quiet | --verbose]
    bayesal resume --store FILE.db [--executor ...] [--workers N] [--cluster ...] [--out DIR]
    bayesal work --store FILE.db [--executor ...] [--idle-timeout S]
    bayesal status --store FILE.db [--json]
    bayesal report --store FILE.db --out DIR
    bayesal list

Bad names or values, a bad config file or a bad store print one ``bayesal: error: ...`` line
and exit with status 2; a campaign stopped by too many failed experiments exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

__all__ = ["main"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line instead of usage + message
        raise _UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bayesal", description="Bayesian active learning: choose which label to buy next.")
    sub = parser.add_subparsers(dest="command", metavar="{run,resume,work,status,report,list}", parser_class=_Parser)

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
    run.add_argument("--store", default=None,
                     help="run through this SQLite campaign store (crash-safe; continue with `bayesal resume`)")
    run.add_argument("--config", default=None, help="read settings from a TOML file (flags given here win)")
    run.add_argument("--oracle", default=None,
                     help="label with package.module:function (f(X [1, d]) -> y) instead of the problem (needs --store)")
    run.add_argument("--async", action="store_true", dest="asynchronous",
                     help="keep q experiments in flight; propose each new one conditioned on the pending (needs --store)")
    run.add_argument("--timeout", type=float, default=None, help="seconds before an experiment counts as failed")
    run.add_argument("--retries", type=int, default=0, help="retries of a failed experiment (default 0)")
    run.add_argument("--max-failures", type=int, default=None,
                     help="stop after this many failed experiments (default max(10, 2 x budget))")
    _executor_arguments(run)
    _verbosity_arguments(run)
    parser.run_parser = run

    resume = sub.add_parser("resume", help="continue a stored campaign after a crash or an interruption")
    resume.add_argument("--store", required=True, help="the campaign's SQLite store")
    resume.add_argument("--out", default=None, help="also write results.json and learning_curve.png here")
    _executor_arguments(resume)
    _verbosity_arguments(resume)

    work = sub.add_parser("work", help="evaluate a stored campaign's pending experiments alongside its `run`")
    work.add_argument("--store", required=True, help="the campaign's SQLite store")
    work.add_argument("--idle-timeout", type=float, default=None,
                      help="stop after this many seconds with nothing to do (default: when the campaign is complete)")
    _executor_arguments(work)
    _verbosity_arguments(work)

    status = sub.add_parser("status", help="progress of a stored campaign")
    status.add_argument("--store", required=True, help="the campaign's SQLite store")
    status.add_argument("--json", action="store_true", help="one JSON object instead of a table")

    report = sub.add_parser("report", help="learning, cost, acquisition and calibration plots and an index.html")
    report.add_argument("--store", required=True, help="the campaign's SQLite store")
    report.add_argument("--out", required=True, help="output folder")
    _verbosity_arguments(report)

    lst = sub.add_parser("list", help="list problems, models and strategies")
    lst.add_argument("--data-dir", default=None, help="folder of UCI data sets")
    return parser


def _executor_arguments(parser) -> None:
    parser.add_argument("--executor", default="inprocess", choices=("inprocess", "process", "dask"),
                        help="where experiments run (default inprocess)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes for --executor process / dask")
    parser.add_argument("--cluster", default=None,
                        help="address of a running Dask scheduler (tcp://HOST:PORT) for --executor dask")


def _verbosity_arguments(parser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    group.add_argument("--verbose", action="store_true", help="one line per experiment and step on stderr")


#: settings of `bayesal run` that only a stored campaign supports
_STORE_ONLY = {"oracle": None, "asynchronous": False, "timeout": None, "retries": 0, "max_failures": None,
               "executor": "inprocess", "workers": None, "cluster": None}
_CONFIG_ALIASES = {"batch_size": "q", "async": "asynchronous"}


def _load_config(parser, args, argv) -> argparse.Namespace:
    """Re-parse ``bayesal run`` with the TOML file's settings as defaults (flags win)."""
    path = Path(args.config)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise _UsageError(f"argument --config: no such file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _UsageError(f"argument --config: cannot read {path} ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise _UsageError(f"argument --config: {path} is not valid TOML ({exc})") from None
    if isinstance(data.get("run"), dict):
        data = data["run"]
    run = parser.run_parser
    actions = {a.dest: a for a in run._actions if a.dest not in ("help", "config")}
    values = {}
    for key, value in data.items():
        dest = key.replace("-", "_")
        dest = _CONFIG_ALIASES.get(dest, dest)
        if dest not in actions:
            raise _UsageError(f"config {path}: unknown setting {key!r} (known: {', '.join(sorted(actions))})")
        action = actions[dest]
        if isinstance(action, argparse._StoreTrueAction):
            ok, want = isinstance(value, bool), "true or false"
        elif action.type is int:
            ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif action.type is float:
            ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        else:
            ok, want = isinstance(value, str), "a string"
        if not ok:
            raise _UsageError(f"config {path}: setting {key!r} expected {want}, got {value!r}")
        if action.choices is not None and value not in action.choices:
            raise _UsageError(f"config {path}: setting {key!r} expected one of {', '.join(action.choices)}, got {value!r}")
        values[dest] = value
    run.set_defaults(**values)
    return parser.parse_args(argv)


def _cmd_list(args) -> int:
    from .acquisition import ACQUISITIONS
    from .models import MODELS
    from .problems import problem_names

    print("problems:   " + ", ".join(problem_names(args.data_dir)))
    print("models:     " + ", ".join(MODELS))
    print("strategies: " + ", ".join(ACQUISITIONS))
    return 0


def _cmd_run(args) -> int:
    if args.store is not None:
        return _cmd_run_store(args)
    used = [k for k, default in _STORE_ONLY.items() if getattr(args, k) != default]
    if used:
        flag = "--" + ("async" if used[0] == "asynchronous" else used[0].replace("_", "-"))
        raise _UsageError(f"argument {flag}: needs a campaign store (add --store FILE.db)")
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


def _make_executor(args):
    from .loop.executors import make_executor

    if args.cluster is not None and args.executor != "dask":
        raise _UsageError("argument --cluster: needs --executor dask")
    if args.workers is not None and args.workers < 1:
        raise _UsageError(f"argument --workers: expected a positive number, got {args.workers}")
    return make_executor(args.executor, args.workers, args.cluster)


def _cmd_run_store(args) -> int:
    from .loop import Campaign

    if args.baseline is not None:
        raise _UsageError("argument --baseline: not available with --store (run the baseline as its own campaign)")
    if args.timeout is not None and not args.timeout > 0:
        raise _UsageError(f"argument --timeout: expected a positive number of seconds, got {args.timeout}")
    if args.retries < 0:
        raise _UsageError(f"argument --retries: expected a non-negative number, got {args.retries}")
    settings = dict(problem=args.problem, model=args.model, strategy=args.strategy, selector=args.selector,
                    budget=args.budget, q=args.q, initial=args.initial, seed=args.seed, noise_std=args.noise_std,
                    pool_size=args.pool_size, data_dir=args.data_dir, asynchronous=args.asynchronous,
                    timeout=args.timeout, retries=args.retries, max_failures=args.max_failures)
    from .loop.campaign import _check_config
    from .problems import make_problem

    _check_config(settings)  # every bad setting fails before a store or a cluster is created
    make_problem(args.problem, seed=args.seed, data_dir=args.data_dir)
    executor = _make_executor(args)
    try:
        campaign = Campaign.create(args.store, oracle=args.oracle, executor=executor, progress=not args.quiet,
                                   verbose=args.verbose, **settings)
    except BaseException:
        executor.close()
        raise
    if not args.quiet:
        print(f"bayesal: {args.strategy} on {args.problem}, {args.model}, budget {args.budget}, batches of {args.q}, "
              f"seed {args.seed}, store {args.store}, executor {executor.name} ({executor.max_workers} worker(s))",
              file=sys.stderr)
    return _drive(campaign, executor, args)


def _resume_with_executor(args):
    """The stored campaign reopened with the executor the flags ask for (closed again on failure)."""
    from .loop import Campaign, CampaignStore

    CampaignStore.open(args.store).close()  # a bad store fails before a cluster is started
    executor = _make_executor(args)
    try:
        campaign = Campaign.resume(args.store, executor=executor, progress=not args.quiet, verbose=args.verbose)
    except BaseException:
        executor.close()
        raise
    return campaign, executor


def _cmd_resume(args) -> int:
    campaign, executor = _resume_with_executor(args)
    if not args.quiet:
        counts = campaign.store.counts()
        print(f"bayesal: resuming {args.store}: {counts['done']} of {campaign.budget} done, "
              f"{counts['running']} running and {counts['pending']} pending go back to the queue", file=sys.stderr)
    return _drive(campaign, executor, args)


def _cmd_work(args) -> int:
    if args.idle_timeout is not None and not args.idle_timeout > 0:
        raise _UsageError(f"argument --idle-timeout: expected a positive number of seconds, got {args.idle_timeout}")
    campaign, executor = _resume_with_executor(args)
    try:
        with campaign, executor:
            n = campaign.work(idle_timeout=args.idle_timeout)
    except KeyboardInterrupt:
        print("bayesal: interrupted; the campaign requeues this worker's experiments", file=sys.stderr)
        return 130
    if not args.quiet:
        print(f"bayesal: this worker completed {n} experiment(s)", file=sys.stderr)
    return 0


def _drive(campaign, executor, args) -> int:
    from .errors import OracleFailed
    from .plotting import plot_learning_curves

    start = time.perf_counter()
    failure = None
    try:
        with campaign, executor:
            try:
                records = campaign.run()
            except OracleFailed as exc:
                records, failure = campaign.store.records(), str(exc)
            status = campaign.status()
    except KeyboardInterrupt:
        print(f"bayesal: interrupted; continue with `bayesal resume --store {args.store}`", file=sys.stderr)
        return 130
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(records, indent=1))
        (out / "config.json").write_text(json.dumps({**status["campaign"], "store": str(args.store),
                                                     "seconds": time.perf_counter() - start, "failed": failure},
                                                    indent=1))
        if records:
            plot_learning_curves({status["campaign"]["strategy"]: records}, out / "learning_curve.png",
                                 title=f"{status['campaign']['problem']}: {status['campaign']['model']}")
    if failure is not None:
        print(f"bayesal: campaign stopped: {failure}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{'labels':>7} {'rmse':>10} {'nlpd':>9} {'mean std':>10} {'fit s':>7} {'cost':>9}")
        for r in records:
            if r["rmse"] is None:
                print(f"{r['n_labels']:>7} {'-':>10} {'-':>9} {'-':>10} {r['fit_s']:>7.2f} {r['cost']:>9.3g}")
            else:
                print(f"{r['n_labels']:>7} {r['rmse']:>10.4g} {r['nlpd']:>9.3f} {r['mean_std']:>10.4g} "
                      f"{r['fit_s']:>7.2f} {r['cost']:>9.3g}")
        print(f"{status['done']} done, {status['failed']} failed, in {args.store} "
              f"({time.perf_counter() - start:.1f} s)")
    return 0


def _cmd_status(args) -> int:
    from .loop import CampaignStore, campaign_status

    with CampaignStore.open(args.store) as store:
        status = campaign_status(store)
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    c = status["campaign"]
    print(f"campaign   {c['strategy']} on {c['problem']}, {c['model']}, batches of {c['q']}, seed {c['seed']}"
          f"{' (async)' if c['asynchronous'] else ''}")
    print(f"store      {status['store']} (bayesal {status['bayesal_version']})")
    print(f"{'state':<10} {'count':>6}")
    for state in ("done", "running", "pending", "failed"):
        print(f"{state:<10} {status[state]:>6}")
    print(f"{'budget':<10} {status['budget']:>6}   {'complete' if status['complete'] else 'in progress'}, "
          f"{status['steps']} steps, oracle cost {status['cost']:.3g}")
    last = status["last"]
    if last is not None and last.get("rmse") is not None:
        print(f"latest     {last['n_labels']} labels: test RMSE {last['rmse']:.4g}, NLPD {last['nlpd']:.3f}")
    for e in status["errors"]:
        print(f"error      experiment {e['id']} ({e['state']}): {e['error']}")
    return 0


def _cmd_report(args) -> int:
    from .report import write_report

    index = write_report(args.store, args.out, progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {index}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bayesal`` command: parses ``argv`` (default ``sys.argv[1:]``), runs, returns the
    exit status (2 on bad input)."""
    from .errors import BayesalError

    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "run" and args.config is not None:
            args = _load_config(parser, args, argv if argv is not None else sys.argv[1:])
        commands = {"list": _cmd_list, "run": _cmd_run, "resume": _cmd_resume, "work": _cmd_work,
                    "status": _cmd_status, "report": _cmd_report}
        if args.command in commands:
            return commands[args.command](args)
        parser.print_help()
        return 2
    except (_UsageError, BayesalError) as exc:
        print(f"bayesal: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayesal: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
