"""BALD and its batch forms.

* Gaussian regression posteriors: :class:`BALD` (½ log(1 + σ_f²/σ_n²)) and
  :class:`JointInformation` (½ log det(I + Σ_B/σ_n²)).
* Sample posteriors of a classifier, class probabilities ``[K, N, C]``: :class:`BALD` (the mutual
  information between a label and the model sample) and :class:`BatchBALD` (the joint mutual
  information of a batch, built greedily with exact or sampled joint entropies).
"""

from __future__ import annotations

import math

import torch

from ..errors import InvalidInput
from ..posteriors import GaussianPosterior, SamplePosterior
from ..validation import check_count, renamed
from ._samples import class_probabilities, entropy_of_mean, mean_entropy, row_chunks
from .base import Acquisition, check_output_weights, output_weights, require_gaussian

__all__ = ["BALD", "JointInformation", "BatchBALD", "mutual_information", "joint_entropy_exact"]


def mutual_information(probs: torch.Tensor) -> torch.Tensor:
    """BALD scores ``[N]`` from class probabilities ``probs: [K, N, C]`` of K model samples:

        I(y; θ) = H[(1/K) Σ_k p_k(y)] − (1/K) Σ_k H[p_k(y)],

    computed chunk by chunk over N (one reused chunk-sized buffer), in the dtype and on the
    device of ``probs``. Clamped at zero (rounding can make it slightly negative).
    """
    K, N, C = probs.shape
    out = torch.empty(N, dtype=probs.dtype, device=probs.device)
    buf = None
    for s in row_chunks(N, 2.0 * K * C * probs.element_size()):
        p = probs[:, s]
        n = p.shape[1]
        if buf is None:
            buf = torch.empty(K * n * C, dtype=probs.dtype, device=probs.device)
        plogp = buf[: K * n * C].view(K, n, C)
        # log then times p in place; an exact zero gives 0·(−inf) = NaN, and only those rows are
        # redone with the safe (slower) entr
        torch.log(p, out=plogp)
        plogp.mul_(p)
        neg_h = plogp.view(K, n * C).sum(0).view(n, C).sum(-1)
        bad = torch.isnan(neg_h)
        if bool(bad.any()):
            neg_h[bad] = -torch.special.entr(p[:, bad]).sum((0, 2))
        out[s] = entropy_of_mean(p) + neg_h / K
    return out.clamp_min_(0.0)


class BALD(Acquisition):
    """Bayesian Active Learning by Disagreement for a Gaussian regression posterior.

    The mutual information between a noisy label ``y = f(x) + ε`` and the latent ``f(x)``,

        I(y; f) = ½ log(1 + σ_f²(x) / σ_n²),

    summed over independent outputs (Houlsby et al. 2011, "Bayesian Active Learning for
    Classification and Preference Learning"; for GPs the information gain of MacKay 1992).
    With homoskedastic noise it ranks points like :class:`MaxVariance`; with input-dependent
    noise it does not.
    """

    name = "bald"

    def __init__(self, output_weights=None, *, weights=None):
        self.output_weights = check_output_weights(renamed(output_weights, weights, "output_weights", "weights", type(self).__name__))

    def score(self, posterior: GaussianPosterior | SamplePosterior, generator=None) -> torch.Tensor:
        """Scores ``[..., N]``.

        * :class:`GaussianPosterior` (mean / variance ``[..., N, m]``): ½ log(1 + σ_f²/σ_n²),
          summed over outputs with ``output_weights`` (``weights`` is its deprecated name).
        * classification :class:`SamplePosterior` (probabilities ``[K, N, C]``): the mutual
          information of :func:`mutual_information` (Houlsby et al. 2011; Gal, Islam & Ghahramani
          2017, "Deep Bayesian Active Learning with Image Data").
        * regression :class:`SamplePosterior` (draws ``[K, N, m]``): the Gaussian approximation
          ½ log(1 + Var_k f/σ_n²) from the sample variance, an upper bound on the mutual
          information of the mixture (a Gaussian has the largest entropy of a given variance).
        """
        if isinstance(posterior, SamplePosterior):
            if posterior.kind == "classification":
                return mutual_information(posterior.samples)
            var = posterior.variance
            noise = _noise_vector(posterior.noise_variance, var.shape[-1], var)
            info = half_log1p_ratio(var, noise)
            return (info * output_weights(self.output_weights, var.shape[-1], var)).sum(-1)
        post = require_gaussian(self, posterior)
        var = post.variance
        noise = _noise(post, var)
        info = half_log1p_ratio(var, noise)  # [..., N, m]
        return (info * output_weights(self.output_weights, var.shape[-1], var)).sum(-1)


