"""The one place where user input becomes checked tensors.

Everything public in bayesal passes its array arguments through these functions, so that numpy
arrays, torch tensors, pandas frames / series and nested lists are all accepted, and every
rejection is an :class:`~bayesal.errors.InvalidInput` naming the argument, what was expected and
what arrived. Code below this boundary assumes valid tensors.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import torch

from .errors import InvalidInput

__all__ = ["renamed",
    "DEFAULT_DTYPE",
    "MAX_SEED",
    "MAX_USER_SEED",
    "check_seed",
    "check_bounds",
    "data_bounds",
    "check_finite",
    "check_type",
    "describe",
    "as_tensor",
    "check_X",
    "check_y",
    "check_in_box",
    "check_count",
    "check_indices",
]

#: GP algebra runs in float64 (see DESIGN.md: one dtype policy, set once).
DEFAULT_DTYPE = torch.float64

#: the largest seed accepted: torch generators take 64-bit seeds, and the learner derives step
#: seeds as ``seed * 1_000_003 + step``, which must stay below 2**63 too
# seeds users give stay below 2**40, so that the seeds derived from them (seed · 1,000,003 + step)
# stay below 2**63, which is what torch.Generator.manual_seed and every check_seed accept
MAX_SEED = 2**63 - 1
MAX_USER_SEED = 2**40


def describe(value: Any) -> str:
    """A short human description of ``value`` for error messages: type, shape and dtype."""
    if isinstance(value, torch.Tensor):
        return f"a torch tensor of shape {list(value.shape)} ({value.dtype})"
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {list(value.shape)} ({value.dtype})"
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"a {type(value).__name__} of shape {list(shape)}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of length {len(value)}"
    return f"{type(value).__name__} {value!r}"[:120]


def as_tensor(
    value: Any,
    name: str,
    dtype: torch.dtype | None = DEFAULT_DTYPE,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Convert numpy / torch / pandas / list input to a tensor of ``dtype`` on ``device``.

    A torch tensor keeps its device unless ``device`` is given; nothing is copied when the
    tensor already has the right dtype and device.
    """
    if value is None:
        raise InvalidInput(name, "an array", "None")
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        if hasattr(value, "to_numpy"):  # pandas DataFrame / Series, without importing pandas
            value = value.to_numpy()
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(name, "a numeric array", f"{describe(value)} ({exc})") from None
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
        ):
            raise InvalidInput(name, "a numeric array", f"an array of dtype {array.dtype}")
        # ascontiguousarray turns a 0-d array into shape [1]: keep the shape the caller gave
        array = np.ascontiguousarray(array).reshape(array.shape)
        if not array.flags.writeable:  # e.g. a read-only pandas buffer: torch needs its own copy
            array = array.copy()
        tensor = torch.from_numpy(array)
    if tensor.is_complex():
        raise InvalidInput(name, "a real-valued array", f"complex dtype {tensor.dtype}")
    if dtype is not None or device is not None:
        tensor = tensor.to(dtype=dtype or tensor.dtype, device=device or tensor.device)
    return tensor


def _bad_rows(mask: torch.Tensor, limit: int = 5) -> str:
    rows = torch.nonzero(mask.reshape(mask.shape[0], -1).any(-1)).flatten().tolist()
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"rows [{shown}]{more}"


def _check_finite(tensor: torch.Tensor, name: str, expected: str) -> None:
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        kinds = []
        if bool(torch.isnan(tensor).any()):
            kinds.append("NaN")
        if bool(torch.isinf(tensor).any()):
            kinds.append("inf")
        raise InvalidInput(name, expected, f"{' and '.join(kinds)} at {_bad_rows(~finite)}")


def check_finite(tensor: torch.Tensor, name: str, expected: str = "finite values") -> torch.Tensor:
    """``tensor`` if every entry is finite, else :class:`InvalidInput` naming the NaN / inf rows."""
    _check_finite(tensor, name, expected)
    return tensor


def check_type(value: Any, kind: type | tuple[type, ...], name: str, expected: str) -> Any:
    """``value`` if it is an instance of ``kind``, else :class:`InvalidInput` (instead of an
    AttributeError deep inside the call)."""
    if not isinstance(value, kind):
        raise InvalidInput(name, expected, describe(value))
    return value


