"""Every bad input named in the foundation issue raises InvalidInput naming argument, expectation and value."""

import numpy as np
import pandas as pd
import pytest
import torch

from bayesal import ActiveLearner, Box, InvalidInput, Pool
from bayesal.validation import as_tensor, check_count, check_X, check_y


def test_numpy_torch_pandas_and_lists_are_accepted_alike():
    data = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
    for value in (np.array(data), torch.tensor(data, dtype=torch.float32), pd.DataFrame(data), data):
        X = check_X(value, "X")
        assert X.dtype == torch.float64 and X.shape == (3, 2)
        assert torch.allclose(X, torch.tensor(data, dtype=torch.float64), atol=1e-7)
    y = check_y(pd.Series([1.0, 2.0, 3.0]), "y", n=3)
    assert y.shape == (3, 1)


@pytest.mark.parametrize("bad, word", [(float("nan"), "NaN"), (float("inf"), "inf"), (-float("inf"), "inf")])
def test_nonfinite_labels_are_rejected_with_their_rows(bad, word):
    with pytest.raises(InvalidInput) as info:
        check_y([1.0, 2.0, bad, 4.0], "y")
    assert info.value.argument == "y"
    assert word in str(info.value) and "rows [2]" in str(info.value)


def test_tell_with_nan_in_y_adds_nothing():
    learner = ActiveLearner(Box([0.0], [1.0]))
    learner.tell([[0.1], [0.2]], [1.0, 2.0])
    with pytest.raises(InvalidInput, match="invalid y: expected finite labels"):
        learner.tell([[0.3], [0.4]], [3.0, float("nan")])
    assert learner.n_labels == 2


@pytest.mark.parametrize("X, message", [
    (np.zeros((2, 3, 4)), "2-D array"),
    (np.zeros((4, 3)), "3 columns"),
    (np.zeros((0, 2)), "at least one row"),
    (["a", "b"], "numeric array"),
])
def test_wrong_dimensions_and_types(X, message):
    with pytest.raises(InvalidInput) as info:
        check_X(X, "X_new", dim=2)
    assert info.value.argument == "X_new" and message in str(info.value)


def test_labels_with_wrong_row_count_are_rejected():
    with pytest.raises(InvalidInput, match="invalid y: expected 3 rows, one per point in X, got 2 rows"):
        check_y([1.0, 2.0], "y", n=3)
    learner = ActiveLearner(Box([0.0, 0.0], [1.0, 1.0]))
    with pytest.raises(InvalidInput, match="invalid y"):
        learner.tell([[0.1, 0.1], [0.2, 0.2]], [1.0, 2.0, 3.0])
    with pytest.raises(InvalidInput, match="invalid X"):
        learner.tell([[0.1], [0.2]], [1.0, 2.0])


def test_points_outside_the_box_are_named():
    box = Box([0.0, -1.0], [1.0, 1.0])
    with pytest.raises(InvalidInput) as info:
        box.check([[0.5, 0.0], [0.5, 1.5]], "X")
    text = str(info.value)
    assert "first row 1" in text and "X[1, 1] = 1.5" in text and "[-1, 1]" in text
    learner = ActiveLearner(box)
    with pytest.raises(InvalidInput, match="outside"):
        learner.tell([[2.0, 0.0]], [1.0])
    assert learner.n_labels == 0


def test_empty_pool_is_rejected():
    with pytest.raises(InvalidInput, match="at least one row"):
        Pool(np.zeros((0, 3)))


def test_exhausted_pool_is_rejected_on_ask():
    pool = Pool(np.random.default_rng(0).random((4, 1)), y=np.arange(4.0))
    learner = ActiveLearner(pool)
    learner.run(budget=4, progress=False)
    with pytest.raises(InvalidInput, match="exhausted pool"):
        learner.ask(1)


def test_batch_larger_than_remaining_pool():
    pool = Pool(np.random.default_rng(0).random((6, 2)))
    pool.mark_labelled([0, 1, 2])
    with pytest.raises(InvalidInput) as info:
        ActiveLearner(pool).ask(4)
    assert info.value.argument == "q" and "at most 3" in str(info.value) and "got 4" in str(info.value)


@pytest.mark.parametrize("budget", [0, -3])
def test_budget_below_one(budget):
    learner = ActiveLearner(Box([0.0], [1.0]))
    with pytest.raises(InvalidInput, match=f"invalid budget: expected an integer >= 1, got {budget}"):
        learner.run(lambda X: X.sum(-1), budget=budget, progress=False)


def test_budget_larger_than_pool():
    pool = Pool(np.random.default_rng(0).random((5, 1)), y=np.arange(5.0))
    with pytest.raises(InvalidInput, match="invalid budget: expected at most 5"):
        ActiveLearner(pool).run(budget=6, progress=False)


def test_counts_reject_non_integers():
    assert check_count(3.0, "q") == 3
    for bad in (2.5, "3", True, None):
        with pytest.raises(InvalidInput, match="invalid q"):
            check_count(bad, "q")


def test_complex_and_none_are_rejected():
    with pytest.raises(InvalidInput, match="real-valued"):
        as_tensor(torch.zeros(2, dtype=torch.complex64), "X")
    with pytest.raises(InvalidInput, match="got None"):
        as_tensor(None, "X")
