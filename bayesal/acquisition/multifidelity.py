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

Greedy batches: after choosing ``(x_j, s_j)``, every covariance is updated by the exact rank-1
Gaussian conditioning on a label at ``(x_j, s_j)`` (its value is not needed), so the next
candidate's value is its gain *given* the points already in the batch; for a single fidelity and
equal costs this is the greedy integrated-variance reduction, resp. the chain rule of the joint
information ``½ log det(I + Σ_B / σ²)``. Candidates whose cost exceeds the remaining budget are
never chosen, so a budget in cost units is never overspent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import InvalidInput
from ..settings import get_memory_budget
from ..spaces import Box
from ..validation import as_tensor, check_count, check_X

__all__ = ["MultiFidelitySelection", "MultiFidelityAcquisition", "MultiFidelityVarianceReduction",
           "MultiFidelityInformation", "MF_ACQUISITIONS"]

_FLOOR = 1e-12


@dataclass
class MultiFidelitySelection:
    """A proposed multi-fidelity batch.

    Attributes:
        X: the points ``[q, d]``.
        fidelity: their levels ``[q]`` (long).
        scores: ``[q]`` each point's gain per unit cost given the points chosen before it.
        cost: ``[q]`` the cost of each evaluation.
    """

    X: torch.Tensor
    fidelity: torch.Tensor
    scores: torch.Tensor
    cost: torch.Tensor

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def total_cost(self) -> float:
        return float(self.cost.sum())