def check_seed(seed: Any, name: str = "seed", allow_none: bool = True, maximum: int = MAX_SEED) -> int | None:
    """An integer seed in ``[0, maximum]`` (None allowed when ``allow_none``: a fresh random seed).
    Seeds a user gives to a learner or a model use ``maximum=MAX_USER_SEED``."""
    if seed is None and allow_none:
        return None
    expected = f"an integer seed in [0, {maximum}]" + (" or None" if allow_none else "")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InvalidInput(name, expected, describe(seed))
    seed = int(seed)
    if not 0 <= seed <= maximum:
        raise InvalidInput(name, expected, str(seed))
    return seed


def check_bounds(bounds: Any, dim: int, name: str = "bounds", like: torch.Tensor | None = None) -> torch.Tensor:
    """Box bounds ``[2, d]``: lower row strictly below the upper row, finite, and with a finite
    width (``upper - lower`` must not overflow, since inputs are normalised by it)."""
    tensor = as_tensor(bounds, name)
    if like is not None:
        tensor = tensor.to(like)
    want = f"an array of shape [2, {dim}] (lower row, upper row)"
    if tensor.dim() != 2 or tuple(tensor.shape) != (2, dim):
        raise InvalidInput(name, want, describe(bounds))
    _check_finite(tensor, name, "finite bounds")
    width = tensor[1] - tensor[0]
    bad = torch.nonzero(~(width > 0)).flatten().tolist()
    if bad:
        raise InvalidInput(name, "upper > lower in every dimension", f"upper <= lower in dimensions {bad}")
    if not bool(torch.isfinite(width).all()):
        raise InvalidInput(name, "bounds whose width upper - lower is a finite float",
                           f"an overflowing width in dimensions {torch.nonzero(~torch.isfinite(width)).flatten().tolist()}")
    return tensor


def fit_bounds(X: torch.Tensor, bounds: Any = None, name: str = "X") -> torch.Tensor:
    """The input-normalisation bounds ``[2, d]`` of a fit to ``X: [n, d]``: ``bounds`` checked
    (``X`` must lie inside them), or the training data's range (:func:`data_bounds`) when None."""
    if bounds is None:
        return data_bounds(X, name)
    bounds = check_bounds(bounds, X.shape[-1], "bounds", like=X)
    check_in_box(X, bounds, name)
    return bounds


def data_bounds(X: torch.Tensor, name: str = "X") -> torch.Tensor:
    """Bounds ``[2, d]`` spanning the columns of ``X: [N, d]``, for normalising inputs.

    A constant column x gets ``[x, x + max(1, 2**-20 |x|)]``: a width of 1 alone would vanish in
    rounding for |x| >= 2**53 (lower == upper), and a relative width keeps the bounds finite up
    to the largest floats.
    """
    lo, hi = X.min(0).values, X.max(0).values
    width = hi - lo
    if not bool(torch.isfinite(width).all()):
        cols = torch.nonzero(~torch.isfinite(width)).flatten().tolist()
        raise InvalidInput(name, "inputs whose range max - min is a finite float", f"an overflowing range in columns {cols}")
    flat = ~(hi > lo)
    return torch.stack([lo, torch.where(flat, lo + torch.clamp_min(lo.abs() * 2.0**-20, 1.0), hi)])


def check_X(
    X: Any,
    name: str = "X",
    dim: int | None = None,
    dtype: torch.dtype | None = DEFAULT_DTYPE,
    device: torch.device | str | None = None,
    allow_empty: bool = False,
) -> torch.Tensor:
    """Check inputs and return them as a finite tensor ``[N, d]``.

    A 1-D array is read as N points of a 1-D space, and only when ``dim`` is 1 or unknown.
    """
    tensor = as_tensor(X, name, dtype=dtype, device=device)
    if tensor.dim() == 1 and dim in (None, 1):
        tensor = tensor.unsqueeze(-1)
    want = f"a 2-D array of shape [N, {dim if dim is not None else 'd'}]"
    if tensor.dim() != 2:
        raise InvalidInput(name, want, describe(X))
    if dim is not None and tensor.shape[-1] != dim:
        raise InvalidInput(name, want, f"{tensor.shape[-1]} columns ({describe(X)})")
    if tensor.shape[0] == 0 and not allow_empty:
        raise InvalidInput(name, want + " with at least one row", "an empty array")
    if tensor.shape[1] == 0:
        raise InvalidInput(name, want + " with at least one column", f"0 columns ({describe(X)})")
    if tensor.requires_grad:  # the caller's autograd graph must not leak into fits and deep copies
        tensor = tensor.detach()
    _check_finite(tensor, name, "finite values")
    return tensor


