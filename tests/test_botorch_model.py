"""Our acquisitions and selectors on a plain BoTorch model agree with the same model inside ExactGP."""

import pytest
import torch
from botorch.models import ModelListGP, SingleTaskGP

from bayesal import BALD, Box, BoTorchSurrogate, ExactGP, InvalidInput, JointInformation, MaxVariance, Pool
from bayesal.selection import select_continuous, select_greedy, select_topk


@pytest.fixture
def pair(gp_2d):
    return gp_2d, BoTorchSurrogate(gp_2d.model)


def test_posterior_covariance_and_noise_agree(pair):
    ours, wrapped = pair
    X = torch.rand(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a, b = ours.posterior(X), wrapped.posterior(X)
    assert torch.allclose(a.mean, b.mean, atol=1e-10) and torch.allclose(a.variance, b.variance, atol=1e-10)
    assert torch.allclose(ours.covariance(X[:5], X[5:9]), wrapped.covariance(X[:5], X[5:9]), atol=1e-10)
    assert torch.allclose(ours.noise_variance, wrapped.noise_variance)


def test_selectors_choose_the_same_batches(pair):
    ours, wrapped = pair
    pool = Pool(torch.rand(80, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    for acquisition in (MaxVariance(), BALD(), JointInformation()):
        assert select_greedy(ours, acquisition, pool, 5).indices.tolist() == \
            select_greedy(wrapped, acquisition, pool, 5).indices.tolist()
        assert select_topk(ours, acquisition, pool, 5).indices.tolist() == \
            select_topk(wrapped, acquisition, pool, 5).indices.tolist()
    box = Box([0.0, 0.0], [1.0, 1.0])
    a = select_continuous(ours, JointInformation(), box, 2, seed=0, num_restarts=2, raw_samples=32)
    b = select_continuous(wrapped, JointInformation(), box, 2, seed=0, num_restarts=2, raw_samples=32)
    assert torch.allclose(a.X, b.X, atol=1e-6)


def test_condition_on_matches(pair):
    ours, wrapped = pair
    X, Xp = torch.rand(10, 2, dtype=torch.float64), torch.rand(2, 2, dtype=torch.float64)
    assert torch.allclose(ours.condition_on(Xp).posterior(X).variance,
                          wrapped.condition_on(Xp).posterior(X).variance, atol=1e-10)


def test_model_list_with_two_outputs():
    gen = torch.Generator().manual_seed(2)
    X = torch.rand(20, 2, generator=gen, dtype=torch.float64)
    models = [SingleTaskGP(X, torch.sin(4 * X[:, :1])), SingleTaskGP(X, torch.cos(3 * X[:, 1:]))]
    wrapped = BoTorchSurrogate(ModelListGP(*models))
    Xs = torch.rand(6, 2, generator=gen, dtype=torch.float64)
    mean, cov = wrapped.joint_posterior(Xs.unsqueeze(0))
    assert mean.shape == (1, 6, 2) and cov.shape == (1, 2, 6, 6)
    for o, model in enumerate(models):
        model.eval()
        assert torch.allclose(cov[0, o].detach(), model.posterior(Xs).distribution.covariance_matrix.detach(), atol=1e-9)
    pool = Pool(torch.rand(40, 2, generator=gen, dtype=torch.float64))
    assert len(set(select_greedy(wrapped, MaxVariance(), pool, 4).indices.tolist())) == 4


def test_wrapper_refuses_fit_and_non_models():
    with pytest.raises(InvalidInput, match="botorch Model"):
        BoTorchSurrogate(object())
    gp = ExactGP().fit(torch.rand(5, 1, dtype=torch.float64), torch.rand(5, dtype=torch.float64))
    with pytest.raises(InvalidInput, match="fit it with BoTorch"):
        BoTorchSurrogate(gp.model).fit(torch.rand(3, 1), torch.rand(3))
