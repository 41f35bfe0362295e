import numpy as np
import pytest
import torch

from bayesal import GaussianPosterior, InvalidInput, SamplePosterior


def test_sample_posterior_moments_match_numpy():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(50, 7, 2, generator=gen, dtype=torch.float64)
    post = SamplePosterior(s)
    a = s.numpy()
    assert np.allclose(post.mean.numpy(), a.mean(0))
    assert np.allclose(post.variance.numpy(), a.var(0, ddof=1))
    cov = post.covariance([1, 4, 6])
    assert cov.shape == (2, 3, 3)
    assert np.allclose(cov[1].numpy(), np.cov(a[:, [1, 4, 6], 1].T))


def test_classification_samples_must_be_distributions():
    probs = torch.softmax(torch.randn(4, 5, 3), -1)
    assert SamplePosterior(probs, kind="classification").mean.shape == (5, 3)
    with pytest.raises(InvalidInput, match="summing to one"):
        SamplePosterior(probs * 2, kind="classification")
    with pytest.raises(InvalidInput, match=r"\[K, N, m\]"):
        SamplePosterior(torch.zeros(3, 4))


def test_gaussian_posterior_noise_and_covariance(gp_2d):
    X = torch.rand(6, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    post = gp_2d.posterior(X)
    assert post.mean.shape == post.variance.shape == (6, 1)
    assert torch.allclose(post.predictive_variance, post.variance + gp_2d.noise_variance)
    cov = post.covariance(torch.tensor([0, 3, 5]))
    assert cov.shape == (1, 3, 3)
    assert torch.allclose(cov[0].diagonal(), post.variance[[0, 3, 5], 0])
    with pytest.raises(InvalidInput, match="covariance function"):
        GaussianPosterior(post.mean, post.variance).covariance()
