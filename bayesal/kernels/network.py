"""Feature maps of a trained torch network: last layer, per-example gradients, BADGE embeddings.

The kernels are those of Holzmüller et al. (2023, "A Framework and Benchmark for Deep Batch
Active Learning for Regression", JMLR, §4): for a network f(x; θ),

* ``"ll"`` (:class:`LastLayerFeatures`): ``φ(x) = ∇_{θ_L} f(x)``, the gradient with respect to
  the last linear layer's parameters. For a layer ``z = σ_w W a + σ_b b`` it is
  ``[σ_w a, σ_b] ⊗ ∂f/∂z``; with one output after the last layer this is the penultimate
  activation (with the bias column), scaled by the layer's parametrisation factors;
* ``"grad"`` (:class:`GradientFeatures`): ``φ(x) = ∇_θ f(x)`` over all parameters, the
  empirical neural tangent kernel (Jacot, Gabriel & Hongler 2018), sketched to F columns;
* ``"badge"`` (:class:`BadgeFeatures`): for classifiers, the gradient of the cross-entropy at
  the predicted class with respect to the last layer, ``(p − e_ŷ) ⊗ [h, 1]``
  (Ash, Zhang, Krishnamurthy, Langford & Agarwal 2020, "Deep Batch Active Learning by Diverse,
  Uncertain Gradient Lower Bounds").

With m > 1 outputs, ``"ll"`` and ``"grad"`` are gradients of the sum of the outputs (as in
bmdal_reg, whose backward pass seeds every output with one).

**Linear layers** (``nn.Linear`` and :class:`NTKLinear`) use their structure: the per-example
gradient of a linear layer is the outer product of its (scaled) input ``a`` and its output
sensitivity ``g = ∂f/∂z``, so one forward and one backward pass of a block of rows give every
layer's factors, and the ``[N, P]`` Jacobian is never formed. Sketching keeps the product form:
with independent Gaussian matrices ``P: [in+1, F]`` and ``Q: [out, F]`` (entries N(0, 1/F)), the
features ``√F · (aP) ⊙ (gQ)`` have ``E[φ(x)ᵀφ(x')] = (aᵀa')(gᵀg')``, the layer's exact kernel
(an elementwise product of independent Gaussian sketches, as bmdal_reg sketches product
kernels; cf. Pham & Pagh 2013, "Fast and Scalable Polynomial Kernels via Explicit Feature
Maps", whose TensorSketch uses count sketches instead), and the layers' sketches are summed
(independent, so their cross terms vanish in expectation). Memory per block is ``O(rows · (width + F))``.

**Other layers** take a generic ``torch.func`` path (``vmap`` of ``grad`` over the rows of a
block): per-example gradients of each parameter tensor, sketched by a dense Gaussian for small
tensors and by a two-factor product sketch ``√F · Σ_ij G_ij P_if Q_jf`` (again unbiased) for
tensors with a leading dimension, so no ``[P, F]`` matrix is built for large P.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from ..errors import InvalidInput, UnknownName, Unsupported
from .base import FeatureMap

__all__ = ["NTKLinear", "NetworkFunction", "LastLayerFeatures", "GradientFeatures", "BadgeFeatures",
           "network_feature_map", "ensemble_feature_map", "ConcatFeatures", "PreprocessedFeatures", "frozen_copy",
           "NETWORK_KINDS", "MAX_EXACT_PARAMETERS", "DENSE_SKETCH_MAX"]

#: feature-map kinds a network provides
NETWORK_KINDS = ("ll", "grad", "badge")
#: unsketched gradient features beyond this many parameters are refused (``[N, P]`` features)
MAX_EXACT_PARAMETERS = 1 << 16
#: parameter tensors up to this size (or 1-D) are sketched by one dense Gaussian ``[numel, F]``, larger
#: ones by the two-factor product sketch
DENSE_SKETCH_MAX = 4096


class NTKLinear(nn.Module):
    """A linear layer in the neural-tangent parametrisation, ``z = (σ_w/√in) · W a + σ_b · b``.

    ``W: [out, in]`` is initialised N(0, 1) (or zero) and ``b: [out]`` zero, as in Holzmüller et
    al. (2023, §6.1, after Jacot et al. 2018): the gains ``σ_w = weight_gain`` and
    ``σ_b = bias_gain`` scale the forward pass rather than the initialisation, so the gradient
    features carry them (``[σ_w/√in · a, σ_b] ⊗ g``).

    Args:
        in_features, out_features: sizes of ``a: [B, in]`` and ``z: [B, out]``.
        weight_gain, bias_gain: σ_w and σ_b.
        zero_init: initialise W at zero (bmdal_reg's ``use_llz``) instead of N(0, 1).
        generator: random generator of the initialisation.
    """

    def __init__(self, in_features: int, out_features: int, weight_gain: float = 0.2, bias_gain: float = 0.2,
                 zero_init: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.weight = nn.Parameter(torch.zeros(self.out_features, self.in_features))
        self.bias = nn.Parameter(torch.zeros(self.out_features))
        if not zero_init:
            with torch.no_grad():
                self.weight.copy_(torch.randn(self.out_features, self.in_features, generator=generator))
        self.weight_factor = float(weight_gain) / math.sqrt(self.in_features)
        self.bias_factor = float(bias_gain)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"weight_factor={self.weight_factor:.4g}, bias_factor={self.bias_factor:.4g}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.weight_factor, self.bias * self.bias_factor)


def _linear_factors(layer: nn.Module) -> tuple[float, float | None]:
    """``(σ_w, σ_b)`` of a linear layer's forward pass; σ_b None when it has no bias."""
    if isinstance(layer, NTKLinear):
        return layer.weight_factor, layer.bias_factor
    return 1.0, (None if layer.bias is None else 1.0)


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, (nn.Linear, NTKLinear))


