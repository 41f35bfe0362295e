"""Expected information gain of every A/B-test design: bayesal vs ``pyro.contrib.oed.nmc_eig``.

The A/B test of Foster et al. (2019), "Variational Bayesian Optimal Experimental Design":
θ = (θ_A, θ_B) ~ N(0, diag(10², 2.5²)), 100 participants, n1 of them in group A, y = Xθ + ε with
X the [100, 2] one-hot assignment and ε ~ N(0, 1); the 101 designs are n1 = 0 … 100. The
analytic EIG is ½ log det(I + Σ XᵀX) (between 3.2 and 7.1 nats).

Cases (one JSON line each, BENCHMARKS.md):

* ``ab_test_best``: our best estimator for this problem, :func:`bayesal.design.laplace_eig`
  (a general estimator; exact for any linear-Gaussian model, because every posterior is
  Gaussian with a covariance that does not depend on y), against Pyro's nested Monte Carlo
  ``nmc_eig`` at N = 1000 outer and M = 100 inner samples. Both are compared with the analytic
  EIG (``ours_max_abs_err``, ``peer_max_abs_err``) and their argmax with the analytic best design.
* ``ab_test_nmc``: the same estimator on both sides, our :func:`bayesal.design.nmc_eig` at the
  same N and M: the cost of the implementation alone. Both estimate the nested upper bound
  U(d, M), far above the EIG at M = 100.

Pyro's ``nmc_eig`` is called on chunks of ``--peer-chunk`` designs (default 17): in one call over
the 101 designs it needs about 16 GB at N = 1000, M = 100.

Run: ``python benchmarks/speed_eig.py [--quick] [--device cpu|cuda] [--reps N] [--threads N]
[--peer-chunk K]``.
"""

from __future__ import annotations

import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import alternate_timings, child_peak_mb, emit, parser, reset_peak, rss_mb, say, set_threads  # noqa: E402

N_PARTICIPANTS = 100
PRIOR_SD = (10.0, 2.5)
TOLERANCE = 0.05  # nats: the accuracy our best estimator must reach on every design


def sizes(quick: bool) -> dict:
    if quick:
        return {"peer_N": 200, "peer_M": 50, "laplace_N": 200}
    return {"peer_N": 1000, "peer_M": 100, "laplace_N": 1000}


def setup(device: str):
    from bayesal.design import ab_test_model

    model = ab_test_model(N_PARTICIPANTS, PRIOR_SD, 1.0, device=device)
    designs = torch.arange(N_PARTICIPANTS + 1.0, dtype=torch.float64, device=device).unsqueeze(-1)
    return model, designs


def ours_best(model, designs, cfg):
    from bayesal.design import laplace_eig

    return laplace_eig(model, designs, num_outer=cfg["laplace_N"], seed=0)


def ours_nmc(model, designs, cfg):
    from bayesal.design import nmc_eig

    return nmc_eig(model, designs, num_outer=cfg["peer_N"], num_inner=cfg["peer_M"], seed=0)


