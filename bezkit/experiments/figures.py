"""The experiment's PNG figures, drawn with :mod:`bezkit.plot`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)  # files only; a notebook keeps its own backend
import matplotlib.pyplot as plt

from bezkit.lessons import metric_by_k
from bezkit.plot import plot_metric_vs_k, plot_trajectories, plot_w2_vs_steps

__all__ = ["write_figures"]


def _slug(exp: dict[str, Any]) -> str:
    """``source-to-target`` with data files reduced to their stem (``/a/b/mine.csv`` -> ``mine``)."""
    return f"{Path(exp['source']).stem}-to-{Path(exp['target']).stem}"


def write_figures(exp: dict[str, Any], out_dir: Path) -> list[str]:
    """Write the figures of one (source, target) experiment; returns their file names."""
    slug, names = _slug(exp), []
    paths = exp["paths"]
    methods = sorted(dict.fromkeys(m for m, _ in paths), key=lambda m: m in ("otcfm", "full-ot"))
    ks = sorted({k for _, k in paths})
    lim = max(float(p.abs().max()) for p in paths.values()) * 1.05  # one scale for every panel
    fig, axes = plt.subplots(
        len(methods), len(ks), figsize=(2.6 * len(ks), 2.6 * len(methods)), squeeze=False
    )
    for i, method in enumerate(methods):
        for j, k in enumerate(ks):
            ax = axes[i][j]
            if (method, k) in paths:
                plot_trajectories(
                    paths[(method, k)],
                    ax=ax,
                    max_paths=100,
                    show_ends=True,
                    title=f"{method}, k={k}",
                    lim=lim,
                )
                if ax.get_legend() is not None:
                    ax.get_legend().remove()
            else:
                ax.axis("off")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.title.set_fontsize(8)
    fig.tight_layout()
    names.append(f"{slug}-trajectories.png")
    fig.savefig(out_dir / names[-1], dpi=80)
    plt.close(fig)

    steps = sorted({int(s) for r in exp["runs"] for s in r["metrics"]["w2"]})
    one, many = str(steps[0]), str(steps[-1])
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    plot_metric_vs_k(
        metric_by_k(exp, "w2", one),
        ax=axes[0],
        metric=f"W2 at {one} step",
        reference=exp["noise_floor"],
        title="one-step W2 vs reflow round",
    )
    plot_metric_vs_k(
        metric_by_k(exp, "w2", many),
        ax=axes[1],
        metric=f"W2 at {many} steps",
        reference=exp["noise_floor"],
        title=f"{many}-step W2 vs reflow round",
    )
    fig.tight_layout()
    names.append(f"{slug}-w2-vs-k.png")
    fig.savefig(out_dir / names[-1], dpi=90)
    plt.close(fig)

    k_last = max(r["k"] for r in exp["runs"])
    curves = {
        f"{r['method']} (k={r['k']})": r["metrics"]["w2"]
        for r in exp["runs"]
        if r["k"] == k_last or r["method"] in ("otcfm", "full-ot")
    }
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    plot_w2_vs_steps(
        curves,
        noise_floor=exp["noise_floor"],
        ax=ax,
        title=f"W2 vs steps (last round k={k_last} and OT baselines)",
    )
    fig.tight_layout()
    names.append(f"{slug}-w2-vs-steps.png")
    fig.savefig(out_dir / names[-1], dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    plot_metric_vs_k(
        metric_by_k(exp, "straightness"),
        ax=axes[0],
        metric="straightness S",
        logy=True,
        title="straightness vs k",
    )
    plot_metric_vs_k(
        metric_by_k(exp, "crossings_per_trajectory"),
        ax=axes[1],
        metric="crossings per trajectory",
        title="trajectory crossings vs k",
    )
    fig.tight_layout()
    names.append(f"{slug}-straightness-crossings.png")
    fig.savefig(out_dir / names[-1], dpi=90)
    plt.close(fig)
    return names