def _sub_seed(seed: int, *path: int) -> int:
    """A seed for one sketch matrix, derived from the user's seed and the matrix's position (so
    the matrices do not depend on the order in which blocks of rows are computed)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, *path]).generate_state(1, np.uint64)[0] >> 1)


def _gaussian(rows: int, cols: int, seed: int, dtype, device) -> torch.Tensor:
    """``[rows, cols]`` with entries N(0, 1/cols), from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, cols, generator=gen, dtype=torch.float64) / math.sqrt(cols)).to(dtype=dtype, device=device)


class NetworkFunction:
    """A network as a pure function of its inputs: ``module`` evaluated with fixed ``params``.

    ``params`` (name -> tensor, as ``module.named_parameters()``; buffers included) lets one
    module skeleton stand for several networks (the members of an ensemble). The parameters are
    detached: feature maps differentiate with respect to layer outputs, never update weights.

    Args:
        module: the network ``[B, d] -> [B, m]``, in evaluation mode (copied; put in eval mode).
        params: its parameters and buffers; default the module's own.
    """

    def __init__(self, module: nn.Module, params: Mapping[str, torch.Tensor] | None = None):
        self.module = module
        if params is None:
            params = {**dict(module.named_parameters()), **dict(module.named_buffers())}
        self.params = {k: v.detach() for k, v in params.items()}
        self.param_names = [k for k, _ in module.named_parameters()]

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, self.params, (X,))

    @property
    def num_parameters(self) -> int:
        """P, the number of trainable parameters (the width of the exact gradient features)."""
        return sum(self.params[k].numel() for k in self.param_names)

    def linear_layers(self) -> list[tuple[str, nn.Module]]:
        """The linear layers with parameters, in module order."""
        return [(n, m) for n, m in self.module.named_modules() if _is_linear(m)]

    def structured(self) -> bool:
        """Whether every parameter belongs to a linear layer (the structured gradient path applies)."""
        owned = set()
        for name, layer in self.linear_layers():
            owned |= {f"{name}.{p}" if name else p for p, _ in layer.named_parameters(recurse=False)}
        return owned == set(self.param_names)

    def like(self) -> torch.Tensor:
        """A parameter: the dtype and device inputs are moved to."""
        return next(iter(self.params.values()))


