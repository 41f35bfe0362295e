"""The ``bayesal`` command line.

    bayesal run [--problem P] [--model M] [--strategy S] [--budget N | --cost-budget C] [--batch-size q]
                [--initial n0] [--initial-design D] [--seed s] [--out DIR]
                [--store FILE.db [--executor inprocess|process|dask] [--workers N] [--cluster tcp://HOST:PORT]
                 [--async] [--timeout S] [--retries R] [--lease S]] [--config FILE.toml] [--quiet | --verbose]
    bayesal resume --store FILE.db [--executor ...] [--workers N] [--cluster ...] [--lease S] [--out DIR]
    bayesal work --store FILE.db [--executor ...] [--idle-timeout S] [--lease S]
    bayesal status --store FILE.db [--json]
    bayesal report --store FILE.db --out DIR
    bayesal list

Bad names or values, a bad config file or a bad store print one ``bayesal: error: ...`` line
and exit with status 2; a campaign stopped by too many failed experiments exits with status 1.
Flags are never abbreviated (``--pool`` is an error, not ``--pool-size``). A ``--oracle
module:function`` is imported and called once on a valid point of the space (a pool's first
candidate, a box's centre) before ``run --store`` creates the store and before ``resume``
continues an unfinished campaign; that call is not stored, and its failure exits with status 2.
Only one ``run``/``resume`` process proposes for a store at a time: a second one exits with
status 2 naming the holder, until the holder's heartbeat is older than its ``--lease`` (or, on
the same host, its process is gone).

A multi-fidelity problem (``--problem heat-mf``, ``forrester-mf``, ...: the ``*-mf`` names of
``bayesal list``) runs on ``--cost-budget C`` (nominal cost, in target-fidelity evaluations)
instead of ``--budget``, with the models ``co-kriging`` (default) / ``botorch-mf-gp`` and the
strategies ``mf-integrated-variance`` (default) / ``mf-information``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import time
import tomllib
from pathlib import Path

from .acquisition import DEPRECATED_NAMES
from .errors import InvalidInput

__all__ = ["main"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # --pool is not --pool-size: a misspelt flag is an error
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one clear line instead of usage + message
        raise _UsageError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bayesal", description="Bayesian active learning: choose which label to buy next.")
    sub = parser.add_subparsers(dest="command", metavar="{run,resume,work,status,report,list}", parser_class=_Parser)

    run = sub.add_parser("run", help="run an active-learning campaign on a benchmark problem")
    _setting_arguments(run)
    run.add_argument("--out", default="runs/latest", help="output folder (default runs/latest)")
    run.add_argument("--baseline", default=None,
                     help="also run this strategy (e.g. random) with the same seed and budget, for comparison")
    run.add_argument("--store", default=None,
                     help="run through this SQLite campaign store (crash-safe; continue with `bayesal resume`)")
    run.add_argument("--config", default=None, help="read settings from a TOML file (flags given here win)")
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


_KIND_TYPES = {"count": int, "natural": int, "int": int, "number": float, "seconds": float, "name": str, "text": str}


def _setting_arguments(parser) -> None:
    """One flag per campaign setting of :data:`bayesal.loop.config.SETTINGS` (its default, type and help)."""
    from .loop.config import SETTINGS

    for s in SETTINGS:
        default = "" if s.default is None else f"; default {str(s.default).lower() if s.kind == 'bool' else s.default}"
        help_text = s.help + default + (" (needs --store)" if s.store_only else "")
        flags = [s.cli_flag] + (["-q"] if s.name == "q" else [])
        if s.kind == "bool":
            parser.add_argument(*flags, action="store_true", dest=s.name, default=s.default, help=help_text)
        else:
            parser.add_argument(*flags, type=_KIND_TYPES[s.kind], dest=s.name, default=s.default, help=help_text)


def _settings(args) -> dict:
    """The campaign settings given on the command line (and in --config), validated by the one
    table of :mod:`bayesal.loop.config` (which fills in the defaults that depend on the kind of
    problem); an invalid one is reported under its flag."""
    from .errors import UnknownName
    from .loop.config import SETTINGS, check_config

    settings = {s.name: getattr(args, s.name) for s in SETTINGS}
    try:
        settings = check_config(settings)
    except UnknownName:
        raise
    except InvalidInput as exc:
        flag = next((s.cli_flag for s in SETTINGS if s.name == exc.argument), exc.argument)
        raise _UsageError(f"invalid {flag}: expected {exc.expected}, got {exc.got}") from None
    if settings["strategy"] in DEPRECATED_NAMES:
        print(f"bayesal: note: strategy {settings['strategy']!r} is deprecated: use "
              f"{DEPRECATED_NAMES[settings['strategy']]}", file=sys.stderr)
    return settings


def _executor_arguments(parser) -> None:
    parser.add_argument("--executor", default="inprocess", choices=("inprocess", "process", "dask"),
                        help="where experiments run (default inprocess)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes for --executor process / dask")
    parser.add_argument("--cluster", default=None,
                        help="address of a running Dask scheduler (tcp://HOST:PORT) for --executor dask")
    parser.add_argument("--lease", type=float, default=60.0,
                        help="seconds of silence after which a proposer or worker process counts as dead (its "
                             "running experiments are requeued, its campaign can be resumed); default 60")


def _verbosity_arguments(parser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    group.add_argument("--verbose", action="store_true", help="one line per experiment and step on stderr")




def _load_config(parser, args, argv) -> argparse.Namespace:
    """Re-parse ``bayesal run`` with the TOML file's settings as defaults (flags win)."""
    from .loop.config import SETTINGS

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
    # TOML keys may be a setting's name or its flag (batch-size for q, async for asynchronous)
    aliases = {s.cli_flag[2:].replace("-", "_"): s.name for s in SETTINGS}
    values = {}
    for key, value in data.items():
        dest = key.replace("-", "_")
        dest = aliases.get(dest, dest)
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

    from .acquisition import MF_ACQUISITIONS
    from .models import MF_MODELS
    from .problems import MF_PROBLEMS

    print("problems:   " + ", ".join(n for n in problem_names(args.data_dir) if n not in MF_PROBLEMS))
    print("models:     " + ", ".join(MODELS))
    print("strategies: auto (the default: integrated-variance for a Gaussian surrogate, bait-f for network "
          "draws, batchbald for a classifier), " + ", ".join(ACQUISITIONS))
    from .kernels import KERNELS, TRANSFORMS
    from .selection import KERNEL_METHODS

    print("kernel batch strategies (with --kernel, --transform): " + ", ".join(KERNEL_METHODS))
    print("kernels:    " + ", ".join(KERNELS) + "; transforms: " + ", ".join(TRANSFORMS) + ", tp, p (mode)")
    print("multi-fidelity problems (run with --cost-budget): " + ", ".join(MF_PROBLEMS))
    print("multi-fidelity models:     " + ", ".join(MF_MODELS))
    print("multi-fidelity strategies: " + ", ".join(MF_ACQUISITIONS))
    return 0


