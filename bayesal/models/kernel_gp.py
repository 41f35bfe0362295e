"""Training-free Gaussian processes with a fixed kernel, and the empirical neural tangent kernel.

A GP's posterior variance needs no labels, only the inputs and the kernel. :class:`KernelGP`
is such a GP with a kernel chosen by the user and never refitted: the model behind EV-GP
(Hemachandra et al. 2023), where the kernel is the empirical NTK of a network at
initialisation (:class:`EmpiricalNTK`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from gpytorch.kernels import Kernel
from torch import nn
from torch.func import functional_call, jacrev, vmap

from ..errors import InvalidInput, NotFitted
from ..validation import check_X, check_y
from .algebra import ExactGaussianAlgebra
from .base import AlgebraSurrogate

__all__ = ["KernelGP", "EmpiricalNTK"]


class EmpiricalNTK:
    """The empirical neural tangent kernel of a network at its current parameters θ:

        k(x, x') = Σ_o ⟨∂f_o(x)/∂θ, ∂f_o(x')/∂θ⟩

    (the trace over outputs o), computed from per-sample Jacobians with ``torch.func``
    (Jacot, Gabriel & Hongler 2018, "Neural Tangent Kernel"). The features ``φ(x) = vec ∂f(x)/∂θ``
    make ``k(A, B) = φ(A) φ(B)ᵀ`` one matrix product.

    Args:
        module: the network; its parameters are read, never changed.
        scale: multiplies the kernel (e.g. ``1 / n_parameters`` for a normalised NTK).
        chunk_size: rows per vectorised Jacobian evaluation.
    """

    def __init__(self, module: nn.Module, scale: float = 1.0, chunk_size: int = 512):
        if not isinstance(module, nn.Module):
            raise InvalidInput("module", "a torch.nn.Module", type(module).__name__)
        self.module = module
        self.scale = float(scale)
        self.chunk_size = int(chunk_size)
        self._params = {k: v.detach() for k, v in module.named_parameters()}
        self.n_parameters = sum(p.numel() for p in self._params.values())
        like = next(iter(self._params.values()))
        self._dtype, self._device = like.dtype, like.device
        with torch.no_grad():
            probe = module(torch.zeros(1, self._in_features(), dtype=self._dtype, device=self._device))
        self.n_outputs = probe.reshape(1, -1).shape[-1]

    def _in_features(self) -> int:
        for p in self.module.parameters():
            if p.dim() == 2:
                return p.shape[1]
        raise InvalidInput("module", "a network whose first weight matrix gives the input width", type(self.module).__name__)

    @property
    def feature_dim(self) -> int:
        """p, the number of features: parameter count × outputs (one gradient per output)."""
        return self.n_parameters * self.n_outputs

    def features(self, X: torch.Tensor) -> torch.Tensor:
        """``φ(X)``: ``[..., N, n_outputs · n_parameters]`` for inputs ``X: [..., N, d]`` (float64)."""
        lead, d = X.shape[:-1], X.shape[-1]
        flat = X.reshape(-1, d).to(device=self._device, dtype=self._dtype)

        def f(params, x):
            return functional_call(self.module, params, (x.unsqueeze(0),)).reshape(-1)

        jac_fn = vmap(jacrev(f), in_dims=(None, 0))
        parts = []
        for s in range(0, flat.shape[0], self.chunk_size):
            jac = jac_fn(self._params, flat[s:s + self.chunk_size])  # name -> [c, out, *shape]
            parts.append(torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], -1))
        phi = torch.cat(parts, 0) if parts else flat.new_zeros(0, self.feature_dim)
        return (phi.to(torch.float64) * self.scale**0.5).reshape(*lead, -1).to(X.device)

    def __call__(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """Kernel matrix ``[Na, Nb]``."""
        return self.features(A) @ self.features(B).transpose(-1, -2)


class KernelGP(AlgebraSurrogate):
    """An exact GP with a fixed kernel and noise, never refitted ("training-free").

    Args:
        kernel: an :class:`EmpiricalNTK`, a GPyTorch ``Kernel`` with the hyperparameters you want,
            or any ``k(A [Na, d], B [Nb, d]) -> [Na, Nb]``.
        noise: observation-noise variance (the regulariser of the kernel regression).
        mean: prior mean of f.

    ``fit(X)`` conditions on inputs alone (the posterior variance needs no labels); with ``y``
    the posterior mean is the kernel-regression prediction as well.
    """

    def __init__(self, kernel: EmpiricalNTK | Kernel | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                 noise: float = 1e-2, mean: float = 0.0):
        if not (isinstance(kernel, (EmpiricalNTK, Kernel)) or callable(kernel)):
            raise InvalidInput("kernel", "an EmpiricalNTK, a GPyTorch Kernel or a callable k(A, B)", type(kernel).__name__)
        if not float(noise) > 0:
            raise InvalidInput("noise", "a positive noise variance", repr(noise))
        self.kernel, self.noise, self.mean = kernel, float(noise), float(mean)
        self._fitted, self._cache, self._X, self._y = False, None, None, None
        self._train_features = None

    def __repr__(self) -> str:
        return f"KernelGP({type(self.kernel).__name__}, noise={self.noise}, n_train={0 if self._X is None else self._X.shape[0]})"

    def fit(self, X: Any, y: Any = None, bounds: Any = None) -> "KernelGP":
        X = check_X(X, "X", allow_empty=False)
        self._X = X
        self._y = None if y is None else check_y(y, "y", n=X.shape[0])
        self.num_outputs = 1 if self._y is None else self._y.shape[-1]
        self._fitted, self._cache, self._train_features = True, None, None
        return self

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        if not self._fitted:
            raise NotFitted("KernelGP has no inputs yet: call fit(X) first")
        return check_X(X, name, dim=self._X.shape[-1]).to(self._X)

    def _kernel(self, A: torch.Tensor, B: torch.Tensor, diag: bool = False) -> torch.Tensor:
        """``[..., 1|m, N, d]`` inputs → ``[..., m, Na, Nb]`` (or ``[..., m, Na]``)."""
        m = self.num_outputs
        if isinstance(self.kernel, EmpiricalNTK):
            fa = self._train_features if A is self._train_input else self.kernel.features(A)
            if diag:
                k = fa.pow(2).sum(-1)
            else:
                fb = self._train_features if B is self._train_input else self.kernel.features(B)
                k = fa @ fb.transpose(-1, -2)
        elif isinstance(self.kernel, Kernel):
            batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2])
            k = self.kernel(A.expand(*batch, *A.shape[-2:]), B.expand(*batch, *B.shape[-2:]), diag=diag)
            k = k.to_dense() if hasattr(k, "to_dense") else k
        else:
            batch = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2])
            A2 = A.expand(*batch, *A.shape[-2:]).reshape(-1, *A.shape[-2:])
            B2 = B.expand(*batch, *B.shape[-2:]).reshape(-1, *B.shape[-2:])
            if diag:
                k = torch.stack([torch.stack([self.kernel(a[i:i + 1], a[i:i + 1])[0, 0] for i in range(a.shape[0])])
                                 for a in A2])
            else:
                k = torch.stack([torch.as_tensor(self.kernel(a, b)) for a, b in zip(A2, B2)])
            k = k.reshape(*batch, *k.shape[1:])
        k = k.to(torch.float64)
        return k.expand(*k.shape[:-3 if not diag else -2], m, *k.shape[-2 if not diag else -1:])

    def _algebra(self) -> ExactGaussianAlgebra:
        if not self._fitted:
            raise NotFitted("KernelGP has no inputs yet: call fit(X) first")
        if self._cache is None:
            self._train_input = self._X.unsqueeze(0)  # [1, n, d], recognised by identity in _kernel
            if isinstance(self.kernel, EmpiricalNTK):
                self._train_features = self.kernel.features(self._train_input)
            m = self.num_outputs
            targets = None if self._y is None else self._y.T
            self._cache = ExactGaussianAlgebra(
                self._kernel, lambda X: X, self._train_input, noise=torch.full((m,), self.noise, dtype=torch.float64),
                targets=targets, const=torch.full((m,), self.mean, dtype=torch.float64),
            )
        return self._cache

    def condition_on(self, X_pending: Any) -> "KernelGP":
        """Conditioning on pending inputs is refitting on them: labels are not needed."""
        Xp = self._check_points(X_pending, "X_pending")
        clone = KernelGP(self.kernel, self.noise, self.mean)
        if self._y is None:
            return clone.fit(torch.cat([self._X, Xp]))
        mean = self.posterior(Xp).mean
        return clone.fit(torch.cat([self._X, Xp]), torch.cat([self._y, mean]))
