"""Benchmark problems: a search space, a labelling oracle and a test set to score models on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import InvalidInput
from ..spaces import Box, Pool
from ..validation import DEFAULT_DTYPE, check_X, check_y

__all__ = ["Problem", "FunctionProblem", "DatasetProblem"]


class Problem:
    """A benchmark problem.

    Attributes:
        name: registry name.
        space: the :class:`~bayesal.spaces.Box` or :class:`~bayesal.spaces.Pool` to search.
        num_outputs: m.
    """

    name: str = "problem"
    description: str = ""
    space: Box | Pool
    num_outputs: int = 1

    def evaluate(self, X: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Labels ``[q, m]`` of the points ``X: [q, d]`` (pool problems use ``indices``)."""
        raise NotImplementedError

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out ``(X_test [n, d], y_test [n, m])`` on which learning curves are measured."""
        raise NotImplementedError

    @property
    def dim(self) -> int:
        """Input dimension d."""
        return self.space.dim

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, space={self.space!r})"


class FunctionProblem(Problem):
    """A problem defined by a function on a box, optionally with Gaussian label noise.

    Args:
        name: registry name.
        function: ``X [N, d] -> y [N]`` or ``[N, m]`` (torch in, torch or numpy out).
        box: the search space.
        noise_std: standard deviation of the label noise added by :meth:`evaluate` (the test
            set is noise-free: it measures the error in f).
        n_test: size of the test set, a scrambled Sobol design with its own fixed seed.
        seed: seed of the label noise.
    """

    def __init__(self, name: str, function: Callable[[torch.Tensor], Any], box: Box,
                 noise_std: float = 0.0, n_test: int = 2000, seed: int = 0, description: str = ""):
        if noise_std < 0:
            raise InvalidInput("noise_std", "a non-negative standard deviation", str(noise_std))
        self.name, self.function, self.space = name, function, box
        self.noise_std, self.n_test, self.description = float(noise_std), int(n_test), description
        self._noise = torch.Generator().manual_seed(int(seed))
        self._test: tuple[torch.Tensor, torch.Tensor] | None = None
        self.num_outputs = self._f(box.sample(2, seed=0)).shape[-1]

    def _f(self, X: torch.Tensor) -> torch.Tensor:
        y = self.function(X)
        y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y, dtype=DEFAULT_DTYPE)
        return y.reshape(X.shape[0], -1)

    def evaluate(self, X: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        X = self.space.check(X, "X")
        y = self._f(X)
        if self.noise_std > 0:
            y = y + self.noise_std * torch.randn(y.shape, generator=self._noise, dtype=y.dtype)
        return y

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._test is None:
            X = self.space.sample(self.n_test, seed=20240611)
            self._test = (X, self._f(X))
        return self._test


class DatasetProblem(Problem):
    """Any labelled data set as a pool-based problem: labels are revealed on request.

    Args:
        X, y: the pool ``[N, d]`` and its hidden labels ``[N]`` / ``[N, m]``.
        X_test, y_test: the held-out test split.
        name: registry name.
        standardize_inputs: rescale every input column to zero mean and unit variance using the
            pool's statistics (constant columns are left centred), as is usual for UCI data.
    """

    def __init__(self, X: Any, y: Any, X_test: Any, y_test: Any, name: str = "dataset",
                 standardize_inputs: bool = True, description: str = ""):
        X = check_X(X, "X")
        y = check_y(y, "y", n=X.shape[0])
        X_test = check_X(X_test, "X_test", dim=X.shape[-1])
        y_test = check_y(y_test, "y_test", n=X_test.shape[0], m=y.shape[-1])
        if standardize_inputs:
            mu, sd = X.mean(0), X.std(0)
            sd = torch.where(sd > 0, sd, torch.ones_like(sd))
            X, X_test = (X - mu) / sd, (X_test - mu) / sd
        self.name, self.description = name, description
        self.space = Pool(X, y)
        self.num_outputs = y.shape[-1]
        self._test = (X_test, y_test)

    def evaluate(self, X: torch.Tensor, indices: torch.Tensor | None = None) -> torch.Tensor:
        if indices is None:
            indices = self.space.index_of(X)
        return self.space.reveal(indices)

    def test_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._test

    @classmethod
    def from_arrays(cls, X: Any, y: Any, test_fraction: float = 0.2, seed: int = 0,
                    name: str = "dataset", **kwargs) -> "DatasetProblem":
        """Split one labelled array into pool and test set at random (seeded)."""
        X = check_X(X, "X")
        y = check_y(y, "y", n=X.shape[0])
        if not 0 < test_fraction < 1:
            raise InvalidInput("test_fraction", "a fraction strictly between 0 and 1", str(test_fraction))
        n_test = max(1, int(round(test_fraction * X.shape[0])))
        if n_test >= X.shape[0]:
            raise InvalidInput("X", "at least two rows to split into pool and test set", f"{X.shape[0]} row(s)")
        perm = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))
        test, pool = perm[:n_test], perm[n_test:]
        return cls(X[pool], y[pool], X[test], y[test], name=name, **kwargs)
