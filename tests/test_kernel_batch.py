"""Kernel batch selection (selection/kernel_batch.py, kernels/base.py).

Three kinds of evidence: (1) given the same features and transforms, every method chooses the
same rows as bmdal_reg's ``select_batch`` (Holzmüller et al. 2023's reference implementation);
(2) brute-force references written from the methods' definitions on tiny cases (explicit kernel
matrices, explicit distances); (3) on a GP's own posterior kernel, MaxDet is our joint-information
greedy batch and MaxDiag our max-variance batch.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import bayesal
from bayesal import ActiveLearner, Box, ExactGP, InvalidInput, Pool, Unsupported
from bayesal.errors import UnknownName
from bayesal.kernels import KernelRows, batch_kernel, sketch_matrix
from bayesal.selection import KernelBatch, kernel_batch_indices, select, select_greedy, select_topk
from bayesal.selection.kernel_batch import parse_transform


def _features(seed: int, n_train: int = 30, n_pool: int = 200, F: int = 10, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    T = torch.randn(n_train, F, generator=g, dtype=dtype)
    # rows of very different norms, so the methods disagree with each other
    P = torch.randn(n_pool, F, generator=g, dtype=dtype) * torch.rand(n_pool, 1, generator=g, dtype=dtype)
    return T, P


def _ours(T, P, q, method, posterior: bool, mode: str, sigma: float = 0.0, seed: int = 0):
    rows = KernelRows.from_features(T, P)
    if posterior:
        rows = rows.scaled().posterior(0.1)
    idx, _ = kernel_batch_indices(rows, q, method, mode=mode, generator=torch.Generator().manual_seed(seed),
                                  sigma=sigma)
    return idx.tolist()


# -- (1) agreement with bmdal_reg ------------------------------------------------------------------
# (bmdal method, our method, posterior transform?, TP mode?, sigma). The posterior transform is
# bmdal_reg's ("train", [0.1, None]): scale, then the GP posterior with sigma = 0.1.
CONFIGS = [
    ("maxdiag", "maxdiag", True, False, 0.0),
    ("maxdet", "maxdet", True, False, 0.1),
    ("maxdet", "maxdet", False, True, 0.1),
    ("maxdist", "maxdist", False, True, 0.0),
    ("maxdist", "maxdist", True, False, 0.0),
    ("kmeanspp", "kmeanspp", False, True, 0.0),
    ("lcmd", "lcmd", False, True, 0.0),
    ("lcmd", "lcmd", True, False, 0.0),
    ("bait", "bait-f", True, False, 0.1),
    ("bait", "bait-f", False, True, 0.1),
    ("bait-fb", "bait-fb", True, False, 0.1),
    ("fw", "fw", True, False, 0.0),
    ("fw", "fw", False, True, 0.0),
]


def _bmdal(T, P, q, method, posterior, tp, sigma, seed, dtype=torch.float64):
    if not hasattr(np, "Inf"):  # bmdal_reg 3.0.2 uses np.Inf, removed in NumPy 2
        np.Inf = np.inf
    from bmdal_reg.bmdal.algorithms import select_batch
    from bmdal_reg.bmdal.feature_data import TensorFeatureData

    data = {"train": TensorFeatureData(T), "pool": TensorFeatureData(P)}
    extra = {"overselection_factor": 2.0} if method == "bait-fb" else {}
    torch.manual_seed(seed)  # bmdal_reg's k-means++ draws from torch's global generator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx, _ = select_batch(batch_size=q, models=[torch.nn.Identity()], data=data, y_train=None,
                              base_kernel="linear", kernel_transforms=[("train", [0.1, None])] if posterior else [],
                              selection_method="bait" if method == "bait-fb" else method, sel_with_train=tp,
                              maxdet_sigma=sigma, bait_sigma=sigma, verbosity=0, **extra)
    return idx.tolist()


@pytest.mark.parametrize("theirs,ours,posterior,tp,sigma", CONFIGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_rows_as_bmdal_reg(theirs, ours, posterior, tp, sigma, seed):
    pytest.importorskip("bmdal_reg")
    T, P = _features(seed)
    a = _bmdal(T, P, 20, theirs, posterior, tp, sigma, seed)
    b = _ours(T, P, 20, ours, posterior, "tp" if tp else "p", sigma, seed)
    if theirs == "maxdiag":  # bmdal_reg returns the top q in ascending order
        a, b = sorted(a), sorted(b)
    assert a == b


@pytest.mark.parametrize("theirs,ours,posterior,tp,sigma",
                         [c for c in CONFIGS if c[0] in ("lcmd", "maxdet", "maxdist", "fw") or c[:4] == ("bait", "bait-f", True, False)])
def test_same_rows_as_bmdal_reg_in_float32(theirs, ours, posterior, tp, sigma):
    """bmdal_reg's own default precision (no allow_float64); the posterior transform in float64
    then cast back, on both sides. (BAIT in TP mode is left out: after the 30 labelled rows
    have conditioned a 10-feature kernel, its gains are ratios of float32 rounding errors, and the
    two implementations part after about a dozen rows; in float64 they agree, above.)"""
    pytest.importorskip("bmdal_reg")
    T, P = _features(3, dtype=torch.float32)
    rows = KernelRows.from_features(T, P)
    if posterior:  # compare on the same transformed features: our float64 transform, cast to float32
        rows = rows.scaled().posterior(0.1)
        T, P = rows.features[:rows.n_train], rows.features[rows.n_train:]
        posterior = False
    a = _bmdal(T, P, 20, theirs, posterior, tp, sigma, 0)
    b = _ours(T, P, 20, ours, posterior, "tp" if tp else "p", sigma, 0)
    assert a == b


# -- (2) brute-force references ----------------------------------------------------------------------
def _kernel(T, P):
    Phi = torch.cat([T, P])
    return Phi @ Phi.T


def test_maxdet_is_greedy_log_determinant():
    T, P = _features(4, n_train=5, n_pool=40, F=6)
    K = _kernel(T, P)
    s2, p = 0.05, T.shape[0]
    chosen = list(range(p))  # TP: the labelled rows are in the set
    batch = []
    for _ in range(8):
        best = max((i for i in range(p, K.shape[0]) if i not in chosen),
                   key=lambda i: torch.logdet(K[chosen + [i]][:, chosen + [i]] + s2 * torch.eye(len(chosen) + 1)))
        chosen.append(best)
        batch.append(best - p)
    assert _ours(T, P, 8, "maxdet", False, "tp", sigma=s2 ** 0.5) == batch


def test_maxdist_is_farthest_first_traversal():
    """k-center greedy (Gonzalez 1985) from explicit Euclidean distances, labelled rows as centres."""
    T, P = _features(5, n_train=4, n_pool=60, F=3)
    centres = [t for t in T]
    batch = []
    for _ in range(10):
        d = torch.cdist(P, torch.stack(centres)).min(1).values
        d[batch] = -1
        j = int(torch.argmax(d))
        batch.append(j)
        centres.append(P[j])
    assert _ours(T, P, 10, "kcenter", False, "tp") == batch
    assert _ours(T, P, 10, "maxdist", False, "tp") == batch


def test_badge_is_kmeanspp_from_the_largest_norm():
    """BADGE (Ash et al. 2020): first the largest-norm embedding, then D² sampling."""
    T, P = _features(6, n_train=3, n_pool=50, F=4)
    g = torch.Generator().manual_seed(11)
    batch = [int(torch.argmax(P.norm(dim=1)))]
    for _ in range(7):
        d2 = torch.cdist(P, P[batch]).min(1).values.pow(2)
        d2[batch] = 0
        batch.append(int(torch.multinomial(d2, 1, generator=g)))
    assert _ours(T, P, 8, "badge", False, "p", seed=11) == batch


def test_lcmd_takes_the_farthest_row_of_the_heaviest_cluster():
    """LCMD (Holzmüller et al. 2023) from its definition: clusters by nearest centre, cluster
    mass = sum of squared distances to the centre, farthest row of the heaviest cluster."""
    T, P = _features(7, n_train=4, n_pool=60, F=3)
    centres = [t for t in T]
    batch = []
    for _ in range(10):
        D = torch.cdist(P, torch.stack(centres)).pow(2)
        d, owner = D.min(1)
        mass = torch.zeros(len(centres), dtype=d.dtype).index_add_(0, owner, d)
        heavy = owner == int(torch.argmax(mass))
        s = torch.where(heavy, d, torch.full_like(d, -math.inf))
        s[batch] = -math.inf
        j = int(torch.argmax(s))
        batch.append(j)
        centres.append(P[j])
    assert _ours(T, P, 10, "lcmd", False, "tp") == batch


def test_lcmd_with_two_equally_heavy_clusters_looks_in_both():
    """Clusters of equal mass are all candidates (bmdal_reg's rule): exact, dyadic distances give
    centre (0, 0) the rows (±.5, 0), (0, ±.5) (mass 4 × .25) and centre (10, 0) the row (11, 0)
    (mass 1), so the first pick is (11, 0), the farthest row of either, not one of the first."""
    T = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    P = torch.tensor([[0.5, 0.0], [-0.5, 0.0], [0.0, 0.5], [0.0, -0.5], [11.0, 0.0]], dtype=torch.float64)
    assert _ours(T, P, 1, "lcmd", False, "tp") == [4]
    if importlib.util.find_spec("bmdal_reg") is not None:
        assert _bmdal(T, P, 1, "lcmd", False, True, 0.0, 0) == [4]


def test_bait_is_greedy_total_variance_reduction():
    """BAIT-F from its definition: each step labels the row that most reduces the total posterior
    variance over the pool and the labelled rows, Σ_z k_S(z, z), with noise σ² (P mode: the
    labelled rows are in the sum but not conditioned on — bmdal_reg's convention)."""
    T, P = _features(8, n_train=6, n_pool=30, F=5)
    K = _kernel(T, P)
    p, s2 = T.shape[0], 0.01

    def total_variance(S):
        if not S:
            return float(K.diagonal().sum())
        KS = K[:, S]
        return float((K.diagonal() - (KS @ torch.linalg.solve(K[S][:, S] + s2 * torch.eye(len(S)), KS.T)).diagonal()).sum())

    batch = []
    for _ in range(6):
        best = min((i for i in range(p, K.shape[0]) if i - p not in batch),
                   key=lambda i: total_variance([b + p for b in batch] + [i]))
        batch.append(best - p)
    assert _ours(T, P, 6, "bait-f", False, "p", sigma=s2 ** 0.5) == batch


def test_maxdiag_is_the_largest_diagonal():
    T, P = _features(9)
    top = torch.topk(P.pow(2).sum(1), 12).indices.tolist()
    assert _ours(T, P, 12, "maxdiag", False, "p") == top


# -- transforms --------------------------------------------------------------------------------------
def test_posterior_transform_is_the_gp_posterior_kernel():
    T, P = _features(10, n_train=8, n_pool=20, F=5)
    s = 0.3
    rows = KernelRows.from_features(T, P).posterior(s)
    Phi = torch.cat([T, P])
    K = Phi @ Phi.T
    KT = K[:, :8]
    expected = K - KT @ torch.linalg.solve(K[:8, :8] + s ** 2 * torch.eye(8, dtype=K.dtype), KT.T)
    got = rows.features @ rows.features.T
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)
    for j in (0, 12):
        torch.testing.assert_close(rows.column(j), expected[:, j], rtol=1e-9, atol=1e-10)


def test_scale_makes_the_labelled_mean_diagonal_one():
    T, P = _features(11)
    rows = KernelRows.from_features(3 * T, 3 * P).scaled()
    assert float(rows.diag[:rows.n_train].mean()) == pytest.approx(1.0, rel=1e-12)
    cols = KernelRows.from_columns(rows.n_train, rows.diag * 7, lambda j: rows.column(j) * 7).scaled()
    assert float(cols.diag[:rows.n_train].mean()) == pytest.approx(1.0, rel=1e-12)


def test_sketch_keeps_the_kernel_in_expectation():
    """E[(Pᵀa)ᵀ(Pᵀb)] = aᵀb for P with N(0, 1/F) entries. Over 400 sketches the mean's standard
    error is about ‖a‖‖b‖√(2/F)/20; the check at 5 standard errors fails by chance with
    probability below 1e-6 (and the unscaled sketch, off by a factor F, fails it always)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    F, reps = 16, 400
    vals = []
    for _ in range(reps):
        S = sketch_matrix(50, F, g, torch.float64)
        vals.append(float((a @ S) @ (b @ S)))
    se = float(a.norm() * b.norm()) * math.sqrt(2 / F) / math.sqrt(reps)
    assert abs(np.mean(vals) - float(a @ b)) < 5 * se


# -- (3) the GP's own kernel ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gp_pool():
    g = torch.Generator().manual_seed(1)
    X = torch.rand(300, 2, generator=g, dtype=torch.float64)
    y = torch.sin(5 * X[:, 0]) * torch.cos(3 * X[:, 1])
    pool = Pool(X, y)
    idx = torch.arange(0, 300, 30)
    pool.mark_labelled(idx)
    gp = ExactGP(seed=0).fit(X[idx], y[idx])
    return gp, pool


def test_maxdet_on_the_gp_kernel_is_joint_information(gp_pool):
    gp, pool = gp_pool
    ours = select(gp, KernelBatch("maxdet", kernel="gp"), pool, 8, seed=0)
    ref = select_greedy(gp, bayesal.JointInformation(), pool, 8)
    assert ours.indices.tolist() == ref.indices.tolist()


def test_maxdiag_on_the_gp_kernel_is_max_variance(gp_pool):
    gp, pool = gp_pool
    ours = select(gp, KernelBatch("maxdiag", kernel="gp"), pool, 8, seed=0)
    ref = select_topk(gp, bayesal.MaxVariance(), pool, 8)
    assert sorted(ours.indices.tolist()) == sorted(ref.indices.tolist())


@pytest.mark.parametrize("method", ["lcmd", "kmeanspp", "maxdist", "kcenter", "maxdet", "maxdiag"])
def test_gp_strategies_choose_new_distinct_rows(gp_pool, method):
    gp, pool = gp_pool
    a = select(gp, KernelBatch(method), pool, 12, seed=3)
    assert len(set(a.indices.tolist())) == 12
    assert not bool(pool.labelled[a.indices].any())
    assert bool(torch.isfinite(a.scores[1:]).all())
    b = select(gp, KernelBatch(method), pool, 12, seed=3)
    assert a.indices.tolist() == b.indices.tolist()


def test_tp_mode_keeps_away_from_labelled_rows(gp_pool):
    """In TP mode the labelled rows are centres, so MaxDist never picks a pool row closer to a
    labelled row than P mode's pick is; here: the TP batch's nearest labelled distance is larger."""
    _, pool = gp_pool
    T, P = pool.X[pool.labelled], pool.X[pool.available]
    rows = batch_kernel("inputs", None, T, P)
    d = {}
    for mode in ("p", "tp"):
        idx, _ = kernel_batch_indices(rows, 10, "maxdist", mode=mode)
        d[mode] = float(torch.cdist(rows.features[rows.n_train:][idx], rows.features[:rows.n_train]).min())
    assert d["tp"] > d["p"]


def test_distance_methods_read_one_column_per_step():
    """No [n, n] matrix: MaxDist / LCMD / KMeansPP ask for n_train + q columns in TP mode."""
    T, P = _features(12, n_train=7, n_pool=500, F=4)
    base = KernelRows.from_features(T, P)
    for method in ("maxdist", "lcmd", "kmeanspp"):
        calls = []
        rows = KernelRows.from_columns(base.n_train, base.diag, lambda j: calls.append(j) or base.column(j))
        kernel_batch_indices(rows, 9, method, mode="tp", generator=torch.Generator().manual_seed(0))
        assert len(calls) == 7 + 9


def _three_holdings(seed: int = 13):
    """One kernel held three ways: float32 features, columns only, and compact float16 storage
    (norms + float16 directions); the last is compared with the columns of its own values."""
    from bayesal.kernels import InputFeatures

    T, P = _features(seed, n_train=9, n_pool=9000, F=6, dtype=torch.float32)  # 3 blocks of 4096 rows
    dense = KernelRows.from_features(T, P)
    compact = KernelRows.from_feature_map(InputFeatures(6), T, P, storage=torch.float16)
    return dense, compact


def test_pool_columns_and_distances_agree_across_holdings():
    dense, compact = _three_holdings()
    p = dense.n_train
    for rows in (dense, compact, KernelRows.from_columns(p, dense.diag, dense.column)):
        for j in (0, p - 1, p, p + 123, rows.n - 1):
            want = rows.column(j)[p:]
            assert torch.equal(rows.pool_column(j), want)
            buf = torch.full((rows.n_pool,), float("nan"))
            assert rows.pool_column(j, out=buf) is buf and torch.equal(buf, want)
            d = rows.diag[p:] + rows.diag[j] - 2 * want
            assert torch.equal(rows.sq_dists(j), d)
            assert torch.equal(rows.sq_dists(j, out=buf), d)
    # float16 directions: about 5e-4 relative error per entry, far inside 1e-2 of the kernel's scale
    scale = float(dense.diag.max())
    for j in (0, p + 5, p + 8500):
        assert (compact.pool_column(j) - dense.pool_column(j)).abs().max() < 1e-2 * scale
    assert abs(float(compact.sq_dists(p + 8500)[8500])) < 1e-2 * scale  # a row's distance to itself


@pytest.mark.parametrize("method", ["lcmd", "maxdist", "kmeanspp"])
def test_compact_storage_selects_as_its_own_columns(method):
    """The float16 store's fast pool products choose what its plain columns choose."""
    _, compact = _three_holdings(21)
    by_columns = KernelRows.from_columns(compact.n_train, compact.diag, compact.column)
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    ours = kernel_batch_indices(compact, 40, method, mode="tp", generator=g())[0]
    ref = kernel_batch_indices(by_columns, 40, method, mode="tp", generator=g())[0]
    assert torch.equal(ours, ref)


# -- the strategy in the loop ------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["lcmd", "bait-fb", "fw"])
def test_learner_with_a_sample_surrogate(method):
    """A deep ensemble's sample covariance (Kirsch 2023) drives the feature-space methods."""
    g = torch.Generator().manual_seed(2)
    X = torch.rand(200, 2, generator=g, dtype=torch.float64)
    pool = Pool(X, X.sum(-1))
    model = bayesal.DeepEnsemble(task="regression", num_members=3, max_epochs=20, seed=0)
    learner = ActiveLearner(pool, surrogate=model, acquisition=method, seed=0)
    idx = torch.arange(10)
    learner.tell(None, pool.reveal(idx), indices=idx)
    learner.fit()
    batch = learner.ask(6)
    assert len(set(batch.indices.tolist())) == 6 and not bool(torch.isin(batch.indices, idx).any())


def test_box_batches_come_from_sobol_candidates():
    box = Box([0.0, 0.0], [1.0, 2.0])
    X = box.sample(6, seed=0)
    gp = ExactGP(seed=0).fit(X, X.sum(-1))
    a = select(gp, KernelBatch("lcmd", n_candidates=512), box, 5, seed=1, X_observed=X)
    assert a.X.shape == (5, 2) and a.indices is None
    box.check_contains(a.X) if hasattr(box, "check_contains") else None
    assert bool((a.X >= box.bounds[0]).all() and (a.X <= box.bounds[1]).all())
    assert float(torch.cdist(a.X, a.X).add(torch.eye(5, dtype=a.X.dtype) * 9).min()) > 0


def test_model_free_inputs_kernel():
    pool = Pool(torch.rand(100, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    a = select(None, KernelBatch("kcenter", kernel="inputs"), pool, 5, seed=0)
    assert len(set(a.indices.tolist())) == 5


# -- bad input -----------------------------------------------------------------------------------------
def test_bad_input_is_named(gp_pool):
    gp, pool = gp_pool
    with pytest.raises(UnknownName, match="strategy"):
        KernelBatch("lcmdd")
    with pytest.raises(UnknownName, match="kernel"):
        KernelBatch("lcmd", kernel="rbf")
    with pytest.raises(UnknownName, match="transform"):
        KernelBatch("lcmd", transform="scale+warp")
    with pytest.raises(InvalidInput, match="sigma"):
        KernelBatch("lcmd", sigma=-1.0)
    with pytest.raises(InvalidInput, match="at most one of the modes"):
        parse_transform("tp+p")
    with pytest.raises(InvalidInput, match="posterior"):
        select(gp, KernelBatch("maxdet", kernel="gp", transform="posterior"), pool, 3)
    with pytest.raises(Unsupported, match="integrated-variance"):
        select(gp, KernelBatch("bait-f", kernel="gp"), pool, 3)
    with pytest.raises(InvalidInput, match="selector"):
        select(gp, KernelBatch("lcmd"), pool, 3, selector="stochastic")
    T, P = _features(0, n_pool=5)
    with pytest.raises(InvalidInput, match="q"):
        kernel_batch_indices(KernelRows.from_features(T, P), 6, "lcmd")
    with pytest.raises(InvalidInput, match="features"):
        KernelRows.from_features(T, P.clone().fill_(float("nan")))
    with pytest.raises(UnknownName):
        bayesal.acquisition.make_acquisition("lcmd-x")


def test_cli_kernel_options(tmp_path):
    run = [sys.executable, "-m", "bayesal", "run", "--problem", "forrester", "--budget", "8", "--batch-size", "2",
           "--out", str(tmp_path / "out")]
    ok = subprocess.run(run + ["--strategy", "lcmd", "--kernel", "gp", "--transform", "tp"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(run + ["--strategy", "bald", "--kernel", "gp"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "kernel batch strategy" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("method", ["badge", "kcenter"])
def test_classification_strategies_on_a_network(method):
    """BADGE on the classifier's gradient embeddings, k-center on its last-layer embeddings."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(150, 4, generator=g, dtype=torch.float64)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).double() + (X[:, 2] > 1).double()
    pool = Pool(X, y)
    net = bayesal.MCDropoutNet(num_classes=3, hidden=(16,), num_samples=8, max_epochs=15, seed=0)
    learner = ActiveLearner(pool, surrogate=net, acquisition=method, seed=0)
    idx = torch.arange(0, 150, 10)
    learner.tell(None, pool.reveal(idx), indices=idx)
    learner.fit()
    assert KernelBatch(method).resolved_kernel(learner.surrogate) == ("badge" if method == "badge" else "ll")
    batch = learner.ask(8)
    assert len(set(batch.indices.tolist())) == 8 and not bool(torch.isin(batch.indices, idx).any())
