"""``deepimpute score``: a masked-then-imputed Loom or h5ad scored against what masking hid; JSON and figures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from deepimpute_tool.dataset import require_cells_and_genes
from deepimpute_tool.dataset_reader import DatasetReader
from deepimpute_tool.errors import InputError
from deepimpute_tool.formats import open_blocks
from deepimpute_tool.h5ad import COUNTS_LAYER
from deepimpute_tool.limits import memory_guard
from deepimpute_tool.loom import (
    DETECTED_FILL_LAYER,
    HELDOUT_LAYER,
    INTERVAL_HIGH_LAYER,
    INTERVAL_LOW_LAYER,
    MAIN,
    ORIGINAL_LAYER,
    RAW_LAYER,
    UNCERTAINTY_LAYER,
    LoomReader,
)
from deepimpute_tool.outputs import FOLDER, Output, atomic_file, check_outputs
from deepimpute_tool.progress import Progress
from deepimpute_tool.scoring import ScoreParameters, accuracy_metrics, concatenate, masked_entries, mcv_scores
from deepimpute_tool.steps.common import about

# what impute writes beside the imputed counts that score reads
EXTRA_LAYERS = (UNCERTAINTY_LAYER, DETECTED_FILL_LAYER, INTERVAL_LOW_LAYER, INTERVAL_HIGH_LAYER)


def default_scores_path(in_path: str | os.PathLike) -> Path:
    """IN.scores.json beside IN (its .loom or .h5ad suffix dropped)."""
    in_path = Path(in_path)
    return in_path.with_name(in_path.name.removesuffix(".loom").removesuffix(".h5ad") + ".scores.json")


def score_file(in_path, out_path=None, *, params: ScoreParameters, plots=None, progress: Progress) -> dict:
    """Score a masked-then-imputed Loom or h5ad; write JSON and, with ``plots``, PNG figures into that folder.

    The scores are those of the protocol the Loom was masked with: at the masked entries (layer
    ``original``), or by molecular cross-validation (layer ``heldout``); with ``params.labels``,
    clustering scores too. The paper's imputation that impute writes beside a denoised matrix
    (layer ``detected_fill``) is scored at the masked entries too, under ``detected_fill``. The
    counts imputed are the layer ``raw`` of a Loom, ``layers["counts"]`` of an h5ad.
    """
    out_path = Path(out_path) if out_path else default_scores_path(in_path)
    check_outputs([Output(out_path)] + ([Output(Path(plots), FOLDER)] if plots else []), inputs=[in_path])
    wanted = (COUNTS_LAYER, ORIGINAL_LAYER, HELDOUT_LAYER, *EXTRA_LAYERS)  # of an h5ad, the rest is not read
    with about(in_path), memory_guard(), open_blocks(in_path, layers=wanted, counts=False) as reader:
        require_cells_and_genes(reader, in_path)
        raw_layer = RAW_LAYER if isinstance(reader, LoomReader) else COUNTS_LAYER
        protocols = [layer for layer in (ORIGINAL_LAYER, HELDOUT_LAYER) if layer in reader.layer_names]
        # an h5ad's layers['counts'] is often the user's: the counts imputed only after an imputation
        imputed = raw_layer in reader.layer_names and "deepimpute_impute" in reader.file_attrs()
        if not imputed or not protocols:
            raise InputError(
                in_path,
                "score needs a file made by 'deepimpute mask' then 'deepimpute impute' (layers "
                f"'{raw_layer}', and 'original' or 'heldout')",
            )
        labels = None if params.labels is None else _labels(reader, params.labels)
        metrics = {"input": Path(in_path).name, "cells": reader.n_cells, "genes": reader.n_genes}
        extra = [name for name in EXTRA_LAYERS if name in reader.layer_names]
        layers = (MAIN, raw_layer, *protocols, *extra)

        def blocks():
            for block in reader.blocks(layers=layers, counts=(raw_layer, *protocols)):
                yield block, _imputed(block.matrices[MAIN])

        entries = None
        if ORIGINAL_LAYER in protocols:
            # one pass over the file: the main matrix's masked entries, and the paper fill's beside it
            main, paper = [], []
            for b, imputed in blocks():
                original, raw = b.matrices[ORIGINAL_LAYER], b.matrices[raw_layer]
                main.append(masked_entries(original, raw, imputed, cell_offset=b.cells.start,
                                           uncertainty=b.matrices.get(UNCERTAINTY_LAYER),
                                           low=b.matrices.get(INTERVAL_LOW_LAYER),
                                           high=b.matrices.get(INTERVAL_HIGH_LAYER)))  # fmt: skip
                if DETECTED_FILL_LAYER in extra:
                    filled = _imputed(b.matrices[DETECTED_FILL_LAYER])
                    paper.append(masked_entries(original, raw, filled, cell_offset=b.cells.start))
            entries = concatenate(main)
            if entries.truth.size == 0:
                raise InputError(None, "has no masked entries (positive in 'original', zero in 'raw')")
            metrics.update(accuracy_metrics(entries, gene_names=reader.genes, cell_names=reader.cells))
            if paper:
                found = accuracy_metrics(concatenate(paper), gene_names=reader.genes, cell_names=reader.cells)
                metrics[DETECTED_FILL_LAYER] = {
                    key: found[key] for key in ("mse", "pearson", "mse_count_ge2", "pearson_count_ge2")
                }
        if HELDOUT_LAYER in protocols:
            metrics.update(mcv_scores(
                lambda: ((imputed, b.matrices[raw_layer], b.matrices[HELDOUT_LAYER]) for b, imputed in blocks())
            ))  # fmt: skip
        if params.labels is not None:
            from deepimpute_tool.clustering import clustering_metrics

            imputed = np.vstack([imputed for _, imputed in blocks()])
            raw = np.vstack([b.matrices[raw_layer] for b, _ in blocks()])
            metrics["clustering"] = {
                "labels": params.labels,
                "imputed": clustering_metrics(imputed, labels, seed=params.seed),
                "without_imputation": clustering_metrics(raw, labels, seed=params.seed),
            }
    with atomic_file(out_path) as temporary:
        temporary.write_text(json.dumps(metrics, indent=1, allow_nan=True))
    if plots is not None:  # made for every protocol (a pipeline expects it), drawn into for the paper's
        Path(plots).mkdir(exist_ok=True)
    if plots is not None and entries is not None:
        from deepimpute_tool.plots import draw_plots

        for figure in draw_plots(metrics, entries, plots):
            progress.message(f"figure: {figure}")
    return metrics


def _labels(reader: LoomReader | DatasetReader, name: str) -> np.ndarray:
    """The cell attribute ``name`` as text labels, refused unless it can be scored against."""
    found = reader.cell_attrs()
    if name not in found:
        raise InputError(reader.path, f"has no cell attribute '{name}' (has: {', '.join(found)})")
    values = found[name]
    if values.ndim != 1:
        raise InputError(
            reader.path, f"the cell attribute '{name}' has {values.ndim} dimensions; labels are one per cell"
        )
    labels = values.astype(str)
    distinct = np.unique(labels).size
    if not 2 <= distinct < labels.size:
        raise InputError(
            reader.path,
            f"the cell attribute '{name}' holds {distinct} distinct labels for {labels.size} cells; "
            "clustering scores need at least 2, and fewer than the cells",
        )
    return labels


def _imputed(imputed: np.ndarray) -> np.ndarray:
    if not (imputed >= 0).all():  # also refuses NaN
        raise InputError(None, "the main matrix holds negative or NaN values: is it imputed counts?")
    return imputed
