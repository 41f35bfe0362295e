"""Feature maps of networks (bayesal/kernels/network.py): ll, grad (exact and sketched), BADGE."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from bayesal import DeepEnsemble, InvalidInput, MCDropoutNet, UnknownName, Unsupported
from bayesal.kernels.network import (
    GradientFeatures, NetworkFunction, NTKLinear, network_feature_map,
)
from bayesal.settings import memory_budget

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- networks shared by bayesal and bmdal_reg ---------------------------------------------------------
def _bmdal_kernel(model: nn.Module, X: torch.Tensor, kind: str) -> torch.Tensor:
    """bmdal_reg's ``ll`` / ``grad`` base kernel matrix ``[n, n]`` of ``model`` on ``X``, built the way
    its ``BatchSelectorImpl.select`` builds it (gradient layers found in module order, the
    last one for ``ll``; nn.Linear through its default ``layer_grad_dict``)."""
    np.Inf = np.inf  # bmdal_reg still uses the alias NumPy 2 removed
    pytest.importorskip("bmdal_reg")
    from bmdal_reg.bmdal.feature_data import TensorFeatureData
    from bmdal_reg.bmdal.features import Features
    from bmdal_reg.bmdal.layer_features import (
        LayerGradientComputation, LinearGradientComputation, create_grad_feature_map,
    )

    layers = []
    for layer in model.modules():
        if isinstance(layer, LayerGradientComputation):
            layers.append(layer)
        elif type(layer) is nn.Linear:
            layers.append(LinearGradientComputation(layer))
    if kind == "ll":
        layers = layers[-1:]
    feats = Features(create_grad_feature_map(model, layers), TensorFeatureData(X))
    with warnings.catch_warnings():  # bmdal_reg's own deprecation and backward-hook warnings
        warnings.simplefilter("ignore")
        return feats.get_kernel_matrix(feats)


def _ntk_pair(act: str, d: int = 3, hidden=(7, 5), m: int = 1, seed: int = 0):
    """A bmdal_reg NTK-parametrised MLP (float64, random nonzero biases) and the same network
    built from bayesal's :class:`NTKLinear` layers."""
    np.Inf = np.inf
    pytest.importorskip("bmdal_reg")
    from bmdal_reg.models import create_tabular_model

    torch.manual_seed(seed)
    theirs = create_tabular_model(1, d, hidden_sizes=list(hidden), act=act, n_outputs=m, weight_gain=0.2,
                                  bias_gain=0.2).get_single_model(0).double()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.3 * torch.randn_like(p))  # biases start at zero: make their columns count
    linear = [layer for layer in theirs.layers if hasattr(layer, "weight")]
    sizes = [d, *hidden, m]
    ours: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = NTKLinear(a, b, 0.2, 0.2).double()
        with torch.no_grad():
            layer.weight.copy_(linear[i].weight.T)  # bmdal_reg stores W as [in, out]
            layer.bias.copy_(linear[i].bias)
        ours.append(layer)
        if i < len(hidden):
            ours.append(nn.SiLU() if act == "silu" else nn.ReLU())
    return theirs, nn.Sequential(*ours).double()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("act", ["relu", "silu"])
