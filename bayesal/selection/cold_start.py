"""Cold start: choosing the first labels with no model (:func:`initial_design`).

Before any label is known no surrogate can score a candidate, so the first batch is chosen from
the geometry of the space alone. The methods, by the space they apply to:

On a :class:`~bayesal.spaces.Box` (the unit cube mapped to the box):

* ``"sobol"``: the first n points of a scrambled Sobol sequence (Sobol' 1967; Owen 1998
  scrambling, through :class:`torch.quasirandom.SobolEngine` as :meth:`Box.sample` draws it). For
  n = 2^m every one-dimensional projection puts exactly one point in each of the n intervals of
  width 1/n (a (t, m, s)-net).
* ``"maximin"``: a maximin Latin hypercube (Morris & Mitchell 1995, "Exploratory designs for
  computational experiments", J. Stat. Plan. Inference 43): random Latin hypercubes improved by
  element exchanges within a column (which keep the Latin property) that lower Morris and
  Mitchell's φ_p criterion, ``φ_p = (Σ_{i<j} d_ij^-p)^(1/p)`` with p = 20 (for large p, φ_p
  ranks designs by their smallest distance, then by how many pairs attain it); the best of a few
  restarts by the smallest pairwise distance. Greedy acceptance replaces Morris and Mitchell's
  simulated annealing.
* ``"random"``: i.i.d. uniform points.

On a :class:`~bayesal.spaces.Pool` (its unlabelled rows, each input column standardised by the
pool's mean and standard deviation first, as the ``"inputs"`` kernel of
:func:`bayesal.kernels.batch_kernel` does):

* ``"kcenter"``: farthest-first traversal, the greedy 2-approximation of k-center (Gonzalez 1985,
  "Clustering to minimize the maximum intercluster distance"; the core-set of Sener & Savarese
  2018, "Active Learning for Convolutional Neural Networks: A Core-Set Approach");
* ``"kmeanspp"``: k-means++ seeding, D²-sampling (Arthur & Vassilvitskii 2007, "k-means++: The
  Advantages of Careful Seeding");
* ``"typiclust"``: TypiClust (Hacohen, Dekel & Weinshall 2022, "Active Learning on a Budget:
  Opposite Strategies Suit High and Low Budgets", ICML): k-means into q clusters, then the most
  typical point of each cluster, largest clusters first (:func:`typiclust_indices`);
* ``"probcover"``: ProbCover (Yehuda, Dekel, Hacohen & Weinshall 2022, "Active Learning Through a
  Covering Lens", NeurIPS): greedy maximum coverage by balls of radius δ, with δ from the
  paper's purity heuristic (:func:`probcover_indices`);
* ``"random"``: uniformly random rows (the rows the loop has always drawn for a seed).

``"auto"`` is ``"sobol"`` on a box and ``"kcenter"`` on a pool, from ``benchmarks/cold_start.py``
(an exact GP fitted on 20 initial labels, 10 seeds / standard splits, on Hartmann-6 and six UCI
sets; RMSE ratio to random rows, geometric mean and 95 % bootstrap interval over all pairs):
k-center 0.96 [0.90, 1.03], k-means++ 0.98 [0.92, 1.05], TypiClust 1.02 [0.95, 1.10], ProbCover
1.07 [0.99, 1.15]. k-center has the best mean and no significant loss on any set (TypiClust,
built for classification embeddings, loses 1.55× on yacht; ProbCover 1.24× on airfoil), and it is
deterministic and the cheapest (O(q N d)). None beats random rows on every set: the margin is
small. (:class:`~bayesal.loop.ActiveLearner` keeps its historical default, Sobol on a box and
random rows on a pool, the regime of the published benchmarks it is compared with.)

k-center and k-means++ are :func:`bayesal.selection.kernel_batch.kernel_batch_indices` on the
standardised-input kernel, the same code as the ``maxdist`` and ``kmeanspp`` batch methods;
TypiClust's k-means starts from those k-means++ seeds. Nothing here builds an ``[N, N]`` matrix:
nearest neighbours, k-means assignments and δ-ball graphs are computed in row chunks sized by
:func:`bayesal.settings.memory_budget` (at most 24 MiB each). TypiClust scores at most 5,000
candidates per cluster and ProbCover at most 5,000 ball centres (seeded subsets beyond that), so
both cost O(N d) times those caps rather than O(N² d).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import InvalidInput, UnknownName
from ..settings import get_memory_budget, rows_per_chunk
from ..spaces import Box, Pool
from ..validation import check_count, check_seed, describe
from .base import Selection, from_pool, make_generator

__all__ = ["INITIAL_DESIGNS", "BOX_DESIGNS", "POOL_DESIGNS", "initial_design", "resolve_design",
           "maximin_lhs", "kmeans", "typicality", "typiclust_indices", "purity_delta", "probcover_indices"]

#: every cold-start method name accepted by :func:`initial_design`
INITIAL_DESIGNS = ("auto", "random", "sobol", "maximin", "kcenter", "kmeanspp", "typiclust", "probcover")
#: the methods for a box
BOX_DESIGNS = ("random", "sobol", "maximin")
#: the methods for a pool
POOL_DESIGNS = ("random", "kcenter", "kmeanspp", "typiclust", "probcover")
#: what ``"auto"`` is on each kind of space
AUTO_DESIGNS = {"box": "sobol", "pool": "kcenter"}

#: the largest chunk of distance work (bytes), whatever the memory budget
_CHUNK_BYTES = 24 * 2**20
#: the largest maximin design: its exchange search keeps the ``[n, n]`` distance matrix
MAX_MAXIMIN_POINTS = 4096


def resolve_design(method, space) -> str:
    """The cold-start method ``method`` stands for on ``space`` (``"auto"`` resolved).

    Raises :class:`~bayesal.errors.UnknownName` for a name not in :data:`INITIAL_DESIGNS` and
    :class:`~bayesal.errors.InvalidInput` for a method of the other kind of space (``"sobol"``
    on a pool, ``"typiclust"`` on a box)."""
    if not isinstance(method, str) or method not in INITIAL_DESIGNS:
        raise UnknownName("initial_design", str(method), list(INITIAL_DESIGNS))
    if isinstance(space, Box):
        kind, allowed = "box", BOX_DESIGNS
    elif isinstance(space, Pool):
        kind, allowed = "pool", POOL_DESIGNS
    else:
        raise InvalidInput("space", "a bayesal Pool or Box", describe(space))
    if method == "auto":
        return AUTO_DESIGNS[kind]
    if method not in allowed:
        raise InvalidInput("initial_design", f"a method for a {kind} ({', '.join(allowed)} or auto)", repr(method))
    return method


def initial_design(space: Box | Pool, n: int, method: str = "auto", seed: int | None = None,
                   delta: float | None = None) -> Selection:
    """The first ``n`` points to label, chosen without a model (see the module docstring).

    Args:
        space: a :class:`~bayesal.spaces.Box` or a :class:`~bayesal.spaces.Pool` (only its
            unlabelled rows are candidates).
        n: number of points, at most the pool's unlabelled rows.
        method: a name of :data:`INITIAL_DESIGNS` (``"auto"``: Sobol on a box, k-center on a pool).
        seed: makes the design reproducible (None: fresh randomness). Sobol, maximin, random,
            k-means++, TypiClust and ProbCover are random; k-center is deterministic.
        delta: ProbCover's ball radius in standardised units (default: the purity heuristic).

    Returns a :class:`~bayesal.selection.Selection`: ``X [n, d]``, pool ``indices [n]`` (None on a
    box) and ``scores [n]``: NaN on a box, the :class:`~bayesal.acquisition.Random` draws for
    random rows, k-center's and k-means++'s squared
    distance to the points chosen before (inf for the first), TypiClust's typicality, ProbCover's
    number of newly covered rows.
    """
    method = resolve_design(method, space)
    seed = check_seed(seed)
    if delta is not None and method != "probcover":
        raise InvalidInput("delta", f"None (delta is ProbCover's radius, not {method}'s)", repr(delta))
    if isinstance(space, Box):
        n = check_count(n, "n", maximum=MAX_MAXIMIN_POINTS if method == "maximin" else None,
                        maximum_reason="the largest maximin design; use sobol for more")
        if method == "maximin":
            U = torch.as_tensor(maximin_lhs(n, space.dim, seed), dtype=space.bounds.dtype)
            X = space.from_unit(U.to(space.bounds.device))
        else:
            X = space.sample(n, seed=seed, method="sobol" if method == "sobol" else "uniform")
        return Selection(X, None, torch.full((n,), math.nan, dtype=torch.float64))
    n = check_count(n, "n")
    space.check_batch_size(n)
    if method == "random":
        from ..acquisition import Random
        from .auto import select

        return select(None, Random(), space, n, selector="topk", seed=seed)
    from ..kernels import batch_kernel

    available = space.available
    X = space.X[available.to(space.X.device)]
    rows = batch_kernel("inputs", None, X[:0], X)  # the standardised inputs, rows.features [N, d]
    generator = make_generator(seed)
    if method in ("kcenter", "kmeanspp"):
        from .kernel_batch import kernel_batch_indices

        chosen, scores = kernel_batch_indices(rows, n, "maxdist" if method == "kcenter" else "kmeanspp", mode="p",
                                              generator=generator)
    elif method == "typiclust":
        chosen, scores = typiclust_indices(rows.features, n, generator)
    else:
        chosen, scores = probcover_indices(rows.features, n, generator, delta=delta)
    return from_pool(space, available[chosen.cpu()], scores)


# -- boxes ------------------------------------------------------------------------------------------

_PHI_P = 20.0


def _phi_terms(D: np.ndarray) -> np.ndarray:
    return np.maximum(D, 1e-12) ** -_PHI_P


def maximin_lhs(n: int, d: int, seed: int | None = None, restarts: int = 4, iterations: int | None = None
                ) -> np.ndarray:
    """A maximin Latin hypercube ``[n, d]`` in the unit cube (Morris & Mitchell 1995).

    Each of ``restarts`` random Latin hypercubes (:class:`scipy.stats.qmc.LatinHypercube`: one
    point in each of the n strata of every column, uniform within it) is improved by
    ``iterations`` proposed exchanges (default ``min(10000, 100 n)``): swap one column's values
    between a point of the closest pair and another random point, kept when it lowers φ_p
    (p = 20). The design with the largest smallest distance is returned.
    """
    from scipy.stats import qmc

    rng = np.random.default_rng(seed)
    iterations = min(10000, 100 * n) if iterations is None else int(iterations)
    best, best_min = None, -1.0
    for _ in range(restarts):
        X = qmc.LatinHypercube(d, rng=rng).random(n) if _LHS_TAKES_RNG else qmc.LatinHypercube(d, seed=rng).random(n)
        if n > 2:
            X = _exchange(X, rng, iterations)
        D = _distances(X)
        np.fill_diagonal(D, np.inf)
        smallest = float(D.min()) if n > 1 else math.inf
        if smallest > best_min:
            best, best_min = X, smallest
    return best


def _lhs_takes_rng() -> bool:
    import inspect

    from scipy.stats import qmc

    return "rng" in inspect.signature(qmc.LatinHypercube).parameters


def _distances(X: np.ndarray) -> np.ndarray:
    sq = (X * X).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * X @ X.T, 0.0))


def _exchange(X: np.ndarray, rng: np.random.Generator, iterations: int) -> np.ndarray:
    """Greedy element exchange on φ_p (terms d^-p; the sum of the upper triangle is φ_p^p).
    Each row's nearest distance is kept up to date, so a proposal costs O(n d)."""
    n, d = X.shape
    D = _distances(X)
    np.fill_diagonal(D, np.inf)
    T = _phi_terms(D)
    np.fill_diagonal(T, 0.0)
    near = D.argmin(1)
    for _ in range(iterations):
        i = int(np.argmin(D[np.arange(n), near]))
        a = i if rng.random() < 0.5 else int(near[i])
        b = int(rng.integers(n - 1))
        b += b >= a
        c = int(rng.integers(d))
        Y_a, Y_b = X[a].copy(), X[b].copy()
        Y_a[c], Y_b[c] = X[b, c], X[a, c]
        da = np.sqrt(((X - Y_a) ** 2).sum(1))
        db = np.sqrt(((X - Y_b) ** 2).sum(1))
        dab = float(np.sqrt(((Y_a - Y_b) ** 2).sum()))
        da[a], db[b] = np.inf, np.inf
        da[b], db[a] = dab, dab
        ta, tb = _phi_terms(da), _phi_terms(db)
        ta[a] = tb[b] = 0.0
        # rows a and b change; the pair (a, b) is in both rows, counted once
        old = T[a].sum() + T[b].sum() - T[a, b]
        new = ta.sum() + tb.sum() - ta[b]
        if new < old:
            X[a], X[b] = Y_a, Y_b
            D[a], D[:, a], D[b], D[:, b] = da, da, db, db
            T[a], T[:, a], T[b], T[:, b] = ta, ta, tb, tb
            stale = np.nonzero((near == a) | (near == b))[0]
            rows = np.arange(n)
            near = np.where(D[rows, a] < D[rows, near], a, near)
            near = np.where(D[rows, b] < D[rows, near], b, near)
            for r in set(stale.tolist()) | {a, b}:
                near[r] = int(np.argmin(D[r]))
    return X