class JointInformation(BALD):
    """Joint mutual information between a batch's labels and f: D-optimal batch design.

        I(y_B; f) = ½ log det(I + Σ_B / σ_n²)   (per output, summed),

    with Σ_B the posterior covariance of f on the batch. By the chain rule it is the sum of the
    BALD scores of each point conditioned on the points before it, so greedy selection with
    rank-1 conditioning (:func:`bayesal.select.select_greedy`) maximises it exactly one point at
    a time; it is submodular, so greedy is within (1 − 1/e) of the best batch (Krause & Guestrin
    2005, "Near-optimal nonmyopic value of information in graphical models"). The BatchBALD of
    Kirsch et al. (2019) for a Gaussian regression posterior. On a box the q points are optimised
    jointly.
    """

    name = "joint-information"
    joint = True

    def joint_score(self, mean: torch.Tensor, covariance: torch.Tensor,
                    noise_variance: torch.Tensor | None) -> torch.Tensor:
        q, m = covariance.shape[-1], covariance.shape[-3]
        noise = _noise_vector(noise_variance, m, covariance)
        eye = torch.eye(q, dtype=covariance.dtype, device=covariance.device)
        scaled = eye + covariance / noise.reshape(-1, 1, 1)  # [b, m, q, q]
        logdet = torch.linalg.cholesky(scaled).diagonal(dim1=-2, dim2=-1).log().sum(-1)  # ½ logdet
        return (logdet * output_weights(self.output_weights, m, covariance)).sum(-1)


_NOISE_FLOOR = 1e-10