@pytest.mark.parametrize("kind", ["ll", "grad"])
def test_ntk_network_kernels_equal_bmdal_reg(kind, act):
    theirs, ours = _ntk_pair(act)
    X = torch.randn(9, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(ours(X), theirs(X))
    K = _bmdal_kernel(theirs, X, kind)
    Phi = network_feature_map(NetworkFunction(ours), kind)(X)
    assert Phi.shape == (9, 6 if kind == "ll" else 4 * 7 + 8 * 5 + 6 * 1)
    assert _rel(Phi @ Phi.T, K) < 1e-5


@pytest.mark.parametrize("kind", ["ll", "grad"])
def test_torch_linear_network_kernels_equal_bmdal_reg(kind):
    """nn.Linear networks (MC dropout, ensembles) against bmdal_reg's LinearGradientComputation,
    two outputs (gradients of the summed outputs in both)."""
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    X = torch.randn(8, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    K = _bmdal_kernel(net, X, kind)
    Phi = network_feature_map(NetworkFunction(net), kind)(X)
    assert _rel(Phi @ Phi.T, K) < 1e-5


def _brute_gradients(net: nn.Module, X: torch.Tensor, loss=lambda out: out.sum()) -> torch.Tensor:
    """Per-row parameter gradients ``[n, P]`` by one autograd call per row."""
    params = list(net.parameters())
    rows = []
    for x in X:
        g = torch.autograd.grad(loss(net(x.unsqueeze(0))), params)
        rows.append(torch.cat([t.reshape(-1) for t in g]))
    return torch.stack(rows)


def test_generic_path_equals_brute_force_gradients():
    """A network with a LayerNorm (not a linear layer) takes the torch.func path; unsketched, its
    features are the exact per-example gradients."""
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(3, 5), nn.LayerNorm(5), nn.SiLU(), nn.Linear(5, 1)).double()
    X = torch.randn(7, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    fn = NetworkFunction(net)
    assert not fn.structured()
    Phi = GradientFeatures(fn, n_features=None)(X)
    J = _brute_gradients(net, X)
    assert Phi.shape == J.shape
    assert _rel(Phi, J) < 1e-10


def test_structured_path_equals_brute_force_kernel():
    torch.manual_seed(6)
    # an in-place activation after a layer must not change that layer's recorded output
    net = nn.Sequential(nn.Linear(2, 6), nn.ReLU(inplace=True), NTKLinear(6, 3, 0.5, 1.0), nn.Tanh(),
                        nn.Linear(3, 2)).double()
    X = torch.randn(6, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    fn = NetworkFunction(net)
    assert fn.structured()
    Phi = GradientFeatures(fn, n_features=None)(X)
    J = _brute_gradients(net, X)
    assert _rel(Phi @ Phi.T, J @ J.T) < 1e-10


# -- sketching --------------------------------------------------------------------------------------
@pytest.mark.parametrize("generic", [False, True])
def test_sketched_gradient_kernel_is_unbiased(generic):
    """Over S = 300 sketch seeds, the mean sketched kernel matches the exact NTK entry by entry.

    Each of the 10 distinct entries of a 4 × 4 kernel gives ``z = (mean − exact) / (sd / √S)``,
    approximately N(0, 1) under unbiasedness (central limit theorem over independent seeds), and
    the test fails when any |z| exceeds 4.5. False-fail rate (an unbiased sketch failing): at
    most 10 · P(|N(0,1)| > 4.5) ≈ 7e-5 by the union bound (the CLT approximation is the only
    slack; the seeds are fixed, so the outcome itself is reproducible). False-pass rate: a bias
    larger than about 6.5 standard errors (sd/√S, printed on failure; here a few per cent of the
    entries) is missed with probability below 5 %. A sketch without its √F factor, or one that
    reuses the same projections for every layer (cross-layer terms then no longer vanish in
    expectation), fails it.
    """
    torch.manual_seed(8)
    if generic:  # a LayerNorm sends it down the torch.func path
        net = nn.Sequential(nn.Linear(3, 12), nn.LayerNorm(12), nn.Tanh(), nn.Linear(12, 6), nn.Tanh(),
                            nn.Linear(6, 1)).double()
    else:
        net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    X = torch.randn(4, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    fn = NetworkFunction(net)
    exact = GradientFeatures(fn, n_features=None)(X)
    K = exact @ exact.T
    S, F = 300, 32
    draws = []
    for seed in range(S):
        Phi = GradientFeatures(fn, n_features=F, seed=seed)(X)
        assert Phi.shape == (4, F)
        draws.append(Phi @ Phi.T)
    D = torch.stack(draws)  # [S, 4, 4]
    iu = torch.triu_indices(4, 4)
    mean, se = D.mean(0)[iu[0], iu[1]], D.std(0)[iu[0], iu[1]] / math.sqrt(S)
    z = (mean - K[iu[0], iu[1]]) / se
    assert float(z.abs().max()) < 4.5, (z, K[iu[0], iu[1]], se)
    # and the sketch is not trivially unbiased by being noise: one draw has the exact kernel's scale
    assert 0.3 < float(D[0].diagonal().mean() / K.diagonal().mean()) < 3


def test_generic_path_uses_product_sketch_for_big_tensors(monkeypatch):
    """A weight above the dense-sketch limit is sketched by two factors; the kernel stays unbiased
    (checked loosely here over 200 seeds) and no [P, F] matrix is made."""
    import bayesal.kernels.network as network

    monkeypatch.setattr(network, "DENSE_SKETCH_MAX", 8)
    torch.manual_seed(10)
    net = nn.Sequential(nn.Linear(3, 6), nn.LayerNorm(6), nn.Tanh(), nn.Linear(6, 1)).double()
    X = torch.randn(3, 3, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    fn = NetworkFunction(net)
    exact = GradientFeatures(fn, n_features=None)(X)
    K = exact @ exact.T
    draws = []
    for seed in range(200):
        fmap = GradientFeatures(fn, n_features=16, seed=seed)
        Phi = fmap(X)
        draws.append(Phi @ Phi.T)
    projections = fmap.impl._proj
    assert len(projections["0.weight"]) == 2 and projections["0.weight"][0].shape == (6, 16)
    D = torch.stack(draws)
    z = (D.mean(0) - K) / (D.std(0) / math.sqrt(200))
    assert float(z.abs().max()) < 4.5, z


def test_sketch_is_seeded_and_independent_of_chunking():
    torch.manual_seed(12)
    net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 1))
    X = torch.randn(50, 3, generator=torch.Generator().manual_seed(13))
    fn = NetworkFunction(net)
    whole = GradientFeatures(fn, 24, seed=5)(X)
    with memory_budget(3000):  # a few rows per block
        chunked = GradientFeatures(fn, 24, seed=5)(X)
    assert torch.allclose(whole, chunked, atol=1e-6)
    assert not torch.allclose(whole, GradientFeatures(fn, 24, seed=6)(X))
    assert GradientFeatures(fn, 24, seed=5)(X[:0]).shape == (0, 24)


def test_bad_sketch_sizes_and_huge_exact_gradients_are_refused():
    net = nn.Sequential(nn.Linear(300, 300), nn.ReLU(), nn.Linear(300, 1))
    with pytest.raises(InvalidInput, match="n_features"):
        network_feature_map(NetworkFunction(net), "grad", n_features=None)
    for bad in (0, -3, 2.5, True, "512"):
        with pytest.raises(InvalidInput, match="n_features"):
            network_feature_map(NetworkFunction(net), "grad", n_features=bad)
    with pytest.raises(UnknownName):
        network_feature_map(NetworkFunction(net), "ntk")


# -- BADGE -----------------------------------------------------------------------------------------
def test_badge_embedding_equals_brute_force_last_layer_gradient():
    """(p − e_ŷ) ⊗ [h, 1] against autograd of the cross-entropy at the predicted class."""
    torch.manual_seed(14)
    net = nn.Sequential(nn.Linear(2, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    X = torch.randn(10, 2, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    Phi = network_feature_map(NetworkFunction(net), "badge", task="classification")(X)
    last = net[2]
    rows = []
    for x in X:
        logits = net(x.unsqueeze(0))
        loss = nn.functional.cross_entropy(logits, logits.argmax(-1))
        gW, gb = torch.autograd.grad(loss, [last.weight, last.bias])  # [C, h], [C]
        rows.append(torch.cat([gW.T, gb.unsqueeze(0)], 0).reshape(-1))  # [h, 1] ⊗ g, h-major
    B = torch.stack(rows)
    assert Phi.shape == (10, 6 * 3)
    assert torch.allclose(Phi, B, atol=1e-12)
    # and in closed form
    with torch.no_grad():
        h = net[1](net[0](X))
        p = torch.softmax(net(X), -1)
        g = p - nn.functional.one_hot(p.argmax(-1), 3).double()
        closed = (torch.cat([h, torch.ones(10, 1, dtype=h.dtype)], -1).unsqueeze(-1) * g.unsqueeze(-2)).reshape(10, -1)
    assert torch.allclose(Phi, closed, atol=1e-12)


# -- the networks' feature_map --------------------------------------------------------------------------
def _xy(n=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    return X, torch.sin(3 * X[:, 0]) + X[:, 1], (X[:, 0] > X[:, 1]).long()


def test_mc_dropout_features_are_the_deterministic_network():
    X, y, labels = _xy()
    model = MCDropoutNet(task="regression", hidden=(16, 16), dropout=0.3, max_epochs=5, seed=0).fit(X, y)
    ll = model.feature_map("ll")
    Phi = ll(X)
    assert Phi.shape == (40, 17) and ll.n_features == 17
    net = model.net
    with torch.no_grad():
        h = X.to(torch.float32)
        h = (h - model._shift) / model._scale
        for layer in list(net)[:-1]:
            if isinstance(layer, (nn.Linear, nn.ReLU)):
                h = layer(h)  # dropout layers skipped: the deterministic network
    assert torch.allclose(Phi, torch.cat([h, torch.ones(40, 1)], -1), atol=1e-6)
    assert torch.equal(Phi, model.feature_map("ll")(X))  # the MC masks do not enter
    assert model.feature_map("grad", n_features=32, seed=1)(X).shape == (40, 32)
    with pytest.raises(Unsupported, match="BADGE"):
        model.feature_map("badge")
    with pytest.raises(UnknownName):
        model.feature_map("nope")
    clf = MCDropoutNet(task="classification", hidden=(8,), max_epochs=3, seed=0).fit(X, labels)
    assert clf.feature_map("badge")(X).shape == (40, 9 * 2)


def test_ensemble_kernel_is_the_sum_of_the_members_kernels():
    X, y, labels = _xy()
    ens = DeepEnsemble(task="regression", num_members=3, hidden=(8, 8), max_epochs=3, seed=0).fit(X, y)
    for kind in ("ll", "grad"):
        Phi = ens.feature_map(kind)(X)
        U = ens._transform(X)
        total = 0
        for i in range(3):
            member = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
            member.load_state_dict({k: v[i] for k, v in ens.params.items()})
            f = network_feature_map(NetworkFunction(member), kind)(U)
            total = total + f @ f.T
        assert torch.allclose(Phi @ Phi.T, total, rtol=1e-4, atol=1e-5)
    assert ens.feature_map("grad", n_features=64, seed=0)(X).shape == (40, 64)
    clf = DeepEnsemble(task="classification", num_members=2, hidden=(8,), max_epochs=3, seed=0).fit(X, labels)
    assert clf.feature_map("badge")(X).shape == (40, 2 * 9 * 2)