class MultiFidelityAcquisition:
    """Base class of the cost-aware greedy multi-fidelity criteria.

    Args:
        cost_aware: divide each gain by the candidate's cost (False: the plain criterion).
    """

    name = "multi-fidelity"

    def __init__(self, cost_aware: bool = True):
        self.cost_aware = bool(cost_aware)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cost_aware={self.cost_aware})"

    # subclasses: state set-up, gain, and rank-1 update ---------------------------------------------
    def _setup(self, model, C: torch.Tensor, x: torch.Tensor, space: Box | None) -> None:
        raise NotImplementedError

    def _gain(self, var: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _update(self, model, C: torch.Tensor, x: torch.Tensor, j: int, v: torch.Tensor, denom: torch.Tensor,
                V: torch.Tensor) -> None:
        """Condition the state on candidate j; ``v = Σ(C, c_j) / sqrt(denom)`` and V the earlier v's."""
        raise NotImplementedError

    def select(self, model, X: Any, costs: Any, q: int = 1, fidelities: Any = None, budget: float | None = None,
               space: Box | None = None) -> MultiFidelitySelection:
        """Choose up to q (point, fidelity) pairs greedily from the candidate points ``X: [N, d]``.

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
            A :class:`MultiFidelitySelection` of at most q evaluations.
        """
        from ..models.multifidelity import MultiFidelitySurrogate, augment

        if not isinstance(model, MultiFidelitySurrogate):
            raise InvalidInput("model", "a fitted MultiFidelitySurrogate (CoKriging, BoTorchMultiFidelityGP)",
                               type(model).__name__)
        q = check_count(q, "q")
        S = model.num_fidelities
        x = check_X(X, "X")
        costs = as_tensor(costs, "costs").reshape(-1).to(x)
        if costs.numel() != S or not bool((costs > 0).all()):
            raise InvalidInput("costs", f"{S} positive costs", f"{costs.tolist()}")
        levels = torch.arange(S) if fidelities is None else torch.as_tensor(fidelities).reshape(-1).long().cpu()
        if levels.numel() == 0 or bool(((levels < 0) | (levels >= S)).any()):
            raise InvalidInput("fidelities", f"levels in 0..{S - 1}", f"{levels.tolist()}")
        N = x.shape[0]
        lev = levels.to(x.device).repeat_interleave(N)  # [Nc] candidate levels, grouped by level
        xc = x.repeat(levels.numel(), 1)  # [Nc, d]
        C = augment(xc, lev)
        c = costs[lev]
        remaining = math.inf if budget is None else float(budget)
        noise = model.observation_noise(lev).to(x).clamp_min(_FLOOR)
        post = model.posterior(C)
        var = post.variance[:, 0].clone()
        self._setup(model, C, xc, space)
        V = x.new_zeros(C.shape[0], 0)
        chosen: list[int] = []
        scores: list[float] = []
        allowed = torch.ones(C.shape[0], dtype=torch.bool, device=x.device)
        for _ in range(q):
            allowed &= c <= remaining + 1e-12
            if not bool(allowed.any()):
                break
            gain = self._gain(var, noise)
            if self.cost_aware:
                gain = gain / c
            gain = torch.where(allowed, gain, torch.full_like(gain, -math.inf))
            j = int(torch.argmax(gain))
            chosen.append(j)
            scores.append(float(gain[j]))
            remaining -= float(c[j])
            allowed[j] = False
            if len(chosen) == q:
                break
            with torch.no_grad():
                col = model.covariance(C, C[j:j + 1])[0, :, 0] - V @ V[j]
            denom = (var[j] + noise[j]).clamp_min(_FLOOR)
            v = col / denom.sqrt()
            self._update(model, C, xc, j, v, denom, V)
            V = torch.cat([V, v.unsqueeze(-1)], -1)
            var = (var - v.pow(2)).clamp_min(0.0)
        idx = torch.tensor(chosen, dtype=torch.long, device=x.device)
        return MultiFidelitySelection(xc[idx], lev[idx], torch.tensor(scores, dtype=x.dtype), c[idx])


class MultiFidelityVarianceReduction(MultiFidelityAcquisition):
    """Cost-aware integrated variance reduction about the target fidelity (see the module
    docstring).

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

    def reference_points(self, space: Box | None, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(self.reference, str):
            return check_X(self.reference, "reference", dim=x.shape[-1]).to(x)
        if space is None:
            lo, hi = x.min(0).values, x.max(0).values
            space = Box(lo, torch.where(hi > lo, hi, lo + 1.0))
        return space.sample(self.n_reference, seed=self.seed).to(x)

    def _setup(self, model, C, x, space):
        from ..models.multifidelity import augment

        R = self.reference_points(space, x)
        if 8.0 * R.shape[0] * C.shape[0] > get_memory_budget():
            raise InvalidInput("n_reference", "fewer reference points or candidates (memory budget)",
                               f"{R.shape[0]} x {C.shape[0]} cross-covariances")
        self._w = 1.0 / R.shape[0]
        with torch.no_grad():
            self._CRC = model.covariance(augment(R, model.target_fidelity), C)[0]  # [M, Nc]

    def _gain(self, var, noise):
        return self._CRC.pow(2).sum(0) * self._w / (var + noise)

    def _update(self, model, C, x, j, v, denom, V):
        u = self._CRC[:, j] / denom.sqrt()
        self._CRC = self._CRC - u.unsqueeze(-1) * v.unsqueeze(0)


class MultiFidelityInformation(MultiFidelityAcquisition):
    """Cost-aware mutual information between a label at ``(x, s)`` and the target ``f_T(x)``
    (see the module docstring).

    Args:
        cost_aware: divide by the cost (False: the plain criterion).
    """

    name = "mf-information"

    def _setup(self, model, C, x, space):
        from ..models.multifidelity import augment

        self._T = augment(x, model.target_fidelity)
        with torch.no_grad():
            self._varT = model.posterior(self._T).variance[:, 0].clone()
            # Cov(f_T(x_i), f_{s_i}(x_i)): the diagonal of the cross-covariance, chunk by chunk
            self._cov = torch.cat([model.covariance(self._T[s:s + 256], C[s:s + 256])[0].diagonal()
                                   for s in range(0, C.shape[0], 256)])
        self._VT = x.new_zeros(C.shape[0], 0)

    def _gain(self, var, noise):
        varT = self._varT.clamp_min(_FLOOR)
        rho2 = (self._cov.pow(2) / (varT * (var + noise))).clamp(0.0, 1.0 - 1e-15)
        return -0.5 * torch.log1p(-rho2)

    def _update(self, model, C, x, j, v, denom, V):
        with torch.no_grad():
            colT = model.covariance(self._T, C[j:j + 1])[0, :, 0] - self._VT @ V[j]
        u = colT / denom.sqrt()
        self._varT = (self._varT - u.pow(2)).clamp_min(0.0)
        self._cov = self._cov - u * v
        self._VT = torch.cat([self._VT, u.unsqueeze(-1)], -1)


#: name -> class of the multi-fidelity acquisitions.
MF_ACQUISITIONS = {cls.name: cls for cls in (MultiFidelityVarianceReduction, MultiFidelityInformation)}
