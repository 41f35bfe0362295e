"""Box optimisation: BoTorch's ``optimize_acqf`` (multi-start L-BFGS-B) on any surrogate.

Gaussian surrogates give the acquisition their differentiable joint posterior; sample
surrogates (MC dropout, ensembles) give differentiable draws under *fixed* base samples (the
same dropout masks or members at every X), so the acquisition is a deterministic, smooth
function of X that the optimiser can climb.
"""

from __future__ import annotations

import warnings

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.exceptions.warnings import OptimizationWarning
from botorch.optim import optimize_acqf
from botorch.utils.transforms import t_batch_mode_transform

from ..spaces import MAX_POINTS, Box
from ..validation import check_count, check_in_box, check_seed, check_X
from .base import Selection, check_arguments, prepare

__all__ = ["select_continuous", "as_botorch_acquisition"]


class _BoTorchAcquisition(AcquisitionFunction):
    """A bayesal acquisition seen as a BoTorch ``AcquisitionFunction`` on a surrogate, so that
    BoTorch's ``optimize_acqf`` can maximise it over a box."""

    def __init__(self, surrogate, acquisition):
        super().__init__(model=surrogate)
        self.surrogate = surrogate
        self.acquisition = acquisition

    @t_batch_mode_transform()
    def forward(self, X: torch.Tensor) -> torch.Tensor:  # X: [b, q, d] -> [b]
        return self.acquisition.batch_value(self.surrogate, X)


def as_botorch_acquisition(surrogate, acquisition) -> AcquisitionFunction:
    """``acquisition`` (prepared for the space and bound to ``surrogate``) as a BoTorch
    ``AcquisitionFunction`` of ``X: [b, q, d] -> [b]``."""
    return _BoTorchAcquisition(surrogate, acquisition)


def select_continuous(surrogate, acquisition, box, q: int, seed: int | None = None, num_restarts: int = 8,
                      raw_samples: int = 256, X_pending: torch.Tensor | None = None) -> Selection:
    """Maximise the acquisition over a box with BoTorch's ``optimize_acqf``.

    Joint criteria (``acquisition.joint``) optimise all q points together; single-point criteria
    choose them one at a time, conditioning the surrogate on the points already chosen (and on
    ``X_pending`` when given) with its ``condition_on``. Random draws uniform points. Every
    returned point is in the box. A surrogate without a differentiable posterior for this
    acquisition raises :class:`~bayesal.errors.Unsupported` naming the combination.
    """
    check_arguments(surrogate, acquisition, box, Box, "a bayesal Box (a Pool goes to select_topk or select_greedy)")
    q = check_count(q, "q", maximum=MAX_POINTS, maximum_reason="points optimised at once")
    seed = check_seed(seed)
    acquisition = acquisition.for_space(box)
    if not acquisition.needs_posterior:
        X = box.sample(q, seed=seed, method="uniform")
        return Selection(X, None, torch.full((q,), float("nan"), dtype=torch.float64))
    if X_pending is not None:
        X_pending = check_X(X_pending, "X_pending", dim=box.dim, allow_empty=True)
        if X_pending.shape[0] == 0:
            X_pending = None
    like = surrogate.parameter_like()
    bounds = box.bounds.to(device=like.device, dtype=torch.float64)
    options = {"batch_limit": 64, "maxiter": 200}
    with torch.random.fork_rng(), warnings.catch_warnings():
        torch.manual_seed(0 if seed is None else int(seed))
        warnings.simplefilter("ignore", category=OptimizationWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)
        if acquisition.joint or q == 1:
            model = surrogate if X_pending is None else surrogate.condition_on(X_pending)
            acqf = as_botorch_acquisition(model, prepare(acquisition, box, model))
            X, value = optimize_acqf(acqf, bounds=bounds, q=q, num_restarts=num_restarts, raw_samples=raw_samples,
                                     options=options)
            scores = value.detach().reshape(-1).expand(q).clone().to(torch.float64)
        else:
            points, values = [], []
            pending = X_pending
            for _ in range(q):
                model = surrogate if pending is None else surrogate.condition_on(pending)
                acqf = as_botorch_acquisition(model, prepare(acquisition, box, model))
                x, v = optimize_acqf(acqf, bounds=bounds, q=1, num_restarts=num_restarts, raw_samples=raw_samples,
                                     options=options)
                points.append(x.detach())
                values.append(float(v))
                pending = x.detach() if pending is None else torch.cat([pending.to(x), x.detach()])
            X, scores = torch.cat(points), torch.tensor(values, dtype=torch.float64)
    X = torch.max(torch.min(X.detach(), bounds[1]), bounds[0])
    check_in_box(X, bounds, "selected points")
    return Selection(X.to(dtype=box.bounds.dtype), None, scores)
