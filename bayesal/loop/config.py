"""THE table of campaign settings: names, defaults, types, help and checks, in one place.

:func:`~bayesal.loop.campaign.run_campaign`, :class:`~bayesal.loop.campaign.Campaign` (what a
store holds) and the ``bayesal run`` command line all read :data:`SETTINGS`: the CLI builds its
flags from it (``--batch-size`` for ``q``, ``--async`` for ``asynchronous``), TOML config files
use the same names, and :func:`check_config` validates a set of settings before anything is
stored or started, so a default or a rule changed here changes everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput, UnknownName
from ..problems import is_multifidelity
from ..validation import check_count

__all__ = ["Setting", "SETTINGS", "CAMPAIGN_DEFAULTS", "STORE_ONLY", "check_config", "setting",
           "SINGLE_FIDELITY_DEFAULTS", "MULTI_FIDELITY_DEFAULTS", "multifidelity_initial_counts", "check_initial_cost",
           "COST_TOLERANCE"]

#: a cost within this of the budget is affordable (sums of float costs like 1/64 are not exact)
COST_TOLERANCE = 1e-9
_LARGEST_INT = 2**63 - 1


@dataclass(frozen=True)
class Setting:
    """One campaign setting.

    Attributes:
        name: the Python name (a keyword of ``run_campaign`` and ``Campaign.create``).
        default: its default value.
        kind: ``"name"`` (a registry name), ``"count"`` (an integer ≥ 1), ``"natural"``
            (an integer ≥ 0), ``"int"``,
            ``"number"`` (a float ≥ 0), ``"seconds"`` (a float > 0), ``"bool"`` or ``"text"``.
        help: one line for ``--help``.
        flag: the command-line flag (default ``--`` + name with dashes).
        store_only: only a stored campaign (``--store``) supports it.
        optional: None is allowed (and means "the default rule", said in ``help``).
    """

    name: str
    default: Any
    kind: str
    help: str
    flag: str | None = None
    store_only: bool = False
    optional: bool = False

    @property
    def cli_flag(self) -> str:
        """The command-line flag of this setting."""
        return self.flag or "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> Any:
        """``value`` validated (and normalised: numbers become floats) for this setting."""
        if value is None:
            if self.optional:
                return None
            raise InvalidInput(self.name, f"a value ({self.help})", "None")
        if self.kind in ("name", "text"):
            if not isinstance(value, str):
                raise InvalidInput(self.name, "a name" if self.kind == "name" else "a string", repr(value))
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise InvalidInput(self.name, "true or false", repr(value))
            return value
        if self.kind in ("count", "natural", "int"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(self.name, "an integer", repr(value))
            if self.kind != "int":
                check_count(value, self.name, minimum=1 if self.kind == "count" else 0)
            if abs(value) > _LARGEST_INT:  # seeds and counts are 64-bit integers downstream (torch, SQLite)
                raise InvalidInput(self.name, f"an integer of magnitude at most {_LARGEST_INT}", repr(value))
            return value
        if self.kind in ("number", "seconds"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidInput(self.name, "a number", repr(value))
            ok = value > 0 if self.kind == "seconds" else value >= 0
            if not ok or value != value or value == float("inf"):
                expected = "a positive number of seconds" if self.kind == "seconds" else "a non-negative number"
                raise InvalidInput(self.name, expected, repr(value))
            return float(value)
        raise ValueError(f"unknown setting kind {self.kind!r}")


#: every setting a campaign holds, with its default (the one table: run_campaign, Campaign, CLI)
SETTINGS: tuple[Setting, ...] = (
    Setting("problem", "branin", "name", "problem name (see `bayesal list`)"),
    Setting("model", None, "name", "surrogate model (see `bayesal list`); default exact-gp, or co-kriging for a "
            "multi-fidelity problem (also botorch-mf-gp there)", optional=True),
    Setting("strategy", None, "name", "acquisition strategy (see `bayesal list`); default auto (the strategy measured best for the "
            "model), or "
            "mf-integrated-variance for a multi-fidelity problem (also mf-information there)", optional=True),
    Setting("selector", "auto", "name", "auto, topk, greedy or stochastic (pools only)"),
    Setting("kernel", None, "name", "kernel batch strategies (lcmd, bait-f, kmeanspp, ...): the base kernel, auto, "
            "inputs, gp, samples, ll, grad or badge (default auto)", optional=True),
    Setting("transform", None, "text", "kernel batch strategies: transforms and mode joined by +, e.g. "
            "scale+posterior, tp, none (default: the method's own)", optional=True),
    Setting("budget", None, "count", "labels to buy, initial design included; default 40 (not for a "
            "multi-fidelity problem: --cost-budget limits it)", optional=True),
    Setting("cost_budget", None, "number", "multi-fidelity problems (required there): the nominal cost to spend, "
            "in target-fidelity evaluations, initial design included; never overspent", optional=True),
    Setting("q", 4, "count", "points per batch", flag="--batch-size"),
    Setting("initial", None, "count", "initial design size (default d+1)", optional=True),
    Setting("initial_design", None, "name", "how the initial design is chosen: sobol, maximin or random on a box; "
            "random, kcenter, kmeanspp, typiclust or probcover on a pool; auto (sobol on a box, kcenter on a "
            "pool); default sobol on a box, random on a pool", optional=True),
    Setting("seed", 0, "int", "random seed"),
    Setting("noise_std", 0.0, "number", "label noise added by analytic and multi-fidelity problems"),
    Setting("pool_size", None, "count", "discretise a box problem into a pool of this many Sobol candidates",
            optional=True),
    Setting("n_candidates", None, "count", "multi-fidelity problems: Sobol candidates scored at each step "
            "(default 1024)", optional=True),
    Setting("data_dir", None, "text", "folder of UCI data sets (default ../shared/data/uci)", optional=True),
    Setting("oracle", None, "text", "label with package.module:function (f(X [1, d]) -> y) instead of the problem",
            store_only=True, optional=True),
    Setting("asynchronous", False, "bool", "keep q experiments in flight; propose each new one conditioned on the "
            "pending", flag="--async", store_only=True),
    Setting("timeout", None, "seconds", "seconds before an experiment counts as failed", store_only=True,
            optional=True),
    Setting("retries", 0, "natural", "retries of a failed experiment", store_only=True),
    Setting("max_failures", None, "count", "stop after this many failed experiments (default max(10, 2 x budget); "
            "multi-fidelity: max(10, 2 x cost_budget / the cheapest level's cost))",
            store_only=True, optional=True),
)

_BY_NAME = {s.name: s for s in SETTINGS}

#: name -> default of every campaign setting
CAMPAIGN_DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}

#: what the optional ``model``, ``strategy`` and ``budget`` settings become on a single-fidelity problem
SINGLE_FIDELITY_DEFAULTS: dict[str, Any] = {"model": "exact-gp", "strategy": "auto", "budget": 40}
#: ... and on a multi-fidelity problem (no ``budget`` in labels: ``cost_budget`` limits the campaign)
MULTI_FIDELITY_DEFAULTS: dict[str, Any] = {"model": "co-kriging", "strategy": "mf-integrated-variance"}
# settings a multi-fidelity campaign refuses (value other than the default), with the reason
_NOT_MULTI_FIDELITY = {
    "budget": "no label budget (cost_budget limits a multi-fidelity campaign)",
    "selector": "'auto' (a multi-fidelity step is a cost-aware greedy choice of (x, fidelity) pairs)",
    "pool_size": "no pool (multi-fidelity problems are searched in their box)",
    "initial": "the default nested initial design (2(d+1) points per lower level and d+1 at the target, "
               "reduced together down to 2 until it costs at most half the cost budget)",
    "oracle": "the problem's own oracle (a user oracle would need the fidelity)",
    "initial_design": "the default nested initial design (Sobol points on a box, random rows on a pool)",
    "asynchronous": "synchronous batches (the multi-fidelity learner does not condition on pending experiments)",
    "kernel": "no kernel (multi-fidelity strategies are not kernel batch methods)",
    "transform": "no kernel transform (multi-fidelity strategies are not kernel batch methods)",
}

#: the settings only a stored campaign supports
STORE_ONLY: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.store_only)


def setting(name: str) -> Setting:
    """The :class:`Setting` called ``name``."""
    return _BY_NAME[name]


def check_config(config: dict[str, Any]) -> dict[str, Any]:
    """Every setting of ``config`` validated, the others filled in from :data:`SETTINGS`.

    Names must exist in their registries (model, strategy, selector, initial_design; whether the
    initial design suits the problem's space is checked with the space, by
    :func:`~bayesal.loop.campaign.check_budget_fits` and the learner), counts must be positive,
    ``initial`` at most the budget. The optional ``model``, ``strategy`` and ``budget`` are filled
    in by the kind of problem (:data:`SINGLE_FIDELITY_DEFAULTS`, :data:`MULTI_FIDELITY_DEFAULTS`);
    a multi-fidelity problem needs ``cost_budget`` and one of its own models and strategies (the
    single-fidelity ones are refused, not mapped, since e.g. ``exact-gp`` cannot model fidelities),
    and ``cost_budget``/``n_candidates`` are refused elsewhere. Anything wrong raises :class:`~bayesal.errors.InvalidInput`
    naming the setting, before anything is stored or started.
    """
    from ..acquisition import make_acquisition
    from ..models import make_model
    from ..selection import INITIAL_DESIGNS, SELECTORS

    unknown = sorted(set(config) - set(_BY_NAME))
    if unknown:
        raise InvalidInput("campaign settings", "keys among " + ", ".join(_BY_NAME), ", ".join(unknown))
    cfg = {name: _BY_NAME[name].check(config.get(name, s.default)) for name, s in _BY_NAME.items()}
    if is_multifidelity(cfg["problem"]):
        return _check_multifidelity(cfg)
    for name in ("cost_budget", "n_candidates"):
        if cfg[name] is not None:
            raise InvalidInput(name, "a multi-fidelity problem (see `bayesal list`: the *-mf problems)",
                               f"the single-fidelity problem {cfg['problem']!r}")
    for name, default in SINGLE_FIDELITY_DEFAULTS.items():
        if cfg[name] is None:
            cfg[name] = default
    make_model(cfg["model"])
    make_acquisition(cfg["strategy"])
    campaign_strategy(cfg)
    if cfg["selector"] not in SELECTORS:
        raise InvalidInput("selector", "one of " + ", ".join(SELECTORS), repr(cfg["selector"]))
    if cfg["initial"] is not None:
        check_count(cfg["initial"], "initial", minimum=1, maximum=cfg["budget"], maximum_reason="the budget")
    if cfg["initial_design"] is not None and cfg["initial_design"] not in INITIAL_DESIGNS:
        raise UnknownName("initial_design", cfg["initial_design"], list(INITIAL_DESIGNS))
    return cfg


def campaign_strategy(cfg: dict[str, Any]):
    """The acquisition a campaign's settings name: the strategy's name, or, when ``kernel`` or
    ``transform`` is set, the :class:`~bayesal.selection.KernelBatch` they configure (refused for
    a strategy that is not a kernel batch method)."""
    if cfg.get("kernel") is None and cfg.get("transform") is None:
        return cfg["strategy"]
    from ..selection.kernel_batch import KERNEL_METHODS, KernelBatch

    if cfg["strategy"] not in KERNEL_METHODS:
        name = "kernel" if cfg.get("kernel") is not None else "transform"
        raise InvalidInput(name, "a kernel batch strategy (" + ", ".join(KERNEL_METHODS) + ")",
                           f"the strategy {cfg['strategy']!r}")
    return KernelBatch(cfg["strategy"], kernel=cfg.get("kernel") or "auto", transform=cfg.get("transform"))


def _check_multifidelity(cfg: dict[str, Any]) -> dict[str, Any]:
    """The checks and defaults of a campaign on a multi-fidelity problem."""
    from ..acquisition import MF_ACQUISITIONS
    from ..models import MF_MODELS

    for name, default in MULTI_FIDELITY_DEFAULTS.items():
        if cfg[name] is None:
            cfg[name] = default
    if cfg["model"] not in MF_MODELS:
        raise InvalidInput("model", f"a multi-fidelity model ({', '.join(MF_MODELS)}) for the multi-fidelity "
                           f"problem {cfg['problem']!r}", repr(cfg["model"]))
    if cfg["strategy"] not in MF_ACQUISITIONS:
        raise InvalidInput("strategy", f"a multi-fidelity strategy ({', '.join(MF_ACQUISITIONS)}) for the "
                           f"multi-fidelity problem {cfg['problem']!r}", repr(cfg["strategy"]))
    if cfg["cost_budget"] is None or not cfg["cost_budget"] > 0:
        raise InvalidInput("cost_budget", f"a positive cost budget for the multi-fidelity problem {cfg['problem']!r} "
                           "(in target-fidelity evaluations)", repr(cfg["cost_budget"]))
    for name, expected in _NOT_MULTI_FIDELITY.items():
        if cfg[name] != _BY_NAME[name].default:
            raise InvalidInput(name, f"{expected} for the multi-fidelity problem {cfg['problem']!r}",
                               repr(cfg[name]))
    from ..problems import make_multifidelity_problem

    check_initial_cost(make_multifidelity_problem(cfg["problem"]), cfg["cost_budget"])  # cheap: no test set
    return cfg


def multifidelity_initial_counts(dim: int, costs, cost_budget: float) -> list[int]:
    """Labels per fidelity level of the nested initial design of a multi-fidelity campaign:
    ``2(d+1)`` at each lower level and ``d+1`` at the target, all reduced together (down to 2)
    until the design costs at most half of ``cost_budget`` (the rule of
    :meth:`~bayesal.loop.multifidelity.MultiFidelityLearner.run`). ``costs``: ``[S]`` per-level costs."""
    costs = [float(c) for c in costs]
    counts = [2 * (dim + 1)] * (len(costs) - 1) + [dim + 1]
    while sum(c * k for c, k in zip(costs, counts)) > 0.5 * cost_budget and max(counts) > 2:
        counts = [max(2, c - 1) for c in counts]
    return counts


def check_initial_cost(problem, cost_budget: float) -> tuple[list[int], float]:
    """The initial design of a multi-fidelity campaign on ``problem`` and its cost; raises
    :class:`~bayesal.errors.InvalidInput` (``cost_budget``) when the budget cannot pay for it."""
    counts = multifidelity_initial_counts(problem.dim, problem.costs.tolist(), cost_budget)
    cost = sum(float(c) * k for c, k in zip(problem.costs.tolist(), counts))
    if cost > cost_budget + COST_TOLERANCE:
        raise InvalidInput("cost_budget", f"at least {cost:.4g}, the cost of the initial design of {problem.name} "
                           f"({counts} labels per level)", f"{cost_budget:g}")
    return counts, cost
