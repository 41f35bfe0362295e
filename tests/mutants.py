"""Mutation check for the tests that guard a statistical or failure-handling claim.

    python tests/mutants.py                 # each guarded test unmutated, then under its mutant
    python tests/mutants.py --only NAME...  # some of them (names as listed by --list)
    python tests/mutants.py --no-baseline   # skip the unmutated runs

Each mutant is a deliberately broken version of the library code that a test guards (a sign
swapped, a failure never recorded, an experiment never requeued, ...), applied in memory to a
fresh ``pytest`` subprocess: the library files are never touched. The edit is a source-level
replacement inside one function, compiled and bound in place of the original (and of every
``from ... import`` alias of it in ``bayesal``), in *every* Python process of the run (CLI
workers, Dask workers too): the script puts a ``sitecustomize.py`` on ``PYTHONPATH`` that reads
``BAYESAL_MUTANT`` at interpreter start and calls :func:`apply`.

A mutant is *killed* when its test fails (pytest exit status 1), *survived* when the test still
passes; any other status (the mutant did not apply, a collection error, a timeout) is reported as
an error. The exit status is nonzero unless every unmutated test passes and every mutant is
killed. This file has no ``test_`` functions and its name does not match ``test_*.py``, so pytest
does not collect it.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name -> (the tests it must make fail, what is broken, [(module, qualname, old, new), ...])
MUTANTS: dict[str, tuple[list[str], str, list[tuple[str, str, str, str]]]] = {
    "never-requeue-stale": (
        ["tests/test_cli_campaign.py::"
         "test_a_worker_killed_mid_experiment_has_it_requeued_after_the_lease_and_finished_elsewhere"],
        "requeue_stale never finds a silent worker (its cutoff is minus infinity)",
        [("bayesal.loop.store", "CampaignStore.requeue_stale",
          "cutoff = time.time() - float(lease)", "cutoff = float('-inf')")]),
    "box-optimised-outside": (
        ["tests/test_select.py::test_continuous_selection_is_inside_the_box"],
        "the box optimiser searches a box 0.5 wider on every side (the final clamp still hides it)",
        [("bayesal.selection.continuous", "select_continuous",
          "optimize_acqf(acqf, bounds=bounds,",
          "optimize_acqf(acqf, bounds=torch.stack([bounds[0] - 0.5, bounds[1] + 0.5]),")]),
    "retries-ignored": (
        ["tests/test_campaign.py::test_an_oracle_failing_one_call_in_five_still_completes_the_budget"],
        "the campaign ignores `retries`: every failed attempt is final",
        [("bayesal.loop.campaign", "Campaign._collect",
          "max_attempts=self.retries + 1", "max_attempts=1")]),
    "design-sign-swapped": (
        ["tests/test_design_sequential.py::test_continuous_sequential_design_stays_in_the_box"],
        "optimize_design maps its unit-cube variables to lower - span * x (a sign swapped)",
        [("bayesal.design.optimize", "optimize_design",
          "final = (lo + span * x).detach()", "final = (lo - span * x).detach()")]),
    "failures-requeued-forever": (
        ["tests/test_dask.py::test_campaign_on_dask_completes_with_a_failing_oracle"],
        "a failed attempt is always put back in the queue: no experiment is ever recorded as failed",
        [("bayesal.loop.store", "CampaignStore.fail",
          "CASE WHEN attempts < ? THEN", "CASE WHEN attempts < ? + 1000000 THEN")]),
    "joint-information-greedy-is-topk": (
        ["tests/test_statistical.py::test_greedy_joint_information_batches_beat_topk_max_variance"],
        "greedy conditioning skipped: each greedy step scores the candidates on the unconditioned "
        "variance, so the batch is the top-k of the marginal score",
        [("bayesal.selection.greedy", "GreedyConditioning.condition",
          "self.var = (self.var - v_new.pow(2)).clamp_min(0.0)", "self.var = self.var.clamp_min(0.0)")]),
    "ivr-gain-constant": (
        ["tests/test_variance_learning.py"],
        "integrated variance reduction scores every candidate 0: the greedy selector takes the "
        "first free rows of the (randomly ordered) pool, i.e. a random design",
        [("bayesal.acquisition.variance", "_ReferenceScorer.scores",
          "gain = sq.clamp_min(0.0) /", "gain = 0.0 * sq.clamp_min(0.0) /")]),
    "variance-box-sign-swapped": (
        ["tests/test_statistical.py::test_branin_box_variance_strategies_beat_random_on_rmse"],
        "the box optimiser maximises minus the acquisition (it seeks the least informative points)",
        [("bayesal.selection.continuous", "_BoTorchAcquisition.forward",
          "return self.acquisition.batch_value(self.surrogate, X)",
          "return -self.acquisition.batch_value(self.surrogate, X)")]),
    "batchbald-takes-first-free": (
        ["tests/test_deep_active_learning.py"],
        "greedy BatchBALD takes the first free row of the (randomly ordered) pool at every step, "
        "i.e. a random design",
        [("bayesal.acquisition.bald", "BatchBALD.select_from_samples",
          "chosen.append(j)", "j = int(torch.nonzero(free)[0]); chosen.append(j)")]),
}


def _resolve(module_name: str, qualname: str):
    module = importlib.import_module(module_name)
    owner = module
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    return module, owner, name, inspect.getattr_static(owner, name)


def _mutate(module_name: str, qualname: str, old: str, new: str) -> None:
    module, owner, name, original = _resolve(module_name, qualname)
    func = original.__func__ if isinstance(original, (staticmethod, classmethod)) else original
    source = textwrap.dedent(inspect.getsource(func))
    if old not in source:
        raise RuntimeError(f"mutant of {module_name}.{qualname}: {old!r} is not in its source")
    namespace: dict = {}
    # compiled in the module's globals, under its own file name, so tracebacks still point there
    exec(compile(source.replace(old, new), inspect.getsourcefile(func), "exec"), module.__dict__, namespace)
    mutated = namespace[name]
    if isinstance(mutated, (staticmethod, classmethod)):  # a decorator in the source was re-applied
        inner = mutated.__func__
    else:
        inner = mutated
    inner.__qualname__, inner.__module__ = func.__qualname__, func.__module__  # pickled by reference
    setattr(owner, name, mutated)
    if owner is module:  # rebind `from module import name` aliases elsewhere in bayesal
        for other in list(sys.modules.values()):
            if getattr(other, "__name__", "").startswith("bayesal") and getattr(other, name, None) is func:
                setattr(other, name, mutated)


def apply(name: str) -> None:
    """Apply the mutant ``name`` in this process."""
    if not MUTANTS[name][2]:
        raise RuntimeError(f"mutant {name} edits nothing")
    for edit in MUTANTS[name][2]:
        _mutate(*edit)


SITECUSTOMIZE = """\
import os
if os.environ.get("BAYESAL_MUTANT"):
    try:
        import importlib.util
        _spec = importlib.util.spec_from_file_location("bayesal_mutants", {path!r})
        _mod = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_mod)
        _mod.apply(os.environ["BAYESAL_MUTANT"])
    except BaseException as exc:  # a mutant that does not apply must not pass for a survivor
        import sys
        print(f"mutants: could not apply {{os.environ['BAYESAL_MUTANT']}}: {{exc!r}}", file=sys.stderr)
        os._exit(97)
