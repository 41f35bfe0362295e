"""Multi-fidelity greedy batches on THE greedy engine (``selection/greedy.py``).

``data/mf_greedy_before_merge.json`` holds the batches (candidate rows, fidelities, gains, costs)
that the multi-fidelity acquisitions' own greedy loop gave at commit bcd21c5, before it was
replaced by ``GreedyConditioning`` + ``greedy_batch``: the merge must reproduce them.
"""

import json
from pathlib import Path

import pytest
import torch
from mf_cases import two_level_data

from bayesal.acquisition.multifidelity import MultiFidelityInformation, MultiFidelityVarianceReduction
from bayesal.models.multifidelity import BoTorchMultiFidelityGP, CoKriging, augment
from bayesal.spaces import Box

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECORDED = json.loads((Path(__file__).parent / "data" / "mf_greedy_before_merge.json").read_text())
SPACE = Box([0, 0], [1, 1])


@pytest.fixture(scope="module")
def models():
    X, y = two_level_data(15, 5)
    out = {"co-kriging-2": CoKriging(2).fit(X, y, bounds=[[0, 0], [1, 1]]),
           "botorch-mf-gp-2": BoTorchMultiFidelityGP(2).fit(X, y, bounds=[[0, 0], [1, 1]])}
    gen = torch.Generator().manual_seed(3)
    Xs = [torch.rand(n, 2, generator=gen, dtype=torch.float64) for n in (12, 6, 3)]
    y3 = torch.cat([torch.sin(3 * x[:, 0]) + 0.3 * s * x[:, 1] for s, x in enumerate(Xs)])
    out["co-kriging-3"] = CoKriging(3).fit(torch.cat([augment(x, s) for s, x in enumerate(Xs)]), y3,
                                           bounds=[[0, 0], [1, 1]])
    return out


def run_case(case, models):
    candidates = SPACE.sample(40, seed=5)
    kwargs = dict(cost_aware=case.get("cost_aware", True))
    acq = (MultiFidelityVarianceReduction(n_reference=64, seed=2, **kwargs) if case["acq"] == "ivr"
           else MultiFidelityInformation(**kwargs))
    sel = acq.select(models[case["model"]], candidates, costs=case["costs"], q=case["q"],
                     fidelities=case.get("fidelities"), budget=case.get("budget"), space=SPACE)
    rows = [int(torch.nonzero((candidates == x).all(-1))[0]) for x in sel.X]
    return rows, sel


@pytest.mark.parametrize("recorded", RECORDED, ids=lambda r: "-".join(f"{k}={v}" for k, v in r["case"].items()))
def test_engine_reproduces_the_batches_recorded_before_the_merge(models, recorded):
    rows, sel = run_case(recorded["case"], models)
    assert rows == recorded["rows"]
    assert sel.fidelity.tolist() == recorded["fidelity"]
    assert sel.cost.tolist() == recorded["cost"]
    # the same formula; only the order of a floating-point sum may differ
    torch.testing.assert_close(sel.scores, torch.tensor(recorded["scores"], dtype=torch.float64),
                               rtol=1e-10, atol=1e-14)
