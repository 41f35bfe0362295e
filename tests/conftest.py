import warnings

import pytest
import torch


@pytest.fixture(autouse=True)
def _quiet_numerics():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.fixture
def gp_1d():
    """An exact GP fitted on 12 noisy points of sin(6x) on [0, 1]."""
    from bayesal import ExactGP

    gen = torch.Generator().manual_seed(0)
    X = torch.rand(12, 1, generator=gen, dtype=torch.float64)
    y = torch.sin(6 * X[:, 0]) + 0.05 * torch.randn(12, generator=gen, dtype=torch.float64)
    return ExactGP().fit(X, y, bounds=[[0.0], [1.0]])


@pytest.fixture
def gp_2d():
    """An exact GP fitted on 25 points of a 2-D function on the unit square."""
    from bayesal import ExactGP

    gen = torch.Generator().manual_seed(1)
    X = torch.rand(25, 2, generator=gen, dtype=torch.float64)
    y = torch.sin(4 * X[:, 0]) * torch.cos(3 * X[:, 1]) + 0.02 * torch.randn(25, generator=gen, dtype=torch.float64)
    return ExactGP().fit(X, y, bounds=[[0.0, 0.0], [1.0, 1.0]])


@pytest.fixture(scope="module")
def one_torch_thread():
    """Pin torch to one thread for a module of small-tensor tests: one thread is as fast there,
    and on a shared machine two OpenMP threads that wait for each other at every operation slow
    small kernels down a hundredfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Hypothesis profiles for tests/test_properties.py: a bounded default that keeps the file near a
# minute on a two-core machine, and a long one for a fuzzing session
# (BAYESAL_HYPOTHESIS_PROFILE=thorough, random examples). The bounded profile is derandomized, so
# a CI run is reproducible. No example database: runs leave no .hypothesis/ behind.
try:
    import os

    from hypothesis import HealthCheck
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # hypothesis is a dev dependency; only test_properties.py needs it
    pass
else:
    _slow = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]
    _hypothesis_settings.register_profile("bounded", max_examples=1200, deadline=None, database=None, derandomize=True,
                                          suppress_health_check=_slow, print_blob=True)
    _hypothesis_settings.register_profile("thorough", max_examples=2000, deadline=None, database=None,
                                          suppress_health_check=_slow, print_blob=True)
    _hypothesis_settings.load_profile(os.environ.get("BAYESAL_HYPOTHESIS_PROFILE", "bounded"))
    if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:
        # database=None stops the example database, but hypothesis still caches source constants
        # and Unicode tables under ./.hypothesis: send them to a temporary folder, removed at exit
        import atexit
        import shutil
        import tempfile

        from hypothesis.configuration import set_hypothesis_home_dir

        _home = tempfile.mkdtemp(prefix="bayesal-hypothesis-")
        set_hypothesis_home_dir(_home)
        atexit.register(shutil.rmtree, _home, ignore_errors=True)