def check_y(
    y: Any,
    name: str = "y",
    n: int | None = None,
    m: int | None = None,
    dtype: torch.dtype | None = DEFAULT_DTYPE,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Check targets and return them as a finite tensor ``[N, m]`` (a 1-D ``y`` means m=1)."""
    tensor = as_tensor(y, name, dtype=dtype, device=device)
    if tensor.dim() == 0:
        tensor = tensor.reshape(1, 1)
    elif tensor.dim() == 1:
        tensor = tensor.unsqueeze(-1)
    want = f"an array of shape [{n if n is not None else 'N'}] or [N, {m if m is not None else 'm'}]"
    if tensor.dim() != 2:
        raise InvalidInput(name, want, describe(y))
    if tensor.shape[1] == 0:
        raise InvalidInput(name, "at least one output column", describe(y))
    if n is not None and tensor.shape[0] != n:
        raise InvalidInput(name, f"{n} rows, one per point in X", f"{tensor.shape[0]} rows")
    if m is not None and tensor.shape[1] != m:
        raise InvalidInput(name, f"{m} output column(s)", f"{tensor.shape[1]} ({describe(y)})")
    if tensor.requires_grad:
        tensor = tensor.detach()
    _check_finite(tensor, name, "finite labels (no NaN or inf)")
    return tensor


def check_in_box(X: torch.Tensor, bounds: torch.Tensor, name: str = "X", atol: float = 1e-9) -> None:
    """Raise unless every row of ``X: [N, d]`` lies inside ``bounds: [2, d]`` (inclusive).

    The tolerance is ``atol`` times the box width (a fixed absolute tolerance would let a point
    far outside a narrow box pass), plus a few rounding units of the bounds' magnitude, since
    points mapped from the unit cube carry that much rounding error.
    """
    bounds = bounds.to(X)
    width = (bounds[1] - bounds[0]).abs()
    magnitude = torch.maximum(bounds[0].abs(), bounds[1].abs())
    eps = torch.finfo(X.dtype).eps if X.is_floating_point() else torch.finfo(torch.float64).eps
    tol = atol * width + 4 * eps * magnitude
    outside = (X < bounds[0] - tol) | (X > bounds[1] + tol)
    if bool(outside.any()):
        row = int(torch.nonzero(outside.any(-1))[0])
        col = int(torch.nonzero(outside[row])[0])
        raise InvalidInput(
            name,
            f"points inside the box {bounds.T.tolist()}",
            f"{int(outside.any(-1).sum())} point(s) outside, first row {row} with "
            f"{name}[{row}, {col}] = {float(X[row, col]):.6g} not in "
            f"[{float(bounds[0, col]):.6g}, {float(bounds[1, col]):.6g}]",
        )


def check_count(value: Any, name: str, minimum: int = 1, maximum: int | None = None,
                maximum_reason: str = "") -> int:
    """Check an integer count such as a budget or a batch size."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidInput(name, f"an integer >= {minimum}", describe(value))
    value = int(value)
    if value < minimum:
        raise InvalidInput(name, f"an integer >= {minimum}", str(value))
    if maximum is not None and value > maximum:
        reason = f" ({maximum_reason})" if maximum_reason else ""
        raise InvalidInput(name, f"at most {maximum}{reason}", str(value))
    return value


def check_indices(indices: Any, name: str, size: int) -> torch.Tensor:
    """Check integer indices into a collection of ``size`` items; return a long tensor ``[k]``."""
    tensor = as_tensor(indices, name, dtype=None).reshape(-1)
    if tensor.is_floating_point():
        if not bool((tensor == tensor.round()).all()):
            raise InvalidInput(name, "integer indices", describe(indices))
    tensor = tensor.long().cpu()
    if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= size):
        raise InvalidInput(name, f"indices in [0, {size})", f"values from {int(tensor.min())} to {int(tensor.max())}")
    if tensor.unique().numel() != tensor.numel():
        raise InvalidInput(name, "distinct indices", "repeated indices")
    return tensor


def renamed(value: Any, old_value: Any, name: str, old: str, owner: str) -> Any:
    """The value of a keyword renamed from ``old`` to ``name`` (DESIGN.md: one name per thing):
    ``old_value`` when only the old keyword was given (with a ``DeprecationWarning``), else
    ``value``; both given is :class:`InvalidInput`."""
    if old_value is None:
        return value
    import warnings

    warnings.warn(f"{owner}({old}=...) is deprecated: use {name}=...", DeprecationWarning, stacklevel=3)
    if value is not None:
        raise InvalidInput(old, f"either {name} or its deprecated name {old}, not both", "both")
    return old_value