def _sum_outputs(out: torch.Tensor) -> torch.Tensor:
    """The scalar whose per-row gradients are the ``ll`` / ``grad`` features: the sum of the outputs."""
    return out.sum()


def _ce_at_prediction(out: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the logits ``[n, C]`` at their predicted classes, summed over the rows (BADGE)."""
    target = out.detach().argmax(-1)
    return F.cross_entropy(out, target, reduction="sum")


def _layer_factors(net: NetworkFunction, X: torch.Tensor, layers: list[str],
                   objective: Callable[[torch.Tensor], torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each named linear layer: its scaled input ``ã = [σ_w a, σ_b]  [n, in(+1)]`` and its
    output sensitivity ``g = ∂objective/∂z  [n, out]`` on the rows ``X: [n, d]``.

    One forward pass records the layers' inputs and outputs (forward hooks), one backward pass
    gives the sensitivities (``autograd.grad`` with respect to the recorded outputs, not the
    parameters). Rows are independent in evaluation mode, so the gradient of the summed
    objective with respect to row i's output is row i's own sensitivity.
    """
    modules = dict(net.module.named_modules())
    record: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    first = layers[0]
    only_last = len(layers) == 1

    def hook(name):
        def fn(layer, inputs, output):
            if only_last:
                # the last layer alone: cut the graph here, so the backward pass is one layer long
                output = output.detach().requires_grad_(True)
            record[name] = (inputs[0].detach(), output)
            # the network continues on a copy, so an in-place operation after the layer (ReLU with
            # inplace=True) cannot change the recorded output and so its sensitivity
            return output.clone()
        return fn

    handles = [modules[n].register_forward_hook(hook(n)) for n in layers]
    try:
        with torch.enable_grad():
            x = X.detach()
            if not only_last:
                x = x.requires_grad_(True)  # parameters are detached: the graph flows from the input
            out = net(x)
            if first not in record:
                raise Unsupported(type(net.module).__name__, "linear layers used in its forward pass",
                                  "gradient features")
            sens = torch.autograd.grad(objective(out), [record[n][1] for n in layers], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    result = []
    for n, g in zip(layers, sens):
        a, z = record[n][0], record[n][1]
        g = torch.zeros_like(z) if g is None else g
        wf, bf = _linear_factors(modules[n])
        a = a.reshape(-1, a.shape[-1]) * wf
        g = g.reshape(-1, g.shape[-1])
        if bf is not None:
            a = torch.cat([a, torch.full((a.shape[0], 1), bf, dtype=a.dtype, device=a.device)], -1)
        result.append((a, g.detach()))
    return result


class _LinearGradientFeatures(FeatureMap):
    """Gradient features of a set of linear layers (structured path), exact or sketched."""

    def __init__(self, net: NetworkFunction, layers: list[str], objective, n_features: int | None, seed: int):
        self.net, self.layers, self.objective = net, layers, objective
        modules = dict(net.module.named_modules())
        self._dims = []
        for n in layers:
            layer = modules[n]
            _, bf = _linear_factors(layer)
            self._dims.append((layer.in_features + (bf is not None), layer.out_features))
        self.exact_features = sum(i * o for i, o in self._dims)
        self.sketch = n_features
        self.n_features = self.exact_features if n_features is None else int(n_features)
        self.seed = int(seed)
        self._proj: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def bytes_per_row(self, X: torch.Tensor) -> float:
        item = self.net.like().element_size()
        widths = sum(i + o for i, o in self._dims)
        # activations and their sensitivities (forward and backward), plus the projections
        return item * (4.0 * widths + 4.0 * self.n_features + X.shape[-1])

    def _projections(self, like: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._proj is None:
            Fs = self.n_features
            self._proj = [(_gaussian(i, Fs, _sub_seed(self.seed, 2 * k), like.dtype, like.device),
                           _gaussian(o, Fs, _sub_seed(self.seed, 2 * k + 1), like.dtype, like.device))
                          for k, (i, o) in enumerate(self._dims)]
        return self._proj

    def chunk(self, X: torch.Tensor) -> torch.Tensor:
        like = self.net.like()
        X = X.to(device=like.device, dtype=like.dtype)
        if X.shape[0] == 0:
            return X.new_zeros(0, self.n_features)
        factors = _layer_factors(self.net, X, self.layers, self.objective)
        if self.sketch is None:
            return torch.cat([(a.unsqueeze(-1) * g.unsqueeze(-2)).reshape(a.shape[0], -1) for a, g in factors], -1)
        out = X.new_zeros(X.shape[0], self.n_features)
        for (a, g), (P, Q) in zip(factors, self._projections(X)):
            out += (a @ P) * (g @ Q)
        return out * math.sqrt(self.n_features)


class LastLayerFeatures(_LinearGradientFeatures):
    """bmdal_reg's ``ll`` kernel: ``φ(x) = [σ_w a_L, σ_b] ⊗ ∂f/∂z_L``, the gradient of the summed
    outputs with respect to the last linear layer's parameters (Holzmüller et al. 2023, §4.1);
    ``[N, (in_L + 1) · out_L]``. With one output and nothing after the layer it is the
    penultimate activation ``a_L`` scaled by σ_w with a constant column σ_b.

    Args:
        net: a :class:`NetworkFunction` whose last parametrised layer is linear.
        n_features: None (exact) or a sketch size F.
        seed: seed of the sketch.
    """

    def __init__(self, net: NetworkFunction, n_features: int | None = None, seed: int = 0,
                 objective: Callable[[torch.Tensor], torch.Tensor] = _sum_outputs):
        layers = net.linear_layers()
        if not layers:
            raise Unsupported(type(net.module).__name__, "a linear last layer", "last-layer features")
        super().__init__(net, [layers[-1][0]], objective, n_features, seed)


class BadgeFeatures(LastLayerFeatures):
    """The BADGE gradient embedding of a classifier (Ash et al. 2020, §3): the gradient of the
    cross-entropy at the predicted class ŷ = argmax p(x) with respect to the last linear layer,
    ``(p − e_ŷ) ⊗ [σ_w h, σ_b]`` (``[h, 1]`` for ``nn.Linear``); ``[N, C · (in_L + 1)]``
    (ordered as ``[h, 1] ⊗ (p − e_ŷ)``, which has the same inner products)."""

    def __init__(self, net: NetworkFunction, n_features: int | None = None, seed: int = 0):
        super().__init__(net, n_features, seed, objective=_ce_at_prediction)


class _GenericGradientFeatures(FeatureMap):
    """Per-example gradients of every parameter by ``torch.func`` (``vmap`` of ``grad``), sketched
    tensor by tensor (dense Gaussian for small tensors, two-factor product sketch otherwise)."""

    def __init__(self, net: NetworkFunction, objective, n_features: int | None, seed: int):
        self.net, self.objective = net, objective
        self.names = net.param_names
        self.exact_features = net.num_parameters
        self.sketch = n_features
        self.n_features = self.exact_features if n_features is None else int(n_features)
        self.seed = int(seed)
        self._proj: dict[str, tuple[torch.Tensor, ...]] = {}

    def bytes_per_row(self, X: torch.Tensor) -> float:
        item = self.net.like().element_size()
        biggest = max((self.net.params[k].shape[0] if self.net.params[k].dim() > 1 else 1) for k in self.names)
        return item * (3.0 * self.exact_features + (biggest + 2) * self.n_features + X.shape[-1])

    def _projection(self, k: int, name: str, shape: torch.Size, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if name not in self._proj:
            Fs, numel = self.n_features, int(np.prod(shape)) if len(shape) else 1
            if numel <= DENSE_SKETCH_MAX or len(shape) < 2:
                self._proj[name] = (_gaussian(numel, Fs, _sub_seed(self.seed, 1000 + k, 0), like.dtype, like.device),)
            else:
                rest = numel // shape[0]
                self._proj[name] = (_gaussian(shape[0], Fs, _sub_seed(self.seed, 1000 + k, 1), like.dtype, like.device),
                                    _gaussian(rest, Fs, _sub_seed(self.seed, 1000 + k, 2), like.dtype, like.device))
        return self._proj[name]

    def chunk(self, X: torch.Tensor) -> torch.Tensor:
        like = self.net.like()
        X = X.to(device=like.device, dtype=like.dtype)
        n = X.shape[0]
        if n == 0:
            return X.new_zeros(0, self.n_features)
        trainable = {k: self.net.params[k] for k in self.names}
        fixed = {k: v for k, v in self.net.params.items() if k not in trainable}
        module, objective = self.net.module, self.objective

        def one(params, x):
            return objective(functional_call(module, {**params, **fixed}, (x.unsqueeze(0),)))

        with torch.enable_grad():
            grads = vmap(grad(one), in_dims=(None, 0))(trainable, X)
        if self.sketch is None:
            return torch.cat([grads[k].reshape(n, -1) for k in self.names], -1)
        out = X.new_zeros(n, self.n_features)
        for k, name in enumerate(self.names):
            G = grads[name]
            proj = self._projection(k, name, trainable[name].shape, X)
            if len(proj) == 1:
                out += G.reshape(n, -1) @ proj[0]
            else:
                P, Q = proj
                GQ = G.reshape(n, P.shape[0], Q.shape[0]) @ Q  # [n, rows, F]
                out += math.sqrt(self.n_features) * (GQ * P).sum(1)
        return out


class GradientFeatures(FeatureMap):
    """bmdal_reg's ``grad`` kernel, the empirical NTK ``k(x, x') = ∇_θ f(x)ᵀ ∇_θ f(x')`` (gradient
    of the summed outputs), sketched to ``n_features`` columns (Holzmüller et al. 2023, §4.1 and
    §4.3 "sketching"); ``[N, F]``, or the exact ``[N, P]`` gradients when ``n_features`` is None
    (networks with at most :data:`MAX_EXACT_PARAMETERS` parameters).

    Networks whose parameters all sit in linear layers take the structured path (input ⊗
    sensitivity per layer, see the module docstring); any other network the generic
    ``torch.func`` path. Either way the sketch is unbiased: ``E[φ(x)ᵀφ(x')] = k(x, x')``.

    Args:
        net: a :class:`NetworkFunction`.
        n_features: F (default 512), or None for the exact gradients.
        seed: seed of the random projections (same seed, same features).
    """

    def __init__(self, net: NetworkFunction, n_features: int | None = 512, seed: int = 0):
        if n_features is None and net.num_parameters > MAX_EXACT_PARAMETERS:
            raise InvalidInput("n_features", f"a sketch size (e.g. 512) for a network with {net.num_parameters} "
                               f"parameters (exact gradient features are refused above {MAX_EXACT_PARAMETERS})",
                               "None")
        if net.structured():
            self.impl: FeatureMap = _LinearGradientFeatures(net, [n for n, _ in net.linear_layers()],
                                                            _sum_outputs, n_features, seed)
        else:
            self.impl = _GenericGradientFeatures(net, _sum_outputs, n_features, seed)
        self.n_features = self.impl.n_features

    def bytes_per_row(self, X: torch.Tensor) -> float:
        return self.impl.bytes_per_row(X)

    def chunk(self, X: torch.Tensor) -> torch.Tensor:
        return self.impl.chunk(X)


class ConcatFeatures(FeatureMap):
    """The sum of several kernels: their feature maps side by side (``add=False``), or, for
    sketches with independent projections of one width F, their features added (``add=True``:
    the same kernel in expectation, in F columns, as bmdal_reg sketches its ``ens`` sum)."""

    def __init__(self, maps: list[FeatureMap], add: bool = False):
        self.maps, self.add = maps, bool(add)
        if self.add and len({m.n_features for m in maps}) != 1:
            raise InvalidInput("maps", "feature maps of one width to add", str([m.n_features for m in maps]))
        self.n_features = maps[0].n_features if self.add else sum(m.n_features for m in maps)

    def bytes_per_row(self, X: torch.Tensor) -> float:
        return max(m.bytes_per_row(X) for m in self.maps) + 8.0 * self.n_features

    def chunk(self, X: torch.Tensor) -> torch.Tensor:
        if self.add:
            return sum(m.chunk(X) for m in self.maps)
        return torch.cat([m.chunk(X) for m in self.maps], -1)


def _check_sketch(n_features) -> int | None:
    if n_features is None:
        return None
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or int(n_features) < 1:
        raise InvalidInput("n_features", "a positive number of sketch features, or None", repr(n_features))
    return int(n_features)


def network_feature_map(net: NetworkFunction, kind: str, n_features: int | None = None, seed: int | None = None,
                        task: str = "regression", owner: str = "network") -> FeatureMap:
    """The feature map ``kind`` (:data:`NETWORK_KINDS`) of one network.

    ``"grad"`` with ``n_features=None`` is the exact gradient (small networks only); ``"ll"``
    and ``"badge"`` are exact unless ``n_features`` asks for a sketch. ``"badge"`` needs a
    classifier (``task="classification"``).
    """
    if kind not in NETWORK_KINDS:
        raise UnknownName("kernel", str(kind), list(NETWORK_KINDS))
    n_features = _check_sketch(n_features)
    seed = 0 if seed is None else int(seed)
    if kind == "ll":
        return LastLayerFeatures(net, n_features, seed)
    if kind == "grad":
        return GradientFeatures(net, n_features, seed)
    if task != "classification":
        raise Unsupported(f"{owner} (regression)", "class probabilities", "BADGE gradient embeddings")
    return BadgeFeatures(net, n_features, seed)


def ensemble_feature_map(nets: list[NetworkFunction], kind: str, n_features: int | None = None,
                         seed: int | None = None, task: str = "regression", owner: str = "ensemble") -> FeatureMap:
    """The sum of the members' kernels, bmdal_reg's ``ens`` (Holzmüller et al. 2023, §4.2): the
    members' exact features side by side ``[N, Σ F_i]``, or their sketches (independent seeds
    derived from ``seed``) added ``[N, F]``. Not divided by M, as in bmdal_reg: the ``scale``
    transform removes the factor where it matters."""
    seed = 0 if seed is None else int(seed)
    maps = [network_feature_map(net, kind, n_features, _sub_seed(seed, 7, i), task, owner) for i, net in enumerate(nets)]
    return ConcatFeatures(maps, add=n_features is not None)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` in evaluation mode (feature maps must not see later training)."""
    out = copy.deepcopy(module)
    out.eval()
    return out


class PreprocessedFeatures(FeatureMap):
    """A network's feature map applied after the surrogate's input preprocessing
    (``transform: [n, d] -> [n, d]``), so feature maps take inputs in the user's units."""

    def __init__(self, inner: FeatureMap, transform: Callable[[torch.Tensor], torch.Tensor]):
        self.inner, self.transform = inner, transform
        self.n_features = inner.n_features

    def bytes_per_row(self, X: torch.Tensor) -> float:
        return self.inner.bytes_per_row(X)

    def chunk(self, X: torch.Tensor) -> torch.Tensor:
        return self.inner.chunk(self.transform(X))
