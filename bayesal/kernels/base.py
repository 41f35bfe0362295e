"""Kernels for batch selection: feature maps, and the kernel over ``[labelled; pool]`` rows.

Batch methods in the framework of Holzmüller et al. (2023, "A Framework and Benchmark for Deep
Batch Active Learning for Regression", JMLR) are three orthogonal pieces: a *base kernel* (a
feature map of the inputs, or a model's own posterior kernel), *transforms* of it (scaling, the
Gaussian-process posterior given the labelled points, random sketching) and a *selection method*
(:mod:`bayesal.selection.kernel_batch`). This module holds the first two.

:class:`KernelRows` is what every selection method reads: the kernel over the n_train labelled
rows followed by the n_pool candidate rows. It exposes the diagonal ``[n]`` and one column at a
time ``[n]``, so no method ever materialises the ``[n, n]`` kernel matrix; finite-dimensional
kernels also hold their features ``[n, F]`` (Frank-Wolfe and BAIT work in feature space).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import InvalidInput, Unsupported
from ..settings import rows_per_chunk

__all__ = ["FeatureMap", "InputFeatures", "KernelRows", "sketch_matrix"]


#: rows per block of a feature map: the memory budget caps it too, but bigger blocks only cost
#: memory (a width-512 network's sketched gradients of 4,096 rows are ~200 MB of work)
MAX_BLOCK_ROWS = 4096


class FeatureMap:
    """A map from inputs ``X: [N, d]`` to features ``[N, F]`` whose inner products are a kernel.

    Subclasses implement :meth:`chunk` for one block of rows; :meth:`__call__` applies it to
    blocks sized from the memory budget (``bayesal.settings.memory_budget``), so a feature map
    over a pool of a million rows never holds more than one block of intermediate work.
    """

    #: F, the number of features
    n_features: int = 0

    def chunk(self, X: torch.Tensor) -> torch.Tensor:
        """Features ``[n, F]`` of one block of rows ``X: [n, d]``."""
        raise NotImplementedError

    def bytes_per_row(self, X: torch.Tensor) -> float:
        """Working memory one row costs in :meth:`chunk` (sizes the blocks); the features by default."""
        return 8.0 * max(self.n_features, X.shape[-1]) * 4

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        """Features ``[N, F]`` of ``X: [N, d]``, computed block by block."""
        N = X.shape[0]
        if N == 0:
            return self.chunk(X[:1])[:0]
        step = min(MAX_BLOCK_ROWS, rows_per_chunk(self.bytes_per_row(X)))
        if step >= N:
            return self.chunk(X)
        out = None
        for i in range(0, N, step):  # into one buffer: no list of blocks and no second copy
            block = self.chunk(X[i:i + step])
            if out is None:
                out = torch.empty(N, block.shape[-1], dtype=block.dtype, device=block.device)
            out[i:i + step] = block
        return out


class InputFeatures(FeatureMap):
    """The linear kernel on the inputs themselves, ``k(x, x') = xᵀx'`` (bmdal_reg's ``linear``)."""

    def __init__(self, dim: int):
        self.n_features = int(dim)

    def chunk(self, X: torch.Tensor) -> torch.Tensor:
        return X


def sketch_matrix(n_in: int, n_out: int, generator: torch.Generator, dtype=torch.float32,
                  device=None) -> torch.Tensor:
    """A Gaussian random projection ``[n_in, n_out]`` with entries N(0, 1/n_out), so that
    ``E[(Pᵀa)ᵀ(Pᵀb)] = aᵀb``: sketched features keep the kernel in expectation (Woodruff 2014)."""
    P = torch.randn(n_in, n_out, generator=generator, dtype=torch.float64) / math.sqrt(n_out)
    return P.to(dtype=dtype, device=device)


class KernelRows:
    """The kernel over ``n_train`` labelled rows followed by ``n_pool`` candidate rows.

    Build it with :meth:`from_features` (a finite-dimensional kernel: features ``[n, F]`` held in
    memory, columns by one matrix-vector product) or :meth:`from_columns` (a kernel known only
    through its diagonal and columns, such as a Gaussian process's posterior covariance). Rows
    ``0 … n_train−1`` are the labelled points, ``n_train …`` the pool.

    Args:
        n_train: number of labelled rows (first in the row order).
        diag: ``[n]`` the kernel diagonal k(x, x).
        column: ``j -> [n]``, the kernel between every row and row j.
        features: ``[n, F]`` when the kernel is finite-dimensional, else None.
    """

    def __init__(self, n_train: int, diag: torch.Tensor, column: Callable[[int], torch.Tensor],
                 features: torch.Tensor | None = None,
                 block: Callable[[int, int, torch.Tensor], torch.Tensor] | None = None,
                 pool_column: Callable[[int, torch.Tensor | None], torch.Tensor] | None = None):
        self.n_train = int(n_train)
        self.diag = diag
        self._column = column
        self._pool_column = pool_column
        self._parts = features if isinstance(features, tuple) else None
        self._features = None if isinstance(features, tuple) else features
        if block is None and self._features is not None:
            block = lambda i, k, cols: self._features[i:k] @ self._features[cols].T  # noqa: E731
        self._block = block
        if self.n_train < 0 or self.n_train > diag.shape[0]:
            raise InvalidInput("n_train", f"between 0 and {diag.shape[0]}", str(n_train))

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_features(cls, train: torch.Tensor, pool: torch.Tensor) -> "KernelRows":
        """The linear kernel of features ``train: [n_train, F]`` and ``pool: [n_pool, F]``."""
        if train.shape[-1] != pool.shape[-1]:
            raise InvalidInput("features", f"{pool.shape[-1]} columns for the labelled rows as for the pool",
                               f"{train.shape[-1]}")
        train = train.to(pool)
        p = train.shape[0]
        # no [n, F] copy or temporary: the two blocks stay apart (``features`` joins them on demand)
        diag = torch.cat([torch.linalg.vector_norm(train, dim=-1), torch.linalg.vector_norm(pool, dim=-1)]).pow(2)
        if not bool(torch.isfinite(diag).all()):  # a NaN or inf feature makes its row's norm one
            raise InvalidInput("features", "finite values", "NaN or inf (or values above 1e19) in the "
                               "batch-selection features")

        def row(j: int) -> torch.Tensor:
            return train[j] if j < p else pool[j - p]

        def gather(cols: torch.Tensor) -> torch.Tensor:  # rows ``cols`` of [train; pool], [k, F]
            in_train = cols < p
            if bool(in_train.all()):
                return train.index_select(0, cols)
            if not bool(in_train.any()):
                return pool.index_select(0, cols - p)
            return torch.where(in_train[:, None], train.index_select(0, cols.clamp_max(p - 1)),
                               pool.index_select(0, (cols - p).clamp_min(0)))

        def column(j: int) -> torch.Tensor:
            phi = row(j)
            return torch.cat([train @ phi, pool @ phi]) if p else pool @ phi

        def pool_column(j: int, out: torch.Tensor | None) -> torch.Tensor:
            return torch.mv(pool, row(j), out=out) if out is not None else pool @ row(j)

        def block(i: int, k: int, cols: torch.Tensor) -> torch.Tensor:
            B = gather(torch.as_tensor(cols, device=pool.device).long())
            parts = ([train[i:min(k, p)] @ B.T] if i < p else []) + ([pool[max(i - p, 0):k - p] @ B.T] if k > p else [])
            return torch.cat(parts) if len(parts) > 1 else parts[0]

        return cls(p, diag, column, (train, pool), block, pool_column)

    @classmethod
    def from_feature_map(cls, feature_map: FeatureMap, X_train: torch.Tensor, X_pool: torch.Tensor,
                         storage: torch.dtype | None = None) -> "KernelRows":
        """The linear kernel of ``feature_map`` over ``[X_train; X_pool]``, filled block by block.

        ``storage=torch.float16`` keeps the features compact for very large pools: each row is
        stored as its norm (float32) and its direction (float16), and columns are computed block
        by block in float32. A direction's rounding error (about 5e-4 relative) is far below a
        512-feature sketch's own error (about 6 %); diagonal and columns come from the same
        stored values, so a row's distance to itself stays 0. Such rows have no ``features``
        (BAIT and Frank-Wolfe need float32 features)."""
        X = torch.cat([X_train, X_pool.to(X_train)], 0)
        n_train = X_train.shape[0]
        if storage is None:
            Phi = feature_map(X)
            return cls.from_features(Phi[:n_train], Phi[n_train:])
        step = min(MAX_BLOCK_ROWS, rows_per_chunk(feature_map.bytes_per_row(X)))
        F = feature_map.n_features
        U = torch.empty(X.shape[0], F, dtype=storage, device=X.device)
        norms = torch.empty(X.shape[0], dtype=torch.float32, device=X.device)
        for i in range(0, X.shape[0], step):
            block = feature_map.chunk(X[i:i + step]).float()
            if not bool(torch.isfinite(block).all()):
                raise InvalidInput("features", "finite values", "NaN or inf in the batch-selection features")
            nb = block.norm(dim=-1)
            norms[i:i + step] = nb
            U[i:i + step] = (block / nb.clamp_min(1e-30)[:, None]).to(storage)
        blk = 4096  # float32 blocks of 8 MiB: an upcast block stays in cache (bigger ones were 4x slower)
        diag = torch.empty_like(norms)
        for i in range(0, X.shape[0], blk):
            diag[i:i + blk] = norms[i:i + blk].pow(2) * U[i:i + blk].float().pow(2).sum(-1)

        def product(j: int, start: int, out: torch.Tensor | None) -> torch.Tensor:
            # rows start: of the kernel column j, in blocks aligned at 0 whatever ``start`` is,
            # so that the pool's values are bitwise those of the full column
            v = U[j].float() * norms[j]
            out = torch.empty_like(norms[start:]) if out is None else out
            for i in range(start - start % blk, U.shape[0], blk):
                vals = (U[i:i + blk].float() @ v) * norms[i:i + blk]
                lo = max(start - i, 0)
                out[i + lo - start:i + vals.shape[0] - start] = vals[lo:]
            return out

        def column(j: int) -> torch.Tensor:
            return product(j, 0, None)

        def pool_column(j: int, out: torch.Tensor | None) -> torch.Tensor:
            return product(j, n_train, out)

        def block(i: int, k: int, cols: torch.Tensor) -> torch.Tensor:
            B = U[cols].float() * norms[cols, None]
            out = torch.empty(k - i, len(cols), dtype=torch.float32, device=U.device)
            for a in range(i, k, blk):
                b = min(a + blk, k)
                out[a - i:b - i] = (U[a:b].float() @ B.T) * norms[a:b, None]
            return out

        return cls(n_train, diag, column, None, block, pool_column)

    @classmethod
    def from_columns(cls, n_train: int, diag: torch.Tensor, column: Callable[[int], torch.Tensor]) -> "KernelRows":
        """A kernel known through its diagonal ``[n]`` and columns ``j -> [n]`` only."""
        return cls(n_train, diag, column, None)

    # -- sizes and access --------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of rows, labelled and pool."""
        return self.diag.shape[0]

    @property
    def n_pool(self) -> int:
        """Number of candidate rows."""
        return self.n - self.n_train

    @property
    def features(self) -> torch.Tensor | None:
        """``[n, F]`` for a finite-dimensional kernel (labelled rows first), None for one known
        through columns only; joined from the labelled and pool blocks on first use."""
        if self._features is None and self._parts is not None:
            train, pool = self._parts
            self._features = torch.cat([train, pool]) if train.shape[0] else pool
            self._parts = None
        return self._features

    @property
    def has_features(self) -> bool:
        """Whether the kernel is finite-dimensional with its features held (``features`` is not None)."""
        return self._features is not None or self._parts is not None

    def feature_blocks(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(labelled [n_train, F], pool [n_pool, F])`` features, without joining them."""
        if self._parts is not None:
            return self._parts
        if self._features is None:
            raise Unsupported("this kernel (known only through its columns)", "finite-dimensional features",
                              "feature blocks")
        return self._features[:self.n_train], self._features[self.n_train:]

    @property
    def n_features(self) -> int | None:
        """F for a finite-dimensional kernel, None for one known through columns only."""
        if not self.has_features:
            return None
        return self.feature_blocks()[1].shape[-1]

    def column(self, j: int) -> torch.Tensor:
        """``[n]``: the kernel between every row and row j."""
        return self._column(j)

    @property
    def has_blocks(self) -> bool:
        """Whether :meth:`block` is a blocked product (features held), not a stack of columns."""
        return self._block is not None

    def block(self, start: int, stop: int, cols: torch.Tensor) -> torch.Tensor:
        """``[stop − start, len(cols)]``: the kernel between rows ``start:stop`` and rows ``cols``
        (one matrix product when features are held, else column by column)."""
        if self._block is not None:
            return self._block(start, stop, cols)
        return torch.stack([self.column(int(j))[start:stop] for j in cols], 1)

    def pool_column(self, j: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """``[n_pool]``: the kernel between every pool row and row j (into ``out`` if given).
        With features held, one matrix-vector product over the pool rows alone."""
        if self._pool_column is not None:
            return self._pool_column(j, out)
        col = self.column(j)[self.n_train:]
        return col if out is None else out.copy_(col)

    def sq_dists(self, j: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """``[n_pool]``: squared feature-space distances from row j to every pool row,
        ``k(x,x) + k(j,j) − 2 k(x,j)`` (so they need no features). ``out``: an ``[n_pool]``
        buffer to write them into (the greedy loops reuse one, with no allocation per step)."""
        p = self.n_train
        if out is None:
            return self.diag[p:] + self.diag[j] - 2 * self.pool_column(j)
        col = self.pool_column(j, out)
        # the same roundings as the expression above: (diag_x + diag_j) − 2·col, 2·col exact
        return col.mul_(-2).add_(self.diag[p:] + self.diag[j])

    def require_features(self, method: str, instead: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """The feature blocks ``(labelled [n_train, F], pool [n_pool, F])`` (not joined, so no
        copy), or :class:`~bayesal.errors.Unsupported` naming ``method`` (and what to use ``instead``)."""
        if not self.has_features:
            hint = f"; {instead}" if instead else "; use a feature kernel (ll, grad, samples, inputs)"
            raise Unsupported("this kernel (known only through its columns, e.g. a GP's posterior covariance)",
                              "finite-dimensional features", method + hint)
        return self.feature_blocks()

    # -- transforms --------------------------------------------------------------------------------
    def scaled(self, factor: float | None = None) -> "KernelRows":
        """The kernel times ``factor²``; by default ``factor² = 1 / mean k(x, x)`` over the
        labelled rows (over the pool when nothing is labelled): bmdal_reg's ``scale`` transform,
        which makes a fixed noise σ² mean the same thing for every base kernel."""
        if factor is None:
            ref = self.diag[:self.n_train] if self.n_train > 0 else self.diag
            mean = float(ref.mean()) if ref.numel() else 1.0
            factor = 1.0 / math.sqrt(mean) if mean > 0 and math.isfinite(mean) else 1.0
        f2 = float(factor) ** 2
        if self.has_features:
            train, pool = self.feature_blocks()
            return KernelRows.from_features(train * factor, pool * factor)
        column = self._column
        return KernelRows.from_columns(self.n_train, self.diag * f2, lambda j: column(j) * f2)

    def posterior(self, sigma: float) -> "KernelRows":
        """The Gaussian-process posterior kernel given the labelled rows with noise standard
        deviation ``sigma``: ``k(x,x') − k(x,T)(K_TT + σ²I)⁻¹k(T,x')``.

        In feature space (Φ_T the labelled features, A = Φ_TᵀΦ_T + σ²I = LLᵀ) it is the linear
        kernel of ``φ(x) ↦ σ L⁻¹ φ(x)``, computed in float64 and returned in the features'
        dtype. Only finite-dimensional kernels take it: a model's posterior kernel (``gp``)
        already conditions on the labels.
        """
        train, pool = self.require_features("the posterior transform")
        sigma = float(sigma)
        if not (sigma > 0 and math.isfinite(sigma)):
            raise InvalidInput("sigma", "a positive, finite noise standard deviation", repr(sigma))
        T = train.double()
        A = T.T @ T + sigma ** 2 * torch.eye(pool.shape[-1], dtype=torch.float64, device=pool.device)
        L = torch.linalg.cholesky(A)
        step = min(4096, rows_per_chunk(16.0 * pool.shape[-1]))

        def transformed(Phi: torch.Tensor) -> torch.Tensor:
            out = torch.empty_like(Phi)
            for i in range(0, Phi.shape[0], step):
                block = Phi[i:i + step].double().T
                out[i:i + step] = (sigma * torch.linalg.solve_triangular(L, block, upper=False)).T.to(Phi.dtype)
            return out

        return KernelRows.from_features(transformed(train), transformed(pool))

    def sketched(self, n_features: int, generator: torch.Generator) -> "KernelRows":
        """The features projected to ``n_features`` by :func:`sketch_matrix` (same kernel in expectation)."""
        train, pool = self.require_features("sketching")
        P = sketch_matrix(pool.shape[-1], n_features, generator, pool.dtype, pool.device)
        return KernelRows.from_features(train @ P, pool @ P)
