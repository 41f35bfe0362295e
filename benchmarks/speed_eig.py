"""Expected information gain of every A/B-test design: bayesal vs Pyro's ``contrib.oed.eig``.

The A/B test of Foster et al. (2019), "Variational Bayesian Optimal Experimental Design":
θ = (θ_A, θ_B) ~ N(0, diag(10², 2.5²)), 100 participants, n1 of them in group A, y = Xθ + ε with
X the [100, 2] one-hot assignment and ε ~ N(0, 1); the 101 designs are n1 = 0 … 100. The
analytic EIG is ½ log det(I + Σ XᵀX) (between 3.2 and 7.1 nats).

Cases (one JSON line each, BENCHMARKS.md); the headline rows put the same estimator on both sides:

* ``ab_test_laplace``: :func:`bayesal.design.laplace_eig` (``num_outer`` = N_L simulated y, 5
  Newton steps per posterior, vectorised over y and designs) against Pyro's ``laplace_eig``
  (``final_num_samples`` = N_L, a ``LinearModelLaplaceGuide`` over the 101 designs in float64,
  ``num_steps`` = 5 Adam steps, lr 0.05, per y: the same number of mode-finding steps, then its
  Hessian). Both are exact on this linear-Gaussian model, whatever the mode-finding steps reach,
  because every posterior covariance is independent of y.
* ``ab_test_nmc``: :func:`bayesal.design.nmc_eig` against Pyro's ``nmc_eig`` at the same N outer
  and M inner samples. Both estimate the nested upper bound U(d, M), far above the EIG at M = 100.
* ``accuracy`` (``eig_ab_accuracy`` lines): estimator against estimator, each at a few sizes,
  wall time and error against the analytic EIG in nats; a summary line gives every estimator's
  time to reach ``TOLERANCE`` (0.05 nats on every design) and its error within our Laplace
  estimator's time. This is where a cheaper estimator earns its keep; the ratios above do not mix
  estimators.

Pyro's ``nmc_eig`` is called on chunks of ``--peer-chunk`` designs (default 17): in one call over
the 101 designs it needs about 16 GB at N = 1000, M = 100.

Run: ``python benchmarks/speed_eig.py [--quick] [--device cpu|cuda] [--reps N] [--threads N]
[--peer-chunk K] [--cases laplace,nmc,accuracy]``.
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


LAPLACE_STEPS = 5  # our Newton steps and Pyro's Adam steps per posterior


def sizes(quick: bool) -> dict:
    if quick:
        return {"peer_N": 200, "peer_M": 50, "laplace_N": 50,
                "sweep": {"laplace": [10, 50], "pyro_laplace": [10], "nmc": [(100, 10), (200, 50)]}}
    return {"peer_N": 1000, "peer_M": 100, "laplace_N": 200,
            "sweep": {"laplace": [10, 100, 1000], "pyro_laplace": [10, 50],
                      "nmc": [(100, 10), (300, 30), (1000, 100)]}}


def setup(device: str):
    from bayesal.design import ab_test_model

    model = ab_test_model(N_PARTICIPANTS, PRIOR_SD, 1.0, device=device)
    designs = torch.arange(N_PARTICIPANTS + 1.0, dtype=torch.float64, device=device).unsqueeze(-1)
    return model, designs


def ours_laplace(model, designs, n):
    from bayesal.design import laplace_eig

    return laplace_eig(model, designs, num_outer=n, newton_steps=LAPLACE_STEPS, seed=0).value


def ours_nmc(model, designs, n, m):
    from bayesal.design import nmc_eig

    return nmc_eig(model, designs, num_outer=n, num_inner=m, seed=0)


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


def peer_laplace(design_matrices, n):
    """Pyro's ``laplace_eig`` over all designs at once: for each of ``n`` simulated y, a MAP fit of
    a batched ``LinearModelLaplaceGuide`` (``LAPLACE_STEPS`` Adam steps) and its Hessian."""
    import warnings

    import pyro
    import pyro.optim
    from pyro.contrib.oed.eig import laplace_eig
    from pyro.contrib.oed.glmm.guides import LinearModelLaplaceGuide
    from pyro.infer import Trace_ELBO

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = LinearModelLaplaceGuide((design_matrices.shape[0],), {"theta": 2}).to(design_matrices)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "plate statements in guide but not model": the guide's own batch plate
        value = laplace_eig(pyro_ab_model, design_matrices, "y", "theta", guide=guide,
                            loss=Trace_ELBO().differentiable_loss, optim=pyro.optim.Adam({"lr": 0.05}),
                            num_steps=LAPLACE_STEPS, final_num_samples=n)
    return value.detach()


def peer_nmc(design_matrices, cfg, n=None, m=None):
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
                               target_labels=["theta"], N=n or cfg["peer_N"], M=m or cfg["peer_M"]))
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
    if case == "ab_test_laplace":
        peer_laplace(mats, cfg["laplace_N"]) if which == "peer" else ours_laplace(model, designs, cfg["laplace_N"])
    elif which == "peer":
        peer_nmc(mats, cfg)
    else:
        ours_nmc(model, designs, cfg["peer_N"], cfg["peer_M"])
    print(rss_mb() - base)


def _errors(values, analytic) -> dict:
    err = (values - analytic).abs()
    return {"max_abs_err": float(f"{float(err.max()):.3g}"), "mean_abs_err": float(f"{float(err.mean()):.3g}"),
            "best_design": int(torch.argmax(values))}


def main():
    p = parser(__doc__)
    p.add_argument("--peer-chunk", type=int, default=17,
                   help="designs per call of pyro's nmc_eig (0: all 101 in one call, ~16 GB at full size)")
    p.add_argument("--cases", default="laplace,nmc,accuracy", help="comma-separated: laplace, nmc, accuracy")
    args = p.parse_args()
    threads = set_threads(args.threads)
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
    extra = ["--device", args.device, "--peer-chunk", str(args.peer_chunk), "--threads", str(args.threads)] + \
        (["--quick"] if args.quick else [])
    mem_note = "peak = VmHWM of a fresh subprocess, reset after set-up, minus its RSS then"
    wanted = set(args.cases.split(","))
    n_l, n_o, m_i = cfg["laplace_N"], cfg["peer_N"], cfg["peer_M"]
    chunk_txt = f" ({args.peer_chunk} designs per call)" if args.peer_chunk else ""
    cases = []
    if "laplace" in wanted:
        cases.append(("ab_test_laplace", lambda: ours_laplace(model, designs, n_l),
                      (lambda: peer_laplace(mats, n_l)) if version else None,
                      f"ours = bayesal.design.laplace_eig num_outer={n_l}, newton_steps={LAPLACE_STEPS}",
                      f"pyro-ppl {version} contrib.oed.laplace_eig final_num_samples={n_l}, "
                      f"LinearModelLaplaceGuide (float64), Adam lr=0.05, num_steps={LAPLACE_STEPS}"))
    if "nmc" in wanted:
        cases.append(("ab_test_nmc", lambda: ours_nmc(model, designs, n_o, m_i).value,
                      (lambda: peer_nmc(mats, cfg)) if version else None,
                      f"ours = bayesal.design.nmc_eig N={n_o}, M={m_i}",
                      f"pyro-ppl {version} contrib.oed.nmc_eig N={n_o} M={m_i}{chunk_txt}"))
    for case, run_ours, run_peer, what, peer_label in cases:
        est = run_ours()
        peer_values = run_peer() if run_peer is not None else None
        t_ours, t_peer = alternate_timings(run_ours, run_peer, args.reps)
        m_ours = child_peak_mb(__file__, case, "ours", extra)
        m_peer = child_peak_mb(__file__, case, "peer", extra) if run_peer is not None else None
        mine = _errors(est, analytic)
        record = {
            "bench": "eig_ab_test",
            "case": f"{case},designs=101,n=100,float64,{args.device},threads={threads}",
            "ours_s": round(t_ours, 4),
            "ours_peak_mb": None if m_ours is None else round(m_ours, 1),
            "peer": peer_label if run_peer is not None else None,
            "peer_s": None if t_peer is None else round(t_peer, 4),
            "peer_peak_mb": None if m_peer is None else round(m_peer, 1),
            "ratio": None if t_peer is None else round(t_peer / t_ours, 2),
            "agree": None,
            "ours_max_abs_err": mine["max_abs_err"], "ours_best_design": mine["best_design"],
            "analytic_best_design": best_analytic,
            "analytic_eig_range": [round(float(analytic.min()), 4), round(float(analytic.max()), 4)],
            "peer_max_abs_err": None, "peer_mean_abs_err": None, "peer_best_design": None,
        }
        if peer_values is not None:
            theirs = _errors(peer_values, analytic)
            record["peer_max_abs_err"] = theirs["max_abs_err"]
            record["peer_mean_abs_err"] = theirs["mean_abs_err"]
            record["peer_best_design"] = theirs["best_design"]
            if case == "ab_test_laplace":
                record["agree"] = bool((est - peer_values).abs().max() <= TOLERANCE)
                agree_note = f"agree = every design within {TOLERANCE} nats of the peer's value"
            else:
                # Two independent draws of the same estimator: compare within 4 standard errors
                # of their difference (ours estimates the peer's spread too).
                stderr = ours_nmc(model, designs, n_o, m_i).stderr
                diff = (est - peer_values).abs()
                record["agree"] = bool((diff <= 4 * math.sqrt(2) * stderr).float().mean() >= 0.95)
                agree_note = ("agree = on at least 95% of designs |ours - peer| <= 4*sqrt(2)*our standard error "
                              "(independent draws of the same estimator)")
        else:
            agree_note = "peer not installed (pip install pyro-ppl)"
        record["note"] = f"{what}; same estimator on both sides; {agree_note}; errors vs the analytic EIG in nats; " \
                         f"{mem_note}"
        emit(record)
        say(f"{case}: ours {t_ours:.3f}s (max err {mine['max_abs_err']:.3g} nats), pyro {t_peer}s "
            f"(max err {record['peer_max_abs_err']} nats), ratio {record['ratio']}")
    if "accuracy" in wanted:
        accuracy_sweep(args, cfg, model, designs, mats, analytic, version, threads)


def _timed(fn, reps: int):
    """(median seconds, last value) after one warm-up; a single timed run when the warm-up took over 5 s."""
    import time

    start = time.perf_counter()
    value = fn()
    if time.perf_counter() - start > 5.0:
        reps = 1
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], value


def accuracy_sweep(args, cfg, model, designs, mats, analytic, version, threads):
    sweep = cfg["sweep"]
    runs = [("bayesal laplace_eig", f"num_outer={n}", lambda n=n: ours_laplace(model, designs, n))
            for n in sweep["laplace"]]
    runs += [("bayesal nmc_eig", f"N={n},M={m}", lambda n=n, m=m: ours_nmc(model, designs, n, m).value)
             for n, m in sweep["nmc"]]
    if version:
        runs += [(f"pyro-ppl {version} laplace_eig", f"final_num_samples={n}", lambda n=n: peer_laplace(mats, n))
                 for n in sweep["pyro_laplace"]]
        runs += [(f"pyro-ppl {version} nmc_eig", f"N={n},M={m}", lambda n=n, m=m: peer_nmc(mats, cfg, n, m))
                 for n, m in sweep["nmc"]]
    rows = []
    for estimator, size, fn in runs:
        seconds, values = _timed(fn, args.reps)
        row = {"bench": "eig_ab_accuracy", "case": f"{estimator},{size},float64,{args.device},threads={threads}",
               "estimator": estimator, "size": size, "seconds": round(seconds, 4), **_errors(values, analytic),
               "analytic_best_design": int(torch.argmax(analytic))}
        rows.append(row)
        emit(row)
        say(f"accuracy: {estimator} {size}: {seconds:.3f}s, max err {row['max_abs_err']:.3g}, "
            f"mean err {row['mean_abs_err']:.3g} nats")
    ref_time = max(r["seconds"] for r in rows if r["estimator"] == "bayesal laplace_eig")
    summary = {}
    for estimator in dict.fromkeys(r["estimator"] for r in rows):
        mine = [r for r in rows if r["estimator"] == estimator]
        within = [r for r in mine if r["seconds"] <= ref_time]
        reach = [r for r in mine if r["max_abs_err"] <= TOLERANCE]
        summary[estimator] = {
            "time_to_tolerance_s": min((r["seconds"] for r in reach), default=None),
            "max_abs_err_within_ref_time": min((r["max_abs_err"] for r in within), default=None),
            "best_max_abs_err_in_sweep": min(r["max_abs_err"] for r in mine),
            "slowest_run_s": max(r["seconds"] for r in mine)}
    emit({"bench": "eig_ab_accuracy_summary", "case": f"tolerance={TOLERANCE} nats on every design,"
          f"ref_time={ref_time:.4f}s (our laplace_eig at its largest size),{args.device},threads={threads}",
          "summary": summary,
          "note": "time_to_tolerance_s: fastest run of the sweep with max error <= tolerance (null: not reached at "
                  "the sizes run, up to slowest_run_s); max_abs_err_within_ref_time: best max error among runs "
                  "no slower than ref_time (null: none that fast)"})


if __name__ == "__main__":
    main()