def _pyro_design_matrices(designs: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(N_PARTICIPANTS, dtype=designs.dtype, device=designs.device)
    in_a = (rows < designs[:, :1]).to(designs.dtype)
    return torch.stack([in_a, 1.0 - in_a], -1)  # [101, 100, 2]


def pyro_ab_model(design: torch.Tensor):
    """The A/B test as a Pyro model over a batch of design matrices ``[..., 100, 2]``."""
    import pyro
    import pyro.distributions as dist

    batch = design.shape[:-2]
    scale = torch.tensor(PRIOR_SD, dtype=design.dtype, device=design.device)
    with pyro.plate_stack("plate_stack", batch):
        theta = pyro.sample("theta", dist.MultivariateNormal(torch.zeros_like(scale), scale_tril=torch.diag(scale)))
        mean = (design @ theta.unsqueeze(-1)).squeeze(-1)
        return pyro.sample("y", dist.Normal(mean, 1.0).to_event(1))


def peer_nmc(design_matrices, cfg):
    """Pyro's ``nmc_eig`` over the designs, ``cfg["peer_chunk"]`` designs per call.

    One call over all 101 designs materialises ``[M, N, 101, 100]`` float64 tensors (8 GB each,
    about 16 GB at peak for N = 1000, M = 100); calling it on chunks of designs is the same
    estimator with the same N and M per design, and keeps the peak a few GB on a shared machine.
    """
    import pyro
    from pyro.contrib.oed.eig import nmc_eig

    pyro.set_rng_seed(0)
    step = cfg["peer_chunk"] or design_matrices.shape[0]
    out = []
    with torch.no_grad():
        for start in range(0, design_matrices.shape[0], step):
            out.append(nmc_eig(pyro_ab_model, design_matrices[start:start + step], observation_labels=["y"],
                               target_labels=["theta"], N=cfg["peer_N"], M=cfg["peer_M"]))
    return torch.cat(out)


def _pyro_version() -> str | None:
    try:
        import pyro
    except ImportError:
        return None
    return pyro.__version__


def run_child(which: str, case: str, cfg: dict, device: str) -> None:
    model, designs = setup(device)
    mats = _pyro_design_matrices(designs)
    base = reset_peak()
    if which == "peer":
        peer_nmc(mats, cfg)
    elif case == "ab_test_best":
        ours_best(model, designs, cfg)
    else:
        ours_nmc(model, designs, cfg)
    print(rss_mb() - base)


def main():
    p = parser(__doc__)
    p.add_argument("--peer-chunk", type=int, default=17,
                   help="designs per call of pyro's nmc_eig (0: all 101 in one call, ~16 GB at full size)")
    args = p.parse_args()
    set_threads(args.threads)
    cfg = sizes(args.quick)
    cfg["peer_chunk"] = args.peer_chunk
    if args.child:
        which, case = args.child.split(":")
        run_child(which, case, cfg, args.device)
        return
    model, designs = setup(args.device)
    analytic = model.eig(designs)
    best_analytic = int(torch.argmax(analytic))
    version = _pyro_version()
    mats = _pyro_design_matrices(designs)
    extra = ["--device", args.device, "--peer-chunk", str(args.peer_chunk)] + (["--quick"] if args.quick else []) + \
            (["--threads", str(args.threads)] if args.threads is not None else [])
    threads = torch.get_num_threads()
    mem_note = "peak = VmHWM of a fresh subprocess, reset after set-up, minus its RSS then"
    peer_label = None if version is None else (
        f"pyro-ppl {version} contrib.oed.nmc_eig N={cfg['peer_N']} M={cfg['peer_M']}"
        + (f" ({args.peer_chunk} designs per call)" if args.peer_chunk else ""))

    cases = [
        ("ab_test_best", lambda: ours_best(model, designs, cfg),
         f"ours = bayesal.design.laplace_eig (num_outer={cfg['laplace_N']}, general Laplace estimator, "
         "exact on linear-Gaussian models)"),
        ("ab_test_nmc", lambda: ours_nmc(model, designs, cfg),
         f"ours = bayesal.design.nmc_eig at the peer's N={cfg['peer_N']}, M={cfg['peer_M']} (same estimator)"),
    ]
    for case, run_ours, what in cases:
        run_peer = (lambda: peer_nmc(mats, cfg)) if version is not None else None
        est = run_ours()
        peer_values = run_peer() if run_peer is not None else None
        t_ours, t_peer = alternate_timings(run_ours, run_peer, args.reps)
        m_ours = child_peak_mb(__file__, case, "ours", extra)
        m_peer = child_peak_mb(__file__, case, "peer", extra) if version is not None else None
        ours_err = (est.value - analytic).abs()
        record = {
            "bench": "eig_ab_test",
            "case": f"{case},designs=101,n=100,float64,{args.device},threads={threads}",
            "ours_s": round(t_ours, 4),
            "ours_peak_mb": None if m_ours is None else round(m_ours, 1),
            "peer": peer_label,
            "peer_s": None if t_peer is None else round(t_peer, 4),
            "peer_peak_mb": None if m_peer is None else round(m_peer, 1),
            "ratio": None if t_peer is None else round(t_peer / t_ours, 2),
            "agree": None,
            "ours_max_abs_err": round(float(ours_err.max()), 6),
            "ours_max_stderr": round(float(est.stderr.max()), 6),
            "ours_best_design": int(torch.argmax(est.value)),
            "analytic_best_design": best_analytic,
            "analytic_eig_range": [round(float(analytic.min()), 4), round(float(analytic.max()), 4)],
            "peer_max_abs_err": None,
            "peer_mean_abs_err": None,
            "peer_best_design": None,
        }
        if case == "ab_test_best":
            record["ours_within_tolerance"] = bool(ours_err.max() <= TOLERANCE)
        if peer_values is not None:
            peer_err = (peer_values - analytic).abs()
            record["peer_max_abs_err"] = round(float(peer_err.max()), 4)
            record["peer_mean_abs_err"] = round(float(peer_err.mean()), 4)
            record["peer_best_design"] = int(torch.argmax(peer_values))
            if case == "ab_test_best":
                record["agree"] = bool((est.value - peer_values).abs().max() <= TOLERANCE)
                agree_note = f"agree = every design within {TOLERANCE} nats of the peer's value"
            else:
                # Two independent draws of the same estimator: compare within 4 standard errors
                # of their difference (ours estimates the peer's spread too).
                diff = (est.value - peer_values).abs()
                record["agree"] = bool((diff <= 4 * math.sqrt(2) * est.stderr).float().mean() >= 0.95)
                agree_note = ("agree = on at least 95% of designs |ours - peer| <= 4*sqrt(2)*our standard error "
                              "(independent draws of the same estimator)")
        else:
            agree_note = "peer not installed (pip install pyro-ppl)"
        record["note"] = f"{what}; {agree_note}; errors vs the analytic EIG in nats; {mem_note}"
        emit(record)
        if t_peer is not None:
            say(f"{case}: ours {t_ours:.3f}s (max err {float(ours_err.max()):.3g} nats), "
                f"pyro {t_peer:.3f}s (max err {record['peer_max_abs_err']} nats), ratio {t_peer / t_ours:.1f}x")
        else:
            say(f"{case}: ours {t_ours:.3f}s (max err {float(ours_err.max()):.3g} nats); pyro not installed")


if __name__ == "__main__":
    main()