def _budget_words(settings: dict) -> str:
    if settings.get("cost_budget") is not None:
        return f"cost budget {settings['cost_budget']:g}"
    return f"budget {settings['budget']}"


def _cmd_run(args) -> int:
    settings = _settings(args)
    if args.store is not None:
        return _cmd_run_store(args, settings)
    from .loop.config import STORE_ONLY, setting

    used = [k for k in STORE_ONLY if settings[k] != setting(k).default]
    used += [k for k in ("executor", "workers", "cluster", "lease")
             if getattr(args, k) != {"executor": "inprocess", "lease": 60.0}.get(k)]
    if used:
        flag = setting(used[0]).cli_flag if used[0] in STORE_ONLY else "--" + used[0]
        raise _UsageError(f"argument {flag}: needs a campaign store (add --store FILE.db)")
    from .acquisition import make_acquisition
    from .errors import OracleFailed
    from .loop import run_campaign
    from .plotting import plot_learning_curves
    from .problems import make_problem

    if args.baseline is not None:
        make_acquisition(args.baseline)
    problem = make_problem(settings["problem"], noise_std=settings["noise_std"], seed=settings["seed"],
                           data_dir=settings["data_dir"])
    from .loop.campaign import check_budget_fits

    check_budget_fits(problem, settings)
    out = _out_folder(args.out)
    config = {**{k: v for k, v in vars(args).items() if k != "command"}, **settings}
    if not args.quiet:
        print(f"bayesal: {settings['strategy']} on {problem.name} ({problem.description}), {settings['model']}, "
              f"{_budget_words(settings)}, batches of {args.q}, seed {args.seed}", file=sys.stderr)
    start = time.perf_counter()

    in_memory = {k: v for k, v in settings.items() if k not in STORE_ONLY + ("problem", "strategy")}

    def campaign(strategy: str):
        try:
            _, records = run_campaign(settings["problem"], strategy=strategy, progress=not args.quiet, **in_memory)
        except OracleFailed as exc:
            return exc.history, str(exc)
        return records, None

    records, failure = campaign(settings["strategy"])
    _write_outputs(out, {"results.json": json.dumps(records, indent=1)})
    curves = {settings["strategy"]: records}
    baseline = None
    if args.baseline is not None and failure is None:
        baseline, failure = campaign(args.baseline)
        _write_outputs(out, {"baseline_results.json": json.dumps(baseline, indent=1)})
        curves[f"{args.baseline} (baseline)"] = baseline
    _write_outputs(out, {"config.json": json.dumps({**config, "seconds": time.perf_counter() - start,
                                                    "failed": failure}, indent=1)})
    if records:
        plot_learning_curves(curves, out / "learning_curve.png", title=f"{problem.name}: {settings['model']}")
    if failure is not None:
        print(f"bayesal: oracle failed: {failure}; results so far in {out}", file=sys.stderr)
        return 1
    if not args.quiet:
        mf = settings["cost_budget"] is not None
        print(f"{'labels':>7} {'rmse':>10} {'nlpd':>9} {'mean std':>10} {'fit s':>7} {'acq s':>7}"
              + (f" {'cost':>9}" if mf else ""))
        for r in records:
            print(f"{r['n_labels']:>7} {r['rmse']:>10.4g} {r['nlpd']:>9.3f} {r['mean_std']:>10.4g} "
                  f"{r['fit_s']:>7.2f} {r['acq_s']:>7.2f}" + (f" {r['cumulative_cost']:>9.4g}" if mf else ""))
        if baseline:
            ratio = records[-1]["rmse"] / baseline[-1]["rmse"]
            print(f"final RMSE {records[-1]['rmse']:.4g} ({settings['strategy']}) vs {baseline[-1]['rmse']:.4g} "
                  f"({args.baseline}): ratio {ratio:.2f}")
        print(f"wrote {out / 'results.json'} and {out / 'learning_curve.png'} "
              f"({time.perf_counter() - start:.1f} s)")
    return 0


