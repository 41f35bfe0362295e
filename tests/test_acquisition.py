"""Acquisition scores against closed forms computed independently of bayesal's code."""

import math

import numpy as np
import pytest
import torch

from bayesal import BALD, GaussianPosterior, InvalidInput, JointInformation, MaxVariance, Random, SamplePosterior
from bayesal.acquisition import make_acquisition
from bayesal.posteriors import EmptyPosterior


def test_gp_bald_equals_half_log_one_plus_signal_to_noise(gp_2d):
    X = torch.rand(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scores = BALD().score(gp_2d.posterior(X)).numpy()
    # Independent reference: BoTorch's posterior variance, the likelihood's noise rescaled by the
    # outcome standardisation, and the closed form in numpy.
    var_f = gp_2d.model.posterior(X).variance.detach().numpy()[:, 0]
    noise = float(gp_2d.model.likelihood.noise.detach()) * float(gp_2d.model.outcome_transform.stdvs) ** 2
    assert np.allclose(scores, 0.5 * np.log(1 + var_f / noise), rtol=1e-9)


def test_bald_is_the_entropy_difference_of_gaussians():
    var, noise = torch.tensor([[0.3], [2.0]], dtype=torch.float64), torch.tensor([0.1], dtype=torch.float64)
    post = GaussianPosterior(torch.zeros(2, 1, dtype=torch.float64), var, noise)
    h = lambda v: 0.5 * math.log(2 * math.pi * math.e * v)  # noqa: E731
    expected = [h(0.3 + 0.1) - h(0.1), h(2.0 + 0.1) - h(0.1)]  # H[y] - H[y | f]
    assert np.allclose(BALD().score(post).numpy(), expected)


def test_max_variance_and_output_weights():
    var = torch.tensor([[1.0, 4.0], [2.0, 1.0]], dtype=torch.float64)
    post = GaussianPosterior(torch.zeros_like(var), var)
    assert MaxVariance().score(post).tolist() == [5.0, 3.0]
    assert MaxVariance(output_weights=[1.0, 0.0]).score(post).tolist() == [1.0, 2.0]
    with pytest.raises(InvalidInput, match="2 output weight"):
        MaxVariance(output_weights=[1.0]).score(post)
    samples = SamplePosterior(torch.randn(100, 5, 1, dtype=torch.float64))
    assert torch.allclose(MaxVariance().score(samples), samples.variance[:, 0])


def test_joint_information_is_half_logdet_and_reduces_to_bald_for_one_point():
    A = torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cov = A @ A.T + 0.1 * torch.eye(4, dtype=torch.float64)
    noise = torch.tensor([0.3], dtype=torch.float64)
    value = JointInformation().joint_score(torch.zeros(1, 4, 1), cov[None, None], noise)
    sign, logdet = np.linalg.slogdet(np.eye(4) + cov.numpy() / 0.3)
    assert sign > 0 and np.isclose(float(value), 0.5 * logdet)
    one = JointInformation().joint_score(torch.zeros(1, 1, 1), cov[:1, :1][None, None], noise)
    assert np.isclose(float(one), 0.5 * math.log(1 + float(cov[0, 0]) / 0.3))


def test_random_is_seeded_and_uniform():
    a = Random().score(EmptyPosterior(1000), generator=torch.Generator().manual_seed(1))
    b = Random().score(EmptyPosterior(1000), generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and 0.45 < float(a.mean()) < 0.55


def test_registry():
    assert isinstance(make_acquisition("bald"), BALD)
    with pytest.raises(InvalidInput, match="strategy"):
        make_acquisition("ucb")


# -- auto: the default strategy ----------------------------------------------------------------------
def test_auto_is_the_measured_default_for_each_kind_of_surrogate():
    from bayesal import DeepEnsemble, ExactGP, FullyBayesianGP, IntegratedVarianceReduction, MCDropoutNet
    from bayesal.acquisition import BatchBALD, resolve_auto
    from bayesal.selection import KernelBatch

    assert type(resolve_auto(ExactGP())) is IntegratedVarianceReduction
    assert type(resolve_auto(FullyBayesianGP())) is IntegratedVarianceReduction
    assert type(resolve_auto(MCDropoutNet(num_classes=3))) is BatchBALD
    batch = resolve_auto(DeepEnsemble(task="regression"))
    assert isinstance(batch, KernelBatch) and batch.method == "bait-f"
    assert type(make_acquisition("auto", ExactGP())) is IntegratedVarianceReduction


def test_learner_and_campaign_use_auto_when_no_strategy_is_named():
    from bayesal import ActiveLearner, IntegratedVarianceReduction, Pool
    from bayesal.loop.config import check_config

    X = torch.rand(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    learner = ActiveLearner(Pool(X, X.sum(-1)), seed=0)
    assert type(learner.acquisition) is IntegratedVarianceReduction
    assert check_config({"problem": "branin"})["strategy"] == "auto"
    learner.run(budget=12, q=4)  # the default strategy runs end to end
    assert learner.n_labels == 12
