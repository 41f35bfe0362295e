"""Turning scores into a batch (DESIGN.md, "Selector").

* :mod:`~bayesal.selection.scoring`: THE pool scoring function, chunked over any pool;
* :mod:`~bayesal.selection.topk`: the q best single-point scores;
* :mod:`~bayesal.selection.greedy`: THE greedy engine (incremental pivoted Cholesky with
  pluggable scorers), used by pool greedy, distributed greedy and multi-fidelity batches;
* :mod:`~bayesal.selection.multifidelity`: (point, fidelity) batches on the greedy engine,
  with per-candidate noise and costs;
* :mod:`~bayesal.selection.kernel_batch`: LCMD, BAIT, k-means++, MaxDist, Frank-Wolfe, BADGE on
  any kernel of :mod:`bayesal.kernels` (the greedy engine runs MaxDet);
* :mod:`~bayesal.selection.stochastic`: batches sampled from the scores (``StochasticBatch``);
* :mod:`~bayesal.selection.continuous`: box optimisation through BoTorch's ``optimize_acqf``;
* :mod:`~bayesal.selection.distributed`: pools sharded on a Dask cluster, same batches;
* :mod:`~bayesal.selection.cold_start`: the first labels without a model (Sobol, maximin,
  k-center, k-means++, TypiClust, ProbCover; :func:`initial_design`);
* :func:`select` picks the right one.
"""

from .auto import check_selector, select, uses_greedy
from .base import SELECTORS, Selection, make_generator, noise_of, prepare
from .cold_start import INITIAL_DESIGNS, initial_design
from .continuous import as_botorch_acquisition, select_continuous
from .distributed import GreedyShard, distributable, distributed_select
from .greedy import GreedyConditioning, greedy_batch, select_greedy
from .kernel_batch import KERNEL_METHODS, KernelBatch, kernel_batch_indices, select_kernel_batch
from .multifidelity import fidelity_candidates, select_augmented, select_multifidelity
from .scoring import score_points
from .stochastic import STOCHASTIC_MODES, StochasticBatch, gumbel_top_k, sampling_log_weights, select_stochastic
from .topk import select_topk, topk_of

__all__ = ["Selection", "SELECTORS", "select", "select_topk", "select_greedy", "select_stochastic",
           "select_continuous", "distributed_select", "distributable", "score_points", "GreedyConditioning",
           "GreedyShard", "greedy_batch", "StochasticBatch", "STOCHASTIC_MODES", "sampling_log_weights",
           "gumbel_top_k", "make_generator", "noise_of", "prepare", "check_selector", "uses_greedy", "topk_of",
           "as_botorch_acquisition", "select_multifidelity", "select_augmented", "fidelity_candidates",
           "KERNEL_METHODS", "KernelBatch", "kernel_batch_indices", "select_kernel_batch", "INITIAL_DESIGNS",
           "initial_design"]
