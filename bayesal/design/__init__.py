"""Bayesian experimental design for parametric models.

A :class:`DesignModel` is a prior over named parameters θ and a likelihood p(y | θ, d) batched
over designs; the estimators of :mod:`bayesal.design.eig` give its expected information gain
with a standard error; :mod:`bayesal.design.optimize` picks designs from a finite set or a box,
one at a time or as a batch; :class:`SequentialDesign` runs the adaptive loop with posterior
updates and ArviZ diagnostics.

>>> from bayesal.design import ab_test_model, laplace_eig, select_design
>>> model = ab_test_model()                                   # Foster et al. (2019) A/B test
>>> eig = laplace_eig(model, torch.arange(101.)[:, None])    # EIGEstimate(value [101], stderr [101])
>>> select_design(model, torch.arange(101.)[:, None], estimator="laplace").designs
"""

from .eig import (
    ESTIMATORS,
    EIGEstimate,
    GaussianMarginalGuide,
    GaussianPosteriorGuide,
    estimate_eig,
    laplace_eig,
    marginal_eig,
    nmc_eig,
    pce_eig,
    posterior_eig,
)
from .model import (
    DeathProcessCounts,
    DeathProcessModel,
    DesignModel,
    LinearGaussianModel,
    PharmacokineticModel,
    PsychometricModel,
    ab_test_model,
    batch_model,
    gaussian_posterior_model,
    seeded,
)
from .optimize import OBJECTIVES, DesignChoice, optimize_design, select_design
from .sequential import INFERENCE, SequentialDesign, importance_posterior, nuts_posterior

__all__ = [
    "DesignModel", "LinearGaussianModel", "ab_test_model", "PsychometricModel", "PharmacokineticModel",
    "DeathProcessModel", "DeathProcessCounts", "gaussian_posterior_model", "batch_model", "seeded",
    "EIGEstimate", "nmc_eig", "pce_eig", "posterior_eig", "marginal_eig", "laplace_eig", "estimate_eig",
    "ESTIMATORS", "GaussianPosteriorGuide", "GaussianMarginalGuide",
    "DesignChoice", "select_design", "optimize_design", "OBJECTIVES",
    "SequentialDesign", "importance_posterior", "nuts_posterior", "INFERENCE",
]
