"""Design models: likelihoods against formulas written out here, shapes, validation."""

import itertools
import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal
from scipy import stats

from bayesal import InvalidInput
from bayesal.design import (
    DeathProcessCounts,
    DesignModel,
    LinearGaussianModel,
    PharmacokineticModel,
    PsychometricModel,
    ab_test_model,
    batch_model,
    laplace_eig,
    seeded,
)


# small tensors: see conftest.one_torch_thread
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_ab_test_closed_form_matches_both_orientations_and_the_per_group_formula():
    model = ab_test_model()
    designs = torch.arange(101.0).unsqueeze(-1)
    eig = model.eig(designs).numpy()
    sigma = np.diag([10.0**2, 2.5**2])
    for n1 in (0, 1, 37, 50, 100):
        X = np.zeros((100, 2))
        X[:n1, 0] = 1
        X[n1:, 1] = 1
        small = 0.5 * np.linalg.slogdet(np.eye(2) + sigma @ X.T @ X)[1]  # I_p + Σ XᵀX / σ²
        large = 0.5 * np.linalg.slogdet(np.eye(100) + X @ sigma @ X.T)[1]  # I_n + X Σ Xᵀ / σ²
        per_group = 0.5 * np.log1p(n1 * 100.0) + 0.5 * np.log1p((100 - n1) * 6.25)
        assert np.isclose(eig[n1], small) and np.isclose(eig[n1], large) and np.isclose(eig[n1], per_group)
    assert int(np.argmax(eig)) == 50


def test_linear_gaussian_posterior_is_the_conjugate_update():
    S = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    model = LinearGaussianModel([0.5, -1.0], S, 0.7, design_shape=(4, 2))
    X = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.tensor([0.1, -0.3, 1.2, 0.4], dtype=torch.float64)
    mean, cov = model.posterior(X, y)
    Xn, Sn = X.numpy(), S.numpy()
    K = Sn @ Xn.T @ np.linalg.inv(Xn @ Sn @ Xn.T + 0.49 * np.eye(4))  # Kalman gain form
    assert np.allclose(mean.numpy(), np.array([0.5, -1.0]) + K @ (y.numpy() - Xn @ np.array([0.5, -1.0])))
    assert np.allclose(cov.numpy(), Sn - K @ Xn @ Sn)


def test_psychometric_probability_and_binomial_likelihood():
    model = PsychometricModel(guess_rate=0.5, lapse_rate=0.04, trials=7, num_levels=2)
    theta = {"threshold": torch.tensor([[0.3]], dtype=torch.float64), "slope": torch.tensor([[2.0]], dtype=torch.float64)}
    designs = torch.tensor([[-1.0, 0.8]], dtype=torch.float64)
    p = model.probability(theta, designs)[0, 0].numpy()
    expected = 0.5 + 0.46 / (1 + np.exp(-2.0 * (np.array([-1.0, 0.8]) - 0.3)))
    assert np.allclose(p, expected)
    y = torch.tensor([[[3.0, 6.0]]], dtype=torch.float64)
    lp = float(model.likelihood(theta, designs).log_prob(y))
    assert np.isclose(lp, stats.binom.logpmf(3, 7, expected[0]) + stats.binom.logpmf(6, 7, expected[1]))


def test_pharmacokinetic_concentration_formula_and_equal_rates_limit():
    model = PharmacokineticModel(num_times=3)
    t = torch.tensor([[0.5, 2.0, 12.0]], dtype=torch.float64)
    th = {"ka": torch.tensor([[1.3]], dtype=torch.float64), "ke": torch.tensor([[0.09]], dtype=torch.float64),
          "V": torch.tensor([[18.0]], dtype=torch.float64)}
    c = model.concentration(th, t)[0, 0].numpy()
    tn = t.numpy()[0]
    assert np.allclose(c, 400 / 18 * 1.3 / (1.3 - 0.09) * (np.exp(-0.09 * tn) - np.exp(-1.3 * tn)))
    # k_a = k_e: the limit D/V · k t exp(−k t), not 0/0.
    same = {"ka": torch.tensor([[0.2]], dtype=torch.float64), "ke": torch.tensor([[0.2]], dtype=torch.float64),
            "V": torch.tensor([[20.0]], dtype=torch.float64)}
    assert np.allclose(model.concentration(same, t)[0, 0].numpy(), 400 / 20 * 0.2 * tn * np.exp(-0.2 * tn))
    y = torch.tensor([[[5.0, 10.0, 8.0]]], dtype=torch.float64)
    sd = np.sqrt(0.01 * c**2 + 0.1)
    assert np.isclose(float(model.likelihood(th, t).log_prob(y)), stats.norm.logpdf([5.0, 10.0, 8.0], c, sd).sum())


