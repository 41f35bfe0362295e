"""Kernels for batch selection (DESIGN.md ``kernels/``): base kernels by name, and transforms.

Base kernels (``kernel=``):

* ``"inputs"``: the linear kernel of the standardised inputs (a model-free kernel, used for
  cold starts);
* ``"gp"``: the surrogate's own posterior covariance (any Gaussian surrogate; kernel space);
* ``"samples"``: the covariance of a sample posterior's draws (MC dropout, ensemble members;
  Kirsch 2023, "Black-Box Batch Active Learning for Regression");
* ``"ll"``: a network's last-layer features; ``"grad"``: its per-example parameter gradients
  (the empirical NTK), sketched to ``n_features`` (default 512) columns;
* ``"badge"``: a classifier's BADGE gradient embedding (Ash et al. 2020);
* ``"auto"``: ``"grad"`` for a network that has it, ``"gp"`` for a Gaussian surrogate,
  ``"samples"`` for another sample surrogate.

Transforms (applied in this order): ``"scale"`` (normalise the kernel's mean diagonal on the
labelled rows), ``"posterior"`` (the GP posterior given the labelled rows, noise ``sigma``).
"""

from __future__ import annotations

import torch

from ..errors import InvalidInput, Unsupported, UnknownName
from .base import FeatureMap, InputFeatures, KernelRows, sketch_matrix

__all__ = ["FeatureMap", "InputFeatures", "KernelRows", "sketch_matrix", "KERNELS", "TRANSFORMS",
           "batch_kernel", "base_kernel", "resolve_kernel", "AUTO_ORDER"]

#: base-kernel names accepted by :func:`batch_kernel`
KERNELS = ("auto", "inputs", "gp", "samples", "ll", "grad", "badge")
#: transform names accepted by :func:`batch_kernel`
TRANSFORMS = ("scale", "posterior")


def _standardised(X_train: torch.Tensor, X_pool: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs shifted and scaled by the pool's mean and standard deviation (constant columns kept)."""
    ref = X_pool if X_pool.shape[0] > 1 else torch.cat([X_train, X_pool])
    mu = ref.mean(0)
    sd = ref.std(0) if ref.shape[0] > 1 else torch.ones_like(mu)
    sd = torch.where(sd > 0, sd, torch.ones_like(sd))
    return (X_train - mu) / sd, (X_pool - mu) / sd


#: the base kernels ``"auto"`` tries, in order (the first the surrogate has)
AUTO_ORDER = ("grad", "gp", "samples")


def resolve_kernel(kernel: str, surrogate, order: tuple[str, ...] = AUTO_ORDER) -> str:
    """The base kernel ``kernel`` stands for with ``surrogate``: itself, or for ``"auto"`` the
    first of ``order`` the surrogate provides (``"inputs"`` without a surrogate)."""
    if kernel not in KERNELS:
        raise UnknownName("kernel", str(kernel), list(KERNELS))
    if kernel != "auto":
        return kernel
    if surrogate is None:
        return "inputs"
    for kind in order:
        if kind in surrogate.feature_kinds or (kind == "gp" and surrogate.posterior_kind == "gaussian") or \
                (kind == "samples" and surrogate.posterior_kind == "samples"):
            return kind
    raise Unsupported(type(surrogate).__name__, "one of the kernels " + ", ".join(order), "kernel batch selection")


def base_kernel(kernel: str, surrogate, X_train: torch.Tensor, X_pool: torch.Tensor,
                n_features: int | None = None, seed: int | None = None,
                storage: torch.dtype | None = None) -> KernelRows:
    """The base kernel named ``kernel`` over ``[X_train; X_pool]`` (``[n_train, d]``, ``[n_pool, d]``);
    ``storage`` keeps a network's features compact (:meth:`KernelRows.from_feature_map`)."""
    kernel = resolve_kernel(kernel, surrogate)
    if kernel == "inputs":
        T, P = _standardised(X_train, X_pool)
        return KernelRows.from_features(T, P)
    if surrogate is None:
        raise InvalidInput("surrogate", f"a fitted surrogate for the {kernel!r} kernel", "None")
    X = torch.cat([X_train, X_pool.to(X_train)], 0)
    if kernel == "gp":
        if surrogate.posterior_kind != "gaussian":
            raise Unsupported(type(surrogate).__name__, "a Gaussian posterior covariance", "the 'gp' kernel")
        post = surrogate.posterior(X)
        columns = surrogate.covariance_columns(X)
        diag = post.variance.sum(-1)
        return KernelRows.from_columns(X_train.shape[0], diag, lambda j: columns(j).sum(0).to(diag))
    if kernel == "samples":
        if surrogate.posterior_kind != "samples":
            raise Unsupported(type(surrogate).__name__, "a sample posterior (MC dropout, ensembles)",
                              "the 'samples' kernel")
        post = surrogate.posterior(X)
        draws = post.samples  # [K, n, m]
        K = draws.shape[0]
        if K < 2:
            raise Unsupported(type(surrogate).__name__, "at least two posterior draws", "the 'samples' kernel")
        dev = (draws - draws.mean(0, keepdim=True)) / (K - 1) ** 0.5
        Phi = dev.permute(1, 0, 2).reshape(X.shape[0], -1)
        return KernelRows.from_features(Phi[:X_train.shape[0]], Phi[X_train.shape[0]:])
    fmap = surrogate.feature_map(kernel, n_features=n_features, seed=seed)
    return KernelRows.from_feature_map(fmap, X_train, X_pool, storage=storage)


def batch_kernel(kernel: str, surrogate, X_train: torch.Tensor, X_pool: torch.Tensor,
                 transforms: tuple[str, ...] = (), sigma: float = 0.1, n_features: int | None = None,
                 seed: int | None = None, storage: torch.dtype | None = None) -> KernelRows:
    """The base kernel ``kernel`` with ``transforms`` applied (names from :data:`TRANSFORMS`)."""
    for t in transforms:
        if t not in TRANSFORMS:
            raise UnknownName("transform", str(t), list(TRANSFORMS))
    rows = base_kernel(kernel, surrogate, X_train, X_pool, n_features=n_features, seed=seed, storage=storage)
    if "scale" in transforms:
        rows = rows.scaled()
    if "posterior" in transforms:
        rows = rows.posterior(sigma)
    return rows
