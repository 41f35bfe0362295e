"""Plots of campaigns (matplotlib, headless)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["plot_learning_curves"]


def plot_learning_curves(curves: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike,
                         metrics: Sequence[str] = ("rmse", "nlpd", "mean_std"), title: str | None = None) -> str:
    """Save learning curves (metric against number of labels) to ``path``; returns the path.

    ``curves`` maps a label (a strategy name) to its step records, each holding ``n_labels`` and
    the metrics. RMSE and mean std are drawn on a log axis.
    """
    metrics = [m for m in metrics if any(r.get(m) is not None for recs in curves.values() for r in recs)]
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4.2 * max(len(metrics), 1), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for label, records in curves.items():
            pts = [(r["n_labels"], r[metric]) for r in records if r.get(metric) is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_xlabel("labels")
        ax.set_ylabel({"rmse": "test RMSE", "nlpd": "test NLPD", "mean_std": "mean posterior std"}.get(metric, metric))
        if metric in ("rmse", "mean_std"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return save_figure(fig, path, title)


def save_figure(fig, path: str | os.PathLike, title: str | None = None) -> str:
    """Give ``fig`` its ``title`` (if any), lay it out, write it to ``path`` (PNG at 110 dpi),
    close it and return the path as a string."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)
