"""Acquisition functions, one file per family, and a registry by name."""

from __future__ import annotations

from ..errors import UnknownName
from .bald import BALD, BatchBALD, JointInformation, joint_entropy_exact, mutual_information
from .base import Acquisition
from .epig import EPIG, epig_classification, epig_gaussian
from .multifidelity import (
    MF_ACQUISITIONS, MultiFidelityAcquisition, MultiFidelityInformation, MultiFidelitySelection,
    MultiFidelityVarianceReduction,
)
from .stochastic import StochasticBatch, gumbel_top_k, sampling_log_weights
from .uncertainty import Entropy, LeastConfidence, Margin, MaxVariance, Random, VariationRatios
from .variance import EVGP, IntegratedVarianceReduction

__all__ = ["Acquisition", "Random", "MaxVariance", "BALD", "JointInformation", "IntegratedVarianceReduction", "EVGP",
           "BatchBALD", "EPIG", "Entropy", "Margin", "LeastConfidence", "VariationRatios", "StochasticBatch",
           "mutual_information", "joint_entropy_exact", "epig_classification", "epig_gaussian",
           "sampling_log_weights", "gumbel_top_k",
           "MultiFidelityAcquisition", "MultiFidelityVarianceReduction", "MultiFidelityInformation",
           "MultiFidelitySelection", "MF_ACQUISITIONS", "ACQUISITIONS", "make_acquisition"]

#: registry name -> class, for the CLI and ``ActiveLearner(acquisition="...")``
ACQUISITIONS: dict[str, type[Acquisition]] = {
    cls.name: cls for cls in (Random, MaxVariance, BALD, JointInformation, IntegratedVarianceReduction, EVGP,
                              BatchBALD, EPIG, Entropy, Margin, LeastConfidence, VariationRatios, StochasticBatch)
}


def make_acquisition(acquisition: str | Acquisition) -> Acquisition:
    """An acquisition instance from a registry name, or the instance itself."""
    if isinstance(acquisition, Acquisition):
        return acquisition
    if isinstance(acquisition, str) and acquisition in ACQUISITIONS:
        return ACQUISITIONS[acquisition]()
    raise UnknownName("strategy", str(acquisition), list(ACQUISITIONS))
