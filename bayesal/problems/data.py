"""Real data sets as pool problems: the UCI regression benchmarks, read from a local folder."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import InvalidInput
from .base import DatasetProblem

__all__ = ["UCI_DATASETS", "default_uci_dir", "uci_available", "uci_names", "load_uci"]

UCI_DATASETS = ("airfoil", "bike", "concrete", "elevators", "energy", "housing", "kin40k",
                "parkinsons", "pol", "protein", "skillcraft", "wine", "yacht")


def default_uci_dir() -> Path:
    """Where the UCI folders are looked for: ``$BAYESAL_UCI_DIR``, else ``../shared/data/uci``
    beside the repository (or beside the current directory)."""
    env = os.environ.get("BAYESAL_UCI_DIR")
    if env:
        return Path(env)
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = base.parent / "shared" / "data" / "uci"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data" / "uci"


def uci_available(name: str, data_dir: str | os.PathLike | None = None) -> bool:
    """Whether ``data_dir`` (default :func:`default_uci_dir`) holds ``name/data.csv.gz`` and
    ``name/test_mask.csv.gz`` (any folder name: a user's own data set laid out the same way counts)."""
    if not name or name != Path(name).name or name in (".", ".."):  # one folder of data_dir, no path
        return False
    folder = Path(data_dir) if data_dir is not None else default_uci_dir()
    return (folder / name / "data.csv.gz").is_file() and (folder / name / "test_mask.csv.gz").is_file()


def uci_names(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Every data set of ``data_dir`` laid out like the UCI folders: the 13 standard ones found
    there first, in their order, then any other folder, alphabetically."""
    folder = Path(data_dir) if data_dir is not None else default_uci_dir()
    others = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return ([n for n in UCI_DATASETS if uci_available(n, folder)]
            + [n for n in others if n not in UCI_DATASETS and uci_available(n, folder)])


@lru_cache(maxsize=4)
def _read(folder: str) -> tuple[np.ndarray, np.ndarray]:
    # Parsing the gzipped CSV dominates loading (seconds for the 40k-row sets), and a benchmark
    # loads the same set once per strategy and seed; the arrays are only ever indexed (copied).
    data = np.loadtxt(Path(folder) / "data.csv.gz", delimiter=",", ndmin=2)
    masks = np.loadtxt(Path(folder) / "test_mask.csv.gz", delimiter=",", ndmin=2).astype(bool)
    data.flags.writeable = masks.flags.writeable = False
    return data, masks


def load_uci(name: str, data_dir: str | os.PathLike | None = None, split: int = 0,
             max_pool: int | None = None, seed: int = 0) -> DatasetProblem:
    """A UCI regression set as a pool problem, using its ``split``-th standard train/test split.

    The folder holds ``NAME/data.csv.gz`` (inputs then target, no header) and
    ``NAME/test_mask.csv.gz`` (10 columns of 0/1 test masks). ``max_pool`` subsamples the pool
    (seeded) for quick runs; the test split is kept whole.
    """
    folder = Path(data_dir) if data_dir is not None else default_uci_dir()
    if not uci_available(name, folder):
        raise InvalidInput("dataset", f"a folder {folder / name} with data.csv.gz and test_mask.csv.gz",
                           "nothing there (pass data_dir= or set BAYESAL_UCI_DIR)")
    data, masks = _read(str(folder / name))
    if not 0 <= split < masks.shape[1]:
        raise InvalidInput("split", f"an integer in [0, {masks.shape[1]})", str(split))
    test = masks[:, split]
    X, y = data[:, :-1], data[:, -1]
    pool = np.flatnonzero(~test)
    if max_pool is not None and max_pool < pool.size:
        pool = np.sort(np.random.default_rng(seed).choice(pool, size=max_pool, replace=False))
    return DatasetProblem(X[pool], y[pool], X[test], y[test], name=f"uci-{name}",
                          description=f"UCI {name}: {pool.size} pool / {int(test.sum())} test points, {X.shape[1]} inputs")
