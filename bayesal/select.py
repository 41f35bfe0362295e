"""Turning scores into a batch: pool top-k, pool greedy with conditioning, and box optimisation.

Every selector takes a surrogate, an acquisition, a space and a batch size ``q`` and returns a
:class:`Selection`. Pools are scored in chunks sized from :mod:`bayesal.settings`'s memory
budget, so a pool of a million candidates never materialises an ``[N, N]`` array.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.exceptions.warnings import OptimizationWarning
from botorch.optim import optimize_acqf
from botorch.utils.transforms import t_batch_mode_transform

from .acquisition.base import Acquisition
from .acquisition.stochastic import StochasticBatch
from .errors import InvalidInput
from .models.base import Surrogate
from .posteriors import GaussianPosterior, SamplePosterior
from .spaces import Box, Pool
from .settings import rows_per_chunk
from .validation import check_count, check_in_box

__all__ = ["Selection", "select", "select_topk", "select_greedy", "select_stochastic", "select_continuous",
           "SELECTORS"]

SELECTORS = ("auto", "topk", "greedy", "stochastic")


@dataclass
class Selection:
    """A proposed batch.

    Attributes:
        X: the points ``[q, d]``.
        indices: their pool indices ``[q]`` (None on a box).
        scores: ``[q]`` the acquisition value of each point when it was chosen (for greedy
            selection, its gain given the points chosen before it).
    """

    X: torch.Tensor
    indices: torch.Tensor | None
    scores: torch.Tensor

    def __len__(self) -> int:
        return self.X.shape[0]


def _generator(seed: int | None) -> torch.Generator:
    gen = torch.Generator()
    if seed is not None:
        gen.manual_seed(int(seed))
    else:
        gen.seed()
    return gen


def select_topk(surrogate: Surrogate | None, acquisition: Acquisition, pool: Pool, q: int,
                seed: int | None = None, chunk_size: int | None = None) -> Selection:
    """The q unlabelled candidates with the highest single-point scores.

    Marginal scores are computed chunk by chunk with a running top-k; criteria that need
    cross-covariances (integrated variance) use their greedy scorer's first-step scores.
    """
    q = check_count(q, "q")
    pool.check_batch_size(q)
    acquisition = acquisition.for_space(pool)
    if acquisition.needs_posterior:
        acquisition = acquisition.bind(surrogate)
    if acquisition.needs_posterior and not acquisition.scores_from_marginals:
        idx = pool.available
        X = pool.X[idx]
        post = surrogate.posterior(X)
        scorer = acquisition.greedy_scorer(surrogate, X, post.mean, _noise(post))
        s = torch.nan_to_num(scorer.scores(post.variance).detach().cpu(), nan=-math.inf)
        top = torch.topk(s, q)
        indices = idx.cpu()[top.indices]
        return Selection(pool.X[indices.to(pool.X.device)], indices, top.values.to(torch.float64))
    gen = _generator(seed)
    best_scores = torch.empty(0, dtype=torch.float64)
    best_idx = torch.empty(0, dtype=torch.long)
    per_row = getattr(surrogate, "posterior_bytes_per_row", None) if acquisition.needs_posterior else None
    for idx, Xc in pool.chunks(chunk_size, bytes_per_row=per_row):
        if acquisition.needs_posterior:
            s = acquisition.score(surrogate.posterior(Xc)).detach().to("cpu", torch.float64)
        else:
            s = acquisition.score(n=idx.numel(), generator=gen)
        s = torch.nan_to_num(s, nan=-math.inf)
        scores = torch.cat([best_scores, s])
        indices = torch.cat([best_idx, idx.cpu()])
        keep = torch.topk(scores, min(q, scores.numel())).indices
        best_scores, best_idx = scores[keep], indices[keep]
    order = torch.argsort(best_scores, descending=True)
    best_idx = best_idx[order]
    return Selection(pool.X[best_idx.to(pool.X.device)], best_idx, best_scores[order])


def _noise(post: GaussianPosterior) -> torch.Tensor:
    if post.noise_variance is not None:
        return post.noise_variance.to(post.variance).reshape(-1)
    return torch.zeros(post.variance.shape[-1], dtype=post.variance.dtype, device=post.variance.device)


def select_greedy(surrogate: Surrogate, acquisition: Acquisition, pool: Pool, q: int) -> Selection:
    """Greedy batch over a pool, conditioning on each chosen point before choosing the next.

    The posterior variance over the whole pool is updated with one rank-1 step per chosen point,
    ``σ²_{t+1}(x) = σ²_t(x) − Σ_t(x, x_j)² / (σ²_t(x_j) + σ_n²)``, where the conditional
    cross-covariance ``Σ_t(x, x_j) = Σ_0(x, x_j) − Σ_{s<t} v_s(x) v_s(x_j)`` reuses the earlier
    update vectors (an incremental pivoted Cholesky). The mean is unchanged (the pending labels
    are their expected values). Cost: one covariance column and O(t N m) per step; no model is
    refitted or rebuilt, and no candidate is chosen twice. The acquisition's greedy scorer turns
    the conditioned state into scores (the marginals for most criteria; reference-point
    cross-covariances, updated by the same rank-1 steps, for integrated variance).
    """
    q = check_count(q, "q")
    pool.check_batch_size(q)
    acquisition = acquisition.for_space(pool).bind(surrogate)
    idx = pool.available
    X = pool.X[idx]
    post = surrogate.posterior(X)
    if isinstance(post, SamplePosterior):
        return _select_from_samples(acquisition, post, pool, idx, q)
    if not isinstance(post, GaussianPosterior):
        raise InvalidInput("surrogate", "a Gaussian surrogate for greedy conditioning", type(surrogate).__name__)
    mean, var = post.mean, post.variance.clone()  # [N, m]
    noise = _noise(post)
    scorer = acquisition.greedy_scorer(surrogate, X, mean, noise)
    columns = surrogate.covariance_columns(X)
    taken = torch.zeros(X.shape[0], dtype=torch.bool, device=var.device)
    updates: list[torch.Tensor] = []
    chosen, gains = [], []
    for _ in range(q):
        s = scorer.scores(var).detach()
        s = torch.nan_to_num(s, nan=-math.inf).masked_fill(taken, -math.inf)
        j = int(torch.argmax(s))
        chosen.append(j)
        gains.append(float(s[j]))
        taken[j] = True
        col = columns(j).T.to(var)  # [N, m]
        for v in updates:
            col = col - v * v[j]
        denom = (var[j] + noise).clamp_min(1e-12)
        v_new = col / denom.sqrt()
        scorer.update(j, v_new, denom)
        var = (var - v_new.pow(2)).clamp_min(0.0)
        updates.append(v_new)
    chosen_t = torch.tensor(chosen, dtype=torch.long)
    indices = idx.cpu()[chosen_t]
    return Selection(pool.X[indices.to(pool.X.device)], indices, torch.tensor(gains, dtype=torch.float64))


def _select_from_samples(acquisition: Acquisition, post: SamplePosterior, pool: Pool, idx: torch.Tensor,
                         q: int) -> Selection:
    """Greedy batch from a sample posterior ``[K, N, ·]`` of the available candidates: the
    acquisition's own incremental gains where it has a batch objective on samples (BatchBALD),
    else the top q single-point scores."""
    if hasattr(acquisition, "select_from_samples"):
        chosen, gains = acquisition.select_from_samples(post, q)
    else:
        s = torch.nan_to_num(acquisition.score(post).detach().to("cpu", torch.float64), nan=-math.inf)
        top = torch.topk(s, q)
        chosen, gains = top.indices, top.values
    indices = idx.cpu()[chosen.cpu()]
    return Selection(pool.X[indices.to(pool.X.device)], indices, gains.to(torch.float64))


def select_stochastic(surrogate: Surrogate | None, acquisition: Acquisition, pool: Pool, q: int,
                      seed: int | None = None, chunk_size: int | None = None) -> Selection:
    """A batch sampled without replacement from a distribution over the candidates that favours
    high single-point scores (:class:`~bayesal.acquisition.stochastic.StochasticBatch`; a plain
    acquisition is wrapped with power sampling at β = 1).

    With ``subset_size`` set, only that many unlabelled candidates, drawn uniformly with the
    seed, are scored; the batch is sampled among them and returned as pool indices. Scores are
    computed chunk by chunk. Returns the scores of the chosen points.
    """
    q = check_count(q, "q")
    pool.check_batch_size(q)
    if not isinstance(acquisition, StochasticBatch):
        acquisition = StochasticBatch(acquisition)
    acquisition = acquisition.for_space(pool)
    if acquisition.needs_posterior:
        acquisition = acquisition.bind(surrogate)
    gen = _generator(seed)
    candidates = pool.available.cpu()
    if acquisition.subset_size is not None and acquisition.subset_size < candidates.numel():
        if acquisition.subset_size < q:
            raise InvalidInput("subset_size", f"at least q = {q}", str(acquisition.subset_size))
        pick = torch.randperm(candidates.numel(), generator=gen)[: acquisition.subset_size]
        candidates = candidates[torch.sort(pick).values]
    if acquisition.needs_posterior:
        step = chunk_size or rows_per_chunk(getattr(surrogate, "posterior_bytes_per_row", None) or 8.0 * (pool.dim + 64))
        parts = []
        for start in range(0, candidates.numel(), step):
            Xc = pool.X[candidates[start:start + step].to(pool.X.device)]
            parts.append(acquisition.score(surrogate.posterior(Xc)).detach().to("cpu", torch.float64))
        scores = torch.cat(parts)
    else:
        scores = acquisition.base.score(n=candidates.numel(), generator=gen)
    positions = acquisition.sample(scores, q, generator=gen)
    indices = candidates[positions]
    return Selection(pool.X[indices.to(pool.X.device)], indices, scores[positions])


def _samples_surrogate(surrogate) -> bool:
    return getattr(surrogate, "posterior_kind", "gaussian") == "samples"


class _BoTorchAcquisition(AcquisitionFunction):
    """A bayesal acquisition seen as a BoTorch ``AcquisitionFunction`` on a surrogate's model,
    so that BoTorch's ``optimize_acqf`` can maximise it over a box."""

    def __init__(self, surrogate, acquisition: Acquisition):
        super().__init__(model=surrogate.model)
        self.surrogate = surrogate
        self.acquisition = acquisition

    @t_batch_mode_transform()
    def forward(self, X: torch.Tensor) -> torch.Tensor:  # X: [b, q, d] -> [b]
        return self.acquisition.batch_value(self.surrogate, X)


