"""bayesal: Bayesian active learning and experimental design.

Surrogates expose posteriors; acquisitions score them; selectors turn scores into batches over
pools or boxes; the :class:`ActiveLearner` runs the ask / tell loop.
"""

from . import design, settings
from .acquisition import BALD, EVGP, Acquisition, IntegratedVarianceReduction, JointInformation, MaxVariance, Random
from .errors import BayesalError, InvalidInput, NotFitted, OracleFailed, StoreError, UnknownName
from .loop import ActiveLearner, Campaign, CampaignStore, run_campaign
from .models import BoTorchSurrogate, EmpiricalNTK, ExactGP, KernelGP, SparseGP, Surrogate
from .posteriors import GaussianPosterior, SamplePosterior
from .problems import DatasetProblem, make_problem
from .select import Selection, select, select_continuous, select_greedy, select_topk
from .spaces import Box, Pool

__version__ = "0.1.0"

__all__ = [
    "ActiveLearner", "run_campaign", "Campaign", "CampaignStore", "StoreError", "Box", "Pool", "ExactGP", "BoTorchSurrogate", "Surrogate",
    "GaussianPosterior", "SamplePosterior", "Acquisition", "Random", "MaxVariance", "BALD",
    "JointInformation", "IntegratedVarianceReduction", "EVGP", "KernelGP", "EmpiricalNTK", "SparseGP", "Selection", "select", "select_topk", "select_greedy", "select_continuous",
    "DatasetProblem", "make_problem", "BayesalError", "InvalidInput", "UnknownName", "NotFitted",
    "OracleFailed", "settings", "design", "__version__",
]
