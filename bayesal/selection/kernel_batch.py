"""Kernel batch selection: MaxDiag, MaxDet, MaxDist (k-center), KMeansPP, LCMD, BAIT, Frank-Wolfe, BADGE.

Each method reads a :class:`~bayesal.kernels.KernelRows` (the kernel over the labelled rows
followed by the pool rows, with a base kernel and transforms chosen in :mod:`bayesal.kernels`)
and picks q pool rows. The decomposition, the methods' definitions and the benchmark that ranks
them are from Holzmüller, Zaverkin, Kästner and Steinwart (2023), "A Framework and Benchmark for
Deep Batch Active Learning for Regression" (JMLR 24); given the same kernel, our methods choose
the same rows as their reference implementation, bmdal_reg (tests/test_kernel_batch.py).

Modes: in P mode only the batch counts as selected; in TP mode ("train + pool") the labelled
rows count as already selected, so distance-based methods keep away from them.

* ``maxdiag``: the q largest k(x, x) (top-k posterior variance);
* ``maxdet``: greedy maximisation of det(K_B + σ²I) — the joint-information criterion — on
  :class:`~bayesal.selection.greedy.GreedyConditioning`, THE greedy engine;
* ``maxdist`` / ``kcenter``: farthest-first traversal, the greedy 2-approximation of k-center
  (Gonzalez 1985; the core-set method of Sener & Savarese 2018);
* ``kmeanspp``: k-means++ seeding, D²-sampling (Arthur & Vassilvitskii 2007);
* ``lcmd``: largest cluster maximum distance (Holzmüller et al. 2023): assign every pool row to
  its nearest selected centre, find the cluster with the largest sum of squared distances, and
  take its row farthest from the centre;
* ``bait-f`` / ``bait-fb``: BAIT (Ash et al. 2021, "Gone Fishing: Neural Active Learning with
  Fisher Embeddings") in feature space: greedy maximisation of the reduction of
  tr(Φ_all Σ Φ_allᵀ), forward only, or forward to 2q and backward to q;
* ``fw``: Frank-Wolfe on the kernel mean embedding of the pool (Pinsler et al. 2019, "Bayesian
  Batch Active Learning as Sparse Subset Approximation");
* ``badge``: k-means++ on gradient embeddings, starting from the largest-norm row (Ash et al.
  2020, "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds").

No method builds an ``[n, n]`` matrix: distance methods keep ``[n_pool]`` state and read one
kernel column per step, so their memory is that of the kernel's features.
"""

from __future__ import annotations

import math

import torch

from ..acquisition.base import Acquisition
from ..errors import InvalidInput, UnknownName, Unsupported
from ..kernels import AUTO_ORDER, KERNELS, TRANSFORMS, KernelRows, batch_kernel, resolve_kernel
from ..posteriors import GaussianPosterior, SamplePosterior
from ..settings import rows_per_chunk
from ..spaces import Box, Pool
from ..validation import check_count, check_seed, check_X
from .base import Selection, check_arguments, from_pool
from .greedy import GreedyConditioning, greedy_batch

__all__ = ["KERNEL_METHODS", "DEFAULT_MODES", "KernelBatch", "kernel_batch_indices", "parse_transform",
           "select_kernel_batch"]

#: the selection methods of :func:`kernel_batch_indices`
KERNEL_METHODS = ("maxdiag", "maxdet", "maxdist", "kcenter", "kmeanspp", "lcmd", "bait-f", "bait-fb", "fw", "badge")
#: the mode each method runs in unless told otherwise (Holzmüller et al.: distance methods in TP)
DEFAULT_MODES = {"maxdiag": "p", "maxdet": "p", "maxdist": "tp", "kcenter": "tp", "kmeanspp": "tp", "lcmd": "tp",
                 "bait-f": "p", "bait-fb": "p", "fw": "p", "badge": "p"}
_FLOOR = 1e-8  # BAIT's denominator guard (bmdal_reg uses the same)


