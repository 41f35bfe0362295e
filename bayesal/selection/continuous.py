"""Box optimisation: BoTorch's ``optimize_acqf`` (multi-start L-BFGS-B) on any surrogate.

Gaussian surrogates give the acquisition their differentiable joint posterior; sample
surrogates (MC dropout, ensembles) give differentiable draws under *fixed* base samples (the
same dropout masks or members at every X), so the acquisition is a deterministic, smooth
function of X that the optimiser can climb.

A returned batch never holds the same point twice, and on a noise-free model never a point
already labelled (or pending): see :func:`select_continuous` for the rule and
:func:`duplicates_of` for the tolerance.
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

__all__ = ["select_continuous", "as_botorch_acquisition", "duplicates_of", "negligible_noise", "DUPLICATE_TOL",
           "NEGLIGIBLE_NOISE"]

#: two box points are the same point when they agree to within this fraction of the box's width
#: in every dimension. L-BFGS-B restarts that converge to one optimum agree to ~1e-8 of the width
#: (float64), and float32 coordinates of a box at the origin resolve ~6e-8 of its width, so 1e-6
#: is above both resolutions (points called distinct stay distinct when returned in the box's
#: dtype) yet far below any spacing a criterion would choose on purpose.
DUPLICATE_TOL = 1e-6

#: a model's noise is negligible when its variance is below this fraction of the signal variance
#: (every output). BoTorch's default noise prior (LogNormal(-4, 1) on standardised labels, floor
#: 1e-4) fits noise of ~1e-4 to ~9e-3 of the label variance to *noise-free* data (measured on
#: 1-D Forrester and sin data, 4 to 20 labels; the upper end with 4 to 10 labels), so the fitted
#: variance never reaches its floor and "at the floor" would never fire; 2.5e-2 (noise std under
#: 16 % of the signal's) keeps a margin above those fits and below genuinely noisy problems.
NEGLIGIBLE_NOISE = 2.5e-2


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


class _OneSlot(AcquisitionFunction):
    """A joint batch acquisition as a function of one slot ``X: [b, 1, d]``, the other q − 1
    points ``others: [q-1, d]`` held fixed (the joint criteria are symmetric in the points, so
    the slot's position in the batch does not matter)."""

    def __init__(self, acqf: AcquisitionFunction, others: torch.Tensor):
        super().__init__(model=acqf.model)
        self.acqf = acqf
        self.others = others

    @t_batch_mode_transform()
    def forward(self, X: torch.Tensor) -> torch.Tensor:  # X: [b, 1, d] -> [b]
        return self.acqf(torch.cat([self.others.to(X).expand(X.shape[0], -1, -1), X], dim=-2))


def as_botorch_acquisition(surrogate, acquisition) -> AcquisitionFunction:
    """``acquisition`` (prepared for the space and bound to ``surrogate``) as a BoTorch
    ``AcquisitionFunction`` of ``X: [b, q, d] -> [b]``."""
    return _BoTorchAcquisition(surrogate, acquisition)


def duplicates_of(X: torch.Tensor, Y: torch.Tensor, bounds: torch.Tensor, tol: float = DUPLICATE_TOL) -> torch.Tensor:
    """``[n, k]`` whether row i of ``X: [n, d]`` and row j of ``Y: [k, d]`` are the same point:
    ``|X_i − Y_j| ≤ tol · (upper − lower)`` in every dimension of the box ``bounds: [2, d]``
    (relative, so the test means the same on every scale and per dimension)."""
    width = (bounds[1] - bounds[0]).to(X)
    return ((X.unsqueeze(-2) - Y.to(X).unsqueeze(-3)).abs() <= tol * width).all(-1)


def negligible_noise(surrogate, X_observed: torch.Tensor | None = None) -> bool:
    """Whether the surrogate's observation noise is negligible, so that labelling a point again
    teaches (almost) nothing: no noise variance (a noise-free model by the contract of
    ``Surrogate.noise_variance``), or a variance under :data:`NEGLIGIBLE_NOISE` times the signal
    variance on every output. The signal variance is estimated at the labelled points
    ``X_observed: [n, d]`` as the spread of the posterior mean plus the mean posterior variance
    there (the label variance the model explains, by the law of total variance), which needs only
    ``posterior`` and so works for every surrogate. Without labelled points there is nothing to
    compare with and the answer is False. Judge a model before conditioning it on pending points:
    the collapsed variance at them shrinks the estimated signal, so the same noise looks larger
    (the learner and ``select_continuous(..., X_pending=...)`` do)."""
    noise = surrogate.noise_variance
    if noise is None:
        return True
    if X_observed is None or X_observed.shape[0] == 0:
        return False
    with torch.no_grad():
        post = surrogate.posterior(X_observed)
        m = post.mean.shape[-1]
        mean, var = post.mean.reshape(-1, m), post.variance.reshape(-1, m)
        signal = mean.var(0, unbiased=False) + var.mean(0)
    noise = noise.detach().to(signal).reshape(-1).expand(m)
    return bool((noise <= NEGLIGIBLE_NOISE * signal).all())


def _rechoose(slot_acqf, forbidden: torch.Tensor, bounds: torch.Tensor, box, seed: int, num_restarts: int,
              raw_samples: int, options: dict) -> tuple[torch.Tensor, float]:
    """The best point ``[1, d]`` for one slot that duplicates no row of ``forbidden: [k, d]``, and
    its value: the best distinct end point of a multi-start L-BFGS-B run, or, when every restart
    converged onto a forbidden point, the best distinct point of a Sobol design (so a distinct
    point always exists: Sobol points are distinct and each forbidden point excludes a box of
    relative side 2·tol around it)."""
    X, v = optimize_acqf(slot_acqf, bounds=bounds, q=1, num_restarts=num_restarts, raw_samples=raw_samples,
                         options=options, return_best_only=False)
    X = torch.max(torch.min(X.detach().reshape(-1, bounds.shape[-1]), bounds[1]), bounds[0])
    v = v.detach().reshape(-1)
    ok = ~duplicates_of(X, forbidden, bounds).any(-1)
    if not bool(ok.any()):
        X = box.sample(max(raw_samples, 2 * (forbidden.shape[0] + 1)), seed=seed).to(bounds)
        with torch.no_grad():
            v = slot_acqf(X.unsqueeze(-2)).detach().reshape(-1)
        ok = ~duplicates_of(X, forbidden, bounds).any(-1)
    v = torch.where(ok, v, torch.full_like(v, -float("inf")))
    best = int(v.argmax())
    return X[best:best + 1], float(v[best])


def select_continuous(surrogate, acquisition, box, q: int, seed: int | None = None, num_restarts: int = 8,
                      raw_samples: int = 256, X_pending: torch.Tensor | None = None,
                      X_observed: torch.Tensor | None = None) -> Selection:
    """Maximise the acquisition over a box with BoTorch's ``optimize_acqf``.

    Joint criteria (``acquisition.joint``) optimise all q points together; single-point criteria
    choose them one at a time, conditioning the surrogate on the points already chosen (and on
    ``X_pending`` when given) with its ``condition_on``. Random draws uniform points. Every
    returned point is in the box. A surrogate without a differentiable posterior for this
    acquisition raises :class:`~bayesal.errors.Unsupported` naming the combination.

    No duplicates. Two points are the same when they agree to within :data:`DUPLICATE_TOL` of the
    box's width in every dimension (:func:`duplicates_of`). After optimisation, a point that
    duplicates another point of the batch, or, on a model whose noise is negligible
    (:func:`negligible_noise`), a labelled point of ``X_observed`` or a point of ``X_pending``, is
    chosen again with the other q − 1 points fixed: the joint criterion as a function of that
    slot, or the single-point criterion on the surrogate conditioned on the others and on
    ``X_pending``, maximised by multi-start L-BFGS-B over the points that duplicate nothing
    (falling back to the best such point of a Sobol design). Why: with a fitted noise a few
    thousandths of the signal, the posterior variance just inside the box next to a labelled
    corner is *lower* than at the corner, so the corner is a local maximum of the criterion on
    the box edge where projected L-BFGS-B restarts stop, and a noise-free label there is repeated
    (issue 17: x = 0 and x = 1 proposed twice each on a noise-free 1-D box). Re-choosing one slot
    with the others fixed is a step of block coordinate ascent from the optimiser's batch, the
    standard way to improve a D-optimal design one point at a time (Fedorov 1972, "Theory of
    Optimal Experiments", ch. 3). On a model with non-negligible noise a labelled point may be
    proposed again: a replicate averages noise and can be the best design (e.g. D-optimal designs
    for a straight line put every run at the two ends); inside one batch points are always
    distinct. The score of a re-chosen point is its gain given the other q − 1.

    Args:
        X_pending: ``[p, d]`` points being evaluated: the surrogate is conditioned on them.
        X_observed: ``[n, d]`` points already labelled (the learner passes its labelled and
            pending points), used only to keep a noise-free model from labelling them again.
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
    if X_observed is not None:
        X_observed = check_X(X_observed, "X_observed", dim=box.dim, allow_empty=True)
    like = surrogate.parameter_like()
    bounds = box.bounds.to(device=like.device, dtype=torch.float64)
    options = {"batch_limit": 64, "maxiter": 200}
    seed = 0 if seed is None else int(seed)
    with torch.random.fork_rng(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=OptimizationWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)
        known = [P.to(bounds) for P in (X_observed, X_pending) if P is not None and P.shape[0]]
        known = torch.cat(known) if known else bounds[:0]
        if known.shape[0] and not negligible_noise(surrogate, known):
            known = bounds[:0]  # replicates of labelled points are allowed on a noisy model
        # seeded after the noise test, so a posterior that draws random numbers leaves the batch as it was
        torch.manual_seed(seed)
        together = acquisition.joint or q == 1
        if together:
            model = surrogate if X_pending is None else surrogate.condition_on(X_pending)
            acqf = as_botorch_acquisition(model, prepare(acquisition, box, model))
            X, value = optimize_acqf(acqf, bounds=bounds, q=q, num_restarts=num_restarts, raw_samples=raw_samples,
                                     options=options)
            X = X.detach()
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
            X = torch.cat(points)
        X = torch.max(torch.min(X, bounds[1]), bounds[0])
        rechosen = False
        for i in range(q):
            others = torch.cat([X[:i], X[i + 1:]])
            forbidden = torch.cat([others, known])
            if not bool(duplicates_of(X[i:i + 1], forbidden, bounds).any()):
                continue
            if together:
                slot = _OneSlot(acqf, others)
            else:
                cond = torch.cat([others, X_pending.to(others)]) if X_pending is not None else others
                model = surrogate.condition_on(cond) if cond.shape[0] else surrogate
                slot = as_botorch_acquisition(model, prepare(acquisition, box, model))
            x, v = _rechoose(slot, forbidden, bounds, box, seed + i, num_restarts, raw_samples, options)
            X = torch.cat([X[:i], x, X[i + 1:]])
            rechosen = True
            if not together:
                values[i] = v
        if together:
            if rechosen:
                with torch.no_grad():
                    value = acqf(X.unsqueeze(0))
            scores = value.detach().reshape(-1).expand(q).clone().to(torch.float64)
        else:
            scores = torch.tensor(values, dtype=torch.float64)
    check_in_box(X, bounds, "selected points")
    return Selection(X.to(dtype=box.bounds.dtype), None, scores)
