"""Search spaces: a finite :class:`Pool` of candidates or a continuous :class:`Box`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from .errors import InvalidInput
from .settings import rows_per_chunk
from .validation import as_tensor, check_count, check_bounds, check_in_box, check_indices, check_seed, check_X, check_y, data_bounds, describe

__all__ = ["Box", "Pool", "MAX_POINTS"]

#: the most points a box draws at once (a batch or a candidate set): 10**7 points of a 10-D box
#: are already 800 MB, and a request of 10**9 would try to allocate terabytes
MAX_POINTS = 10**7


class Box:
    """A continuous hyper-rectangle ``lower <= x <= upper``.

    Args:
        lower: lower bounds ``[d]``.
        upper: upper bounds ``[d]``, each strictly above its lower bound.
        names: optional names of the d inputs (used in plots and reports).
    """

    def __init__(self, lower: Any, upper: Any, names: Sequence[str] | None = None):
        lo = as_tensor(lower, "lower")
        hi = as_tensor(upper, "upper")
        for name, value, raw in (("lower", lo, lower), ("upper", hi, upper)):
            if value.dim() > 1:  # a [2, d] array would be silently flattened into 2d bounds
                raise InvalidInput(name, "a 1-D array of bounds [d] (or a number)", describe(raw))
        lo, hi = lo.reshape(-1), hi.reshape(-1)
        if lo.numel() == 0:
            raise InvalidInput("lower", "at least one bound", "an empty array")
        if lo.shape != hi.shape:
            raise InvalidInput("upper", f"{lo.numel()} bounds like lower", f"{hi.numel()} bounds")
        if not bool(torch.isfinite(lo).all() and torch.isfinite(hi).all()):
            raise InvalidInput("lower/upper", "finite bounds", f"lower={lo.tolist()}, upper={hi.tolist()}")
        bad = torch.nonzero(hi <= lo).flatten().tolist()
        if bad:
            raise InvalidInput("upper", "upper > lower in every dimension", f"upper <= lower in dimensions {bad}")
        if not bool(torch.isfinite(hi - lo).all()):
            # inputs are mapped to the unit cube by dividing by the width: it must not overflow
            raise InvalidInput("lower/upper", "bounds whose width upper - lower is a finite float",
                               f"lower={lo.tolist()}, upper={hi.tolist()}")
        if names is not None:
            if isinstance(names, (str, bytes)) or not all(isinstance(n, str) for n in names):
                raise InvalidInput("names", f"a list of {lo.numel()} strings", describe(names))
            if len(names) != lo.numel():
                raise InvalidInput("names", f"{lo.numel()} names", f"{len(names)} names")
        self.bounds = torch.stack([lo, hi])  # [2, d]
        self.names = list(names) if names is not None else [f"x{i}" for i in range(lo.numel())]

    @property
    def dim(self) -> int:
        """Input dimension d."""
        return self.bounds.shape[-1]

    @property
    def lower(self) -> torch.Tensor:
        """Lower bounds ``[d]``."""
        return self.bounds[0]

    @property
    def upper(self) -> torch.Tensor:
        """Upper bounds ``[d]``."""
        return self.bounds[1]

    def __repr__(self) -> str:
        return f"Box(dim={self.dim}, lower={self.lower.tolist()}, upper={self.upper.tolist()})"

    def contains(self, X: torch.Tensor) -> torch.Tensor:
        """Boolean mask ``[N]``: which rows of ``X: [N, d]`` lie in the box."""
        b = self.bounds.to(X)
        return ((X >= b[0]) & (X <= b[1])).all(-1)

    def check(self, X: Any, name: str = "X") -> torch.Tensor:
        """Validate ``X`` as points of this box; returns ``[N, d]`` float64."""
        X = check_X(X, name, dim=self.dim)
        check_in_box(X, self.bounds, name)
        return X

    def to_unit(self, X: torch.Tensor) -> torch.Tensor:
        """Map ``X: [..., d]`` from the box to the unit cube."""
        b = self.bounds.to(X)
        return (X - b[0]) / (b[1] - b[0])

    def from_unit(self, U: torch.Tensor) -> torch.Tensor:
        """Map ``U: [..., d]`` from the unit cube to the box."""
        b = self.bounds.to(U)
        return b[0] + U * (b[1] - b[0])

    def sample(self, n: int, seed: int | None = None, method: str = "sobol") -> torch.Tensor:
        """``n`` points ``[n, d]`` in the box: scrambled Sobol (default) or i.i.d. uniform."""
        n = check_count(n, "n", minimum=0, maximum=MAX_POINTS, maximum_reason="points drawn at once")
        seed = check_seed(seed)
        if method not in ("sobol", "uniform"):
            raise InvalidInput("method", "'sobol' or 'uniform'", repr(method))
        if n == 0:  # SobolEngine cannot draw zero points
            return torch.empty(0, self.dim, dtype=self.bounds.dtype, device=self.bounds.device)
        if method == "sobol":
            engine = torch.quasirandom.SobolEngine(self.dim, scramble=True, seed=seed)
            U = engine.draw(n, dtype=self.bounds.dtype)
        elif method == "uniform":
            gen = torch.Generator().manual_seed(seed) if seed is not None else None
            U = torch.rand(n, self.dim, generator=gen, dtype=self.bounds.dtype)
        else:
            raise InvalidInput("method", "'sobol' or 'uniform'", repr(method))
        return self.from_unit(U.to(self.bounds.device))

    def to_pool(self, n: int, seed: int | None = None) -> "Pool":
        """Discretise the box into a pool of ``n`` Sobol points (no hidden labels)."""
        return Pool(self.sample(n, seed=seed), bounds=self.bounds)


class Pool:
    """A finite set of N candidate points, some of which may already be labelled.

    Args:
        X: candidates ``[N, d]``.
        y: optional hidden labels ``[N]`` or ``[N, m]``, revealed one index at a time by
            :meth:`reveal` (for simulated labelling of a data set).
        bounds: optional ``[2, d]`` bounds of the space the pool was drawn from; by default the
            per-column min and max of ``X``.

    Labelled points are excluded from :meth:`chunks` and :attr:`available`, so an acquisition
    never proposes a point twice.
    """

    def __init__(self, X: Any, y: Any = None, bounds: Any = None):
        if as_tensor(X, "X (pool candidates)", dtype=None).dim() == 0:
            raise InvalidInput("X (pool candidates)", "an array of candidates [N, d]", describe(X))
        self.X = check_X(X, "X (pool candidates)")
        self._y = None if y is None else check_y(y, "y (pool labels)", n=self.X.shape[0])
        if bounds is None:
            self.bounds = data_bounds(self.X, "X (pool candidates)")
        else:
            self.bounds = check_bounds(bounds, self.dim, "bounds", like=self.X)
            check_in_box(self.X, self.bounds, "X (pool candidates)")
        self.labelled = torch.zeros(self.X.shape[0], dtype=torch.bool, device=self.X.device)

    # -- shape --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def dim(self) -> int:
        """Input dimension d."""
        return self.X.shape[-1]

    @property
    def has_labels(self) -> bool:
        """Whether the pool was built with hidden labels (then it can label itself, see :meth:`reveal`)."""
        return self._y is not None

    @property
    def num_outputs(self) -> int | None:
        """m, the number of outputs of the hidden labels, or None for an unlabelled pool."""
        return None if self._y is None else self._y.shape[-1]

    @property
    def available(self) -> torch.Tensor:
        """Indices ``[N_avail]`` of the candidates not yet labelled."""
        return torch.nonzero(~self.labelled).flatten()

    @property
    def n_available(self) -> int:
        """Number of candidates not yet labelled."""
        return int((~self.labelled).sum())

    def __repr__(self) -> str:
        return f"Pool(N={len(self)}, dim={self.dim}, available={self.n_available}, labels={'hidden' if self.has_labels else 'none'})"

    # -- iteration ----------------------------------------------------------------------------
    def chunks(self, chunk_size: int | None = None, bytes_per_row: float | None = None
               ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Iterate over the available candidates as ``(indices [c], X [c, d])`` chunks.

        ``chunk_size`` defaults to as many rows as the memory budget allows given
        ``bytes_per_row`` (the caller's working memory per candidate).
        """
        if chunk_size is None:
            chunk_size = rows_per_chunk(bytes_per_row or 8.0 * (self.dim + 64))
        available = self.available
        for start in range(0, available.numel(), chunk_size):
            idx = available[start:start + chunk_size]
            yield idx, self.X[idx]

    # -- labelling ----------------------------------------------------------------------------
    def mark_labelled(self, indices: Any) -> None:
        """Mark the candidates at ``indices: [k]`` as labelled, so that no selector proposes them again."""
        idx = check_indices(indices, "indices", len(self))
        self.labelled[idx.to(self.labelled.device)] = True

    def reveal(self, indices: Any) -> torch.Tensor:
        """The hidden labels ``[k, m]`` of the candidates at ``indices`` (does not mark them)."""
        if self._y is None:
            raise InvalidInput("pool", "a pool created with hidden labels y", "a pool without labels")
        idx = check_indices(indices, "indices", len(self))
        return self._y[idx.to(self._y.device)]

    def check_batch_size(self, q: int) -> None:
        """Raise unless ``q`` candidates can still be proposed."""
        if self.n_available == 0:
            raise InvalidInput("pool", "at least one unlabelled candidate", "an exhausted pool (every point labelled)")
        if q > self.n_available:
            raise InvalidInput("q", f"a batch size of at most {self.n_available} (the unlabelled candidates left)", str(q))

    def index_of(self, X: Any, atol: float = 1e-10) -> torch.Tensor:
        """Indices ``[k]`` of the candidates equal to the rows of ``X: [k, d]`` (raises if absent)."""
        X = check_X(X, "X", dim=self.dim).to(self.X)
        found = []
        for i, x in enumerate(X):
            hit = torch.nonzero(((self.X - x).abs() <= atol).all(-1)).flatten()
            if hit.numel() == 0:
                raise InvalidInput("X", "rows of the pool's candidates", f"row {i} = {x.tolist()} not in the pool ({describe(X)})")
            found.append(int(hit[0]))
        return torch.tensor(found, dtype=torch.long)