def _check_lease(args) -> None:
    if not (args.lease > 0 and args.lease != float("inf")):
        raise _UsageError(f"argument --lease: expected a positive number of seconds, got {args.lease}")


def _out_folder(path, flag: str = "--out") -> Path:
    """The output folder, made now (one clear error when it cannot be: under a file, read-only)."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".bayesal-write-check"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise _UsageError(f"argument {flag}: cannot write to {out} ({exc.strerror or exc})") from None
    return out


def _write_outputs(out: Path, files: dict) -> None:
    try:
        for name, text in files.items():
            (out / name).write_text(text)
    except OSError as exc:
        raise _UsageError(f"argument --out: cannot write to {out} ({exc.strerror or exc})") from None


def _make_executor(args):
    from .loop.executors import make_executor

    _check_lease(args)
    if args.cluster is not None and args.executor != "dask":
        raise _UsageError("argument --cluster: needs --executor dask")
    if args.workers is not None and args.workers < 1:
        raise _UsageError(f"argument --workers: expected a positive number, got {args.workers}")
    return make_executor(args.executor, args.workers, args.cluster)


def _cmd_run_store(args, settings: dict) -> int:
    from .loop import Campaign
    from .problems import make_problem

    if args.baseline is not None:
        raise _UsageError("argument --baseline: not available with --store (run the baseline as its own campaign)")
    oracle = settings.pop("oracle")
    problem = make_problem(settings["problem"], seed=settings["seed"], data_dir=settings["data_dir"])  # before a cluster starts
    if args.out is not None:
        _out_folder(args.out)
    executor = _make_executor(args)
    try:
        if oracle is not None:  # one call, not stored, on the executor, before anything is stored
            _check_new_oracle(problem, oracle, settings, executor)
        campaign = Campaign.create(args.store, oracle=oracle, executor=executor, progress=not args.quiet,
                                   verbose=args.verbose, lease=args.lease, **settings)
    except BaseException:
        executor.close()
        raise
    if not args.quiet:
        print(f"bayesal: {settings['strategy']} on {args.problem}, {settings['model']}, {_budget_words(settings)}, "
              f"batches of {args.q}, seed {args.seed}, store {args.store}, executor {executor.name} "
              f"({executor.max_workers} worker(s))", file=sys.stderr)
    return _drive(campaign, executor, args)


def _check_new_oracle(problem, oracle: str, settings: dict, executor=None) -> None:
    """Import and call a ``--oracle module:function`` once on a valid point of the campaign's space,
    where the experiments will run (``executor``: a cluster's workers import it themselves)."""
    from .loop.campaign import campaign_space, check_oracle
    from .loop.executors import CallableOracleSpec
    from .problems import MultiFidelityProblem

    if isinstance(problem, MultiFidelityProblem):
        return  # refused by check_config already
    space = campaign_space(problem, {**settings, "oracle": oracle})
    check_oracle(CallableOracleSpec(oracle), space, problem.test_set()[1].shape[-1], settings["timeout"],
                 executor=executor)


def _resume_with_executor(args):
    """The stored campaign reopened with the executor the flags ask for (closed again on failure)."""
    from .loop import Campaign, CampaignStore

    CampaignStore.open(args.store).close()  # a bad store fails before a cluster is started
    executor = _make_executor(args)
    try:
        campaign = Campaign.resume(args.store, executor=executor, progress=not args.quiet, verbose=args.verbose,
                                   lease=args.lease)
    except BaseException:
        executor.close()
        raise
    return campaign, executor


def _cmd_resume(args) -> int:
    campaign, executor = _resume_with_executor(args)
    if not args.quiet:
        counts = campaign.store.counts()
        if campaign.multifidelity:
            spent, _ = campaign.cost_spent()
            done = f"{counts['done']} done at a nominal cost of {spent:.4g} of {campaign.cost_budget:g}"
        else:
            done = f"{counts['done']} of {campaign.budget} done"
        print(f"bayesal: resuming {args.store}: {done}, "
              f"{counts['running']} running and {counts['pending']} pending go back to the queue", file=sys.stderr)
    return _drive(campaign, executor, args, probe=not campaign._complete(campaign.store.counts()))


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


def _drive(campaign, executor, args, probe: bool = False) -> int:
    from .errors import OracleFailed
    from .plotting import plot_learning_curves

    start = time.perf_counter()
    failure = None
    try:
        with campaign, executor:
            if args.out is not None:
                _out_folder(args.out)
            if probe:
                # after the lease (a second proposer is refused before it calls anything), before any experiment
                campaign.take_lease()
                try:
                    campaign.check_oracle()
                except BaseException:
                    campaign.release_lease()
                    raise
            try:
                records = campaign.run()
            except OracleFailed as exc:
                records, failure = campaign.store.records(), str(exc)
            status = campaign.status()
    except KeyboardInterrupt:
        print(f"bayesal: interrupted; continue with `bayesal resume --store {args.store}`", file=sys.stderr)
        return 130
    if args.out is not None:  # checked before the campaign started (_out_folder)
        out = Path(args.out)
        _write_outputs(out, {"results.json": json.dumps(records, indent=1),
                             "config.json": json.dumps({**status["campaign"], "store": str(args.store),
                                                        "seconds": time.perf_counter() - start, "failed": failure},
                                                       indent=1)})
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

    with CampaignStore.open(args.store, readonly=True) as store:
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
    if status.get("multifidelity"):
        print(f"{'cost':<10} {status['cost_spent']:>6.4g}   of a cost budget of {status['cost_budget']:g} (nominal, "
              f"{status['cost_reserved']:.4g} reserved by outstanding experiments), "
              f"{'complete' if status['complete'] else 'in progress'}, {status['steps']} steps")
        for name, cost, n in zip(status["fidelity_names"], status["fidelity_costs"], status["fidelity_counts"]):
            print(f"{'level':<10} {n:>6}   done at {name} (cost {cost:.4g} each)")
    else:
        print(f"{'budget':<10} {status['budget']:>6}   {'complete' if status['complete'] else 'in progress'}, "
              f"{status['steps']} steps, oracle cost {status['cost']:.3g}")
    last = status["last"]
    if last is not None and last.get("rmse") is not None:
        print(f"latest     {last['n_labels']} labels: test RMSE {last['rmse']:.4g}, NLPD {last['nlpd']:.3f}")
    hyper = last.get("hyperparameters") if last is not None else None
    if hyper:
        from .models.bayesian import diagnostic_lines

        for line in diagnostic_lines(hyper):
            print(line)
    for e in status["errors"]:
        print(f"error      experiment {e['id']} ({e['state']}): {e['error']}")
    return 0



def _cmd_report(args) -> int:
    from .report import write_report

    _out_folder(args.out)
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
        raise _UsageError("a command is required: one of run, resume, work, status, report, list "
                          "(see `bayesal --help`)")
    except (_UsageError, BayesalError) as exc:
        print(f"bayesal: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:  # the file system or the store's database said no
        print(f"bayesal: error: {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug of bayesal: still one line (BAYESAL_DEBUG=1 shows the traceback)
        if os.environ.get("BAYESAL_DEBUG"):
            raise
        print(f"bayesal: error: internal error, please report it ({type(exc).__name__}: "
              f"{' '.join(str(exc).split())}; BAYESAL_DEBUG=1 shows where)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayesal: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
