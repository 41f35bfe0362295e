"""Neural-network surrogates: MC dropout and deep ensembles (sample posteriors), and an MLP
regressor with a Gaussian neural-linear posterior (:class:`MLPRegressor`).

Both answer ``posterior(X [N, d])`` with a :class:`~bayesal.posteriors.SamplePosterior`: K
stochastic forward passes (MC dropout) or M members (ensemble), as class probabilities
``[K, N, C]`` for classification or function draws ``[K, N, m]`` with a learned homoskedastic
noise variance for regression. The K model samples are the same for every pool point, in every
chunk and in every call until the next ``fit``, so joint quantities across points (BatchBALD,
EPIG, sample covariances) are valid.

Training: Adam on mini-batches (cross-entropy, or the Gaussian negative log likelihood of
standardised targets with a learned noise), with early stopping on a held-out fraction of the
labels (the weights of the best held-out epoch are kept); deterministic given ``seed``.
Networks run in float32 by default (``dtype``), on the device of ``device``.
"""

from __future__ import annotations

import copy
import math
from numbers import Integral
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F

from ..errors import InvalidInput, NotFitted, Unsupported
from ..kernels.network import (NetworkFunction, NTKLinear, PreprocessedFeatures, ensemble_feature_map, frozen_copy,
                               network_feature_map)
from ..posteriors import GaussianPosterior, SamplePosterior
from ..settings import rows_per_chunk
from ..validation import as_tensor, check_count, check_X, check_y
from .base import PendingConditioned, Surrogate

__all__ = ["SampleSurrogate", "ConditionedSampleSurrogate", "ConsistentDropout", "MCDropoutNet", "DeepEnsemble", "mlp",
           "MLPRegressor", "evidence_fit", "soft_clip",
           "sample_moments", "sample_cross", "ensemble_transform"]

TASKS = ("classification", "regression")


class ConsistentDropout(nn.Module):
    """Dropout whose masks, at prediction time, are K fixed masks shared by every input.

    In training mode it is ordinary (inverted) dropout. In MC mode (:meth:`set_samples`), the
    input is read as ``[K·B, *features]`` (K stacked copies of a batch of B) and the k-th copy is
    multiplied by the k-th of K masks ``[K, 1, *features]``, drawn once from a seeded generator
    and then reused for every later batch, so that chunked predictions over a pool see the same
    K networks (consistent MC dropout, as in Kirsch et al. 2019, §4).

    Args:
        p: drop probability.
    """

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0 <= float(p) < 1:
            raise InvalidInput("p", "a dropout probability in [0, 1)", repr(p))
        self.p = float(p)
        self.num_samples = 0
        self._generator: torch.Generator | None = None
        self._mask: torch.Tensor | None = None

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def set_samples(self, num_samples: int, generator: torch.Generator | None) -> None:
        """Use K = ``num_samples`` fixed masks drawn from ``generator`` (0 switches MC mode off)."""
        self.num_samples, self._generator, self._mask = int(num_samples), generator, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return F.dropout(x, self.p, True)
        K = self.num_samples
        if K == 0 or self.p == 0:
            return x
        feat = x.shape[1:]
        if self._mask is None or self._mask.shape[2:] != feat:
            keep = torch.rand((K, 1, *feat), generator=self._generator) >= self.p
            self._mask = keep.to(device=x.device, dtype=x.dtype) / (1.0 - self.p)
        mask = self._mask.to(device=x.device, dtype=x.dtype)
        return (x.reshape(K, -1, *feat) * mask).reshape(x.shape)


def mlp(d_in: int, d_out: int, hidden: Sequence[int] = (128, 128), dropout: float = 0.0) -> nn.Sequential:
    """A ReLU multilayer perceptron ``[B, d_in] -> [B, d_out]`` with a :class:`ConsistentDropout`
    after every hidden layer when ``dropout > 0``."""
    layers: list[nn.Module] = []
    width = d_in
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        if dropout > 0:
            layers.append(ConsistentDropout(dropout))
        width = int(h)
    layers.append(nn.Linear(width, d_out))
    return nn.Sequential(*layers)