"""


def _pytest(tests: list[str], mutant: str | None, site: str, timeout: float) -> tuple[str, float, str]:
    env = {k: v for k, v in os.environ.items() if k != "BAYESAL_MUTANT"}
    env["PYTHONPATH"] = os.pathsep.join([site, str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if mutant is not None:
        env["BAYESAL_MUTANT"] = mutant
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start, ""
    tail = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode == 97 or "could not apply" in proc.stderr:
        return "not applied", time.monotonic() - start, proc.stderr.strip().splitlines()[-1]
    return {0: "passed", 1: "failed"}.get(proc.returncode, f"error {proc.returncode}"), time.monotonic() - start, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(MUTANTS), help="run these mutants only")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated runs")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per pytest run (default 900)")
    args = parser.parse_args(argv)
    if args.list:
        for name, (tests, what, _) in MUTANTS.items():
            print(f"{name}: {what}\n    guards: {' '.join(tests)}")
        return 0
    names = args.only or list(MUTANTS)
    ok = True
    with tempfile.TemporaryDirectory(prefix="bayesal-mutants-") as site:
        Path(site, "sitecustomize.py").write_text(SITECUSTOMIZE.format(path=str(Path(__file__).resolve())))
        for name in names:  # each test unmutated, then under its mutant: results come pair by pair
            tests, what, _ = MUTANTS[name]
            if not args.no_baseline:
                outcome, seconds, tail = _pytest(tests, None, site, args.timeout)
                ok &= outcome == "passed"
                print(f"{'unmutated':>10}  {seconds:6.1f} s  {outcome}: {' '.join(tests)}  ({tail})", flush=True)
            outcome, seconds, tail = _pytest(tests, name, site, args.timeout)
            verdict = {"failed": "killed", "passed": "survived"}.get(outcome, outcome)
            ok &= verdict == "killed"
            print(f"{verdict:>10}  {seconds:6.1f} s  {name}: {what}  ({tail})", flush=True)
    print("all mutants killed" if ok else "FAILED: a test failed unmutated or a mutant survived")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
