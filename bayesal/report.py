"""A campaign report: PNG figures and an ``index.html`` that shows them, from a campaign store.

Figures: the learning curve (test RMSE, NLPD and mean posterior std against labels), the cost
curve (cumulative oracle cost against labels, and test RMSE against cumulative cost; for a
multi-fidelity campaign the nominal cost, each label marked by its fidelity level, and the RMSE
of the target fidelity), a map of
the acquisition function over the space when it has one or two inputs, and a calibration plot
(the fraction of test points inside the model's central predictive intervals against the
nominal level; a calibrated model lies on the diagonal). A fully Bayesian GP's campaign adds the
hyperparameter posterior against labels (each lengthscale's median and 95 % range, and r_hat).
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm.std import tqdm  # noqa: E402

from .plotting import plot_learning_curves, save_figure  # noqa: E402

__all__ = ["write_report", "plot_cost_curve", "plot_acquisition_map", "plot_calibration", "calibration_curve",
           "plot_hyperparameters"]


def plot_cost_curve(experiments, records, path: str | os.PathLike, title: str | None = None,
                    cost_name: str = "oracle cost", fidelity_names=None, cost_budget: float | None = None) -> str:
    """Cumulative oracle cost against completed labels (failed experiments cost too, marked with
    crosses), and test RMSE against cumulative cost; saved to ``path``.

    For a multi-fidelity campaign pass ``cost_name="nominal cost"``, ``fidelity_names`` (the
    levels, lowest first: each label is then marked by its level) and ``cost_budget`` (a line)."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4), squeeze=False)
    ax = axes[0][0]
    total, labels, xs, ys, fx, fy, levels = 0.0, 0, [], [], [], [], []
    for e in experiments:
        if e.state not in ("done", "failed"):
            continue
        total += e.cost or 0.0
        if e.state == "done":
            labels += 1
            xs.append(labels)
            ys.append(total)
            levels.append(None if e.fidelity is None else int(e.fidelity))
        else:
            fx.append(labels)
            fy.append(total)
    if fidelity_names:
        ax.plot(xs, ys, color="grey", linewidth=1)
        for level, name in enumerate(fidelity_names):
            pts = [(x, y) for x, y, f in zip(xs, ys, levels) if f == level]
            if pts:
                ax.plot(*zip(*pts), "o", markersize=3 + 1.5 * level, color=f"C{level}", label=str(name))
    else:
        ax.plot(xs, ys, marker="o", markersize=3, label="done")
    if fx:
        ax.plot(fx, fy, "x", color="C3", label="failed")
    if cost_budget is not None:
        for a in axes[0]:
            (a.axhline if a is ax else a.axvline)(cost_budget, color="k", linestyle=":", linewidth=1,
                                                  label="cost budget" if a is ax else None)
    ax.set_xlabel("labels")
    ax.set_ylabel(f"cumulative {cost_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax = axes[0][1]
    pts = [(r["cost"], r["rmse"]) for r in records if r.get("rmse") is not None and r.get("cost") is not None]
    if pts:
        cx, cy = zip(*pts)
        ax.plot(cx, cy, marker="o", markersize=3)
        ax.set_yscale("log")
    ax.set_xlabel(f"cumulative {cost_name}")
    ax.set_ylabel("test RMSE" + (" (target fidelity)" if fidelity_names else ""))
    ax.grid(alpha=0.3)
    return save_figure(fig, path, title)


def plot_hyperparameters(records, path: str | os.PathLike, title: str | None = None) -> str:
    """A fully Bayesian GP's hyperparameter posterior against labels, from campaign records
    carrying ``"hyperparameters"``: each lengthscale's median and 95 % range (unit-cube inputs,
    log scale) and the largest r_hat of each fit against the 1.05 threshold; saved to ``path``."""
    from .models.bayesian import RHAT_WARNING

    rows = [r for r in records if r.get("hyperparameters")]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4), squeeze=False)
    ax = axes[0][0]
    n = [r["n_labels"] for r in rows]
    dims = len(rows[0]["hyperparameters"]["lengthscale"]) if rows else 0
    for i in range(dims):
        q = [r["hyperparameters"]["lengthscale"][i] for r in rows]
        ax.fill_between(n, [v[0] for v in q], [v[2] for v in q], color=f"C{i % 10}", alpha=0.2)
        ax.plot(n, [v[1] for v in q], marker="o", markersize=3, color=f"C{i % 10}", label=f"x{i + 1}")
    if dims:
        ax.set_yscale("log")
        ax.legend(fontsize=8, ncol=2)
    ax.set_xlabel("labels")
    ax.set_ylabel("lengthscale (median, 95 %)")
    ax.grid(alpha=0.3)
    ax = axes[0][1]
    pts = [(r["n_labels"], r["hyperparameters"]["r_hat_max"]) for r in rows
           if r["hyperparameters"].get("r_hat_max") is not None]
    if pts:
        ax.plot(*zip(*pts), marker="o", markersize=3)
    ax.axhline(RHAT_WARNING, color="C3", linestyle=":", linewidth=1, label=f"r_hat {RHAT_WARNING}")
    ax.set_xlabel("labels")
    ax.set_ylabel("largest r_hat")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, title)


