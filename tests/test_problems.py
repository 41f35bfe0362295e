import math

import numpy as np
import pytest
import torch

from bayesal import DatasetProblem, InvalidInput, Pool, UnknownName, make_problem
from bayesal.problems import PROBLEMS, load_uci, problem_names
from bayesal.problems.data import uci_available


def test_known_optima_of_the_analytic_functions():
    branin = make_problem("branin")
    for x in ([-math.pi, 12.275], [math.pi, 2.275], [9.42478, 2.475]):
        assert abs(float(branin.evaluate(torch.tensor([x], dtype=torch.float64))) - 0.397887) < 1e-5
    h6 = make_problem("hartmann6")
    x_star = torch.tensor([[0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]], dtype=torch.float64)
    assert abs(float(h6.evaluate(x_star)) + 3.32237) < 1e-4
    forrester = make_problem("forrester")
    assert abs(float(forrester.evaluate(torch.tensor([[0.757249]], dtype=torch.float64))) + 6.02074) < 1e-4


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_every_problem_has_a_space_and_a_test_set(name):
    problem = make_problem(name)
    X, y = problem.test_set()
    assert X.shape[-1] == problem.dim and y.shape == (X.shape[0], 1)
    assert bool(problem.space.contains(X).all()) and bool(torch.isfinite(y).all())
    Xs = problem.space.sample(3, seed=0)
    assert problem.evaluate(Xs).shape == (3, 1)
    with pytest.raises(InvalidInput, match="outside"):
        problem.evaluate(problem.space.upper.unsqueeze(0) + 1.0)


def test_label_noise_is_seeded_and_test_set_is_noise_free():
    a, b = make_problem("branin", noise_std=2.0, seed=1), make_problem("branin", noise_std=2.0, seed=1)
    X = a.space.sample(50, seed=0)
    assert torch.equal(a.evaluate(X), b.evaluate(X))
    clean = make_problem("branin").evaluate(X)
    assert 1.5 < float((a.evaluate(X) - clean).std()) < 2.5
    assert torch.equal(a.test_set()[1], make_problem("branin").test_set()[1])


def test_dataset_problem_reveals_labels_by_index():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 3)) * 5 + 2, rng.normal(size=100)
    problem = DatasetProblem.from_arrays(X, y, test_fraction=0.25, seed=0)
    assert isinstance(problem.space, Pool) and len(problem.space) == 75 and problem.test_set()[0].shape == (25, 3)
    assert torch.allclose(problem.space.X.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    pool_y = problem.evaluate(problem.space.X[:2], torch.tensor([0, 1]))
    assert pool_y.shape == (2, 1)
    assert {round(float(v), 10) for v in pool_y[:, 0]} <= {round(float(v), 10) for v in y}


def test_unknown_problem_lists_the_known_ones():
    with pytest.raises(UnknownName) as info:
        make_problem("rosenbrock")
    assert "branin" in str(info.value) and "'rosenbrock'" in str(info.value)


@pytest.mark.skipif(not uci_available("yacht"), reason="UCI data not found (../shared/data/uci)")
def test_uci_loader_uses_the_standard_split():
    problem = load_uci("yacht", split=0)
    X_test, _ = problem.test_set()
    assert len(problem.space) + X_test.shape[0] == 308 and problem.dim == 6
    assert "uci-yacht" in problem_names()
    small = make_problem("uci-yacht", max_pool=50)
    assert len(small.space) == 50


def test_uci_loader_fails_clearly_when_absent(tmp_path):
    with pytest.raises(InvalidInput, match="nothing there"):
        load_uci("yacht", data_dir=tmp_path)
