"""Sequential design: posterior updates against the conjugate posterior, the adaptive loop,
ArviZ diagnostics, and the NUTS path (Pyro optional)."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from bayesal import InvalidInput, OracleFailed
from bayesal.design import (
    LinearGaussianModel,
    PsychometricModel,
    SequentialDesign,
    importance_posterior,
    nuts_posterior,
)

PRIOR = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)


# small tensors: see conftest.one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def regression_data():
    """Three experiments of a 2-parameter linear-Gaussian model and its exact posterior."""
    model = LinearGaussianModel(torch.tensor([0.2, -0.1]), PRIOR, 0.5, design_shape=(2, 2))
    gen = torch.Generator().manual_seed(0)
    designs = [torch.randn(2, 2, generator=gen, dtype=torch.float64) for _ in range(3)]
    truth = torch.tensor([0.9, -0.6], dtype=torch.float64)
    ys = [d @ truth + 0.5 * torch.randn(2, generator=gen, dtype=torch.float64) for d in designs]
    mean, cov = model.posterior(torch.cat(designs), torch.cat(ys))
    return model, designs, ys, mean, cov


def test_importance_posterior_matches_the_conjugate_posterior(regression_data):
    model, designs, ys, mean, cov = regression_data
    first, _ = importance_posterior(model, designs[:1], ys[:1], num_samples=4000, seed=0)
    draws, ess = importance_posterior(model, designs, ys, num_samples=4000, previous=first, seed=1)
    sd = cov.diagonal().sqrt()
    theta = draws["theta"]
    assert ess > 1000
    assert bool(((theta.mean(0) - mean).abs() < 4 * sd / np.sqrt(min(ess, 4000))).all())
    assert torch.allclose(theta.std(0), sd, rtol=0.08)
    corr = np.corrcoef(theta.numpy().T)[0, 1]
    assert abs(corr - float(cov[0, 1] / (sd[0] * sd[1]))) < 0.06


def test_nuts_posterior_matches_the_conjugate_posterior(regression_data):
    pytest.importorskip("pyro")
    model, designs, ys, mean, cov = regression_data
    chains = nuts_posterior(model, designs, ys, num_samples=300, warmup_steps=150, num_chains=2, seed=0)
    theta = chains["theta"]
    assert theta.shape == (2, 300, 2)
    flat = theta.reshape(-1, 2)
    sd = cov.diagonal().sqrt()
    assert bool(((flat.mean(0) - mean).abs() < 0.25 * sd).all())
    assert torch.allclose(flat.std(0), sd, rtol=0.2)


def _psychometric_loop(inference="importance", rounds=6, seed=0, **kwargs):
    model = PsychometricModel(trials=20)
    truth = {"threshold": torch.tensor([[1.0]], dtype=torch.float64), "slope": torch.tensor([[2.0]], dtype=torch.float64)}
    gen = torch.Generator().manual_seed(seed)

    def oracle(d):
        p = model.probability(truth, d.reshape(1, -1))[0, 0]
        return torch.binomial(torch.full_like(p, 20.0), p, generator=gen)

    seq = SequentialDesign(model, candidates=torch.linspace(-6, 6, 25), inference=inference, seed=seed,
                           eig_options={"num_outer": 200, "num_contrastive": 200}, **kwargs)
    return seq.run(oracle, rounds)


def test_sequential_psychometric_design_concentrates_on_the_truth():
    seq = _psychometric_loop(num_posterior_samples=2000, num_proposal=10000)
    assert seq.num_rounds == 6 and len(seq.history) == 6
    sd = [h["posterior_std"]["threshold"] for h in seq.history]
    prior_sd = float(seq.model.prior["threshold"].stddev)  # 2 for the default Normal(0, 2)
    assert float(sd[-1]) < 0.15 * prior_sd  # six rounds of 20 trials: the threshold known to within 0.3
    assert float(sd[-1]) < float(sd[0])
    mean = seq.posterior_mean()
    std = seq.posterior_std()
    assert abs(float(mean["threshold"]) - 1.0) < 3 * float(std["threshold"])
    assert abs(float(mean["slope"]) - 2.0) < 3 * float(std["slope"])
    eigs = [h["eig"] for h in seq.history]
    assert all(e is not None and e > 0 for e in eigs) and eigs[-1] < eigs[0]  # less to learn each round
    # Designs are informative: near the threshold, not at the ends of the range.
    assert all(abs(float(h["design"][0])) < 4.5 for h in seq.history)
    diag = seq.diagnostics()
    assert set(diag["r_hat"]) == {"threshold", "slope"} and all(np.isfinite(v) for v in diag["r_hat"].values())
    assert all(v > 100 for v in diag["ess_bulk"].values()) and diag["importance_ess"] > 100
    idata = seq.inference_data()
    assert set(idata.groups()) >= {"posterior", "observed_data", "constant_data"}
    assert idata.posterior["threshold"].shape == (4, 500)
    assert idata.observed_data["y"].shape == (6, 1)
    assert list(seq.summary().index) == ["threshold", "slope"]


def test_same_seed_same_designs():
    a = _psychometric_loop(rounds=2, num_posterior_samples=400, num_proposal=2000)
    b = _psychometric_loop(rounds=2, num_posterior_samples=400, num_proposal=2000)
    assert [h["design"].tolist() for h in a.history] == [h["design"].tolist() for h in b.history]


def test_continuous_sequential_design_stays_in_the_box():
    model = PsychometricModel(trials=10)
    seq = SequentialDesign(model, bounds=[[-2.0], [3.0]], num_posterior_samples=400, num_proposal=2000,
                           optimize_options={"num_steps": 15, "num_restarts": 2,
                                             "final_options": {"num_outer": 100, "num_contrastive": 100}})
    for _ in range(2):
        d = seq.ask()
        assert -2.0 <= float(d[0]) <= 3.0
        seq.tell(d, [5.0])
    assert seq.num_rounds == 2


def test_bad_inputs_and_failures():
    model = PsychometricModel(trials=10)
    with pytest.raises(InvalidInput, match="estimator"):
        SequentialDesign(model, candidates=torch.linspace(-1, 1, 3), estimator="laplace")
    with pytest.raises(InvalidInput, match="inference"):
        SequentialDesign(model, candidates=torch.linspace(-1, 1, 3), inference="mcmc")
    unbounded = LinearGaussianModel(torch.zeros(2), PRIOR, 0.5, design_shape=(2, 2))
    with pytest.raises(InvalidInput, match="candidates"):
        SequentialDesign(unbounded)
    seq = SequentialDesign(model, candidates=torch.linspace(-1, 1, 3), num_posterior_samples=100, num_proposal=500)
    with pytest.raises(InvalidInput, match="y"):
        seq.tell([0.0], [1.0, 2.0])
    with pytest.raises(InvalidInput, match="y"):
        seq.tell([0.0], [float("nan")])
    with pytest.raises(InvalidInput, match="design"):
        seq.tell([0.0, 1.0], [1.0])
    with pytest.raises(InvalidInput, match="y"):
        seq.tell([0.0], [11.0])  # 11 successes out of 10 trials: impossible under every θ
    assert seq.num_rounds == 0  # a rejected observation is not kept

    def broken(d):
        raise RuntimeError("instrument offline")

    with pytest.raises(OracleFailed, match="instrument offline"):
        seq.run(broken, 2)


def test_bayesal_imports_without_pyro_and_nuts_says_what_to_install():
    code = textwrap.dedent("""
        import sys
        sys.modules["pyro"] = None  # makes `import pyro` fail as if it were not installed
        import torch, bayesal, bayesal.design as design
        seq = design.SequentialDesign(design.PsychometricModel(), candidates=torch.tensor([0.0]),
                                      inference="nuts", num_posterior_samples=10)
        try:
            seq.tell([0.0], [1.0])
        except ImportError as exc:
            print("IMPORT-ERROR:", exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "IMPORT-ERROR" in out.stdout and "pip install pyro-ppl" in out.stdout