_LHS_TAKES_RNG = _lhs_takes_rng()


# -- pools: chunked distances -------------------------------------------------------------------------

def _sq_dists(A: torch.Tensor, B: torch.Tensor, B_sq: torch.Tensor | None = None) -> torch.Tensor:
    """``[a, b]`` squared Euclidean distances (clamped at 0)."""
    B_sq = (B * B).sum(-1) if B_sq is None else B_sq
    return ((A * A).sum(-1)[:, None] + B_sq[None, :] - 2.0 * A @ B.T).clamp_min_(0.0)


def _step(n_cols: int) -> int:
    """Rows per chunk when each row holds ``n_cols`` distances (and a few temporaries of them):
    at most 24 MiB a chunk (within the memory budget), which measured 2-3× faster than chunks of
    the whole budget (glibc maps and faults every larger temporary afresh). Unlike
    :func:`~bayesal.settings.stream_rows` this leaves the allocator's thresholds alone: with them
    raised, TypiClust over 10⁶ rows peaked at 500 MB of fragmented heap instead of 30 MB."""
    return rows_per_chunk(8.0 * 4 * max(n_cols, 1), budget=min(get_memory_budget(), _CHUNK_BYTES))


def kmeans(Z: torch.Tensor, k: int, generator: torch.Generator, iterations: int = 30
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means of the rows of ``Z: [N, F]`` into ``k`` clusters, from k-means++ seeds
    (:func:`~bayesal.selection.kernel_batch.kernel_batch_indices`, ``"kmeanspp"``), at most
    ``iterations`` rounds (stops when no assignment changes); assignments are computed in row
    chunks. Returns ``(labels [N] long, centres [k, F])``; a cluster that empties keeps its
    centre."""
    from ..kernels import KernelRows
    from .kernel_batch import kernel_batch_indices

    seeds, _ = kernel_batch_indices(KernelRows.from_features(Z[:0], Z), k, "kmeanspp", mode="p", generator=generator)
    centres = Z[seeds.to(Z.device)].clone()
    labels = None
    step = _step(k)
    for _ in range(iterations):
        C_sq = (centres * centres).sum(-1)
        new = torch.empty(Z.shape[0], dtype=torch.long, device=Z.device)
        for i in range(0, Z.shape[0], step):
            new[i:i + step] = _sq_dists(Z[i:i + step], centres, C_sq).argmin(1)
        if labels is not None and bool((new == labels).all()):
            break
        labels = new
        counts = torch.bincount(labels, minlength=k)
        sums = torch.zeros_like(centres).index_add_(0, labels, Z)
        full = counts > 0
        centres[full] = sums[full] / counts[full, None].to(Z)
    return labels, centres


def typicality(Z: torch.Tensor, candidates: torch.Tensor, k: int) -> torch.Tensor:
    """TypiClust's typicality ``[c]`` of the rows ``candidates`` of ``Z: [M, F]`` among all M rows:
    ``1 / (mean distance to the k nearest other rows + 1e-5)`` (Hacohen et al. 2022, eq. 1, and
    their code's constant); neighbours are found in chunks of candidates."""
    M = Z.shape[0]
    k = max(1, min(int(k), M - 1))
    Z_sq = (Z * Z).sum(-1)
    step = _step(M)
    out = torch.empty(candidates.numel(), dtype=Z.dtype, device=Z.device)
    for i in range(0, candidates.numel(), step):
        rows = candidates[i:i + step]
        D = _sq_dists(Z[rows], Z, Z_sq)
        D[torch.arange(rows.numel(), device=D.device), rows] = math.inf  # not its own neighbour
        near = torch.topk(D, k, dim=1, largest=False).values.sqrt()
        out[i:i + step] = 1.0 / (near.mean(1) + 1e-5)
    return out


def typiclust_indices(Z: torch.Tensor, q: int, generator: torch.Generator, k_nn: int = 20,
                      min_cluster_size: int = 5, max_clusters: int = 500, max_candidates: int = 5_000
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """TypiClust (Hacohen, Dekel & Weinshall 2022) on the rows of ``Z: [N, F]``: returns
    ``(indices [q], typicality [q])``.

    As the authors' code does with no labelled points: k-means (:func:`kmeans`) into
    ``min(q, max_clusters, N)`` clusters; then, q times, take the cluster with the fewest points
    chosen so far, the largest first among them (clusters of at most ``min_cluster_size``
    points are skipped while larger ones remain), and choose its most typical remaining point
    (:func:`typicality` within the cluster, ``k = min(k_nn, size // 2)`` neighbours); the chosen
    point leaves the cluster. Ties go to the lowest cluster and row.

    A cluster of more than ``max_candidates`` rows is scored on a seeded random subset of that
    many candidates (neighbours are still found among all its rows), which bounds the work at
    ``max_candidates × cluster size`` distances per cluster; smaller clusters are exact.
    """
    N = Z.shape[0]
    K = min(q, max_clusters, N)
    labels, _ = kmeans(Z, K, generator)
    alive = torch.ones(N, dtype=torch.bool, device=Z.device)
    picked = [0] * K
    cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    chosen, scores = [], []
    for _ in range(q):
        sizes = torch.bincount(labels[alive], minlength=K).tolist()
        eligible = [c for c in range(K) if sizes[c] > min_cluster_size] or [c for c in range(K) if sizes[c] > 0]
        c = min(eligible, key=lambda c: (picked[c], -sizes[c], c))
        if c not in cache:
            members = torch.nonzero(alive & (labels == c)).flatten()
            if members.numel() == 1:
                cache[c] = (members, torch.full((1,), math.nan, dtype=torch.float64))
            else:
                local = torch.arange(members.numel(), device=Z.device)
                if members.numel() > max_candidates:
                    local = torch.randperm(members.numel(), generator=generator)[:max_candidates].sort().values
                    local = local.to(Z.device)
                t = typicality(Z[members], local, min(k_nn, members.numel() // 2))
                cache[c] = (members[local], t.double())
        rows, t = cache.pop(c)
        best = int(torch.argmax(t))  # the first maximum: the lowest row
        chosen.append(int(rows[best]))
        scores.append(float(t[best]))
        alive[rows[best]] = False
        picked[c] += 1
    return torch.tensor(chosen, dtype=torch.long), torch.tensor(scores, dtype=torch.float64)


# -- pools: ProbCover -----------------------------------------------------------------------------------

def purity_delta(Z: torch.Tensor, labels: torch.Tensor, alpha: float = 0.95, generator: torch.Generator | None = None,
                 sample: int = 2000) -> float:
    """ProbCover's purity heuristic (Yehuda et al. 2022, §4): the largest ball radius δ at which
    at least ``alpha`` of the balls ``B_δ(x)`` are pure, all their points sharing x's cluster
    ``labels [N]`` (the paper clusters with k-means and takes α = 0.95).

    A ball is pure while δ is below x's distance to the nearest row of another cluster, so the
    answer is a quantile of those distances; they are computed exactly (in chunks, against all
    rows) for up to ``sample`` rows drawn with ``generator``, all rows when N is at most that.
    Falls back to the median nearest-neighbour distance when no positive finite quantile exists
    (one cluster, or duplicates across clusters), and to 1 when every row is the same.
    """
    N = Z.shape[0]
    idx = torch.arange(N) if N <= sample else torch.randperm(N, generator=generator)[:sample].sort().values
    idx = idx.to(Z.device)
    Z_sq = (Z * Z).sum(-1)
    step = _step(N)
    other = torch.empty(idx.numel(), dtype=Z.dtype, device=Z.device)
    nearest = torch.empty_like(other)
    for i in range(0, idx.numel(), step):
        rows = idx[i:i + step]
        D = _sq_dists(Z[rows], Z, Z_sq)
        D[torch.arange(rows.numel(), device=D.device), rows] = math.inf
        nearest[i:i + step] = D.min(1).values
        other[i:i + step] = D.masked_fill(labels[None, :] == labels[rows][:, None], math.inf).min(1).values
    r = other.sqrt().sort().values
    m = int(math.floor((1.0 - alpha) * r.numel() + 1e-9))
    delta = float(r[min(m, r.numel() - 1)]) * (1.0 - 1e-9)  # just below: that ball is still pure
    if math.isfinite(delta) and delta > 0:
        return delta
    nn = nearest.sqrt()
    nn = nn[torch.isfinite(nn) & (nn > 0)]
    return float(nn.median()) if nn.numel() else 1.0


def _ball_graph(centres: torch.Tensor, Z: torch.Tensor, delta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The directed edges ``c -> y`` from the rows of ``centres: [C, F]`` to the rows of
    ``Z: [N, F]`` within ``delta`` (``|c - y| <= delta``) as ``(src [E], dst [E])`` int64 sorted
    by ``src``; raises when they exceed the memory budget."""
    N = Z.shape[0]
    Z_sq = (Z * Z).sum(-1)
    step = _step(N)
    limit = max(get_memory_budget() // 16, 4 * N)
    # one growing buffer, not a list of small per-chunk tensors: those, interleaved with the
    # chunks' large temporaries, fragmented the heap to 8 GB over 10⁴ chunks of a 10⁶-row pool
    edges = torch.empty(min(limit, 2 * N + 1024), 2, dtype=torch.long, device=Z.device)
    total = 0
    d2 = delta * delta
    for i in range(0, centres.shape[0], step):
        hit = torch.nonzero(_sq_dists(centres[i:i + step], Z, Z_sq) <= d2)
        k = hit.shape[0]
        if total + k > limit:
            raise InvalidInput("delta", f"a radius whose δ-ball graph fits the memory budget (at most {limit} edges; "
                               "pass a smaller delta or raise bayesal.settings.memory_budget)",
                               f"delta={delta:.4g} with more than {limit} edges over {N} rows")
        if total + k > edges.shape[0]:
            grown = torch.empty(min(limit, max(2 * edges.shape[0], total + k)), 2, dtype=torch.long, device=Z.device)
            grown[:total] = edges[:total]
            edges = grown
        edges[total:total + k] = hit
        edges[total:total + k, 0] += i
        total += k
    return edges[:total, 0].clone(), edges[:total, 1].clone()


def probcover_indices(Z: torch.Tensor, q: int, generator: torch.Generator, delta: float | None = None,
                      alpha: float = 0.95, max_candidates: int = 5_000) -> tuple[torch.Tensor, torch.Tensor]:
    """ProbCover (Yehuda, Dekel, Hacohen & Weinshall 2022) on the rows of ``Z: [N, F]``: returns
    ``(indices [q], newly covered [q])``.

    The δ-ball graph links x to every row within distance δ (itself included). Greedy maximum
    coverage, as the authors' code: choose the row whose ball holds the most uncovered rows
    (the lowest row among ties), mark them covered, repeat; once every row is covered the rest
    of the batch is drawn uniformly from the rows not chosen. ``delta`` defaults to
    :func:`purity_delta` on a k-means clustering into ``max(2, q)`` clusters (the paper clusters
    into as many clusters as there are classes; with no labels, as many as labels to buy).

    The graph is built in chunks and held as edge lists (its size is capped by the memory
    budget); each covered row lowers the coverage of the balls that hold it, so the greedy pass
    costs O(E). Ball centres are all N rows when N is at most ``max_candidates``, else a seeded
    random subset of that many (every row still counts for coverage): building the graph costs
    ``min(N, max_candidates) × N`` distances.
    """
    N = Z.shape[0]
    if delta is None:
        labels, _ = kmeans(Z, min(max(2, q), N), generator)
        delta = purity_delta(Z, labels, alpha, generator)
    elif isinstance(delta, bool) or not isinstance(delta, (int, float)) or not (delta > 0 and math.isfinite(delta)):
        raise InvalidInput("delta", "a positive, finite ball radius", repr(delta))
    if N <= max_candidates:
        centres = torch.arange(N, device=Z.device)
    else:
        centres = torch.randperm(N, generator=generator)[:max_candidates].sort().values.to(Z.device)
    C = centres.numel()
    src, dst = _ball_graph(Z[centres], Z, float(delta))
    ptr = torch.zeros(C + 1, dtype=torch.long, device=Z.device)
    ptr[1:] = torch.cumsum(torch.bincount(src, minlength=C), 0)
    order = torch.argsort(dst, stable=True)  # reverse adjacency: the balls that hold each row
    rev_src = src[order]
    rev_ptr = torch.zeros(N + 1, dtype=torch.long, device=Z.device)
    rev_ptr[1:] = torch.cumsum(torch.bincount(dst, minlength=N), 0)
    coverage = (ptr[1:] - ptr[:-1]).clone()
    covered = torch.zeros(N, dtype=torch.bool, device=Z.device)
    taken = torch.zeros(N, dtype=torch.bool, device=Z.device)
    chosen, scores = [], []
    for _ in range(q):
        ball = int(torch.argmax(coverage))
        gain = int(coverage[ball])
        if gain > 0:
            best = int(centres[ball])
        else:
            free = torch.nonzero(~taken).flatten()
            best = int(free[int(torch.randint(free.numel(), (1,), generator=generator))])
        taken[best] = True
        chosen.append(best)
        scores.append(float(max(gain, 0)))
        if gain <= 0:
            continue
        inside = dst[ptr[ball]:ptr[ball + 1]]
        new = inside[~covered[inside]]
        covered[new] = True
        lengths = rev_ptr[new + 1] - rev_ptr[new]
        starts = torch.repeat_interleave(rev_ptr[new], lengths)
        offsets = torch.arange(int(lengths.sum()), device=Z.device) - torch.repeat_interleave(
            torch.cumsum(lengths, 0) - lengths, lengths)
        holders = rev_src[starts + offsets]
        coverage.index_add_(0, holders, torch.full_like(holders, -1))
    return torch.tensor(chosen, dtype=torch.long), torch.tensor(scores, dtype=torch.float64)
