"""The loop: ask / tell learner, oracles, campaigns, the campaign store and executors."""

from .campaign import Campaign, campaign_status, run_campaign
from ..selection import distributed_select
from .executors import DaskExecutor, Executor, InProcessExecutor, ProcessExecutor, make_executor
from .learner import ActiveLearner
from .oracles import FunctionOracle, Oracle, PoolOracle, ProblemOracle, as_oracle
from .store import CampaignStore, Experiment

__all__ = ["ActiveLearner", "run_campaign", "Campaign", "campaign_status", "CampaignStore", "Experiment",
           "Executor", "InProcessExecutor", "ProcessExecutor", "DaskExecutor", "make_executor", "distributed_select",
           "Oracle", "FunctionOracle", "PoolOracle", "ProblemOracle", "as_oracle"]

from .multifidelity import MF_MODELS, MultiFidelityLearner  # noqa: E402  (multi-fidelity loop)

__all__ += ["MultiFidelityLearner", "MF_MODELS"]