def half_log1p_ratio(var: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """½ log(1 + var / noise) without overflow: when var / noise exceeds the largest float
    (a variance of 1e300 over the noise floor) it is ½ (log var − log noise), to which the
    log1p(noise / var) correction adds less than one rounding unit."""
    ratio = var / noise
    big = ~torch.isfinite(ratio)
    safe_var = torch.where(big, var, torch.ones_like(var))
    return 0.5 * torch.where(big, torch.log(safe_var) - torch.log(noise.expand_as(var)),
                             torch.log1p(torch.where(big, torch.zeros_like(ratio), ratio)))


def _noise(post: GaussianPosterior, like: torch.Tensor) -> torch.Tensor:
    return _noise_vector(post.noise_variance, like.shape[-1], like)


def _noise_vector(noise_variance, m: int, like: torch.Tensor) -> torch.Tensor:
    """Noise variances ``[m]``; a noise-free model gets a tiny floor so information stays finite."""
    if noise_variance is None:
        return torch.full((m,), _NOISE_FLOOR, dtype=like.dtype, device=like.device)
    return noise_variance.to(like).reshape(-1).expand(m).clamp_min(_NOISE_FLOOR)


def joint_entropy_exact(probs: torch.Tensor) -> torch.Tensor:
    """Exact joint entropy ``H(y_1, ..., y_b)`` of the labels of b points under the mixture of K
    model samples, by enumerating all C^b label configurations (tiny cases and tests only).

    Args:
        probs: ``[K, b, C]`` class probabilities.

    Returns:
        A scalar tensor: ``−Σ_y p(y) log p(y)`` with ``p(y) = (1/K) Σ_k Π_i p_k(y_i)``.
    """
    K, b, C = probs.shape
    joint = torch.ones(K, 1, dtype=probs.dtype, device=probs.device)
    for i in range(b):
        joint = (joint.unsqueeze(-1) * probs[:, i].unsqueeze(1)).reshape(K, -1)
    return torch.special.entr(joint.mean(0)).sum()


class BatchBALD(BALD):
    """BatchBALD (Kirsch, van Amersfoort & Gal 2019, "BatchBALD: Efficient and Diverse Batch
    Acquisition for Deep Bayesian Active Learning") on class probabilities ``[K, N, C]``.

    The batch objective is the joint mutual information between the labels of a batch B and the
    model sample, ``I(y_B; θ) = H(y_B) − Σ_{i∈B} E_θ H(y_i | θ)``. It is submodular, and the greedy
    selector adds, one point at a time, the candidate with the largest gain given the points
    already chosen,

        gain(x | A) = H(y_A, y_x) − H(y_A) − E_θ H(y_x | θ),

    so a batch of one is BALD. The joint entropy is computed from the per-sample probabilities
    ``P_k(ŷ_A)`` of label configurations ŷ_A of the chosen points, kept as a ``[K, S]`` matrix:

    * exactly, over all S = C^|A| configurations, while S·C stays within ``max_configs``;
    * beyond that, from S = ``num_samples`` configurations drawn from the joint predictive
      p(ŷ_A), with the importance-weighted estimator
      ``H(y_A, y_x) ≈ −(1/S) Σ_s Σ_c p(c | ŷ_s) log p(ŷ_s, c)`` (Kirsch et al. 2019, §3.2), and
      ``H(y_A) ≈ −(1/S) Σ_s log p(ŷ_s)`` from the same samples, so that their difference is the
      lower-variance estimate ``(1/S) Σ_s H(y_x | ŷ_s)`` of ``H(y_x | y_A)``.
      The configurations are extended one point at a time by drawing the new label from its
      conditional given the configuration, so they stay exact draws from p(ŷ_A).

    Either way the work per evaluated candidate is a ``[S, K] × [K, C]`` product and S·C
    logarithms, chunked over N, never a ``[N, S, C]`` array beyond the memory budget. The gains
    of a candidate only shrink as the batch grows (submodularity), so after the first step the
    greedy search is lazy (Minoux 1978, "Accelerated greedy algorithms for maximizing submodular
    set functions"): candidates are evaluated in blocks in decreasing order of their last gain,
    and the search stops once the best gain found beats every remaining bound. With exact joint
    entropies this gives the same batch as evaluating every candidate; with sampled ones the
    bounds are earlier estimates.

    Args:
        num_samples: S, the number of sampled label configurations once enumeration stops.
        max_configs: enumerate exactly while ``C^|A| · C <= max_configs``.
        seed: seed of the sampled configurations (the same seed gives the same batch).
        lazy: lazy greedy evaluation (default) or every candidate at every step.
        lazy_block: candidates evaluated together in a lazy step.
    """

    name = "batch-bald"
    greedy_by_default = True
    batch_from_samples = True

    def __init__(self, num_samples: int = 500, max_configs: int | None = None, seed: int = 0,
                 lazy: bool = True, lazy_block: int = 256):
        super().__init__()
        self.lazy, self.lazy_block = bool(lazy), check_count(lazy_block, "lazy_block")
        self.num_samples = check_count(num_samples, "num_samples")
        self.max_configs = 10 * self.num_samples if max_configs is None else check_count(max_configs, "max_configs")
        self.seed = int(seed)

    def __repr__(self) -> str:
        return f"BatchBALD(num_samples={self.num_samples}, max_configs={self.max_configs})"

    def score(self, posterior: SamplePosterior, generator=None) -> torch.Tensor:
        """Single-point scores ``[N]``: BALD (the gain of each candidate for an empty batch)."""
        return mutual_information(class_probabilities(self, posterior))

    def select_from_samples(self, posterior: SamplePosterior | torch.Tensor, q: int,
                            available: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy BatchBALD batch over the N points of ``posterior``.

        Args:
            posterior: class probabilities ``[K, N, C]`` (a classification SamplePosterior).
            q: batch size.
            available: optional boolean mask ``[N]`` of the candidates that may be chosen.

        Returns:
            ``(indices [q], gains [q])`` with ``gains[t]`` the gain of the t-th point given the
            points before it, so that ``gains.sum()`` estimates ``I(y_B; θ)``.
        """
        probs = class_probabilities(self, posterior)
        K, N, C = probs.shape
        q = check_count(q, "q")
        free = torch.ones(N, dtype=torch.bool, device=probs.device) if available is None else available.clone()
        if q > int(free.sum()):
            raise InvalidInput("q", f"at most {int(free.sum())} (the candidates available)", str(q))
        gen = torch.Generator(device=probs.device).manual_seed(self.seed)
        cond = torch.empty(N, dtype=probs.dtype, device=probs.device)
        for s in row_chunks(N, 2.0 * K * C * probs.element_size()):
            cond[s] = mean_entropy(probs[:, s])
        configs = torch.ones(K, 1, dtype=probs.dtype, device=probs.device)  # P_k(ŷ_A) [K, S]
        weights = torch.ones(1, dtype=probs.dtype, device=probs.device)  # a_s of the estimator [S]
        exact = True
        chosen, gains = [], []
        bound: torch.Tensor | None = None  # upper bounds on the gains (lazy greedy)
        for _ in range(q):
            # H(y_A) from the same configurations as H(y_A, y_x): the log p(ŷ_s) terms cancel
            # sample by sample and the gain estimates E_ŷ[H(y_x | ŷ_A)] − E_θ H(y_x | θ) directly
            p_conf = configs.mean(0)
            h_prev = float(-(weights * torch.special.xlogy(p_conf, p_conf)).sum())
            if bound is None or not self.lazy:
                joint = self._joint_entropies(probs, configs, weights)  # H(y_A, y_x) [N]
                gain = (joint - h_prev - cond).masked_fill(~free, -math.inf)
                j = int(torch.argmax(gain))
                best, bound = float(gain[j]), gain
            else:
                j, best = self._lazy_step(probs, configs, weights, h_prev, cond, free, bound)
            chosen.append(j)
            gains.append(best)
            free[j] = False
            configs, weights, exact = self._extend(configs, probs[:, j], exact, gen)
        return torch.tensor(chosen, dtype=torch.long), torch.tensor(gains, dtype=torch.float64)

    def _lazy_step(self, probs, configs, weights, h_prev, cond, free, bound):
        """One greedy step evaluating candidates in blocks, in decreasing order of their upper
        bounds, until the best gain found beats every remaining bound; updates ``bound``."""
        order = torch.argsort(bound.masked_fill(~free, -math.inf), descending=True)[: int(free.sum())]
        best, j = -math.inf, -1
        for start in range(0, order.numel(), self.lazy_block):
            idx = order[start:start + self.lazy_block]
            if best >= float(bound[idx[0]]):
                break
            joint = self._joint_entropies(probs[:, idx], configs, weights)
            gain = joint - h_prev - cond[idx]
            bound[idx] = gain
            k = int(torch.argmax(gain))
            if float(gain[k]) > best:
                best, j = float(gain[k]), int(idx[k])
        return j, best

    @staticmethod
    def _joint_entropies(probs: torch.Tensor, configs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``H(y_A, y_x)`` for every x: ``−Σ_s a_s Σ_c J log J`` with
        ``J[s, x, c] = (1/K) Σ_k P_k(ŷ_s) p_k(c | x)``; ``[N]``."""
        K, N, C = probs.shape
        S = configs.shape[1]
        scaled = (configs / K).T.contiguous()  # [S, K]
        tiny = torch.finfo(probs.dtype).tiny
        out = torch.empty(N, dtype=probs.dtype, device=probs.device)
        for s in row_chunks(N, 3.0 * S * C * probs.element_size() + K * C * probs.element_size()):
            n = s.stop - s.start
            J = scaled @ probs[:, s].reshape(K, n * C)  # [S, n·C]
            # J log J in place (log into a second buffer, times J), then the weighted sum over
            # configurations as one vector-matrix product and the sum over classes last
            logJ = torch.log(J.clamp_min_(tiny))
            logJ.mul_(J)
            out[s] = (weights @ logJ).view(n, C).sum(-1).neg_()
        return out

    def _extend(self, configs: torch.Tensor, pj: torch.Tensor, exact: bool, gen: torch.Generator):
        """Configurations of A ∪ {j} from those of A and ``pj = p_k(y_j)  [K, C]``;
        returns ``(configs [K, S'], weights [S'], exact)``."""
        K, S = configs.shape
        C = pj.shape[-1]
        if exact:
            full = (configs.unsqueeze(-1) * pj.unsqueeze(1)).reshape(K, S * C)
            if S * C * C <= self.max_configs:
                return full, torch.ones(S * C, dtype=configs.dtype, device=configs.device), True
            # enumerating one more point would exceed max_configs: draw configurations of A ∪ {j}
            # from the exact joint and continue with the sampled estimator
            pick = torch.multinomial(full.mean(0).clamp_min(0), self.num_samples, replacement=True, generator=gen)
            new = full[:, pick]
        else:
            post = configs / configs.sum(0, keepdim=True)  # p(k | ŷ_s) [K, S]
            cond = (post.T @ pj).clamp_min(0)  # p(y_j | ŷ_s) [S, C]
            y = torch.multinomial(cond, 1, generator=gen).squeeze(-1)  # [S]
            new = configs * pj[:, y]
        # configurations are drawn from p(ŷ), so their probabilities are positive; the floor
        # only guards the weights against underflow of very long batches
        new = new.clamp_min(torch.finfo(new.dtype).tiny)
        weights = 1.0 / (new.shape[1] * new.mean(0))
        return new, weights, False
