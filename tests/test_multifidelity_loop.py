"""The multi-fidelity loop: oracles take (x, fidelity), campaigns stop on a cost budget."""

import pytest
import torch

from bayesal import MultiFidelityLearner, make_multifidelity_problem
from bayesal.errors import InvalidInput, OracleFailed, UnknownName
from bayesal.models.multifidelity import BoTorchMultiFidelityGP

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_campaign_stops_on_the_cost_budget_and_records_cost():
    problem = make_multifidelity_problem("currin-mf")
    learner = MultiFidelityLearner(problem.space, problem.costs, n_candidates=128, seed=1,
                                   test_set=problem.test_set())
    records = learner.run(problem, cost_budget=6.0, q=3, progress=False)
    costs = [r["cumulative_cost"] for r in records]
    assert costs == sorted(costs) and costs[-1] <= 6.0 + 1e-9
    # stopped because not even the cheapest evaluation fits any more, or the batch would not fit
    assert 6.0 - costs[-1] < 0.1 + 1e-9 or len(records[-1]["batch_fidelities"]) < 3
    assert costs[-1] == pytest.approx(float(problem.costs[learner.fidelity].sum()))
    assert sum(records[-1]["counts"]) == learner.n_labels
    assert all(r["rmse"] is not None for r in records)
    assert records[-1]["rmse"] < records[0]["rmse"]
    assert learner.counts()[0] > learner.counts()[1]  # the cheap level is used


def test_information_acquisition_and_botorch_model_run():
    problem = make_multifidelity_problem("forrester-mf")
    learner = MultiFidelityLearner(problem.space, problem.costs, surrogate=BoTorchMultiFidelityGP(2),
                                   acquisition="mf-information", n_candidates=64, test_set=problem.test_set())
    records = learner.run(problem, cost_budget=4.0, q=2, initial=[4, 2], progress=False)
    assert records[0]["counts"] == [4, 2] and records[0]["cumulative_cost"] == pytest.approx(2.4)
    assert learner.cumulative_cost <= 4.0 + 1e-9


def test_oracle_failures_and_bad_arguments():
    problem = make_multifidelity_problem("forrester-mf")
    learner = MultiFidelityLearner(problem.space, problem.costs, n_candidates=32)
    calls = []

    def flaky(X, fidelity):
        calls.append(len(X))
        if len(calls) > 1:
            raise RuntimeError("solver diverged")
        return problem(X, fidelity)

    with pytest.raises(OracleFailed, match="solver diverged") as info:
        learner.run(flaky, cost_budget=5.0, initial=[3, 2], progress=False)
    assert learner.n_labels == 5 and len(info.value.history) == 1
    with pytest.raises(OracleFailed, match="unusable"):
        MultiFidelityLearner(problem.space, problem.costs).run(lambda X, f: torch.full((len(X),), float("nan")),
                                                               cost_budget=5.0, progress=False)
    with pytest.raises(InvalidInput, match="cost_budget"):
        learner.run(problem, cost_budget=-1.0)
    with pytest.raises(InvalidInput, match="initial"):
        MultiFidelityLearner(problem.space, problem.costs).run(problem, cost_budget=1.0, initial=[5, 5])
    with pytest.raises(UnknownName):
        MultiFidelityLearner(problem.space, problem.costs, surrogate="nope")
    with pytest.raises(InvalidInput, match="costs"):
        MultiFidelityLearner(problem.space, [0.0, 1.0])
    with pytest.raises(InvalidInput, match="fidelity"):
        learner.tell(torch.zeros(1, 1, dtype=torch.float64), [2], [0.0])
