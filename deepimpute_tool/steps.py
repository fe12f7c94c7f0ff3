"""Each step from input files to output files: reads, checks, calls the pure functions, writes.

The command line calls these and nothing else, so ``deepimpute run`` and the single-step
commands do exactly the same work.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from deepimpute_tool.chunking import merge_looms, split_loom
from deepimpute_tool.errors import InputError
from deepimpute_tool.filtering import quality_filter
from deepimpute_tool.imputation import ImputeSummary, impute_loom
from deepimpute_tool.io import (
    Dataset,
    atomic_path,
    check_unique,
    make_unique,
    provenance,
    read_dataset,
    read_loom,
    write_loom,
)
from deepimpute_tool.masking import ORIGINAL_LAYER, mask_counts
from deepimpute_tool.model import load_model
from deepimpute_tool.progress import Progress
from deepimpute_tool.scoring import draw_plots, score_loom
from deepimpute_tool.training import TrainingError, TrainingParameters, train


def _require_cells_and_genes(dataset: Dataset, path: str | os.PathLike) -> None:
    if dataset.n_cells == 0 or dataset.n_genes == 0:
        raise InputError(
            str(path), f"the matrix is empty ({dataset.n_genes} genes x {dataset.n_cells} cells)"
        )
    check_unique(dataset.cells, path=path, what="cell IDs")


def filter_file(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    min_genes: int = 200,
    min_counts: int = 0,
    min_cells: int = 3,
    orientation: str = "auto",
    progress: Progress,
) -> Dataset:
    """Read any supported input, drop poor cells and rare genes, write Loom."""
    dataset = read_dataset(in_path, orientation=orientation)
    _require_cells_and_genes(dataset, in_path)
    progress.message(f"read {dataset.n_genes} genes x {dataset.n_cells} cells from {in_path}")
    unique = make_unique(dataset.genes)
    renamed = int((unique != dataset.genes).sum())
    if renamed:
        progress.message(f"{renamed} repeated gene names made unique by appending -1, -2, ...")
        dataset.genes = unique
    result = quality_filter(dataset.counts, min_genes=min_genes, min_counts=min_counts, min_cells=min_cells)
    progress.message(result.summary())
    if not result.keep_cells.any():
        raise InputError(
            str(in_path), f"no cell passes the filter (--min-genes {min_genes}, --min-counts {min_counts})"
        )
    if not result.keep_genes.any():
        raise InputError(str(in_path), f"no gene passes the filter (--min-cells {min_cells})")
    filtered = dataset.subset(cells=result.keep_cells, genes=result.keep_genes)
    parameters = {
        "min_genes": min_genes,
        "min_counts": min_counts,
        "min_cells": min_cells,
        "input": str(in_path),
    }
    write_loom(out_path, filtered, file_attrs=provenance("filter", parameters))
    return filtered


def mask_file(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    cells_per_gene: int = 10,
    seed: int = 0,
    progress: Progress,
) -> None:
    """Hide positive counts (the paper's protocol); the truth goes to the layer ``original``."""
    dataset = read_loom(in_path)
    _require_cells_and_genes(dataset, in_path)
    if ORIGINAL_LAYER in dataset.layers:
        raise InputError(str(in_path), f"already has a layer '{ORIGINAL_LAYER}': was it masked already?")
    result = mask_counts(dataset.counts, cells_per_gene=cells_per_gene, seed=seed)
    if result.n_genes_masked == 0:
        raise InputError(
            str(in_path), f"no gene has {2 * cells_per_gene} positive counts to mask {cells_per_gene} of"
        )
    progress.message(
        f"masked {result.n_entries_masked} entries: {cells_per_gene} in each of {result.n_genes_masked} genes "
        f"(dropout curve midpoint {result.dropout_model.midpoint:.3f}, shape {result.dropout_model.shape:.3f})"
    )
    dataset.layers[ORIGINAL_LAYER] = dataset.counts
    dataset.counts = result.masked
    parameters = {
        "cells_per_gene": cells_per_gene,
        "seed": seed,
        "dropout_model": asdict(result.dropout_model),
        "genes_masked": result.n_genes_masked,
        "entries_masked": result.n_entries_masked,
    }
    write_loom(out_path, dataset, file_attrs=provenance("mask", parameters))


def train_file(
    in_path: str | os.PathLike,
    model_path: str | os.PathLike,
    *,
    params: TrainingParameters,
    progress: Progress,
) -> None:
    """Train on a Loom (or any supported input) and write the model directory."""
    dataset = read_dataset(in_path)
    _require_cells_and_genes(dataset, in_path)
    check_unique(dataset.genes, path=in_path, what="gene names")
    progress.message(f"training on {dataset.n_genes} genes x {dataset.n_cells} cells from {in_path}")

    def on_epoch(epoch: int, values: dict) -> None:
        progress.advance(
            "epoch",
            epoch,
            params.max_epochs,
            f"loss {values['train_loss']:.4g}  validation {values['validation_loss']:.4g}  "
            f"sub-networks still improving {values['active']}",
            total_is_bound=True,
        )

    progress.start()
    try:
        model = train(dataset.counts, dataset.genes, params=params, log=progress.message, on_epoch=on_epoch)
    except TrainingError as error:
        raise InputError(str(in_path), str(error)) from error
    if str(model_path).endswith(".zip"):
        with atomic_path(model_path) as temporary:
            model.save_zip(temporary)
    else:
        with atomic_path(model_path, directory=True) as temporary:
            model.save(temporary)
    progress.message(f"model written to {model_path}")


def impute_file(
    in_path: str | os.PathLike,
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    policy: str = "restore",
    chunk_cells: int | None = None,
    progress: Progress,
) -> ImputeSummary:
    """Impute a Loom with a saved model into a new Loom."""
    model = load_model(model_path)
    progress.message(
        f"model: {model.target_genes.size} target genes in {len(model.subnetworks)} sub-networks"
    )
    parameters = {"model": str(model_path), "policy": policy, "model_parameters": model.parameters}
    summary = impute_loom(
        in_path,
        model,
        out_path,
        policy=policy,
        chunk_cells=chunk_cells,
        file_attrs=provenance("impute", parameters),
        progress=progress,
    )
    progress.message(
        f"imputed {summary.imputed_genes} of {summary.genes} genes in {summary.cells} cells; "
        f"{summary.zeros_filled} zeros filled"
    )
    return summary


def score_file(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    labels: str | None = None,
    plots: str | os.PathLike | None = None,
    seed: int = 0,
    progress: Progress,
) -> dict:
    """Score a masked-then-imputed Loom; write JSON, print a table, optionally draw PNGs."""
    metrics, entries = score_loom(in_path, labels=labels, seed=seed)
    with atomic_path(out_path) as temporary:
        Path(temporary).write_text(json.dumps(metrics, indent=1, allow_nan=True))
    if plots is not None:
        for figure in draw_plots(metrics, entries, plots):
            progress.message(f"figure: {figure}")
    return metrics


def split_file(
    in_path: str | os.PathLike, out_dir: str | os.PathLike, *, chunk_size: int = 10_000, progress: Progress
) -> list[Path]:
    """Split a Loom into Looms of ``chunk_size`` cells each, to impute them in parallel."""
    chunks = split_loom(
        in_path, out_dir, chunk_size=chunk_size, file_attrs=provenance("split", {"chunk_size": chunk_size})
    )
    progress.message(f"wrote {len(chunks)} chunks of at most {chunk_size} cells to {out_dir}")
    return chunks


def merge_files(
    chunk_paths: list[str | os.PathLike], out_path: str | os.PathLike, *, progress: Progress
) -> None:
    """Merge chunks made by ``split_file`` (imputed or not) back into one Loom, in cell order."""
    n_cells = merge_looms(chunk_paths, out_path, file_attrs=provenance("merge", {"chunks": len(chunk_paths)}))
    progress.message(f"merged {len(chunk_paths)} chunks ({n_cells} cells) into {out_path}")
