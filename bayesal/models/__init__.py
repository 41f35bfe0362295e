"""Surrogate models and a registry by name."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UnknownName
from .base import ConditionedSurrogate, Surrogate
from .bayesian import FullyBayesianGP, HyperparameterDraws
from .botorch_model import BoTorchSurrogate
from .dkl import DeepKernelGP
from .gp import KERNELS, ExactGP
from .kernel_gp import EmpiricalNTK, KernelGP
from .multifidelity import BoTorchMultiFidelityGP, CoKriging, MultiFidelitySurrogate, TargetFidelity
from .nets import ConditionedSampleSurrogate, ConsistentDropout, DeepEnsemble, MCDropoutNet, MLPRegressor, SampleSurrogate
from .sparse import SparseGP

__all__ = ["Surrogate", "ConditionedSurrogate", "BoTorchSurrogate", "ExactGP", "FullyBayesianGP", "HyperparameterDraws", "KernelGP", "EmpiricalNTK", "SparseGP",
           "MCDropoutNet", "DeepEnsemble", "MLPRegressor", "DeepKernelGP", "SampleSurrogate", "ConditionedSampleSurrogate",
           "ConsistentDropout", "MultiFidelitySurrogate", "CoKriging", "BoTorchMultiFidelityGP", "TargetFidelity",
           "MODELS", "MF_MODELS", "make_model"]

#: registry name -> factory(seed) for the CLI and ``ActiveLearner(surrogate="...")``
MODELS: dict[str, Callable[..., Surrogate]] = {
    "exact-gp": lambda seed=0: ExactGP(seed=seed),
    "warped-gp": lambda seed=0: ExactGP(input_warping=True, seed=seed),
    "sparse-gp": lambda seed=0: SparseGP(seed=seed),
    "deep-kernel-gp": lambda seed=0: DeepKernelGP(seed=seed),
    "deep-kernel-gp-variational": lambda seed=0: DeepKernelGP(variational=True, seed=seed),
    "mc-dropout-regression": lambda seed=0: MCDropoutNet(task="regression", seed=seed),
    "deep-ensemble-regression": lambda seed=0: DeepEnsemble(task="regression", seed=seed),
    "mlp": lambda seed=0: MLPRegressor(seed=seed),
    "fully-bayesian-gp": lambda seed=0: FullyBayesianGP(seed=seed),
    "saas-gp": lambda seed=0: FullyBayesianGP(prior="saas", seed=seed),
    **{f"exact-gp-{k}": (lambda k: lambda seed=0: ExactGP(kernel=k, seed=seed))(k) for k in KERNELS},
}

#: registry name -> factory(num_fidelities, seed) of the multi-fidelity surrogates, for
#: ``ActiveLearner(surrogate="co-kriging", costs=[...])``
MF_MODELS: dict[str, Callable[..., MultiFidelitySurrogate]] = {
    "co-kriging": lambda num_fidelities, seed=0: CoKriging(num_fidelities, seed=seed),
    "botorch-mf-gp": lambda num_fidelities, seed=0: BoTorchMultiFidelityGP(num_fidelities, seed=seed),
}


def make_model(model: str | Surrogate, seed: int = 0, num_fidelities: int | None = None) -> Surrogate:
    """A surrogate from a registry name, or the instance itself; multi-fidelity names
    (:data:`MF_MODELS`) need ``num_fidelities``."""
    if isinstance(model, Surrogate):
        return model
    if isinstance(model, str) and model in MODELS:
        return MODELS[model](seed=seed)
    if isinstance(model, str) and model in MF_MODELS and num_fidelities is not None:
        return MF_MODELS[model](int(num_fidelities), seed=seed)
    raise UnknownName("model", str(model), list(MODELS) + list(MF_MODELS))