class SampleSurrogate(Surrogate):
    """Base of the network surrogates: data handling, input scaling and the sample posterior.

    Subclasses implement ``_train(U [n, d], T, train [n_t], hold [n_h])`` and
    ``_outputs(U [c, d]) -> [K, c, out]`` (logits, or standardised means).
    """

    #: selectors use it to route acquisitions without a sample batch objective to chunked top-k
    posterior_kind = "samples"

    def __init__(self, task: str = "classification", num_classes: int | None = None,
                 hidden: Sequence[int] = (128, 128), lr: float = 1e-3, weight_decay: float = 1e-4,
                 batch_size: int = 64, max_epochs: int = 200, holdout: float = 0.1, patience: int = 10,
                 min_holdout: int = 5, seed: int = 0, dtype: torch.dtype = torch.float32,
                 device: str | torch.device | None = None):
        if task not in TASKS:
            raise InvalidInput("task", "'classification' or 'regression'", repr(task))
        if num_classes is not None and (task != "classification" or check_count(num_classes, "num_classes", 2) < 2):
            raise InvalidInput("num_classes", "None for regression", repr(num_classes))
        if not 0 <= holdout < 0.5:
            raise InvalidInput("holdout", "a fraction in [0, 0.5)", repr(holdout))
        self.task, self.num_classes = task, num_classes
        self.hidden = tuple(int(h) for h in hidden)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.batch_size = check_count(batch_size, "batch_size")
        self.max_epochs = check_count(max_epochs, "max_epochs")
        self.holdout, self.patience, self.min_holdout = float(holdout), int(patience), int(min_holdout)
        self.seed, self.dtype = int(seed), dtype
        self.device = torch.device(device) if device is not None else None
        self._fitted, self._n_train, self._device = False, 0, None
        self.history: list[dict[str, float]] = []

    # -- data -------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, bounds: Any = None) -> "SampleSurrogate":
        """Train on ``X: [n, d]`` and ``y: [n]`` (class indices 0..C−1, or real targets ``[n, m]``).

        ``bounds: [2, d]`` scales the inputs to [−1, 1] (else they are standardised with the
        training mean and standard deviation).
        """
        X = check_X(X, "X")
        n, d = X.shape
        y = check_y(y, "y", n=n)
        device = self.device or X.device
        if self.task == "classification":
            if y.shape[-1] != 1 or not bool((y == y.round()).all()) or bool((y < 0).any()):
                raise InvalidInput("y", "class indices 0, 1, ..., C-1 of shape [n]", f"values such as {y[:3, 0].tolist()}")
            C = self.num_classes if self.num_classes is not None else max(2, int(y.max()) + 1)
            if int(y.max()) >= C:
                raise InvalidInput("y", f"class indices below num_classes={C}", f"{int(y.max())}")
            self.num_outputs = C
            T = y[:, 0].long().to(device)
        else:
            self.num_outputs = y.shape[-1]
            self.y_mean = y.mean(0).to(device, self.dtype)
            std = y.std(0) if n > 1 else torch.ones(y.shape[-1], dtype=y.dtype)
            self.y_std = torch.where(std > 0, std, torch.ones_like(std)).to(device, self.dtype)
            T = (y.to(device, self.dtype) - self.y_mean) / self.y_std
        if bounds is not None:
            b = as_tensor(bounds, "bounds").reshape(2, d).to(device, self.dtype)
            span = torch.where(b[1] > b[0], b[1] - b[0], torch.ones_like(b[0]))
            self._shift, self._scale = (b[0] + b[1]) / 2, span / 2
        else:
            Xd = X.to(device, self.dtype)
            sd = Xd.std(0) if n > 1 else torch.ones(d, dtype=self.dtype, device=device)
            self._shift, self._scale = Xd.mean(0), torch.where(sd > 0, sd, torch.ones_like(sd))
        self._dim, self._device = d, device
        U = self._transform(X)
        gen = torch.Generator().manual_seed(self.seed)
        perm = torch.randperm(n, generator=gen)
        n_hold = int(round(self.holdout * n)) if self.holdout > 0 else 0
        if n_hold < self.min_holdout or n - n_hold < 2:
            n_hold = 0
        hold, train = perm[:n_hold].to(device), perm[n_hold:].to(device)
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
            torch.manual_seed(self.seed)
            self._train(U, T, train, hold, gen)
        self._fitted, self._n_train = True, n
        return self

    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        return (X.to(self._device, self.dtype) - self._shift) / self._scale

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        if not self._fitted:
            raise NotFitted(f"{type(self).__name__} has no data yet: call fit(X, y) first")
        return check_X(X, name, dim=self._dim)

    def _loss(self, out: torch.Tensor, target: torch.Tensor, log_noise: torch.Tensor | None) -> torch.Tensor:
        """Mean loss over the rows of ``out: [..., B, out]``; ``[...]``."""
        if self.task == "classification":
            C = out.shape[-1]
            ce = F.cross_entropy(out.reshape(-1, C), target.expand(out.shape[:-1]).reshape(-1), reduction="none")
            return ce.reshape(out.shape[:-1]).mean(-1)
        noise = log_noise.exp().unsqueeze(-2)  # [..., 1, m]
        return (0.5 * ((out - target).pow(2) / noise + noise.log())).mean((-1, -2))

    # -- posterior --------------------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        """K, the number of model samples in every posterior ``[K, N, C]`` / ``[K, N, m]``."""
        raise NotImplementedError

    @property
    def posterior_bytes_per_row(self) -> float:
        """Bytes one pool row costs while its posterior is scored (the ``[K, ·, C]`` samples, their
        assembly from inner chunks, and an acquisition's temporaries): selectors size pool chunks
        with it, so a pool of millions of points is streamed within the memory budget."""
        return 3.0 * self.num_samples * self.num_outputs * torch.finfo(self.dtype).bits / 8

    def posterior(self, X: Any, chunk_size: int | None = None) -> SamplePosterior:
        """Sample posterior at ``X: [N, d]``: class probabilities ``[K, N, C]`` or draws of f
        ``[K, N, m]`` (units of y) with ``noise_variance [m]``; computed in chunks of rows."""
        X = self._check_points(X)
        K, width = self.num_samples, max(self.hidden + (self.num_outputs,))
        step = chunk_size or rows_per_chunk(4.0 * K * (3 * width + self._dim) * torch.finfo(self.dtype).bits / 8)
        parts = []
        with torch.no_grad():
            for s in range(0, X.shape[0], step):
                out = self._outputs(self._transform(X[s:s + step]))
                parts.append(torch.softmax(out, -1) if self.task == "classification" else out * self.y_std + self.y_mean)
        samples = torch.cat(parts, 1)
        if self.task == "classification":
            return SamplePosterior(samples, "classification")
        return SamplePosterior(samples, "regression", noise_variance=self.noise_variance)

    def predict(self, X: Any) -> torch.Tensor:
        """Predictive mean: class probabilities ``[N, C]`` or the mean of f ``[N, m]``."""
        return self.posterior(X).mean

    # -- feature maps for kernel batch selection ----------------------------------------------------
    def _network_functions(self) -> list[NetworkFunction]:
        """The trained network(s) as pure functions of the preprocessed inputs."""
        raise NotImplementedError

    @property
    def feature_kinds(self) -> tuple[str, ...]:
        """``ll`` and ``grad``, and ``badge`` for a classifier."""
        return ("ll", "grad", "badge") if self.task == "classification" else ("ll", "grad")

    def feature_map(self, kind: str, n_features: int | None = None, seed: int | None = None):
        """A feature map ``X: [N, d] -> [N, F]`` of the trained network(s) (inputs in the
        user's units; the input preprocessing is applied first): ``"ll"``, ``"grad"`` (exact when
        ``n_features`` is None, else sketched with ``seed``) or, for classifiers, ``"badge"``;
        see :mod:`bayesal.kernels.network`. MC dropout uses the deterministic network (no
        dropout); an ensemble the sum of its members' kernels (bmdal_reg's ``ens``)."""
        if not self._fitted:
            raise NotFitted(f"{type(self).__name__} has no data yet: call fit(X, y) first")
        nets, owner = self._network_functions(), type(self).__name__
        if len(nets) == 1:
            fmap = network_feature_map(nets[0], kind, n_features, seed, self.task, owner)
        else:
            fmap = ensemble_feature_map(nets, kind, n_features, seed, self.task, owner)
        return PreprocessedFeatures(fmap, self._transform)

    # -- capabilities of a regression sample posterior ------------------------------------------------
    @property
    def num_train(self) -> int:
        """Number of training labels of the last fit (0 before fitting)."""
        return self._n_train

    def parameter_like(self) -> torch.Tensor:
        """A tensor with the dtype and device of the networks (box bounds are moved to that device)."""
        device = self._device or self.device or torch.device("cpu")
        return torch.empty(0, dtype=self.dtype, device=device)

    def _require_regression(self, capability: str, purpose: str) -> None:
        """Reject a classifier where a regression posterior of f is needed: class probabilities
        have no Gaussian moments, so a box criterion on f has no meaning for them."""
        if not self._fitted:
            raise NotFitted(f"{type(self).__name__} has no data yet: call fit(X, y) first")
        if self.task != "regression":
            raise Unsupported(f"{type(self).__name__} (classification)", capability, purpose)

    def _draws(self, X: torch.Tensor) -> torch.Tensor:
        """Differentiable draws ``[K, *lead, m]`` of f (units of y, dtype of X) at ``X: [*lead, d]``."""
        lead = X.shape[:-1]
        # the cast to the networks' dtype is differentiable, so a float64 optimiser drives
        # float32 networks and gets float64 values and gradients back
        out = self._outputs(self._transform(X.reshape(-1, X.shape[-1])))
        out = out * self.y_std + self.y_mean
        return out.reshape(out.shape[0], *lead, out.shape[-1]).to(X.dtype)

    def joint_samples(self, X: torch.Tensor) -> torch.Tensor:
        """Draws ``[K, b, q, m]`` of f (units of y) on ``X: [b, q, d]``, differentiable in X.

        The K draws are the posterior's fixed base samples (the K consistent dropout masks of
        MC dropout, the M members of an ensemble), the same at every X, so any criterion of
        them is a deterministic smooth function of X that a gradient optimiser can climb (the
        sample-average approximation of Balandat et al. 2020, "BoTorch", §4, with the model
        samples as base samples). Returned in the dtype and on the device of X.
        """
        self._require_regression("a regression posterior", "box optimisation")
        return self._draws(X)

    def joint_posterior(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Moment-matched Gaussian of the K draws on ``X: [b, q, d]``: the sample mean
        ``[b, q, m]`` and the sample covariance ``[b, m, q, q]`` (divisor K − 1), differentiable
        in X; every Gaussian criterion (max-variance, BALD, joint information, integrated
        variance) then runs on a box."""
        return sample_moments(self.joint_samples(X))

    def reference_cross(self, R: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Sample cross-covariance ``[b, m, M, q]`` between fixed ``R: [M, d]`` and ``X: [b, q, d]``
        (differentiable in X), without the ``[M + q]``-point joint posterior of the generic version."""
        self._require_regression("a regression posterior", "box optimisation")
        with torch.no_grad():
            DR = _deviations(self._draws(R.to(X)))  # [K, M, m]
        return sample_cross(DR, _deviations(self._draws(X)))

    def covariance(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """Sample cross-covariance ``[m, Na, Nb]`` of f (units of y) over the K draws between
        ``A: [Na, d]`` and ``B: [Nb, d]`` (integrated variance and Gaussian EPIG on a pool)."""
        self._require_regression("a regression posterior", "a posterior cross-covariance")
        A, B = self._check_points(A, "A"), self._check_points(B, "B")
        with torch.no_grad():
            DA, DB = _deviations(self._draws(A)), _deviations(self._draws(B.to(A)))
        return torch.einsum("kam,kbm->mab", DA, DB) / max(DA.shape[0] - 1, 1)

    def condition_on(self, X_pending: Any) -> "ConditionedSampleSurrogate":
        """The draws updated for noisy observations at ``X_pending: [p, d]`` taken at their
        expected values, by the ensemble-transform Kalman update of
        :class:`ConditionedSampleSurrogate` (exact Gaussian conditioning of the sample
        moments). Regression only: a classifier's pending points are handled by BatchBALD's
        joint entropy on a pool."""
        self._require_regression("conditioning on pending points", "pending points (use BatchBALD on a pool)")
        return ConditionedSampleSurrogate(self, self._check_points(X_pending, "X_pending"))


class MCDropoutNet(SampleSurrogate):
    """Monte Carlo dropout network (Gal & Ghahramani 2016, "Dropout as a Bayesian Approximation";
    Gal, Islam & Ghahramani 2017 for active learning).

    The K stochastic passes are one batched forward over ``[K·B, d]`` with K fixed dropout masks
    (:class:`ConsistentDropout`), drawn from ``seed`` after each fit and shared by every pool point.

    Args:
        task: ``"classification"`` or ``"regression"``.
        num_classes: C (classification; default: largest label + 1 — pass it when the first
            labels may miss a class).
        module: optional network ``[B, d] -> [B, C or m]``; every ``nn.Dropout`` in it is
            replaced by a :class:`ConsistentDropout` of the same p, and it is re-initialised
            (``reset_parameters``) at each fit. Default: :func:`mlp` with ``hidden`` and ``dropout``.
        hidden: widths of the default MLP's hidden layers.
        dropout: drop probability of the default MLP.
        num_samples: K, the number of MC dropout passes of the posterior.
        lr, weight_decay, batch_size, max_epochs: Adam training.
        holdout, patience, min_holdout: early stopping on a held-out fraction (skipped when it
            would hold out fewer than ``min_holdout`` labels).
        seed: seed of the initialisation, the split, the mini-batches and the MC masks.
        dtype, device: of the network.
    """

    def __init__(self, task: str = "classification", num_classes: int | None = None, module: nn.Module | None = None,
                 hidden: Sequence[int] = (128, 128), dropout: float = 0.25, num_samples: int = 20, **kwargs):
        super().__init__(task=task, num_classes=num_classes, hidden=hidden, **kwargs)
        if module is not None and not isinstance(module, nn.Module):
            raise InvalidInput("module", "a torch.nn.Module", type(module).__name__)
        if not 0 <= float(dropout) < 1:
            raise InvalidInput("dropout", "a probability in [0, 1)", repr(dropout))
        self.template = None if module is None else _with_consistent_dropout(copy.deepcopy(module))
        self.dropout = float(dropout)
        self.K = check_count(num_samples, "num_samples")
        self.net: nn.Module | None = None

    def __repr__(self) -> str:
        return f"MCDropoutNet({self.task}, num_samples={self.K}, fitted={self._fitted})"

    @property
    def num_samples(self) -> int:
        """K, the number of consistent dropout masks (stochastic forward passes) per posterior."""
        return self.K

    def _build(self, d: int, out: int) -> nn.Module:
        if self.template is None:
            return mlp(d, out, self.hidden, self.dropout)
        net = copy.deepcopy(self.template)
        for mod in net.modules():
            if hasattr(mod, "reset_parameters") and mod is not net:
                mod.reset_parameters()
        return net

    def _train(self, U, T, train, hold, gen) -> None:
        out = self.num_outputs
        net = self._build(U.shape[-1], out).to(U.device, self.dtype)
        log_noise = None
        params = list(net.parameters())
        if self.task == "regression":
            log_noise = nn.Parameter(torch.full((out,), math.log(0.1), dtype=self.dtype, device=U.device))
            params.append(log_noise)
        optim = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        best, best_state, stale = math.inf, None, 0
        self.history = []
        for epoch in range(self.max_epochs):
            net.train()
            order = train[torch.randperm(train.numel(), generator=gen).to(train.device)]
            total = 0.0
            for s in range(0, order.numel(), self.batch_size):
                idx = order[s:s + self.batch_size]
                optim.zero_grad()
                loss = self._loss(net(U[idx]), T[idx], log_noise)
                loss.backward()
                optim.step()
                total += float(loss.detach()) * idx.numel()
            record = {"epoch": epoch, "train_loss": total / order.numel()}
            if hold.numel():
                net.eval()
                _set_samples(net, 0, None)
                with torch.no_grad():
                    val = float(self._loss(net(U[hold]), T[hold], log_noise))
                record["holdout_loss"] = val
                if val < best - 1e-4:
                    best, stale = val, 0
                    best_state = (copy.deepcopy(net.state_dict()), None if log_noise is None else log_noise.detach().clone())
                else:
                    stale += 1
            self.history.append(record)
            if hold.numel() and stale >= self.patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state[0])
            if log_noise is not None:
                log_noise.data.copy_(best_state[1])
        net.eval()
        _set_samples(net, self.K, torch.Generator().manual_seed(self.seed + 7919))
        self.net = net
        self._log_noise = None if log_noise is None else log_noise.detach()

    @property
    def noise_variance(self) -> torch.Tensor | None:
        """``[m]`` learned observation-noise variance in y units (regression), else None."""
        if self.task != "regression":
            return None
        return self._log_noise.exp() * self.y_std.pow(2)

    def _network_functions(self) -> list[NetworkFunction]:
        # the deterministic network: dropout switched off (eval mode, no MC masks) in a copy
        net = frozen_copy(self.net)
        _set_samples(net, 0, None)
        return [NetworkFunction(net)]

    def _outputs(self, U: torch.Tensor) -> torch.Tensor:
        K, c = self.K, U.shape[0]
        out = self.net(U.unsqueeze(0).expand(K, c, U.shape[-1]).reshape(K * c, -1))
        return out.reshape(K, c, -1)


def _with_consistent_dropout(module: nn.Module) -> nn.Module:
    """Replace every ``nn.Dropout`` / ``nn.Dropout1d`` inside ``module`` by a ConsistentDropout."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.Dropout, nn.Dropout1d)):
                setattr(parent, name, ConsistentDropout(child.p))
    if not any(isinstance(m, ConsistentDropout) for m in module.modules()):
        raise InvalidInput("module", "a network with at least one dropout layer", type(module).__name__)
    return module


def _set_samples(net: nn.Module, K: int, generator: torch.Generator | None) -> None:
    for mod in net.modules():
        if isinstance(mod, ConsistentDropout):
            mod.set_samples(K, generator)


class DeepEnsemble(SampleSurrogate):
    """A deep ensemble of M networks (Lakshminarayanan, Pritzel & Blundell 2017, "Simple and
    Scalable Predictive Uncertainty Estimation using Deep Ensembles"; Beluch et al. 2018 for
    active learning).

    The M members differ in their initialisation and mini-batch order and are trained together
    in one vectorised pass: their parameters are stacked (``torch.func.stack_module_state``) and
    one ``vmap``-ed forward and backward serves all of them. Each member stops early on its own
    held-out loss (its best parameters are kept; training ends when every member has stopped).

    Args:
        num_members: M, the number of model samples K of the posterior.
        module_fn: optional factory ``() -> nn.Module`` of one member ``[B, d] -> [B, C or m]``
            (all members must share the architecture); default :func:`mlp` with ``hidden``.
        other arguments: as for :class:`MCDropoutNet`.
    """

    def __init__(self, task: str = "classification", num_classes: int | None = None, num_members: int = 5,
                 module_fn: Callable[[], nn.Module] | None = None, hidden: Sequence[int] = (128, 128), **kwargs):
        super().__init__(task=task, num_classes=num_classes, hidden=hidden, **kwargs)
        self.M = check_count(num_members, "num_members")
        if module_fn is not None and not callable(module_fn):
            raise InvalidInput("module_fn", "a callable returning a torch.nn.Module", type(module_fn).__name__)
        self.module_fn = module_fn
        self.params = self.buffers = None

    def __repr__(self) -> str:
        return f"DeepEnsemble({self.task}, num_members={self.M}, fitted={self._fitted})"

    @property
    def num_samples(self) -> int:
        """K = M, the number of ensemble members (one posterior sample each)."""
        return self.M

    def _train(self, U, T, train, hold, gen) -> None:
        d, out, M = U.shape[-1], self.num_outputs, self.M
        members = [(self.module_fn() if self.module_fn else mlp(d, out, self.hidden)).to(U.device, self.dtype)
                   for _ in range(M)]
        params, buffers = stack_module_state(members)
        base = copy.deepcopy(members[0]).to("meta")
        self._base = base

        def call(p, b, x):
            return functional_call(base, (p, b), (x,))

        forward = vmap(call)
        if self.task == "regression":
            params["__log_noise"] = torch.full((M, out), math.log(0.1), dtype=self.dtype, device=U.device).requires_grad_()
        leaves = list(params.values())
        optim = torch.optim.Adam(leaves, lr=self.lr, weight_decay=self.weight_decay)
        best = torch.full((M,), math.inf, dtype=torch.float64)
        best_params = {k: v.detach().clone() for k, v in params.items()}
        stale = torch.zeros(M, dtype=torch.long)
        n_t = train.numel()
        self.history = []
        for epoch in range(self.max_epochs):
            # each member gets its own shuffle of the training rows
            orders = torch.stack([torch.randperm(n_t, generator=gen) for _ in range(M)]).to(train.device)
            total = 0.0
            for s in range(0, n_t, self.batch_size):
                idx = train[orders[:, s:s + self.batch_size]]  # [M, B]
                optim.zero_grad()
                net_params = {k: v for k, v in params.items() if k != "__log_noise"}
                outputs = forward(net_params, buffers, U[idx])  # [M, B, out]
                losses = self._loss(outputs, T[idx],
                                    params.get("__log_noise"))  # [M]
                losses.sum().backward()
                optim.step()
                total += float(losses.detach().mean()) * idx.shape[1]
            record = {"epoch": epoch, "train_loss": total / n_t}
            if hold.numel():
                with torch.no_grad():
                    net_params = {k: v for k, v in params.items() if k != "__log_noise"}
                    hU = U[hold].unsqueeze(0).expand(M, -1, -1)
                    val = self._loss(forward(net_params, buffers, hU), T[hold], params.get("__log_noise")).to(torch.float64).cpu()
                    improved = val < best - 1e-4
                    for k, v in params.items():
                        mask = improved.to(v.device).reshape(M, *([1] * (v.dim() - 1)))
                        best_params[k] = torch.where(mask, v.detach(), best_params[k])
                    best = torch.where(improved, val, best)
                    stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
                record["holdout_loss"] = float(best.mean())
            self.history.append(record)
            if hold.numel() and bool((stale >= self.patience).all()):
                break
        final = best_params if hold.numel() else {k: v.detach() for k, v in params.items()}
        self._log_noise = final.pop("__log_noise", None)
        self.params, self.buffers, self._forward = final, buffers, forward

    @property
    def noise_variance(self) -> torch.Tensor | None:
        """``[m]`` observation-noise variance in y units (regression: the members' mean), else None."""
        if self.task != "regression":
            return None
        return self._log_noise.exp().mean(0) * self.y_std.pow(2)

    def _outputs(self, U: torch.Tensor) -> torch.Tensor:
        return self._forward(self.params, self.buffers, U.unsqueeze(0).expand(self.M, *U.shape))

    def _network_functions(self) -> list[NetworkFunction]:
        # member i: the shared (meta-device) skeleton with the i-th slice of the stacked parameters
        return [NetworkFunction(self._base, {**{k: v[i] for k, v in self.params.items()},
                                             **{k: v[i] for k, v in self.buffers.items()}})
                for i in range(self.M)]


# -- moments of joint draws and their exact Gaussian conditioning ------------------------------------
def _deviations(draws: torch.Tensor) -> torch.Tensor:
    """Deviations ``f_k − mean_k f`` of draws ``[K, ...]`` from their mean over K."""
    return draws - draws.mean(0, keepdim=True)


def sample_moments(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample mean ``[b, q, m]`` and sample covariance ``[b, m, q, q]`` (divisor K − 1) of
    draws ``[K, b, q, m]``: the moment-matched Gaussian of a sample posterior."""
    D = _deviations(draws)
    return draws.mean(0), torch.einsum("kbim,kbjm->bmij", D, D) / max(draws.shape[0] - 1, 1)


def sample_cross(DR: torch.Tensor, DX: torch.Tensor) -> torch.Tensor:
    """Sample cross-covariance ``[b, m, M, q]`` from deviations ``DR: [K, M, m]`` at fixed points
    and ``DX: [K, b, q, m]`` at batches (divisor K − 1)."""
    return torch.einsum("kam,kbqm->bmaq", DR.to(DX), DX) / max(DX.shape[0] - 1, 1)


def ensemble_transform(D_P: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The symmetric square-root ensemble transform ``T: [m, K, K]`` of an ensemble Kalman update
    for observations at p pending points.

    With deviations ``D_P: [K, p, m]`` of the K draws at the pending points and the noise
    variance ``noise: [m]``, ``T_m = (I_K + D_P D_Pᵀ / ((K − 1) σ²_m))^{-1/2}`` (per output m,
    through ``eigh``; the eigenvalues are at least one, so the inverse square root is safe).
    Draws ``mean + T_m D`` then have the sample covariance ``Σ − Σ_xP (Σ_PP + σ² I)⁻¹ Σ_Px``
    (Woodbury) and the same mean, because ``T 1 = 1`` when the deviations sum to zero
    (Bishop, Etherton & Majumdar 2001, "Adaptive Sampling with the Ensemble Transform Kalman
    Filter"; Tippett, Anderson, Bishop, Hamill & Whitaker 2003, "Ensemble Square Root Filters",
    whose symmetric choice of the square root keeps the update unbiased).
    """
    K, m = D_P.shape[0], D_P.shape[-1]
    A = D_P.permute(2, 0, 1)  # [m, K, p]
    eye = torch.eye(K, dtype=A.dtype, device=A.device)
    S = eye + A @ A.transpose(-1, -2) / ((max(K - 1, 1)) * noise.to(A).reshape(m, 1, 1))
    evals, V = torch.linalg.eigh(S)
    return (V * evals.clamp_min(1.0).rsqrt().unsqueeze(-2)) @ V.transpose(-1, -2)


class ConditionedSampleSurrogate(PendingConditioned):
    """A regression sample surrogate conditioned on pending points P (their labels unknown), by a
    deterministic ensemble-transform (square-root) Kalman update of its K draws.

    With draws ``f_k`` of the base surrogate at any X, their mean ``f̄`` and deviations
    ``D = f − f̄`` (over K), the conditioned draws are ``f̄ + T_m D`` with the K × K transform
    ``T_m = (I_K + D_P D_Pᵀ / ((K − 1) σ²_m))^{-1/2}`` of the deviations at P
    (:func:`ensemble_transform`; Bishop, Etherton & Majumdar 2001; Tippett et al. 2003). This is
    the exact Gaussian update of the sample moments for labels at P taken at their expected
    values: the mean is unchanged and the sample covariance becomes
    ``Σ − Σ_xP (Σ_PP + σ² I)⁻¹ Σ_Px``. Because T is one fixed matrix, the draws stay joint
    across points, chunks and calls (pool scoring, EPIG's targets, box optimisation through
    :meth:`joint_samples`).

    Args:
        base: a fitted regression :class:`SampleSurrogate`.
        X_pending: ``[p, d]`` pending points.
    """

    posterior_kind = "samples"

    def __init__(self, base: SampleSurrogate, X_pending: torch.Tensor):
        super().__init__(base, X_pending)
        self.task = base.task
        with torch.no_grad():
            D_P = _deviations(base._draws(X_pending.to(torch.float64)))  # [K, p, m]
            self._T = ensemble_transform(D_P, base.noise_variance.to(D_P))  # [m, K, K]

    def __repr__(self) -> str:
        return f"ConditionedSampleSurrogate({self.base!r}, pending={self.P.shape[0]})"

    @property
    def num_samples(self) -> int:
        """K, the number of draws (those of the base surrogate)."""
        return self.base.num_samples

    def _apply(self, draws: torch.Tensor) -> torch.Tensor:
        """Conditioned draws ``f̄ + T D`` from base draws ``[K, *lead, m]`` (same shape and dtype)."""
        mean = draws.mean(0, keepdim=True)
        D = draws - mean
        K, m = D.shape[0], D.shape[-1]
        moved = torch.einsum("mkj,jnm->knm", self._T.to(D), D.reshape(K, -1, m))
        return mean + moved.reshape(D.shape)

    def posterior(self, X: Any, chunk_size: int | None = None) -> SamplePosterior:
        """Conditioned draws ``[K, N, m]`` (units of y) at ``X: [N, d]``, computed in chunks of rows."""
        X = self.base._check_points(X)
        step = chunk_size or rows_per_chunk(self.base.posterior_bytes_per_row)
        out = None
        with torch.no_grad():
            for s in range(0, X.shape[0], step):
                f = self._apply(self.base.posterior(X[s:s + step], chunk_size=chunk_size).samples)
                if out is None:  # preallocated: see ExactGaussianAlgebra.marginals
                    out = f.new_empty(f.shape[0], X.shape[0], f.shape[-1])
                out[:, s:s + f.shape[1]] = f
        return SamplePosterior(out, "regression", noise_variance=self.noise_variance)

    def predict(self, X: Any) -> torch.Tensor:
        """Mean of f ``[N, m]`` (that of the base: conditioning on expected labels keeps it)."""
        return self.posterior(X).mean

    def joint_samples(self, X: torch.Tensor) -> torch.Tensor:
        """Conditioned draws ``[K, b, q, m]`` on ``X: [b, q, d]``, differentiable in X (the fixed
        base samples of the base surrogate, moved by the fixed transform)."""
        return self._apply(self.base.joint_samples(X))

    def joint_posterior(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Moment-matched Gaussian (sample mean ``[b, q, m]``, covariance ``[b, m, q, q]``) of the
        conditioned draws on ``X: [b, q, d]``, differentiable in X."""
        return sample_moments(self.joint_samples(X))

    def reference_cross(self, R: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """Sample cross-covariance ``[b, m, M, q]`` of the conditioned draws between ``R: [M, d]``
        and ``X: [b, q, d]``, differentiable in X."""
        with torch.no_grad():
            DR = _deviations(self._apply(self.base.joint_samples(R.to(X))))
        return sample_cross(DR, _deviations(self.joint_samples(X)))

    def covariance(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """Sample cross-covariance ``[m, Na, Nb]`` of the conditioned draws."""
        A, B = self.base._check_points(A, "A"), self.base._check_points(B, "B")
        with torch.no_grad():
            DA = _deviations(self._apply(self.base._draws(A)))
            DB = _deviations(self._apply(self.base._draws(B.to(A))))
        return torch.einsum("kam,kbm->mab", DA, DB) / max(DA.shape[0] - 1, 1)

    def condition_on(self, X_pending: Any) -> "ConditionedSampleSurrogate":
        """Conditioned on the pending points so far and ``X_pending: [p', d]`` (one transform of
        the base draws for all of them)."""
        Xp = self.base._check_points(X_pending, "X_pending")
        return ConditionedSampleSurrogate(self.base, torch.cat([self.P, Xp.to(self.P)]))


# -- an MLP regressor trained as bmdal_reg trains its networks, with a neural-linear posterior --------
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh}
POSTERIOR_KERNELS = ("ll", "grad")


def soft_clip(U: torch.Tensor) -> torch.Tensor:
    """``5 tanh(U / 5)``: standardised inputs softly clipped to (−5, 5), as bmdal_reg preprocesses
    its tabular data (Holzmüller et al. 2023, §6.1), so outliers cannot dominate a ReLU network."""
    return 5.0 * torch.tanh(0.2 * U)


def evidence_fit(evals: torch.Tensor, z2: torch.Tensor, resid: torch.Tensor, n: int,
                 grid: int = 400) -> tuple[torch.Tensor, torch.Tensor]:
    """Prior scale s² and noise σ² of Bayesian linear regression ``y = Φw + ε``, ``w ~ N(0, s² I)``,
    ``ε ~ N(0, σ² I)``, that maximise the evidence ``log N(y; 0, s² ΦΦᵀ + σ² I)``.

    The data enter through the eigenvalues ``evals: [r]`` of ``ΦᵀΦ`` (or ``ΦΦᵀ``), the squared
    projections ``z2: [r, m]`` of y on the matching eigenvectors of ``ΦΦᵀ``, the energy
    ``resid: [m]`` of y outside them and n. With the ratio λ = σ²/s² fixed, the evidence is
    ``−½ [n log s² + Σ_i log(e_i + λ) + (n − r) log λ + Q(λ)/s²] + const``,
    ``Q(λ) = Σ_i z_i²/(e_i + λ) + resid/λ``, maximised in closed form by ``s² = Q(λ)/n``; the
    profile in log λ is then searched on a grid over ``[1e-8, 1e4] · mean(e)`` and refined by
    golden-section search around the best grid point (MacKay 1992, "Bayesian Interpolation").

    Returns ``s2, sigma2: [m]``.
    """
    evals = evals.clamp_min(0.0)
    r = evals.shape[0]
    scale = float(evals.mean()) if r and float(evals.mean()) > 0 else 1.0

    def profile(loglam: torch.Tensor) -> torch.Tensor:  # [G] -> [G, m] negative log evidence (x2)
        lam = loglam.exp().unsqueeze(-1)  # [G, 1]
        c = evals.unsqueeze(0) + lam  # [G, r]
        Q = (z2.unsqueeze(0) / c.unsqueeze(-1)).sum(1) + resid / lam  # [G, m]
        Q = Q.clamp_min(1e-300)
        return n * torch.log(Q / n) + torch.log(c).sum(1, keepdim=True) + (n - r) * lam.log()

    lo, hi = math.log(1e-8 * scale), math.log(1e4 * scale)
    xs = torch.linspace(lo, hi, grid, dtype=torch.float64)
    vals = profile(xs)  # [G, m]
    best = vals.argmin(0)  # [m]
    step = (hi - lo) / (grid - 1)
    a = (xs[best] - step).clamp(lo, hi)
    b = (xs[best] + step).clamp(lo, hi)
    g = (math.sqrt(5) - 1) / 2
    for _ in range(40):  # golden section, per output (the profile is smooth and unimodal near its grid optimum)
        c1, c2 = b - g * (b - a), a + g * (b - a)
        f1 = profile(c1).diagonal() if c1.numel() > 1 else profile(c1)[:, 0]
        f2 = profile(c2).diagonal() if c2.numel() > 1 else profile(c2)[:, 0]
        left = f1 < f2
        b = torch.where(left, c2, b)
        a = torch.where(left, a, c1)
    loglam = (a + b) / 2
    lam = loglam.exp()
    Q = (z2 / (evals.unsqueeze(-1) + lam)).sum(0) + resid / lam
    s2 = Q.clamp_min(1e-300) / n
    return s2, s2 * lam


class MLPRegressor(Surrogate):
    """A multilayer perceptron trained as in Holzmüller et al. (2023, "A Framework and Benchmark
    for Deep Batch Active Learning for Regression", JMLR, §6.1; bmdal_reg's ``fit_model`` and
    ``create_tabular_model``), with a Gaussian "neural linear" posterior.

    **Network and training** (bmdal_reg's benchmark setting, ``get_relu_configs``): two hidden
    layers of 512, ReLU, :class:`~bayesal.kernels.network.NTKLinear` layers (NTK
    parametrisation, σ_w = σ_b = 0.2, weights N(0, 1), biases zero); inputs standardised
    (or scaled to [−1, 1] by ``bounds``) and soft-clipped by :func:`soft_clip`, targets
    standardised; mean squared error, Adam (bmdal_reg's default optimiser) with learning rate
    0.375 decayed linearly to zero over all steps, 256 epochs of mini-batches of 256 (the last,
    partial batch dropped); the parameters of the epoch with the lowest held-out RMSE are kept
    (bmdal_reg validates on a separate set; here a ``holdout`` fraction of the labels, as in its
    ``NNRegressor``'s ``valid_fraction``). Deterministic given ``seed``.

    **Posterior** (Gaussian): mean = the network's prediction; covariance = ``s² k_post`` where k
    is the network's kernel (``posterior_kernel``: ``"ll"`` last-layer features, or ``"grad"``
    sketched gradients with ``n_features`` and ``seed``) and k_post its Bayesian-linear-regression
    posterior on all n training features Φ: with λ = σ²/s²,
    ``Σ(a, b) = σ² φ(a)ᵀ (ΦᵀΦ + λ I)⁻¹ φ(b) = s² [k(a,b) − k(a,T)(K_TT + λI)⁻¹ k(T,b)]``.
    s² and the noise σ² are fitted per output by maximising the evidence of the standardised
    training targets under ``y = Φw + ε``, ``w ~ N(0, s² I)`` (:func:`evidence_fit`: closed form in
    s², 1-D search in λ) — the "neural linear" model (Snoek et al. 2015, "Scalable Bayesian
    Optimization Using Deep Neural Networks"; Riquelme, Tucker & Snoek 2018). With m > 1 outputs
    the features are shared (``ll``: the penultimate layer; ``grad``: gradient of the summed
    outputs), s² and σ² are per output.

    Args:
        hidden: widths of the hidden layers.
        activation: ``"relu"`` (bmdal_reg's benchmark), ``"silu"`` (its later ``NNRegressor``
            default, with weight_gain 0.5, bias_gain 1.0, lr 0.15), ``"gelu"`` or ``"tanh"``.
        weight_gain, bias_gain: σ_w, σ_b of the NTK parametrisation.
        lr: peak learning rate of Adam (linear decay to zero).
        epochs, batch_size: training length and mini-batch size.
        holdout: fraction of the labels held out for choosing the best epoch (0: keep the last);
            skipped when it would hold out fewer than ``min_holdout`` labels.
        posterior_kernel: ``"ll"`` or ``"grad"``.
        n_features: sketch size of the ``"grad"`` posterior kernel.
        seed: seed of the initialisation, split, mini-batches and sketches.
        dtype, device: of the network (the posterior algebra runs in float64).
    """

    posterior_kind = "gaussian"

    def __init__(self, hidden: Sequence[int] = (512, 512), activation: str = "relu", weight_gain: float = 0.2,
                 bias_gain: float = 0.2, lr: float = 0.375, epochs: int = 256, batch_size: int = 256,
                 holdout: float = 0.1, min_holdout: int = 5, posterior_kernel: str = "ll", n_features: int = 512,
                 seed: int = 0, dtype: torch.dtype = torch.float32, device: str | torch.device | None = None):
        from ..errors import UnknownName
        from ..validation import MAX_USER_SEED, check_seed

        if isinstance(hidden, (Integral, str)) or not all(isinstance(h, Integral) and not isinstance(h, bool) and h > 0
                                                          for h in hidden):
            raise InvalidInput("hidden", "a sequence of positive layer widths", repr(hidden))
        if activation not in ACTIVATIONS:
            raise UnknownName("activation", str(activation), list(ACTIVATIONS))
        if posterior_kernel not in POSTERIOR_KERNELS:
            raise UnknownName("posterior_kernel", str(posterior_kernel), list(POSTERIOR_KERNELS))
        for name, value in (("weight_gain", weight_gain), ("bias_gain", bias_gain), ("lr", lr)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
                raise InvalidInput(name, "a finite, non-negative number", repr(value))
        if not (isinstance(holdout, (int, float)) and 0 <= holdout < 0.5):
            raise InvalidInput("holdout", "a fraction in [0, 0.5)", repr(holdout))
        if dtype not in (torch.float32, torch.float64):
            raise InvalidInput("dtype", "torch.float32 or torch.float64", repr(dtype))
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self.weight_gain, self.bias_gain, self.lr = float(weight_gain), float(bias_gain), float(lr)
        self.epochs = check_count(epochs, "epochs")
        self.batch_size = check_count(batch_size, "batch_size")
        self.holdout, self.min_holdout = float(holdout), check_count(min_holdout, "min_holdout", 0)
        self.posterior_kernel = posterior_kernel
        self.n_features = check_count(n_features, "n_features")
        self.seed = check_seed(seed, allow_none=False, maximum=MAX_USER_SEED)
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else None
        self.net: nn.Sequential | None = None
        self._fitted, self._n_train = False, 0
        self.history: list[dict[str, float]] = []

    def __repr__(self) -> str:
        return (f"MLPRegressor(hidden={self.hidden}, activation={self.activation!r}, "
                f"posterior_kernel={self.posterior_kernel!r}, n_train={self._n_train})")

    # -- network ------------------------------------------------------------------------------------
    def _build(self, d: int, m: int, gen: torch.Generator) -> nn.Sequential:
        layers: list[nn.Module] = []
        width = d
        for h in self.hidden:
            layers += [NTKLinear(width, h, self.weight_gain, self.bias_gain, generator=gen), ACTIVATIONS[self.activation]()]
            width = h
        layers.append(NTKLinear(width, m, self.weight_gain, self.bias_gain, generator=gen))
        return nn.Sequential(*layers)

    def _transform(self, X: torch.Tensor) -> torch.Tensor:
        """Preprocessed inputs ``[n, d]``: shifted, scaled and soft-clipped (:func:`soft_clip`)."""
        U = (X.to(self._device, torch.float64) - self._shift) / self._scale
        return soft_clip(U.nan_to_num(0.0, 1e300, -1e300)).to(self.dtype)

    def preprocess(self, X: Any) -> torch.Tensor:
        """The network's inputs ``[n, d]`` for ``X: [n, d]`` (user units): standardised as in
        training and soft-clipped, in the network's dtype; ``self.net(preprocess(X))`` is the
        standardised prediction."""
        return self._transform(self._check_points(X))

    def _check_points(self, X: Any, name: str = "X") -> torch.Tensor:
        if not self._fitted:
            raise NotFitted("MLPRegressor has no data yet: call fit(X, y) first")
        return check_X(X, name, dim=self._dim)

    def fit(self, X: Any, y: Any, bounds: Any = None) -> "MLPRegressor":
        """Train on ``X: [n, d]``, ``y: [n]`` or ``[n, m]``, then fit the posterior (s², σ²).

        ``bounds: [2, d]`` scales the inputs to [−1, 1] (else they are standardised with the
        training mean and standard deviation) before the soft clipping.
        """
        from ..validation import check_bounds

        X = check_X(X, "X")
        n, d = X.shape
        y = check_y(y, "y", n=n)
        m = y.shape[-1]
        device = self.device or X.device
        self._device, self._dim, self.num_outputs = device, d, m
        # the input scaling is computed and applied in float64: soft clipping then bounds every
        # input, so a float32 network takes inputs of any finite magnitude
        if bounds is not None:
            b = check_bounds(bounds, d, "bounds", like=X).to(device, torch.float64)
            span = torch.where(b[1] > b[0], b[1] - b[0], torch.ones_like(b[0]))
            self._shift, self._scale = b[0] / 2 + b[1] / 2, span / 2
        else:
            Xd = X.to(device, torch.float64)
            peak = Xd.abs().max().clamp_min(1e-300)  # std of X / peak cannot overflow
            sd = (Xd / peak).std(0) * peak if n > 1 else torch.ones(d, dtype=torch.float64, device=device)
            self._shift = (Xd / peak).mean(0) * peak
            self._scale = torch.where((sd > 0) & torch.isfinite(sd), sd, torch.ones_like(sd))
        yd = y.to(device, torch.float64)
        self.y_mean = yd.mean(0)
        std = yd.std(0) if n > 1 else torch.ones(m, dtype=torch.float64, device=device)
        self.y_std = torch.where(std > 0, std, torch.ones_like(std))
        T = ((yd - self.y_mean) / self.y_std).to(self.dtype)
        U = self._transform(X)
        if not bool(torch.isfinite(U).all()):
            raise InvalidInput("X", "inputs whose scaling by the training data is finite", "an overflow")
        gen = torch.Generator().manual_seed(self.seed)
        perm = torch.randperm(n, generator=gen)
        n_hold = int(self.holdout * n) if self.holdout > 0 else 0
        if n_hold < max(self.min_holdout, 1) or n - n_hold < 1:
            n_hold = 0
        hold, train = perm[:n_hold].to(device), perm[n_hold:].to(device)
        net = self._build(d, m, gen).to(device, self.dtype)
        self._train(net, U, T, train, hold, gen)
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        self.net = net
        self._n_train, self._fitted = n, True
        self._fit_posterior(X, T.to(torch.float64))
        return self

    def _train(self, net: nn.Module, U, T, train, hold, gen) -> None:
        """bmdal_reg's ``fit_model``: Adam, linear learning-rate decay per step, MSE, best held-out epoch."""
        n_t = train.numel()
        bs = min(self.batch_size, n_t)
        n_batches = n_t // bs  # the last partial batch is dropped, as bmdal_reg does
        n_steps = self.epochs * n_batches
        optim = torch.optim.Adam(net.parameters(), lr=self.lr)
        best, best_state = math.inf, copy.deepcopy(net.state_dict())
        step = 0
        self.history = []
        for epoch in range(self.epochs):
            net.train()
            order = train[torch.randperm(n_t, generator=gen).to(train.device)]
            total = 0.0
            for s in range(n_batches):
                idx = order[s * bs:(s + 1) * bs]
                loss = (net(U[idx]) - T[idx]).pow(2).mean()
                optim.zero_grad(set_to_none=True)
                loss.backward()
                for group in optim.param_groups:
                    group["lr"] = self.lr * (1.0 - step / n_steps)
                optim.step()
                step += 1
                total += float(loss.detach())
            record = {"epoch": epoch, "train_loss": total / max(n_batches, 1), "lr": optim.param_groups[0]["lr"]}
            if hold.numel():
                net.eval()
                with torch.no_grad():
                    rmse = float((net(U[hold]) - T[hold]).pow(2).mean().sqrt())
                record["holdout_rmse"] = rmse
                if rmse < best:
                    best, best_state = rmse, copy.deepcopy(net.state_dict())
            self.history.append(record)
        if hold.numel():
            net.load_state_dict(best_state)

    # -- the neural-linear posterior ------------------------------------------------------------------
    def _posterior_features(self, X: torch.Tensor, differentiable: bool = False) -> torch.Tensor:
        """Features ``[N, F]`` (float64) of the posterior kernel at ``X: [N, d]`` (user units)."""
        if self.posterior_kernel == "ll":
            # the last layer's scaled input [σ_w a, σ_b] (the ll features of any one output)
            body, last = self.net[:-1], self.net[-1]
            a = body(self._transform(X)) * last.weight_factor
            phi = torch.cat([a, torch.full_like(a[:, :1], last.bias_factor)], -1)
            return phi.to(torch.float64) if differentiable else phi.detach().to(torch.float64)
        if differentiable:
            raise Unsupported("MLPRegressor(posterior_kernel='grad')", "a differentiable posterior",
                              "box optimisation (use posterior_kernel='ll')")
        return self._grad_map(X).to(torch.float64)

    def _fit_posterior(self, X: torch.Tensor, T: torch.Tensor) -> None:
        if self.posterior_kernel == "grad":
            self._grad_map = self.feature_map("grad", n_features=self.n_features, seed=self.seed)
        Phi = self._posterior_features(X)  # [n, F]
        n, Fd = Phi.shape
        if n <= Fd:
            evals, U = torch.linalg.eigh(Phi @ Phi.T)
            z = U.T @ T
            resid = torch.zeros(T.shape[-1], dtype=torch.float64, device=T.device)
        else:
            evals, V = torch.linalg.eigh(Phi.T @ Phi)
            keep = evals > evals.max().clamp_min(1e-300) * 1e-12
            evals, V = evals[keep], V[:, keep]
            z = (Phi @ V).T @ T / evals.sqrt().unsqueeze(-1)
            resid = (T.pow(2).sum(0) - z.pow(2).sum(0)).clamp_min(0.0)
        s2, sigma2 = evidence_fit(evals.cpu(), z.pow(2).cpu(), resid.cpu(), n)
        s2, sigma2 = s2.to(Phi), sigma2.to(Phi)
        # floors for degenerate evidence (constant labels, one or two points), where its maximum
        # is at s² = 0 or σ² = 0 and every variance would vanish: a prior standard deviation of
        # f of at least 1 % of y's spread at the training points, a noise of at least 0.1 %
        mean_k = float(Phi.pow(2).sum(-1).mean().clamp_min(1e-300))
        s2 = s2.clamp_min(1e-4 / mean_k)
        sigma2 = sigma2.clamp_min(1e-6)
        lam = sigma2 / s2  # [m]
        A = Phi.T @ Phi
        eye = torch.eye(Fd, dtype=torch.float64, device=Phi.device)
        self._L = torch.linalg.cholesky(A.unsqueeze(0) + lam.reshape(-1, 1, 1) * eye)  # [m, F, F]
        self.prior_scale, self._sigma2 = s2, sigma2  # standardised units

    def _whitened(self, X: torch.Tensor, differentiable: bool = False) -> torch.Tensor:
        """``σ L⁻¹ φ(X)ᵀ``: ``[m, F, N]``, so that ``Σ(A, B) = W(A)ᵀ W(B)`` (units of y²)."""
        phi = self._posterior_features(X, differentiable)  # [N, F]
        scale = (self._sigma2.sqrt() * self.y_std.to(phi)).reshape(-1, 1, 1)
        W = torch.linalg.solve_triangular(self._L, phi.T.unsqueeze(0).expand(self._L.shape[0], -1, -1), upper=False)
        return W * scale

    def _mean(self, X: torch.Tensor) -> torch.Tensor:
        return self.net(self._transform(X)).to(torch.float64) * self.y_std + self.y_mean

    @property
    def noise_variance(self) -> torch.Tensor:
        """``[m]`` fitted observation-noise variance σ² in the units of y² (evidence maximisation)."""
        if not self._fitted:
            raise NotFitted("MLPRegressor has no data yet: call fit(X, y) first")
        return self._sigma2 * self.y_std.pow(2)

    @property
    def num_train(self) -> int:
        """Number of training labels of the last fit (0 before fitting)."""
        return self._n_train

    def parameter_like(self) -> torch.Tensor:
        """A float64 tensor on the network's device (the posterior algebra's dtype)."""
        device = self._device or self.device or torch.device("cpu")
        return torch.empty(0, dtype=torch.float64, device=device)

    @property
    def posterior_bytes_per_row(self) -> float:
        """Bytes one pool row costs while scored: the network's activations and the features."""
        return 8.0 * (3 * max(self.hidden) + 3 * (self._L.shape[-1] if self._fitted else 513)) * self.num_outputs

    def posterior(self, X: Any, chunk_size: int | None = None) -> GaussianPosterior:
        """Gaussian posterior of f at ``X: [N, d]`` (float64, units of y), computed in chunks."""
        X = self._check_points(X)
        step = chunk_size or rows_per_chunk(self.posterior_bytes_per_row)
        means, variances = [], []
        with torch.no_grad():
            for s in range(0, X.shape[0], step):
                Xc = X[s:s + step]
                means.append(self._mean(Xc))
                variances.append(self._whitened(Xc).pow(2).sum(-2).T)
        mean, var = torch.cat(means), torch.cat(variances)
        return GaussianPosterior(mean.to(X.device), var.to(X.device), noise_variance=self.noise_variance,
                                 covariance_fn=lambda idx: self.covariance(X[idx], X[idx]))

    def predict(self, X: Any) -> torch.Tensor:
        """The network's prediction ``[N, m]`` (units of y)."""
        X = self._check_points(X)
        with torch.no_grad():
            return self._mean(X)

    def covariance(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """Posterior cross-covariance ``[m, Na, Nb]`` of f (units of y²)."""
        A, B = self._check_points(A, "A"), self._check_points(B, "B")
        with torch.no_grad():
            return self._whitened(A).transpose(-1, -2) @ self._whitened(B)

    def covariance_columns(self, X: torch.Tensor):
        """Columns ``j -> Σ(X, X[j]) [m, N]``, from ``W(X): [m, F, N]`` computed once."""
        X = self._check_points(X)
        with torch.no_grad():
            W = torch.cat([self._whitened(X[s:s + 65536]) for s in range(0, X.shape[0], 65536)], -1)
        return lambda j: torch.einsum("mf,mfn->mn", W[:, :, j], W)

    def joint_posterior(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable mean ``[b, q, m]`` and covariance ``[b, m, q, q]`` of f on ``X: [b, q, d]``
        (``posterior_kernel="ll"`` only: the last-layer features are differentiable in X)."""
        if not self._fitted:
            raise NotFitted("MLPRegressor has no data yet: call fit(X, y) first")
        b, q, d = X.shape
        flat = X.reshape(-1, d)
        mean = self._mean(flat).reshape(b, q, -1).to(X.dtype)
        W = self._whitened(flat, differentiable=True)  # [m, F, b·q]
        W = W.reshape(W.shape[0], W.shape[1], b, q).permute(2, 0, 1, 3)  # [b, m, F, q]
        return mean, (W.transpose(-1, -2) @ W).to(X.dtype)

    def condition_on(self, X_pending: Any) -> Surrogate:
        """A copy whose posterior accounts for pending points ``[p, d]`` (exact Gaussian update)."""
        from .base import ConditionedSurrogate

        return ConditionedSurrogate(self, self._check_points(X_pending, "X_pending"))

    # -- feature maps ---------------------------------------------------------------------------------
    @property
    def feature_kinds(self) -> tuple[str, ...]:
        return ("ll", "grad")

    def feature_map(self, kind: str, n_features: int | None = None, seed: int | None = None):
        """A feature map ``X: [N, d] -> [N, F]`` (user units) of the trained network: ``"ll"`` or
        ``"grad"`` (see :mod:`bayesal.kernels.network`)."""
        if not self._fitted:
            raise NotFitted("MLPRegressor has no data yet: call fit(X, y) first")
        fmap = network_feature_map(NetworkFunction(self.net), kind, n_features, seed, "regression", "MLPRegressor")
        return PreprocessedFeatures(fmap, self._transform)
