"""Cost-aware multi-fidelity acquisitions: what to simulate, and at which fidelity.

A candidate is a pair ``(x, s)``: an input and a fidelity level with cost ``c_s``. Both criteria
value what an evaluation teaches about the *target* (highest) fidelity ``f_T``, divide it by the
cost, and build batches greedily, so that a batch may mix fidelities:

* :class:`MultiFidelityVarianceReduction` — the reduction of the integrated posterior variance of
  ``f_T`` over reference points (the ALC / I-optimal criterion of Cohn 1996 and Seo et al. 2000,
  carried across fidelities through the joint covariance of a multi-fidelity GP, as in the
  cost-normalised IMSE reduction of Le Gratiet & Cannamela 2015, "Cokriging-based sequential
  design strategies using fast cross-validation techniques for multi-fidelity computer codes",
  Technometrics 57(3)):

      IVR(x, s) = Σ_r w_r Cov(f_T(r), f_s(x))² / (Var f_s(x) + σ²_s)  /  c_s.

* :class:`MultiFidelityInformation` — the mutual information between the noisy label
  ``y_s(x)`` and the target ``f_T(x)`` at the same input, per unit cost (the criterion of
  multi-fidelity BALD, Li, Kirby & Zhe 2020, "Deep multi-fidelity active learning of
  high-dimensional outputs", and of Song, Chen & Yue 2019, "A general framework for
  multi-fidelity Bayesian optimization with Gaussian processes", AISTATS):

      MI(x, s) = −½ log(1 − Cov(f_T(x), f_s(x))² / (Var f_T(x) (Var f_s(x) + σ²_s)))  /  c_s.

Both are :class:`~bayesal.acquisition.Acquisition` s on *augmented* candidates ``X_aug: [N, d + 1]``
(the fidelity level in the last column, :func:`bayesal.models.multifidelity.augment`): their
:meth:`greedy_scorer` plugs into THE greedy engine (:mod:`bayesal.selection.greedy`), which
conditions on each chosen ``(x_j, s_j)`` by the exact rank-1 Gaussian update with the noise of a
label at level ``s_j``, so the next candidate's value is its gain *given* the points already in
the batch; for a single fidelity and equal costs this is the greedy integrated-variance
reduction, resp. the chain rule of the joint information ``½ log det(I + Σ_B / σ²)``.
Cost-awareness is the :class:`~bayesal.acquisition.cost.CostAware` wrapper with a
:class:`~bayesal.acquisition.cost.FidelityCost`; candidates whose cost exceeds the remaining
budget are never chosen, so a budget in cost units is never overspent.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InvalidInput, Unsupported
from ..selection.base import Selection
from ..settings import get_memory_budget
from ..spaces import Box, Pool
from ..validation import check_X
from .base import Acquisition

__all__ = ["MultiFidelitySelection", "MultiFidelityAcquisition", "MultiFidelityVarianceReduction",
           "MultiFidelityInformation", "MF_ACQUISITIONS"]

_FLOOR = 1e-12


#: the batch type of multi-fidelity selection: THE :class:`~bayesal.selection.Selection`, whose
#: ``fidelity`` and ``cost`` are filled (kept under this name for existing code)
MultiFidelitySelection = Selection


class MultiFidelityAcquisition(Acquisition):
    """Base class of the multi-fidelity criteria: acquisitions over augmented candidates
    ``[N, d + 1]`` whose value is what a label at ``(x, s)`` teaches about the target fidelity.

    Args:
        cost_aware: value per unit cost when a cost model is known (:meth:`with_cost` wraps in
            :class:`~bayesal.acquisition.cost.CostAware`); False: the plain criterion.
    """

    name = "multi-fidelity"
    scores_from_marginals = False

    def __init__(self, cost_aware: bool = True):
        self.cost_aware = bool(cost_aware)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cost_aware={self.cost_aware})"

    def with_cost(self, cost_model) -> Acquisition:
        """Per unit cost under ``cost_model`` when built with ``cost_aware=True``, else itself."""
        return super().with_cost(cost_model) if self.cost_aware else self

    def score(self, posterior, generator=None):
        raise InvalidInput("acquisition", "a multi-fidelity selector (select / ActiveLearner with costs)",
                           f"{self.name} scored from marginals alone: it needs cross-covariances across fidelities")

    def batch_value(self, surrogate, X):
        raise Unsupported(type(self).__name__, "candidates (x, fidelity) drawn in the box", "box optimisation")

    def select(self, model, X: Any, costs: Any, q: int = 1, fidelities: Any = None, budget: float | None = None,
               space: Box | None = None):
        """Choose up to q (point, fidelity) pairs greedily from the candidate points ``X: [N, d]``
        (:func:`bayesal.selection.multifidelity.select_multifidelity`).

        Args:
            model: a fitted :class:`~bayesal.models.multifidelity.MultiFidelitySurrogate`.
            X: candidate inputs ``[N, d]``; each is offered at every level in ``fidelities``.
            costs: ``[S]`` cost of one evaluation at each level.
            q: batch size.
            fidelities: levels on offer (default: all).
            budget: cost left; candidates that do not fit are never chosen, and the batch stops
                early when nothing fits.
            space: the input box (reference points of the variance criterion are drawn in it).

        Returns:
            A :class:`~bayesal.selection.Selection` of at most q evaluations with ``fidelity``
            and ``cost`` (``scores``: gains per unit cost when cost-aware).
        """
        from ..selection.multifidelity import select_multifidelity
        from .cost import FidelityCost

        return select_multifidelity(model, self, X, FidelityCost(costs), q=q, fidelities=fidelities,
                                    budget=budget, space=space)


class MultiFidelityVarianceReduction(MultiFidelityAcquisition):
    """Integrated variance reduction about the target fidelity (see the module docstring),
    cost-aware by default.

    Args:
        reference: ``"uniform"`` (scrambled Sobol points in the box, default) or points ``[M, d]``.
        n_reference: number of uniform reference points.
        cost_aware: divide by the cost (False: the plain criterion).
        seed: seed of the reference sample.

    Memory: the reference × candidate cross-covariance ``[M, N·L]`` is kept (L levels on offer).
    """

    name = "mf-integrated-variance"

    def __init__(self, reference: Any = "uniform", n_reference: int = 512, cost_aware: bool = True, seed: int = 0):
        super().__init__(cost_aware)
        if isinstance(reference, str) and reference != "uniform":
            raise InvalidInput("reference", "'uniform' or points [M, d]", repr(reference))
        self.reference, self.n_reference, self.seed = reference, int(n_reference), int(seed)
        self._space: Box | None = None

    def reference_points(self, space: Box | Pool | None, x: torch.Tensor) -> torch.Tensor:
        """Reference points ``[M, d]`` about which the variance is integrated: the user's, or scrambled
        Sobol points in ``space``'s box (seeded; the candidates' bounding box without a space), on
        the device and dtype of ``x: [N, d]``."""
        if not isinstance(self.reference, str):
            return check_X(self.reference, "reference", dim=x.shape[-1]).to(x)
        if space is None:
            lo, hi = x.min(0).values, x.max(0).values
            space = Box(lo, torch.where(hi > lo, hi, lo + 1.0))
        return Box(space.bounds[0], space.bounds[1]).sample(self.n_reference, seed=self.seed).to(x)

    def for_space(self, space) -> "MultiFidelityVarianceReduction":
        bound = object.__new__(type(self))
        bound.__dict__.update(self.__dict__)
        bound._space = space
        return bound

    def greedy_scorer(self, surrogate, X: torch.Tensor, mean: torch.Tensor, noise: torch.Tensor):
        """Scorer over augmented candidates ``X: [N, d + 1]`` with per-candidate ``noise: [N, 1]``."""
        R = self.reference_points(self._space, X[:, :-1])
        if 8.0 * R.shape[0] * X.shape[0] > get_memory_budget():
            raise InvalidInput("n_reference", "fewer reference points or candidates (memory budget)",
                               f"{R.shape[0]} x {X.shape[0]} cross-covariances")
        return TargetVarianceScorer(surrogate, X, R, noise)


class MultiFidelityInformation(MultiFidelityAcquisition):
    """Mutual information between a label at ``(x, s)`` and the target ``f_T(x)`` (see the
    module docstring), cost-aware by default.

    Args:
        cost_aware: divide by the cost (False: the plain criterion).
    """

    name = "mf-information"

    def greedy_scorer(self, surrogate, X: torch.Tensor, mean: torch.Tensor, noise: torch.Tensor):
        """Scorer over augmented candidates ``X: [N, d + 1]`` with per-candidate ``noise: [N, 1]``."""
        return TargetInformationScorer(surrogate, X, noise)


class TargetVarianceScorer:
    """Greedy scores of :class:`MultiFidelityVarianceReduction`: keeps the target-fidelity
    reference × candidate cross-covariance ``C = Cov(f_T(R), f_s(x)) [M, N]`` and conditions it
    by the engine's rank-1 step, ``C ← C − (C[:, j] / √denom) v_newᵀ``."""

    def __init__(self, surrogate, X: torch.Tensor, R: torch.Tensor, noise: torch.Tensor):
        from ..models.multifidelity import augment

        self.noise = noise[:, 0]
        self.w = 1.0 / R.shape[0]
        with torch.no_grad():
            self.C = surrogate.covariance(augment(R, surrogate.target_fidelity), X)[0]  # [M, N]

    def scores(self, var: torch.Tensor) -> torch.Tensor:
        """``[N]`` reduction of the integrated target variance; ``var: [N, 1]``."""
        return self.C.pow(2).sum(0) * self.w / (var[:, 0] + self.noise)

    def update(self, j: int, v_new: torch.Tensor, denom: torch.Tensor) -> None:
        """Condition the cross-covariance on candidate j (``v_new: [N, 1]``, ``denom: [1]``)."""
        u = self.C[:, j] / denom[0].sqrt()
        self.C = self.C - u.unsqueeze(-1) * v_new[:, 0].unsqueeze(0)


