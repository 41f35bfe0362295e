"""Shared multi-fidelity test data: two levels of one 2-D function on the unit square."""

import torch

from bayesal.models.multifidelity import augment


def two_level_data(n0: int = 15, n1: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented inputs ``[n0 + n1, 3]`` (last column: level) and labels ``[n0 + n1]`` of
    ``f0 = sin(4 x0) cos(3 x1)`` at level 0 and ``f1 = 1.5 f0 + 0.2 x0`` at level 1."""
    gen = torch.Generator().manual_seed(seed)
    X0 = torch.rand(n0, 2, generator=gen, dtype=torch.float64)
    X1 = torch.rand(n1, 2, generator=gen, dtype=torch.float64)

    def f0(X):
        return torch.sin(4 * X[:, 0]) * torch.cos(3 * X[:, 1])

    X = torch.cat([augment(X0, 0), augment(X1, 1)])
    return X, torch.cat([f0(X0), 1.5 * f0(X1) + 0.2 * X1[:, 0]])
