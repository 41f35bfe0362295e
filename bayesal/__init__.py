"""bayesal: Bayesian active learning and experimental design.

Surrogates expose posteriors; acquisitions score them; selectors turn scores into batches over
pools or boxes; the :class:`ActiveLearner` runs the ask / tell loop.
"""

from . import design, settings
from .acquisition import (
    BALD, EPIG, EVGP, Acquisition, BatchBALD, Entropy, IntegratedVarianceReduction, JointInformation, LeastConfidence,
    Margin, MaxVariance, Random, VariationRatios, HyperBALD, BQBC, QBMGP, HellingerDistance,
)
from .errors import BayesalError, InvalidInput, NotFitted, OracleFailed, StoreError, UnknownName, Unsupported
from .loop import ActiveLearner, Campaign, CampaignStore, run_campaign
from .models import (
    BoTorchSurrogate, DeepEnsemble, DeepKernelGP, EmpiricalNTK, ExactGP, FullyBayesianGP, KernelGP, MCDropoutNet,
    MLPRegressor, SparseGP,
    Surrogate,
)
from .posteriors import GaussianPosterior, MixturePosterior, SamplePosterior
from .problems import DatasetProblem, make_problem
from . import selection
from .selection import (
    KernelBatch, Selection, StochasticBatch, select, select_continuous, select_greedy, select_stochastic, select_topk,
)
from .spaces import Box, Pool

from .acquisition.multifidelity import MultiFidelityInformation, MultiFidelityVarianceReduction
from .loop.multifidelity import MultiFidelityLearner
from .models.multifidelity import BoTorchMultiFidelityGP, CoKriging
from .problems.multifidelity import MultiFidelityProblem, make_multifidelity_problem

__version__ = "0.1.0"

__all__ = [
    "ActiveLearner", "run_campaign", "Campaign", "CampaignStore", "StoreError", "Box", "Pool", "ExactGP", "BoTorchSurrogate", "Surrogate",
    "GaussianPosterior", "SamplePosterior", "Acquisition", "Random", "MaxVariance", "BALD",
    "JointInformation", "IntegratedVarianceReduction", "EVGP", "KernelGP", "EmpiricalNTK", "SparseGP", "Selection", "select", "select_topk", "select_greedy", "select_continuous",
    "DatasetProblem", "make_problem", "BayesalError", "InvalidInput", "UnknownName", "NotFitted",
    "OracleFailed", "Unsupported", "settings", "design", "selection", "__version__",
    "MultiFidelityLearner", "CoKriging", "BoTorchMultiFidelityGP", "MultiFidelityVarianceReduction",
    "MultiFidelityInformation", "MultiFidelityProblem", "make_multifidelity_problem",
    "MCDropoutNet", "DeepEnsemble", "MLPRegressor", "DeepKernelGP", "BatchBALD", "EPIG", "Entropy", "Margin",
    "LeastConfidence", "VariationRatios", "StochasticBatch", "select_stochastic", "KernelBatch", "FullyBayesianGP", "MixturePosterior",
    "HyperBALD", "BQBC", "QBMGP", "HellingerDistance",
]