def select_continuous(surrogate: Surrogate, acquisition: Acquisition, box: Box, q: int,
                      seed: int | None = None, num_restarts: int = 8, raw_samples: int = 256,
                      X_pending: torch.Tensor | None = None) -> Selection:
    """Maximise the acquisition over a box with BoTorch's ``optimize_acqf`` (multi-start L-BFGS-B).

    Joint criteria (``acquisition.joint``) optimise all q points together; single-point criteria
    choose them one at a time, conditioning the surrogate on the points already chosen (and on
    ``X_pending`` when given). Random draws uniform points. Every returned point is in the box.
    """
    q = check_count(q, "q")
    acquisition = acquisition.for_space(box)
    if not acquisition.needs_posterior:
        X = box.sample(q, seed=seed, method="uniform")
        return Selection(X, None, torch.full((q,), float("nan"), dtype=torch.float64))
    if not hasattr(surrogate, "joint_posterior"):
        raise InvalidInput("surrogate", "a surrogate with a joint Gaussian posterior for box optimisation",
                           type(surrogate).__name__)
    bounds = box.bounds.to(surrogate.model.train_inputs[0])
    options = {"batch_limit": 64, "maxiter": 200}
    with torch.random.fork_rng(), warnings.catch_warnings():
        torch.manual_seed(0 if seed is None else int(seed))
        warnings.simplefilter("ignore", category=OptimizationWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)
        if acquisition.joint or q == 1:
            model = surrogate if X_pending is None else surrogate.condition_on(X_pending)
            X, value = optimize_acqf(_BoTorchAcquisition(model, acquisition), bounds=bounds, q=q,
                                     num_restarts=num_restarts, raw_samples=raw_samples, options=options)
            scores = value.detach().reshape(-1).expand(q).clone()
        else:
            points, values = [], []
            pending = X_pending
            for _ in range(q):
                model = surrogate if pending is None else surrogate.condition_on(pending)
                x, v = optimize_acqf(_BoTorchAcquisition(model, acquisition), bounds=bounds, q=1,
                                     num_restarts=num_restarts, raw_samples=raw_samples, options=options)
                points.append(x.detach())
                values.append(float(v))
                pending = x.detach() if pending is None else torch.cat([pending, x.detach()])
            X, scores = torch.cat(points), torch.tensor(values, dtype=torch.float64)
    X = torch.max(torch.min(X.detach(), bounds[1]), bounds[0])
    check_in_box(X, bounds, "selected points")
    return Selection(X, None, scores)


