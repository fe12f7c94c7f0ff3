"""Figures of a score: imputed against true values at the masked entries, MSE distributions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deepimpute_tool.outputs import atomic_file
from deepimpute_tool.scoring import MaskedEntries


def _save(figure, path: Path) -> Path:
    with atomic_file(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    return path


def draw_plots(metrics: dict, entries: MaskedEntries, directory: str | os.PathLike) -> list[Path]:
    """PNG figures in an existing ``directory``: imputed vs true at the masked entries (the paper's Fig. 2a), MSE distributions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory = Path(directory)
    truth, imputed = np.log1p(entries.truth), np.log1p(np.maximum(entries.imputed, 0))
    written = []

    figure, axis = plt.subplots(figsize=(5.5, 5))
    image = axis.hexbin(truth, imputed, gridsize=60, bins="log", mincnt=1, cmap="viridis")
    top = float(max(truth.max(), imputed.max()))
    axis.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle="--")
    axis.set_xlabel("true count, log1p")
    axis.set_ylabel("imputed count, log1p")
    axis.set_title(
        f"{metrics['input']}: masked entries\nMSE={metrics['mse']:.3f}  Pearson={metrics['pearson']:.3f}"
    )
    figure.colorbar(image, ax=axis, label="entries")
    figure.tight_layout()
    written.append(_save(figure, directory / "imputed_vs_true.png"))
    plt.close(figure)

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, key, what in zip(axes, ("per_gene_mse", "per_cell_mse"), ("genes", "cells")):
        values = np.array(list(metrics[key]["values"].values()))
        axis.hist(values, bins=50, color="#4477aa")
        axis.axvline(
            metrics[key]["median"],
            color="black",
            linestyle="--",
            label=f"median {metrics[key]['median']:.3f}",
        )
        axis.set_xlabel("MSE at masked entries, log1p")
        axis.set_ylabel(what)
        axis.set_title(f"MSE per {what[:-1]} ({values.size} {what})")
        axis.legend()
    figure.tight_layout()
    written.append(_save(figure, directory / "mse_distributions.png"))
    plt.close(figure)
    return written
