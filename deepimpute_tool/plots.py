"""Figures: of a score (imputed against true values at the masked entries, MSE distributions), of
training (the loss curves) and of quality control (the distributions the thresholds cut)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from deepimpute_tool.filtering import FilterResult
from deepimpute_tool.outputs import atomic_file
from deepimpute_tool.scoring import MaskedEntries

MAX_HISTORY_VALUES = 10_000_000  # more than any training records (epochs x sub-networks)


def _save(figure, path: Path) -> Path:
    with atomic_file(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_history(training: dict) -> dict[str, np.ndarray]:
    """The loss history of ``Model.training`` as arrays, each checked (a model is a stranger's
    file): ``train_loss``, ``validation_loss`` (per epoch), ``best_epoch``, ``best_validation_loss``
    (per sub-network) and ``subnetwork_validation_loss`` (epochs x sub-networks, NaN where not
    computed). An entry that is missing or malformed is left out."""
    found: dict[str, np.ndarray] = {}
    shapes = {"train_loss": 1, "validation_loss": 1, "best_epoch": 1, "best_validation_loss": 1,
              "subnetwork_validation_loss": 2}  # fmt: skip
    for key, dimensions in shapes.items():
        values = training.get(key) if isinstance(training, dict) else None
        if not isinstance(values, list) or len(values) > MAX_HISTORY_VALUES:
            continue
        if dimensions == 2:
            if not all(isinstance(row, list) for row in values) or sum(map(len, values)) > MAX_HISTORY_VALUES:
                continue
            values = [[np.nan if v is None else v for v in row] for row in values]
        try:
            array = np.array(values, dtype=float)
        except (TypeError, ValueError):
            continue
        if array.ndim == dimensions and array.size:
            found[key] = array
    epochs = {
        found[key].shape[0]
        for key in ("train_loss", "validation_loss", "subnetwork_validation_loss")
        if key in found
    }
    nets = {
        found[key].shape[-1]
        for key in ("best_epoch", "best_validation_loss", "subnetwork_validation_loss")
        if key in found
    }
    if len(epochs) > 1 or len(nets) > 1:  # parts that disagree: keep the totals alone
        found = {key: found[key] for key in ("train_loss", "validation_loss") if key in found}
        if len({array.shape[0] for array in found.values()}) > 1:
            found = {}
    return found


def loss_figure(training: dict):
    """A model's loss curves (``Model.training``): the summed training and validation losses per
    epoch, with the end of the coarse phase; and each sub-network's validation loss relative to
    its first epoch, with the epoch whose weights it kept."""
    plt = _pyplot()
    history = loss_history(training)
    figure, (total, each) = plt.subplots(1, 2, figsize=(11, 4.2))
    if "train_loss" not in history or "validation_loss" not in history:
        for axis in (total, each):
            axis.axis("off")
        total.text(0.5, 0.5, "this model records no usable loss history", ha="center")
        return figure
    epochs = np.arange(1, history["train_loss"].size + 1)
    total.plot(epochs, history["train_loss"], color="#4477aa", label="training")
    total.plot(epochs, history["validation_loss"], color="#ee6677", label="validation")
    phase_ends = training.get("phase_epochs") if isinstance(training.get("phase_epochs"), list) else []
    for number, end in enumerate(phase_ends[:-1]):
        if isinstance(end, int):
            total.axvline(
                end + 0.5, color="grey", linestyle=":", label=None if number else "end of the coarse phase"
            )
    total.set(yscale="log", xlabel="epoch", ylabel="loss, summed over sub-networks", title="Loss per epoch")
    total.legend()
    values = history.get("subnetwork_validation_loss")
    if values is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = values / values[0]
        each.plot(
            epochs,
            relative,
            color="#4477aa",
            alpha=float(np.clip(3 / values.shape[1], 0.15, 0.8)),
            linewidth=0.8,
        )
        if "best_epoch" in history:
            best = np.clip(np.nan_to_num(history["best_epoch"], nan=1).astype(int), 1, epochs.size)
            nets = np.arange(values.shape[1])
            each.scatter(
                best, relative[best - 1, nets], color="#cc3311", s=14, zorder=3, label="best epoch (kept)"
            )
            each.legend()
        each.set(xlabel="epoch", ylabel="validation loss / first epoch's")
        each.set_title(f"Each of the {values.shape[1]} sub-networks")
    else:
        each.axis("off")
        each.text(0.5, 0.5, "no loss per sub-network recorded\n(a model of an earlier version)", ha="center")
    figure.tight_layout()
    return figure


def qc_figure(result: FilterResult, *, min_genes: int, min_counts: int, min_cells: int):
    """What quality control measured, with its thresholds: genes and counts per cell, and the cells
    each gene is detected in (among the kept cells)."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = (
        (result.genes_per_cell, min_genes, "genes detected per cell", "cells"),
        (result.counts_per_cell, min_counts, "counts per cell", "cells"),
        (result.cells_per_gene, min_cells, "kept cells in which a gene is detected", "genes"),
    )
    for axis, (values, threshold, what, counted) in zip(axes, panels):
        values = np.asarray(values, dtype=float)
        top = max(float(values.max()) if values.size else 1.0, threshold, 1.0)
        bins = np.unique(np.logspace(0, np.log10(top + 1), 60).round()) - 1
        axis.hist(values, bins=np.append(bins, top + 1), color="#4477aa")
        axis.axvline(threshold, color="#cc3311", linestyle="--", label=f"threshold {threshold:g}")
        axis.set(xscale="symlog", xlabel=what, ylabel=counted)
        axis.set_xlim(left=0)
        axis.set_title(f"{int((values >= threshold).sum())} of {values.size} {counted} at or above")
        axis.legend()
    figure.suptitle(result.summary(), fontsize=9)
    figure.tight_layout()
    return figure


def draw_figure(figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as a PNG at ``path`` (atomically) and close it."""
    try:
        return _save(figure, Path(path))
    finally:
        _pyplot().close(figure)


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
