"""NUTS over a GP's hyperparameters, compiled once per data size bucket and reused across fits.

NumPyro's ``MCMC`` traces and compiles its sampling loop again at every ``run`` (measured here:
6–8 s of a 10 s fit at n = 100, against about 1 s of sampling), and BoTorch's models close over
their training data, so a campaign that refits after every batch paid for a compilation at
every step. This module keeps one compiled sampler per (prior, input dimension, padded size,
NUTS settings) for the life of the process:

* the training data are **arguments** of the compiled function, not constants, padded to a size
  bucket (a multiple of 32 rows). Padded rows are masked out of the likelihood exactly: their
  kernel block is the identity, their target and mean 0, so the log-density differs from the
  unpadded one by the constant ``-p/2 log 2π`` and NUTS samples the same posterior;
* the priors are BoTorch's (``MaternPyroModel``, ``SaasPyroModel``): only their likelihood term
  is replaced by the masked one;
* the chains' warm-up and draws run as one ``lax.scan`` of NumPyro's NUTS transition
  (``numpyro.infer.hmc.hmc``, Hoffman & Gelman 2014, with windowed step-size and dense mass-matrix
  adaptation), one chain after another through the same compiled function;
* a warm start passes each chain's last position, step size and inverse mass matrix of the
  previous fit, so a short re-adaptation suffices.
"""

from __future__ import annotations

import math
import threading
from typing import Any

__all__ = ["PAD_ROWS", "padded_size", "Sampler", "sampler", "draws_covariance"]

#: training rows are padded up to a multiple of this (one compilation per bucket)
PAD_ROWS = 32


def padded_size(n: int) -> int:
    """The bucket of ``n`` training rows: the next multiple of :data:`PAD_ROWS`."""
    return PAD_ROWS * max(1, math.ceil(n / PAD_ROWS))


