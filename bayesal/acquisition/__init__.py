"""Acquisition functions, one file per family, and a registry by name."""

from __future__ import annotations

import warnings

from ..errors import UnknownName
from .bald import BALD, BatchBALD, JointInformation, joint_entropy_exact, mutual_information
from .auto import AUTO, resolve_auto
from .base import Acquisition
from .cost import CallableCost, ConstantCost, CostAware, CostModel, FidelityCost, as_cost_model
from .epig import EPIG, epig_classification, epig_gaussian
from .hyper import BQBC, QBMGP, HellingerDistance, HyperAcquisition, HyperBALD
from .multifidelity import (
    MF_ACQUISITIONS, MultiFidelityAcquisition, MultiFidelityInformation, MultiFidelitySelection,
    MultiFidelityVarianceReduction,
)
from .uncertainty import Entropy, LeastConfidence, Margin, MaxVariance, Random, VariationRatios
from .variance import EVGP, IntegratedVarianceReduction

__all__ = ["Acquisition", "Random", "MaxVariance", "BALD", "JointInformation", "IntegratedVarianceReduction", "EVGP",
           "BatchBALD", "EPIG", "HyperAcquisition", "HyperBALD", "BQBC", "QBMGP", "HellingerDistance", "Entropy", "Margin", "LeastConfidence", "VariationRatios",
           "mutual_information", "joint_entropy_exact", "epig_classification", "epig_gaussian",
           "MultiFidelityAcquisition", "MultiFidelityVarianceReduction", "MultiFidelityInformation",
           "MultiFidelitySelection", "MF_ACQUISITIONS", "CostAware", "CostModel", "FidelityCost",
           "ConstantCost", "CallableCost", "as_cost_model", "AUTO", "resolve_auto", "ACQUISITIONS", "DEPRECATED_NAMES", "make_acquisition"]

#: registry name -> class, for the CLI and ``ActiveLearner(acquisition="...")``
ACQUISITIONS: dict[str, type[Acquisition]] = {
    cls.name: cls for cls in (Random, MaxVariance, BALD, JointInformation, IntegratedVarianceReduction, EVGP,
                              BatchBALD, EPIG, Entropy, Margin, LeastConfidence, VariationRatios,
                              HyperBALD, BQBC, QBMGP, HellingerDistance)
}

#: deprecated strategy names, with what replaces them
DEPRECATED_NAMES = {"stochastic": "--strategy bald --selector stochastic (StochasticBatch is a selector)"}


def make_acquisition(acquisition, surrogate=None):
    """An acquisition instance from a registry name, or the instance itself; ``"auto"`` (and
    None) is the default strategy for ``surrogate`` (:func:`~bayesal.acquisition.auto.resolve_auto`).

    The deprecated name ``"stochastic"`` gives ``StochasticBatch(BALD())`` (power sampling of
    BALD scores), which the learner and ``select`` split into BALD and the stochastic selector.
    """
    if isinstance(acquisition, Acquisition):
        return acquisition
    if acquisition is None or acquisition == AUTO:
        return resolve_auto(surrogate)
    if isinstance(acquisition, str) and acquisition in ACQUISITIONS:
        return ACQUISITIONS[acquisition]()
    from ..selection.kernel_batch import KERNEL_METHODS, KernelBatch  # strategies that select their batch
    from ..selection.stochastic import StochasticBatch  # the one deprecated alias that is a selector

    if isinstance(acquisition, str) and acquisition in KERNEL_METHODS:
        return KernelBatch(acquisition)

    if isinstance(acquisition, StochasticBatch):
        return acquisition
    if acquisition == "stochastic":
        warnings.warn(f"strategy 'stochastic' is deprecated: use {DEPRECATED_NAMES['stochastic']}",
                      DeprecationWarning, stacklevel=2)
        return StochasticBatch(BALD())
    raise UnknownName("strategy", str(acquisition), [AUTO] + list(ACQUISITIONS) + list(KERNEL_METHODS))
