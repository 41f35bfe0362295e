"""A campaign: a problem, a model and a strategy run for a budget, as one call."""

from __future__ import annotations

from typing import Any

from ..problems import Problem, make_problem
from .learner import ActiveLearner

__all__ = ["run_campaign"]


def run_campaign(problem: str | Problem = "branin", model: str = "exact-gp", strategy: str = "max-variance",
                 budget: int = 30, q: int = 1, initial: int | None = None, seed: int = 0,
                 selector: str = "auto", progress: bool = True, callback=None,
                 data_dir=None) -> tuple[ActiveLearner, list[dict[str, Any]]]:
    """Run active learning on a benchmark problem; returns the learner and its step records."""
    if isinstance(problem, str):
        problem = make_problem(problem, seed=seed, data_dir=data_dir)
    learner = ActiveLearner(problem.space, surrogate=model, acquisition=strategy, selector=selector,
                            seed=seed, test_set=problem.test_set())
    records = learner.run(problem, budget=budget, q=q, initial=initial, callback=callback, progress=progress)
    return learner, records