def _masked_model_class(base):
    """``base`` (a BoTorch pyro model class) with its training data taken as arguments and its
    Gaussian likelihood restricted to the rows where ``mask`` is 1."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    class Masked(base):
        def sample_observations(self, mean, K_noiseless, noise):
            m = self._mask
            n = m.shape[0]
            K = K_noiseless * jnp.outer(m, m) + jnp.diag(jnp.where(m > 0, noise, 1.0))
            loc = jnp.broadcast_to(jnp.reshape(mean, (-1,)), (n,)) * m
            numpyro.sample("Y", dist.MultivariateNormal(loc=loc, covariance_matrix=K),
                           obs=jnp.squeeze(self.train_Y_jax, -1) * m)

        def model(self, X, Y, mask):
            self.train_X_jax, self.train_Y_jax, self._mask = X, Y, mask
            self.sample()

    return Masked


class Sampler:
    """One compiled NUTS sampler for a fixed (prior, dimension, padded size, settings)."""

    def __init__(self, prior: str, dim: int, pad: int, warmup: int, num_samples: int, max_tree_depth: int,
                 adapt_mass: bool = True):
        import jax
        import torch
        from botorch.models.fully_bayesian import MaternPyroModel, SaasPyroModel
        from numpyro.infer.hmc import hmc
        from numpyro.infer.util import initialize_model

        self.dim, self.pad, self.warmup, self.num_samples = dim, pad, warmup, num_samples
        self.max_tree_depth, self.adapt_mass = max_tree_depth, adapt_mass
        self.pyro_model = _masked_model_class(SaasPyroModel if prior == "saas" else MaternPyroModel)()
        self.pyro_model.set_inputs(torch.zeros(2, dim, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64))
        X, Y, mask = self._placeholder()
        info = initialize_model(jax.random.PRNGKey(0), self.pyro_model.model, model_args=(X, Y, mask),
                                dynamic_args=True)
        # one NUTS kernel per sampler: its init_kernel sets the warm-up schedule that the compiled
        # transition closes over, so warm-up length and mass adaptation are part of the cache key
        self.init_kernel, sample_kernel = hmc(potential_fn_gen=info.potential_fn, algo="NUTS")
        length = warmup + num_samples

        def run(state, X, Y, mask):
            def body(state, _):
                state = sample_kernel(state, model_args=(X, Y, mask))
                return state, (state.z, state.diverging, state.num_steps)

            return jax.lax.scan(body, state, None, length=length)

        self._run = jax.jit(run)
        self._constrain = jax.jit(lambda z, X, Y, mask: jax.vmap(info.postprocess_fn(X, Y, mask))(z))
        self.lock = threading.Lock()

    def _placeholder(self):
        import jax.numpy as jnp

        return (jnp.zeros((self.pad, self.dim)), jnp.zeros((self.pad, 1)), jnp.zeros(self.pad).at[:2].set(1.0))

    def data(self, X, Y):
        """``(X_pad [pad, d], Y_pad [pad, 1], mask [pad])`` from torch ``X [n, d]``, ``Y [n, 1]``."""
        import jax.numpy as jnp

        n = X.shape[0]
        Xp = jnp.zeros((self.pad, self.dim)).at[:n].set(jnp.asarray(X.detach().cpu().numpy()))
        Yp = jnp.zeros((self.pad, 1)).at[:n].set(jnp.asarray(Y.detach().cpu().numpy()))
        return Xp, Yp, jnp.zeros(self.pad).at[:n].set(1.0)

    def initial_position(self, key, args):
        """The prior median in unconstrained space (NumPyro's ``init_to_median``)."""
        from numpyro.infer import init_to_median
        from numpyro.infer.util import initialize_model

        info = initialize_model(key, self.pyro_model.model, model_args=args, init_strategy=init_to_median)
        return info.param_info.z

    def chain(self, key, args, z0, step_size: float = 1.0, inverse_mass_matrix=None):
        """One chain: warm-up then draws. Returns ``(z draws {site: [S, ...]}, diverging [S],
        num_steps [S], final state)``."""
        import jax

        state = self.init_kernel(z0, num_warmup=self.warmup, step_size=step_size,
                                 inverse_mass_matrix=inverse_mass_matrix, adapt_step_size=True,
                                 adapt_mass_matrix=self.adapt_mass, dense_mass=True, max_tree_depth=self.max_tree_depth,
                                 model_args=args, rng_key=key)
        final, (zs, diverging, steps) = self._run(state, *args)
        keep = slice(self.warmup, None)
        zs = jax.tree_util.tree_map(lambda v: v[keep], zs)
        return zs, diverging[keep], steps[keep], final

    def constrain(self, zs, args) -> dict[str, Any]:
        """Sites in their constrained space (and the model's deterministic sites) for draws ``zs``."""
        return self._constrain(zs, *args)


_SAMPLERS: dict[tuple, Sampler] = {}
_SAMPLERS_LOCK = threading.Lock()


def sampler(prior: str, dim: int, n: int, warmup: int, num_samples: int, max_tree_depth: int,
            adapt_mass: bool = True) -> Sampler:
    """The process's compiled sampler for these settings and ``n`` training rows (built once).
    ``adapt_mass=False``: the inverse mass matrix given to :meth:`Sampler.chain` is kept, only
    the step size is adapted (a warm start)."""
    key = (prior, dim, padded_size(n), warmup, num_samples, max_tree_depth, adapt_mass)
    with _SAMPLERS_LOCK:
        if key not in _SAMPLERS:
            _SAMPLERS[key] = Sampler(prior, dim, padded_size(n), warmup, num_samples, max_tree_depth, adapt_mass)
        return _SAMPLERS[key]


def draws_covariance(positions: list[dict[str, Any]]):
    """The covariance ``[k, k]`` of unconstrained draws (every chain's, ``{site: [S, ...]}`` each)
    flattened as NUTS's dense mass matrix flattens a position (``ravel_pytree``), shrunk towards a
    small diagonal as NumPyro's own adaptation does (Stan's regularisation)."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    flat = jnp.concatenate([jax.vmap(lambda z: ravel_pytree(z)[0])(p) for p in positions])
    n, k = flat.shape
    cov = jnp.cov(flat, rowvar=False).reshape(k, k)
    return (n / (n + 5.0)) * cov + 1e-3 * (5.0 / (n + 5.0)) * jnp.eye(k)