class TargetInformationScorer:
    """Greedy scores of :class:`MultiFidelityInformation`: keeps ``Var f_T(x_i)`` and
    ``Cov(f_T(x_i), f_{s_i}(x_i))`` of every candidate i and their own update vectors at the
    target, conditioned by the engine's rank-1 step."""

    def __init__(self, surrogate, X: torch.Tensor, noise: torch.Tensor):
        from ..models.multifidelity import augment

        self.surrogate, self.X, self.noise = surrogate, X, noise[:, 0]
        self.T = augment(X[:, :-1], surrogate.target_fidelity)
        with torch.no_grad():
            self.varT = surrogate.posterior(self.T).variance[:, 0].clone()
            # Cov(f_T(x_i), f_{s_i}(x_i)): the diagonal of the cross-covariance, chunk by chunk
            self.cov = torch.cat([surrogate.covariance(self.T[s:s + 256], X[s:s + 256])[0].diagonal()
                                  for s in range(0, X.shape[0], 256)])
        self.V = X.new_zeros(X.shape[0], 0)  # the engine's update vectors (candidate side)
        self.VT = X.new_zeros(X.shape[0], 0)  # their counterparts at the targets

    def scores(self, var: torch.Tensor) -> torch.Tensor:
        """``[N]`` information about ``f_T(x)`` of a label at ``(x, s)``; ``var: [N, 1]``."""
        varT = self.varT.clamp_min(_FLOOR)
        rho2 = (self.cov.pow(2) / (varT * (var[:, 0] + self.noise))).clamp(0.0, 1.0 - 1e-15)
        return -0.5 * torch.log1p(-rho2)

    def update(self, j: int, v_new: torch.Tensor, denom: torch.Tensor) -> None:
        """Condition the target variances and covariances on candidate j."""
        with torch.no_grad():
            colT = self.surrogate.covariance(self.T, self.X[j:j + 1])[0, :, 0] - self.VT @ self.V[j]
        u = colT / denom[0].sqrt()
        v = v_new[:, 0]
        self.varT = (self.varT - u.pow(2)).clamp_min(0.0)
        self.cov = self.cov - u * v
        self.V = torch.cat([self.V, v.unsqueeze(-1)], -1)
        self.VT = torch.cat([self.VT, u.unsqueeze(-1)], -1)


#: name -> class of the multi-fidelity acquisitions.
MF_ACQUISITIONS = {cls.name: cls for cls in (MultiFidelityVarianceReduction, MultiFidelityInformation)}