def kernel_batch_indices(rows: KernelRows, q: int, method: str, mode: str | None = None,
                         generator: torch.Generator | None = None, sigma: float = 0.0
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose q pool rows of ``rows`` with ``method`` (one of :data:`KERNEL_METHODS`).

    Args:
        rows: the kernel over ``[labelled; pool]``.
        q: batch size, at most ``rows.n_pool``.
        method: selection method.
        mode: ``"p"`` or ``"tp"`` (default :data:`DEFAULT_MODES`).
        generator: randomness of ``kmeanspp`` and ``badge`` (D²-sampling).
        sigma: noise standard deviation of ``maxdet`` and ``bait-*`` (σ² on the diagonal).

    Returns:
        ``(indices [q] long, scores [q] float64)``: pool-row indices (0 = the first pool row) in
        the order chosen, and each row's score when it was chosen (its conditioned variance,
        squared distance, or BAIT gain; for ``maxdiag``, its diagonal).
    """
    if method not in KERNEL_METHODS:
        raise UnknownName("method", str(method), list(KERNEL_METHODS))
    mode = DEFAULT_MODES[method] if mode is None else mode
    if mode not in ("p", "tp"):
        raise InvalidInput("mode", "'p' (pool) or 'tp' (train + pool)", repr(mode))
    q = check_count(q, "q")
    if q > rows.n_pool:
        raise InvalidInput("q", f"at most {rows.n_pool} (the candidate rows)", str(q))
    sigma = float(sigma)
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise InvalidInput("sigma", "a finite noise standard deviation ≥ 0", repr(sigma))
    tp = mode == "tp"
    if method == "maxdiag":
        top = torch.topk(rows.diag[rows.n_train:], q)
        return top.indices.cpu(), top.values.double().cpu()
    if method == "maxdet":
        return _maxdet(rows, q, tp, sigma)
    if method in ("maxdist", "kcenter"):
        return _distances(rows, q, tp, rule="max")
    if method in ("kmeanspp", "badge"):
        return _distances(rows, q, tp, rule="sample", generator=generator, first="max" if method == "badge" else "random")
    if method == "lcmd":
        return _distances(rows, q, tp, rule="lcmd")
    if method in ("bait-f", "bait-fb"):
        return _bait(rows, q, tp, sigma, overselect=2.0 if method == "bait-fb" else 1.0)
    return _frank_wolfe(rows, q, tp)


def _result(chosen: list[int], scores: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(chosen, dtype=torch.long), torch.tensor(scores, dtype=torch.float64)


class _VarianceScorer:
    """Greedy scorer of MaxDet: the conditioned variance itself (log det grows by log(σ²_t + σ²))."""

    def scores(self, var: torch.Tensor) -> torch.Tensor:
        return var[:, 0]

    def update(self, j, v, denom) -> None:
        pass


def _maxdet(rows: KernelRows, q: int, tp: bool, sigma: float):
    """Greedy log-det on the greedy engine; TP conditions on the labelled rows first."""
    p = rows.n_train
    noise = torch.full((1,), sigma ** 2, dtype=rows.diag.dtype, device=rows.diag.device)
    state = GreedyConditioning(rows.diag[:, None], noise, _VarianceScorer(), column=lambda j: rows.column(j)[:, None])
    if tp:
        for j in range(p):
            state.choose(j)
    allowed = torch.zeros(rows.n, dtype=torch.bool, device=rows.diag.device)
    allowed[p:] = True
    chosen, gains = greedy_batch(state, q, allowed=allowed)
    return _result([j - p for j in chosen], gains)


def _distances(rows: KernelRows, q: int, tp: bool, rule: str, generator: torch.Generator | None = None,
               first: str = "max"):
    """MaxDist, KMeansPP / BADGE and LCMD: each keeps every pool row's squared distance to its
    nearest centre (and, for LCMD, which centre that is), updated by one kernel column per step.

    A step is one matrix-vector product over the pool plus a few passes over ``[n_pool]``
    buffers allocated once: the product is memory-bound, so everything else is kept in place."""
    p, N = rows.n_train, rows.n_pool
    device = rows.diag.device
    min_sq = torch.full((N,), math.inf, dtype=rows.diag.dtype, device=device)
    closest = torch.zeros(N, dtype=torch.int32, device=device)  # int32: its passes are 3-6x faster than int64
    taken = torch.zeros(N, dtype=torch.bool, device=device)
    d, score, mask = torch.empty_like(min_sq), torch.empty_like(min_sq), torch.empty_like(taken)
    picked = torch.empty(q, dtype=torch.long, device=device)  # the chosen pool rows, as indices
    neg_inf = torch.tensor(-math.inf, dtype=min_sq.dtype, device=device)
    n_centres = 0

    def add(row: int) -> None:
        nonlocal n_centres
        rows.sq_dists(row, out=d)
        n_centres += 1
        torch.lt(d, min_sq, out=mask)
        torch.where(mask, torch.tensor(n_centres, dtype=torch.int32, device=device), closest, out=closest)
        torch.minimum(min_sq, d, out=min_sq)  # = where(d < min_sq, d, min_sq): all finite

    if tp and p > 0:
        # the labelled rows as centres 1..p at once: one blocked product instead of p columns
        # (ties go to the first labelled row, as when they are added one by one)
        if not rows.has_blocks:
            for j in range(p):
                add(j)
        else:
            step = min(1024, max(1, rows_per_chunk(8.0 * p)))
            train, dT = torch.arange(p, device=device), rows.diag[:p]
            for i in range(0, N, step):
                k = min(i + step, N)
                D = rows.diag[p + i:p + k, None] + dT[None, :] - 2 * rows.block(p + i, p + k, train)
                dmin, owner = D.min(1)
                min_sq[i:k] = dmin
                closest[i:k] = owner + 1
            n_centres = p
    chosen, scores = [], []
    for step_ in range(q):
        done = picked[:step_]
        if n_centres == 0:
            if rule == "sample" and first == "random":
                j = int(torch.randint(N, (1,), generator=generator, device="cpu"))
            else:  # the largest-norm row (bmdal_reg's and BADGE's first centre)
                j = int(torch.argmax(rows.diag[p:]))
            value = float(rows.diag[p + j])  # no centre yet: its squared distance from the origin
        elif rule == "sample":
            w = torch.clamp_min(min_sq, 0.0, out=score).index_fill_(0, done, 0.0)
            if not bool(w.sum() > 0):
                j = _first_free(taken)
            else:
                # the strategy's generator lives on the CPU (the same draws on every device)
                j = int(torch.multinomial(w.cpu() if generator is not None else w, 1, generator=generator))
            value = float(min_sq[j])
        else:
            if rule == "lcmd":
                # the rows of the cluster(s) with the largest sum of squared distances
                mass = torch.bincount(closest, weights=min_sq, minlength=n_centres + 1)
                top, heaviest = torch.topk(mass, 2)  # n_centres >= 1, so mass has >= 2 entries
                if bool(top[1] < top[0]):
                    torch.eq(closest, heaviest[0], out=mask)
                else:  # tied clusters: every one of them is a candidate
                    torch.eq(mass[closest], top[0], out=mask)
                torch.where(mask, min_sq, neg_inf, out=score)
            else:
                score.copy_(min_sq)
            best, at = torch.max(score.index_fill_(0, done, -math.inf), 0)
            j, value = int(at), float(best)
            if value == -math.inf:
                j = _first_free(taken)
        taken[j] = True
        picked[step_] = j
        chosen.append(j)
        scores.append(value)
        add(p + j)
    return _result(chosen, scores)


def _first_free(taken: torch.Tensor) -> int:
    return int(torch.nonzero(~taken)[0])


def _bait(rows: KernelRows, q: int, tp: bool, sigma: float, overselect: float):
    """BAIT in feature space (Ash et al. 2021; the forward-backward variant of Holzmüller et al.).

    With Φ_t the features conditioned on the chosen rows (noise σ²) and C_t = Σ_z φ_t(z)φ_t(z)ᵀ
    over the pool (plus the labelled rows in P mode, which then are not conditioned on), the gain
    of row x is φ_t(x)ᵀC_tφ_t(x) / (k_t(x, x) + σ²): the drop of the total posterior variance
    over the pool when x is labelled. One step is a rank-1 update of Φ, C and the gains, in float64."""
    # float64 always: in float32 the rank-1 downdates of a 512-feature kernel lose the gains to
    # rounding after ~100 steps (bmdal_reg's own configurations run BAIT in float64 too)
    train, pool = rows.require_features(
        "BAIT", "on a GP's kernel BAIT is integrated variance over the pool: --strategy integrated-variance")
    p, N = rows.n_train, rows.n_pool
    Phi = torch.cat([train, pool]).double() if tp else pool.to(torch.float64, copy=True)
    C = Phi.T @ Phi
    if not tp and p > 0:
        T = train.to(torch.float64)
        C += T.T @ T
    num = torch.empty(Phi.shape[0], dtype=Phi.dtype, device=Phi.device)
    diag = torch.empty_like(num)
    for i in range(0, Phi.shape[0], 1024):  # k(x, x) and φᵀCφ per row, in blocks of 4 MiB
        block = Phi[i:i + 1024]
        diag[i:i + 1024] = (block * block).sum(-1)
        num[i:i + 1024] = ((block @ C) * block).sum(-1)
    s2 = sigma ** 2

    def condition(r: int, sign: float) -> None:
        # sign −1 labels row r (forward step), +1 takes it back (backward step). In-place rank-1
        # updates (addr_) and one product for both projections keep a step at about three passes
        # over Φ, with no [n, F] temporary.
        nonlocal num, diag
        entry = float(diag[r] + s2) if sign < 0 else max(float(s2 - diag[r]), 1e-15)
        root = math.sqrt(entry)
        beta = 1.0 / (root * (root + sigma))
        phi = Phi[r].clone()
        cphi = C @ phi
        both = Phi @ torch.stack([phi, cphi], 1)  # [n, 2]: Φφ and ΦCφ
        dots, phi_c = both[:, 0], both[:, 1]
        phi_c_phi = float(num[r])
        mult = 1.0 / entry
        num += sign * 2 * mult * phi_c * dots + mult ** 2 * phi_c_phi * dots ** 2
        C.addr_(cphi, phi, alpha=sign * beta).addr_(phi, cphi, alpha=sign * beta)
        C.addr_(phi, phi, alpha=beta ** 2 * phi_c_phi)
        Phi.addmm_(dots[:, None], phi[None, :], alpha=sign * beta)  # in place; faster than addr_ on [n, F]
        diag += sign * dots ** 2 / entry

    if tp:
        for r in range(p):
            condition(r, -1.0)
    first = 0 if not tp else p  # pool rows start here in Phi
    n_forward = min(round(overselect * q), N)
    taken = torch.zeros(N, dtype=torch.bool, device=Phi.device)
    chosen, scores = [], []
    for _ in range(n_forward):
        g = (num[first:] / (diag[first:] + s2 + _FLOOR)).masked_fill(taken, -math.inf)
        j = int(torch.argmax(g))
        if not float(g[j]) > 0:  # nothing left to gain: the lowest free rows, as bmdal_reg fills up
            free = torch.nonzero(~taken).flatten()[:n_forward - len(chosen)]
            chosen += free.tolist()
            scores += [0.0] * len(free)
            break
        chosen.append(j)
        scores.append(float(g[j]))
        taken[j] = True
        condition(first + j, -1.0)
    while len(chosen) > q:
        sel = torch.tensor(chosen, device=Phi.device) + first
        den = diag[sel] - s2
        back = num[sel].clamp_min(0.0) / den
        back = back.masked_fill(den >= 0, -math.inf)
        i = int(torch.argmax(back))
        if not (-math.inf < float(back[i]) < 0):
            del chosen[q:], scores[q:]
            break
        condition(int(sel[i]), 1.0)
        del chosen[i], scores[i]
    return _result(chosen, scores)


def _frank_wolfe(rows: KernelRows, q: int, tp: bool):
    """Frank-Wolfe on the kernel mean embedding (Pinsler et al. 2019), in feature space: the batch
    is a sparse weighted set of normalised features ``(Σ_i ‖φ_i‖) φ_j/‖φ_j‖`` approximating
    ``Σ_i φ_i``; each step adds the row best aligned with the residual, with the line-search step."""
    train, pool = rows.require_features("Frank-Wolfe")
    p = rows.n_train
    Phi = torch.cat([train, pool]) if tp else pool
    first = p if tp else 0
    norms = Phi.pow(2).sum(-1).sqrt()
    total = norms.sum()
    unit = Phi / (norms[:, None] + 1e-30)
    target = Phi.sum(0)
    current = torch.zeros_like(target)

    def add(r: int) -> None:
        nonlocal current
        residual = target - current
        direction = total * unit[r] - current
        gamma = torch.dot(direction, residual) / torch.dot(direction, direction)
        current = (1 - gamma) * current + gamma * total * unit[r]

    if tp:
        for r in range(p):
            add(r)
    taken = torch.zeros(rows.n_pool, dtype=torch.bool, device=Phi.device)
    chosen, scores = [], []
    for _ in range(q):
        s = (unit[first:] @ (target - current)).masked_fill(taken, -math.inf)
        j = int(torch.argmax(s))
        chosen.append(j)
        scores.append(float(s[j]))
        taken[j] = True
        add(first + j)
    return _result(chosen, scores)


#: the base kernels ``kernel="auto"`` tries, in order, for each method (the first the surrogate has)
_PREFERRED = {"badge": ("badge",), "kcenter": ("ll", "gp", "samples")}
#: methods that run on a posterior-transformed kernel by default (Holzmüller et al.'s "-P" configurations)
_POSTERIOR_BY_DEFAULT = ("maxdiag", "maxdet", "bait-f", "bait-fb", "fw")


def parse_transform(transform) -> tuple[tuple[str, ...], str | None]:
    """``(transforms, mode)`` from ``"scale+posterior+tp"``-style text (or a sequence of names):
    transform names from :data:`bayesal.kernels.TRANSFORMS`, and ``"tp"`` / ``"p"`` for the mode;
    ``"none"`` or ``""`` is no transform."""
    if transform is None:
        return None, None
    tokens = transform.replace(",", "+").split("+") if isinstance(transform, str) else list(transform)
    names, mode = [], None
    for token in tokens:
        token = str(token).strip().lower()
        if token in ("", "none"):
            continue
        if token in ("tp", "p"):
            if mode is not None and mode != token:
                raise InvalidInput("transform", "at most one of the modes 'tp' and 'p'", repr(transform))
            mode = token
        elif token in TRANSFORMS:
            names.append(token)
        else:
            raise UnknownName("transform", token, list(TRANSFORMS) + ["tp", "p", "none"])
    return tuple(names), mode


class KernelBatch(Acquisition):
    """A kernel batch method as a strategy: ``KernelBatch("lcmd")``, ``--strategy lcmd``.

    The batch is chosen by :func:`kernel_batch_indices` on the kernel
    :func:`bayesal.kernels.batch_kernel` builds over the labelled points and the candidates
    (Holzmüller et al. 2023: kernel × transform × selection method).

    Args:
        method: one of :data:`KERNEL_METHODS`.
        kernel: base kernel (:data:`bayesal.kernels.KERNELS`); ``"auto"`` takes the network's
            sketched gradients, else the GP's posterior covariance, else the sample covariance
            (``badge``: the BADGE gradient embedding; ``kcenter``: the last layer first).
        transform: ``"scale+posterior+tp"``-style text; by default ``scale+posterior`` (σ = 0.1)
            for MaxDiag, MaxDet, BAIT and Frank-Wolfe on feature kernels, nothing for the
            distance methods, and the mode of :data:`DEFAULT_MODES`. The ``gp`` kernel is already
            a posterior, so it takes no posterior transform, and MaxDet / BAIT use the GP's own
            noise on it.
        sigma: noise standard deviation of the posterior transform and of MaxDet / BAIT.
        n_features: sketch size of the ``grad`` kernel (default 512).

    On a box the batch is chosen among ``n_candidates`` Sobol points of the box. The single-point
    :meth:`score` (a report's acquisition map, a batch of one by top-k) is the posterior variance.
    """

    greedy_by_default = True
    scores_from_marginals = False  # the batch needs the whole kernel, so no Dask sharding
    selects_batch = True

    def __init__(self, method: str = "lcmd", kernel: str = "auto", transform=None, sigma: float = 0.1,
                 n_features: int = 512, n_candidates: int = 4096):
        if method not in KERNEL_METHODS:
            raise UnknownName("strategy", str(method), list(KERNEL_METHODS))
        if kernel not in KERNELS:
            raise UnknownName("kernel", str(kernel), list(KERNELS))
        self.method, self.kernel = method, kernel
        self.transforms, self.mode = parse_transform(transform)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (sigma > 0 and math.isfinite(sigma)):
            raise InvalidInput("sigma", "a positive, finite noise standard deviation", repr(sigma))
        self.sigma = float(sigma)
        self.n_features = check_count(n_features, "n_features")
        self.n_candidates = check_count(n_candidates, "n_candidates")
        self.name = method
        self.needs_posterior = kernel != "inputs"

    def __repr__(self) -> str:
        return (f"KernelBatch({self.method!r}, kernel={self.kernel!r}, "
                f"transform={'+'.join(self.transforms) if self.transforms is not None else None!r}, "
                f"mode={self.mode!r}, sigma={self.sigma})")

    def resolved_kernel(self, surrogate) -> str:
        """The base kernel this strategy uses with ``surrogate``."""
        return resolve_kernel(self.kernel, surrogate, _PREFERRED.get(self.method, AUTO_ORDER))

    def score(self, posterior, generator=None) -> torch.Tensor:
        if isinstance(posterior, (GaussianPosterior, SamplePosterior)):
            return posterior.variance.sum(-1)
        raise Unsupported(type(self).__name__, "a Gaussian or sample posterior", "single-point scores")

    def select_batch(self, surrogate, X_train: torch.Tensor, X_pool: torch.Tensor, q: int,
                     seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        seed = check_seed(seed)
        kernel = self.resolved_kernel(surrogate)
        transforms = self.transforms
        if transforms is None:
            transforms = ("scale", "posterior") if self.method in _POSTERIOR_BY_DEFAULT and kernel != "gp" else ()
        if kernel == "gp" and "posterior" in transforms:
            raise InvalidInput("transform", "no 'posterior' transform on the 'gp' kernel (it is the GP's posterior "
                               "covariance already)", "+".join(transforms))
        gen = torch.Generator()
        gen.manual_seed(seed if seed is not None else int(torch.randint(2**31, (1,))))
        sketch_seed = int(torch.randint(2**31, (1,), generator=gen))
        if X_train.shape[0] == 0:
            transforms = tuple(t for t in transforms if t != "posterior")  # nothing to condition on
        rows = batch_kernel(kernel, surrogate, X_train, X_pool, transforms=transforms, sigma=self.sigma,
                            n_features=self.n_features, seed=sketch_seed)
        sigma = self.sigma
        if kernel == "gp" and surrogate.noise_variance is not None:
            sigma = float(surrogate.noise_variance.sum()) ** 0.5
        return kernel_batch_indices(rows, q, self.method, mode=self.mode, generator=gen, sigma=sigma)


def select_kernel_batch(surrogate, acquisition: Acquisition, space, q: int, seed: int | None = None,
                        X_observed: torch.Tensor | None = None) -> Selection:
    """The batch of a strategy that selects it itself (``acquisition.selects_batch``).

    On a pool: among its unlabelled rows, with its labelled rows as the labelled points. On a box:
    among ``acquisition.n_candidates`` scrambled Sobol points of the box (seeded by ``seed``),
    with ``X_observed: [n, d]`` as the labelled points.
    """
    check_arguments(surrogate, acquisition, space, (Pool, Box), "a bayesal Pool or Box")
    q = check_count(q, "q")
    seed = check_seed(seed)
    if isinstance(space, Pool):
        space.check_batch_size(q)
        idx = space.available
        X_pool, X_train = space.X[idx], space.X[space.labelled]
    else:
        n = max(acquisition.n_candidates, 4 * q)
        X_pool = space.sample(n, seed=seed)
        X_train = (X_pool[:0] if X_observed is None
                   else check_X(X_observed, "X_observed", dim=space.dim).to(X_pool))
    chosen, scores = acquisition.select_batch(surrogate, X_train, X_pool, q, seed=seed)
    chosen = chosen.to("cpu", torch.long)
    if isinstance(space, Pool):
        return from_pool(space, idx.cpu()[chosen], scores)
    return Selection(X_pool[chosen.to(X_pool.device)], None, scores.to("cpu", torch.float64))

