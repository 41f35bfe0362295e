"""Analytic test functions (noise-free by default), on BoTorch's implementations where it has them."""

from __future__ import annotations


import torch
from botorch.test_functions import Branin as _BoTorchBranin
from botorch.test_functions import Hartmann as _BoTorchHartmann

from ..spaces import Box
from .base import FunctionProblem

__all__ = ["forrester", "branin", "hartmann6", "Forrester", "Branin", "Hartmann6"]


def forrester(X: torch.Tensor) -> torch.Tensor:
    """The Forrester function f(x) = (6x − 2)² sin(12x − 4) on [0, 1], ``X: [N, 1] -> [N]``.

    Forrester, Sóbester & Keane (2008), "Engineering Design via Surrogate Modelling", p. 83.
    """
    x = X[..., 0]
    return (6 * x - 2) ** 2 * torch.sin(12 * x - 4)


def Forrester(noise_std: float = 0.0, seed: int = 0) -> FunctionProblem:
    """1-D Forrester function on [0, 1]."""
    return FunctionProblem("forrester", forrester, Box([0.0], [1.0], names=["x"]), noise_std=noise_std,
                           seed=seed, description="1-D Forrester et al. (2008) function on [0, 1]")


def branin(X: torch.Tensor) -> torch.Tensor:
    """The Branin–Hoo function on [−5, 10] × [0, 15], ``X: [N, 2] -> [N]`` (BoTorch's implementation;
    three global minima of 0.397887)."""
    return _BoTorchBranin().evaluate_true(X)


def hartmann6(X: torch.Tensor) -> torch.Tensor:
    """The 6-D Hartmann function on [0, 1]⁶, ``X: [N, 6] -> [N]`` (BoTorch's implementation; global
    minimum −3.32237)."""
    return _BoTorchHartmann(dim=6).evaluate_true(X)


def Branin(noise_std: float = 0.0, seed: int = 0) -> FunctionProblem:
    """2-D Branin–Hoo function on [−5, 10] × [0, 15] (Dixon & Szegő 1978), BoTorch's implementation."""
    fn = _BoTorchBranin()
    return FunctionProblem("branin", lambda X: fn.evaluate_true(X), Box([-5.0, 0.0], [10.0, 15.0], names=["x1", "x2"]),
                           noise_std=noise_std, seed=seed, description="2-D Branin-Hoo function")


def Hartmann6(noise_std: float = 0.0, seed: int = 0) -> FunctionProblem:
    """6-D Hartmann function on [0, 1]⁶ (Hartman 1973), BoTorch's implementation."""
    fn = _BoTorchHartmann(dim=6)
    return FunctionProblem("hartmann6", lambda X: fn.evaluate_true(X), Box([0.0] * 6, [1.0] * 6),
                           noise_std=noise_std, seed=seed, description="6-D Hartmann function on the unit cube")