def _acquisition_values(learner, X: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Single-point acquisition values ``[N]`` at ``X: [N, d]`` (posterior variance for
    model-free strategies), and what they are: the pool scoring function of the selectors."""
    from .selection import prepare, score_points

    acquisition = learner.acquisition.for_space(learner.space)
    model = acquisition.selection_model(learner.X, learner.surrogate)
    if not acquisition.needs_posterior:
        return model.posterior(X).variance.sum(-1).detach(), "posterior variance (the strategy is model-free)"
    acquisition = prepare(acquisition, learner.space, model)
    return score_points(model, acquisition, X), f"{acquisition.name} score"


def plot_acquisition_map(learner, experiments, path: str | os.PathLike, title: str | None = None,
                         resolution: int = 80) -> str:
    """The acquisition over a 1-D or 2-D space after the campaign's last fit, with the labelled
    points (and failed ones as crosses); in 1-D also the posterior mean ± 2 sd."""
    from .spaces import Pool

    space = learner.space
    d = space.dim
    if d > 2:
        raise ValueError(f"an acquisition map needs a space of 1 or 2 inputs, not {d}")
    bounds = space.bounds.to(torch.float64)
    done = [e for e in experiments if e.state == "done"]
    failed = [e for e in experiments if e.state == "failed"]
    if isinstance(space, Pool):
        grid = space.X.to(torch.float64)
    elif d == 1:
        grid = torch.linspace(float(bounds[0, 0]), float(bounds[1, 0]), resolution * 4, dtype=torch.float64)[:, None]
    else:
        g0 = torch.linspace(float(bounds[0, 0]), float(bounds[1, 0]), resolution, dtype=torch.float64)
        g1 = torch.linspace(float(bounds[0, 1]), float(bounds[1, 1]), resolution, dtype=torch.float64)
        grid = torch.cartesian_prod(g0, g1)
    values, what = _acquisition_values(learner, grid)
    values = values.cpu()
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    names = getattr(space, "names", [f"x{i}" for i in range(d)])
    if d == 1:
        order = torch.argsort(grid[:, 0])
        x = grid[order, 0].cpu()
        post = learner.surrogate.posterior(grid[order])
        mean, sd = post.mean[:, 0].detach().cpu(), post.variance[:, 0].detach().sqrt().cpu()
        ax.plot(x, mean, color="C0", label="posterior mean")
        ax.fill_between(x, mean - 2 * sd, mean + 2 * sd, color="C0", alpha=0.2, label="± 2 sd")
        ax.plot([e.x[0] for e in done], [e.y[0] for e in done], "o", color="k", markersize=4, label="labels")
        ax.set_xlabel(names[0])
        ax.set_ylabel("y")
        twin = ax.twinx()
        twin.plot(x, values[order], color="C1", label=what)
        twin.set_ylabel(what, color="C1")
        ax.legend(fontsize=7, loc="upper left")
    else:
        if isinstance(space, Pool):
            im = ax.scatter(grid[:, 0].cpu(), grid[:, 1].cpu(), c=values, s=6, cmap="viridis")
        else:
            im = ax.contourf(g0.cpu(), g1.cpu(), values.reshape(resolution, resolution).T, levels=30, cmap="viridis")
        fig.colorbar(im, ax=ax, label=what)
        if done:
            ax.plot([e.x[0] for e in done], [e.x[1] for e in done], "o", color="w", markeredgecolor="k",
                    markersize=5, label="labels")
        if failed:
            ax.plot([e.x[0] for e in failed], [e.x[1] for e in failed], "x", color="C3", markersize=7, label="failed")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.legend(fontsize=7, loc="upper right")
    ax.set_title(title or what)
    return save_figure(fig, path)


def calibration_curve(surrogate, X_test: torch.Tensor, y_test: torch.Tensor,
                      levels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Observed coverage of central predictive intervals: for each nominal level p ``[L]``, the
    fraction of the ``[n, m]`` test labels within ``mean ± z_{(1+p)/2} · sd`` of the predictive
    distribution (f's variance plus the noise). Returns ``(levels [L], coverage [L])``."""
    if levels is None:
        levels = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    post = surrogate.posterior(X_test)
    mean = post.mean.detach().to(torch.float64)
    sd = post.predictive_variance.detach().to(torch.float64).clamp_min(1e-300).sqrt()
    z = ((y_test.to(mean) - mean) / sd).abs().reshape(-1)
    normal = torch.distributions.Normal(0.0, 1.0)
    half = normal.icdf((1 + levels) / 2)
    coverage = (z[None, :] <= half[:, None]).double().mean(-1)
    return levels, coverage


def plot_calibration(surrogate, X_test, y_test, path: str | os.PathLike, title: str | None = None) -> str:
    """Observed against nominal coverage of central predictive intervals on the test set."""
    levels, coverage = calibration_curve(surrogate, X_test, y_test)
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="calibrated")
    ax.plot(levels, coverage, marker="o", markersize=3, label="model")
    ax.set_xlabel("nominal coverage of central interval")
    ax.set_ylabel("observed coverage on the test set")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or "calibration")
    return save_figure(fig, path)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }}
