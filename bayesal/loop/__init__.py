"""The loop: ask / tell learner, oracles and campaigns."""

from .campaign import run_campaign
from .learner import ActiveLearner
from .oracles import FunctionOracle, Oracle, PoolOracle, ProblemOracle, as_oracle

__all__ = ["ActiveLearner", "run_campaign", "Oracle", "FunctionOracle", "PoolOracle", "ProblemOracle", "as_oracle"]

from .multifidelity import MF_MODELS, MultiFidelityLearner  # noqa: E402  (multi-fidelity loop)

__all__ += ["MultiFidelityLearner", "MF_MODELS"]
