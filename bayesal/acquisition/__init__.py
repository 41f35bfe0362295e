"""Acquisition functions, one file per family, and a registry by name."""

from __future__ import annotations

from ..errors import UnknownName
from .bald import BALD, JointInformation
from .base import Acquisition
from .uncertainty import MaxVariance, Random
from .multifidelity import (
    MF_ACQUISITIONS, MultiFidelityAcquisition, MultiFidelityInformation, MultiFidelitySelection,
    MultiFidelityVarianceReduction,
)
from .variance import EVGP, IntegratedVarianceReduction

__all__ = ["Acquisition", "Random", "MaxVariance", "BALD", "JointInformation", "IntegratedVarianceReduction", "EVGP",
           "MultiFidelityAcquisition", "MultiFidelityVarianceReduction", "MultiFidelityInformation",
           "MultiFidelitySelection", "MF_ACQUISITIONS", "ACQUISITIONS", "make_acquisition"]

#: registry name -> class, for the CLI and ``ActiveLearner(acquisition="...")``
ACQUISITIONS: dict[str, type[Acquisition]] = {
    cls.name: cls for cls in (Random, MaxVariance, BALD, JointInformation, IntegratedVarianceReduction, EVGP)
}


def make_acquisition(acquisition: str | Acquisition) -> Acquisition:
    """An acquisition instance from a registry name, or the instance itself."""
    if isinstance(acquisition, Acquisition):
        return acquisition
    if isinstance(acquisition, str) and acquisition in ACQUISITIONS:
        return ACQUISITIONS[acquisition]()
    raise UnknownName("strategy", str(acquisition), list(ACQUISITIONS))