def select(surrogate: Surrogate | None, acquisition: Acquisition, space: Pool | Box, q: int,
           selector: str = "auto", seed: int | None = None) -> Selection:
    """Choose a batch of q points with the right selector for the space and acquisition.

    ``selector="auto"``: on a box, :func:`select_continuous`; on a pool,
    :func:`select_stochastic` for a :class:`~bayesal.acquisition.stochastic.StochasticBatch`,
    :func:`select_greedy` for model-based acquisitions when q > 1, else :func:`select_topk`.
    With a sample-posterior surrogate (MC dropout, ensembles), greedy selection is used only by
    acquisitions with a batch objective on samples (BatchBALD); the others take the top q
    scores, computed chunk by chunk. ``selector="stochastic"`` samples the batch with power
    sampling (β = 1) from any acquisition's scores.
    """
    if selector not in SELECTORS:
        raise InvalidInput("selector", "one of " + ", ".join(SELECTORS), repr(selector))
    if isinstance(space, Box):
        return select_continuous(surrogate, acquisition, space, q, seed=seed)
    if not isinstance(space, Pool):
        raise InvalidInput("space", "a Pool or a Box", type(space).__name__)
    if selector == "stochastic" or (selector == "auto" and isinstance(acquisition, StochasticBatch)):
        return select_stochastic(surrogate, acquisition, space, q, seed=seed)
    greedy = selector == "greedy" or (selector == "auto" and acquisition.greedy_by_default and q > 1)
    if greedy and _samples_surrogate(surrogate) and not hasattr(acquisition, "select_from_samples"):
        greedy = False
    if greedy and acquisition.needs_posterior:
        return select_greedy(surrogate, acquisition, space, q)
    return select_topk(surrogate, acquisition, space, q, seed=seed)
