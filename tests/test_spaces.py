import numpy as np
import pytest
import torch

from bayesal import Box, InvalidInput, Pool
from bayesal.settings import memory_budget


def test_box_sampling_is_inside_and_seeded():
    box = Box([-5.0, 0.0], [10.0, 15.0])
    for method in ("sobol", "uniform"):
        X = box.sample(257, seed=3, method=method)
        assert X.shape == (257, 2) and bool(box.contains(X).all())
        assert torch.equal(X, box.sample(257, seed=3, method=method))
        assert not torch.equal(X, box.sample(257, seed=4, method=method))


def test_box_unit_maps_are_inverse():
    box = Box([-5.0, 0.0], [10.0, 15.0])
    X = box.sample(10, seed=0)
    assert torch.allclose(box.from_unit(box.to_unit(X)), X)
    assert bool(((box.to_unit(X) >= 0) & (box.to_unit(X) <= 1)).all())


def test_box_rejects_bad_bounds():
    with pytest.raises(InvalidInput, match="upper > lower"):
        Box([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(InvalidInput, match="2 bounds like lower"):
        Box([0.0, 0.0], [1.0])


def test_pool_chunks_skip_labelled_points_and_cover_the_rest():
    X = np.random.default_rng(0).random((103, 3))
    pool = Pool(X)
    pool.mark_labelled([0, 5, 100])
    seen = torch.cat([idx for idx, _ in pool.chunks(chunk_size=10)])
    assert seen.tolist() == [i for i in range(103) if i not in (0, 5, 100)]
    for idx, Xc in pool.chunks(chunk_size=7):
        assert torch.equal(Xc, pool.X[idx])
    with memory_budget(8 * 3 * 16):  # budget-sized chunks hold at most a handful of rows
        sizes = [idx.numel() for idx, _ in pool.chunks(bytes_per_row=8 * 3)]
    assert max(sizes) == 16 and sum(sizes) == 100


def test_pool_reveals_hidden_labels_and_finds_points():
    X = np.arange(12.0).reshape(6, 2)
    pool = Pool(X, y=np.arange(6.0) * 10)
    assert pool.reveal([4, 1]).flatten().tolist() == [40.0, 10.0]
    assert pool.index_of([[8.0, 9.0], [0.0, 1.0]]).tolist() == [4, 0]
    with pytest.raises(InvalidInput, match="not in the pool"):
        pool.index_of([[0.5, 0.5]])
    with pytest.raises(InvalidInput, match=r"indices in \[0, 6\)"):
        pool.reveal([6])
    with pytest.raises(InvalidInput, match="without labels"):
        Pool(X).reveal([0])


def test_box_to_pool():
    pool = Box([0.0, 0.0], [2.0, 3.0]).to_pool(64, seed=0)
    assert len(pool) == 64 and torch.equal(pool.bounds, torch.tensor([[0.0, 0.0], [2.0, 3.0]], dtype=torch.float64))