def test_death_process_counts_is_a_distribution_with_binomial_marginals():
    rate, N = torch.tensor(0.7, dtype=torch.float64), 5
    times = torch.tensor([1.2, 0.4], dtype=torch.float64)  # unsorted on purpose
    dist = DeathProcessCounts(rate, times, N)
    grid = torch.tensor([[a, b] for a, b in itertools.product(range(N + 1), repeat=2)], dtype=torch.float64)
    probs = dist.log_prob(grid).exp()
    assert np.isclose(float(probs.sum()), 1.0)
    assert float(probs[grid[:, 1] < grid[:, 0]].sum()) == 0.0  # counts never decrease
    first = probs.reshape(N + 1, N + 1).sum(1).numpy()  # counts at the earlier time, 0.4
    assert np.allclose(first, stats.binom.pmf(np.arange(N + 1), N, 1 - np.exp(-0.7 * 0.4)))
    with seeded(0):
        draws = DeathProcessCounts(rate, times, 50).sample((20000,))
    assert abs(float(draws[:, 1].mean()) - 50 * (1 - math.exp(-0.84))) < 0.1


def test_batch_model_joint_eig_is_the_stacked_closed_form():
    S = torch.tensor([[1.0, 0.2], [0.2, 2.0]], dtype=torch.float64)

    def features(d):  # one observation of θ0 cos d + θ1 sin d
        return torch.stack([torch.cos(d), torch.sin(d)], -1)  # [B, 1, 2]

    single = LinearGaussianModel(torch.zeros(2), S, 0.5, design_shape=(1,), features=features)
    stacked = LinearGaussianModel(torch.zeros(2), S, 0.5, design_shape=(3,),
                                  features=lambda d: torch.stack([torch.cos(d), torch.sin(d)], -1))
    batches = torch.rand(6, 3, 1, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3
    joint = laplace_eig(batch_model(single, 3), batches, num_outer=20)
    assert torch.allclose(joint.value, stacked.eig(batches[..., 0]), atol=1e-9)
    assert batch_model(single, 1) is single


def test_unconstrained_round_trip_and_jacobian():
    model = PharmacokineticModel()
    with seeded(1):
        theta = model.sample_prior((5,))
    u = model.to_unconstrained(theta)
    back, ladj = model.from_unconstrained(u)
    for k in theta:
        assert torch.allclose(back[k], theta[k])
    assert torch.allclose(ladj, u.sum(-1))  # θ = exp(u): log|dθ/du| = Σ u


def test_seeded_is_reproducible_and_leaves_the_global_stream_alone():
    model = PsychometricModel()
    state = torch.get_rng_state()
    with seeded(5):
        a = model.sample_prior((3,))
    with seeded(5):
        b = model.sample_prior((3,))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(torch.get_rng_state(), state)


def test_design_validation_names_the_argument():
    model = ab_test_model()
    assert model.check_designs([3.0, 50.0]).shape == (2, 1)
    with pytest.raises(InvalidInput, match="designs"):
        model.check_designs([[1.0, 2.0]])
    with pytest.raises(InvalidInput, match="designs.*NaN"):
        model.check_designs([1.0, float("nan")])
    with pytest.raises(InvalidInput, match="outside"):
        model.check_designs([101.0])
    with pytest.raises(InvalidInput, match="prior"):
        DesignModel({"a": 3.0}, lambda th, d: Normal(th["a"], 1.0))
    with pytest.raises(InvalidInput, match="prior_covariance"):
        LinearGaussianModel([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]], 1.0, design_shape=(3, 2))
    with pytest.raises(InvalidInput, match="noise_sd"):
        LinearGaussianModel([0.0], [[1.0]], 0.0, design_shape=(3, 1))
    with pytest.raises(InvalidInput, match="samples"):
        model.condition_on_samples({"theta": torch.zeros(5, 3)})