figure {{ display: inline-block; margin: 1em; vertical-align: top; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
<table>{counts}</table>
{figures}
<h2>Settings</h2>
<pre>{settings}</pre>
<h2>Experiments</h2>
<table><tr><th>id</th><th>step</th><th>state</th><th>x</th><th>y</th><th>cost</th><th>attempts</th><th>error</th></tr>
{rows}
</table>
<script>
// mark every figure as displayed or not once the page has loaded (a broken image has width 0)
window.addEventListener("load", function () {{
  for (const img of document.images) {{
    img.dataset.displayed = (img.complete && img.naturalWidth > 0) ? "yes" : "no";
    img.dataset.width = img.naturalWidth;
  }}
  document.body.dataset.ready = "yes";
}});
</script>
</body>
</html>
"""


def _fmt(values) -> str:
    if values is None:
        return ""
    return ", ".join(f"{v:.4g}" for v in values)


def write_report(store_path: str | os.PathLike, out: str | os.PathLike, progress: bool = False) -> Path:
    """Write the report of the campaign stored at ``store_path`` into the folder ``out``;
    returns the path of ``index.html``. The model is refitted on the stored results."""
    from .loop.campaign import Campaign, campaign_status
    from .loop.store import CampaignStore

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = CampaignStore.open(store_path, readonly=True)  # the report never writes the store
    try:
        status = campaign_status(store)
        records = store.records()
        experiments = store.experiments()
        config = status["campaign"]
        name = f"{config['strategy']} on {config['problem']}"
        figures: list[tuple[str, str]] = []
        jobs: list[tuple[str, Any]] = [("learning_curve.png", "learning curve"), ("cost_curve.png", "cost")]
        if any(r.get("hyperparameters") for r in records):
            jobs.append(("hyperparameters.png", "hyperparameter posterior (NUTS)"))
        campaign = None
        if any(e.state == "done" for e in experiments):
            oracle = (lambda X: X) if config.get("oracle") == "python" else None  # the report never labels
            campaign = Campaign(store, oracle=oracle)
            campaign._load()
            campaign.learner.fit()
            # the acquisition map shows a single-fidelity acquisition; a multi-fidelity one scores
            # (x, level) pairs and is left out
            if campaign.learner.space.dim <= 2 and not campaign.multifidelity:
                jobs.append(("acquisition_map.png", "acquisition map"))
            jobs.append(("calibration.png", "calibration"))
        for filename, caption in tqdm(jobs, desc="report", unit="figure", disable=not progress, leave=False):
            path = out / filename
            if filename == "learning_curve.png":
                plot_learning_curves({config["strategy"]: records} if records else {config["strategy"]: []}, path,
                                     title=name)
            elif filename == "cost_curve.png":
                if status.get("multifidelity"):
                    plot_cost_curve(experiments, records, path, title=name, cost_name="nominal cost",
                                    fidelity_names=status["fidelity_names"], cost_budget=status["cost_budget"])
                else:
                    plot_cost_curve(experiments, records, path, title=name)
            elif filename == "hyperparameters.png":
                plot_hyperparameters(records, path, title=f"{config['model']}: hyperparameters")
            elif filename == "acquisition_map.png":
                plot_acquisition_map(campaign.learner, experiments, path,
                                     title=f"{config['strategy']} after {status['done']} labels")
            else:
                X_test, y_test = campaign.learner.test_set
                surrogate = campaign.learner.target() if campaign.multifidelity else campaign.learner.surrogate
                plot_calibration(surrogate, X_test, y_test, path,
                                 title=f"calibration after {status['done']} labels")
            figures.append((filename, caption))
        counts = "".join(f"<tr><th>{k}</th><td>{status[k]}</td></tr>"
                         for k in ("done", "running", "pending", "failed",
                                   "cost_budget" if status.get("multifidelity") else "budget"))
        last = status["last"]
        if status.get("multifidelity"):
            levels = ", ".join(f"{n} at {name}" for n, name in zip(status["fidelity_counts"], status["fidelity_names"]))
            summary = (f"{status['done']} labels ({levels}), {status['failed']} failed experiments, nominal cost "
                       f"{status['cost_spent']:.4g} of a cost budget of {status['cost_budget']:g}")
        else:
            summary = (f"{status['done']} of {status['budget']} labels, {status['failed']} failed experiments, "
                       f"oracle cost {status['cost']:.3g}")
        if last is not None and last.get("rmse") is not None:
            summary += f"; final test RMSE {last['rmse']:.4g}, NLPD {last['nlpd']:.3f}"
        hyper = last.get("hyperparameters") if last is not None else None
        if hyper:
            from .models.bayesian import diagnostic_lines

            summary += "; " + "; ".join(" ".join(line.split()) for line in diagnostic_lines(hyper))
        figure_html = "\n".join(f'<figure><img src="{f}" alt="{html.escape(c)}"><figcaption>{html.escape(c)}'
                                f"</figcaption></figure>" for f, c in figures)
        rows = "\n".join(
            f"<tr><td>{e.id}</td><td>{e.step}</td><td>{e.state}</td><td>{_fmt(e.x)}{'' if e.fidelity is None else f' @ level {int(e.fidelity)}'}</td><td>{_fmt(e.y)}</td>"
            f"<td>{'' if e.cost is None else f'{e.cost:.3g}'}</td><td>{e.attempts}</td>"
            f"<td>{html.escape(e.error or '')}</td></tr>" for e in experiments)
        page = _PAGE.format(title=html.escape(f"bayesal campaign: {name}"), summary=html.escape(summary),
                            counts=counts, figures=figure_html, rows=rows,
                            settings=html.escape(json.dumps(config, indent=1, sort_keys=True)))
        index = out / "index.html"
        index.write_text(page)
        (out / "status.json").write_text(json.dumps(status, indent=1, default=lambda v: None if
                                                    isinstance(v, float) and not math.isfinite(v) else str(v)))
        return index
    finally:
        store.close()
