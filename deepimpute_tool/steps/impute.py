"""``deepimpute impute``: fill the zeros of a Loom with a saved model's predictions, a block of cells at a time."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np

from deepimpute_tool.dataset import check_unique, require_cells_and_genes
from deepimpute_tool.errors import InputError, ModelError
from deepimpute_tool.formats import open_blocks
from deepimpute_tool.h5ad import COUNTS_LAYER
from deepimpute_tool.imputation import (
    ImputeParameters,
    ImputeSummary,
    calibrate_intervals,
    for_model,
    impute_block,
    missing_model_genes,
    uncertainty_layer,
)
from deepimpute_tool.limits import memory_guard
from deepimpute_tool.loom import (
    DETECTED_FILL_LAYER,
    DETECTION_LAYER,
    IMPUTED_GENE_ATTR,
    INTERVAL_HIGH_LAYER,
    INTERVAL_LOW_LAYER,
    MAIN,
    RAW_LAYER,
    UNCERTAINTY_LAYER,
    CellBlock,
    provenance,
)
from deepimpute_tool.model_loading import load_model
from deepimpute_tool.outputs import Output, atomic_file, check_outputs
from deepimpute_tool.progress import Progress
from deepimpute_tool.steps.common import about, kept_slots_of, refuse_layers, writer_for


def impute_file(
    in_path, model_path, out_path, *, params: ImputeParameters, progress: Progress
) -> ImputeSummary:
    """Impute a Loom (or h5ad) with a saved model into a new Loom (or h5ad), a block of cells at a time.

    An h5ad output of an h5ad input keeps every slot of the input that it does not replace
    (:class:`KeptSlots`): obs and var as stored (categoricals included), obsm, varm, obsp, varp,
    uns, raw and the other layers; X becomes the imputed counts, ``layers["counts"]`` the counts
    read.
    """
    check_outputs([Output(Path(out_path))], inputs=[in_path, model_path])
    model = load_model(model_path)
    with about(model_path):
        params = for_model(params, model)
        calibration = calibrate_intervals(model, params) if params.interval else None
    progress.message(
        f"model: {model.target_genes.size} target genes in {len(model.subnetworks)} sub-networks"
        + (", with a detection head" if model.has_detection else "")
        + f"; ⟨fill⟩ {params.fill}, ⟨policy⟩ {params.policy}"
    )
    zeros_filled = observed_changed = 0
    with (
        about(in_path),
        memory_guard(),
        kept_slots_of(in_path, out_path, layer=params.layer, gene_columns=(IMPUTED_GENE_ATTR,)) as keep,
        # an h5ad output copies the input's own layers itself; any other output takes them as read
        open_blocks(in_path, layer=params.layer, layers=keep is None) as reader,
    ):
        require_cells_and_genes(reader, in_path)
        problem = missing_model_genes(model, reader.genes)
        if problem:
            raise InputError(in_path, problem)
        model_genes, targets = set(model.genes.tolist()), set(model.target_genes.tolist())
        check_unique([g for g in reader.genes if g in model_genes], path=in_path, what="gene names")
        ours = (RAW_LAYER, UNCERTAINTY_LAYER, DETECTED_FILL_LAYER, DETECTION_LAYER, INTERVAL_LOW_LAYER,
                INTERVAL_HIGH_LAYER)  # fmt: skip
        refuse_layers(in_path, reader.layer_names, ours, done="imputed")
        counts_dtype = reader.count_dtype()
        others = reader.layer_names
        layout = reader.layout()
        # bool: Loom stores it as 0/1 (uint8), h5ad as bool
        layout["gene_attrs"][IMPUTED_GENE_ATTR] = np.fromiter((g in targets for g in reader.genes), bool)
        layout["layer_dtypes"].update({MAIN: counts_dtype, RAW_LAYER: counts_dtype})
        if params.detected_layer:
            layout["layer_dtypes"][DETECTED_FILL_LAYER] = counts_dtype
        if params.detection_layer:
            layout["layer_dtypes"][DETECTION_LAYER] = np.dtype(np.float32)
        if params.uncertainty or calibration is not None:
            layout["layer_dtypes"][UNCERTAINTY_LAYER] = np.dtype(np.float32)
        if calibration is not None:
            for name in (INTERVAL_LOW_LAYER, INTERVAL_HIGH_LAYER):
                layout["layer_dtypes"][name] = counts_dtype
            progress.message(
                f"intervals of {params.interval:.0%}: calibrated on {calibration.entries} hidden entries "
                f"(coverage {calibration.coverage:.3f} on the half that set them)"
            )
        if keep is not None:  # the input's own layers of these names would be replaced
            written = [COUNTS_LAYER if name == RAW_LAYER else name for name in layout["layer_dtypes"]]
            refuse_layers(in_path, keep.layer_names(), tuple(n for n in written if n not in (MAIN, COUNTS_LAYER)),
                          done="imputed")  # fmt: skip
        rng = np.random.default_rng(params.seed)
        parameters = {
            "model": str(model_path),
            "model_sha256": model.identity,
            **asdict(params),
            "model_parameters": model.parameters,
        }
        if calibration is not None:
            parameters["interval_calibration"] = {
                "entries": calibration.entries,
                "multiplier": calibration.multiplier,
                "coverage": calibration.coverage,
                "median_width": calibration.median_width,
            }
        progress.start()
        with (
            atomic_file(out_path) as temporary,
            writer_for(out_path, temporary, n_cells=reader.n_cells, keep=keep, **layout) as writer,
        ):
            for block in reader.blocks(layers=(MAIN, *others), chunk_cells=params.chunk_cells, attrs=True):
                counts = block.matrices[MAIN].astype(counts_dtype, copy=False)
                try:
                    result = impute_block(counts, reader.genes, model, params=params, calibration=calibration)
                except ModelError as error:
                    raise ModelError(model_path, error.problem) from None
                imputed = result.counts
                # genes the model does not impute are unchanged, so all columns can be counted
                zeros_filled += int(((counts == 0) & (imputed > 0)).sum())
                observed_changed += int(((counts > 0) & (imputed != counts)).sum())
                matrices = {**block.matrices, MAIN: imputed, RAW_LAYER: counts, **result.layers()}
                if params.uncertainty:
                    matrices[UNCERTAINTY_LAYER] = uncertainty_layer(
                        counts, reader.genes, model, samples=params.uncertainty, rng=rng
                    )
                writer.append(CellBlock(block.cells, matrices, block.cell_attrs))
                progress.advance("imputing cells", block.cells.stop, reader.n_cells)
            writer.set_file_attrs({**reader.file_attrs(), **provenance("impute", parameters)})
        summary = ImputeSummary(
            cells=reader.n_cells,
            genes=reader.n_genes,
            imputed_genes=sum(g in targets for g in reader.genes),
            zeros_filled=zeros_filled,
            observed_changed=observed_changed,
        )
    progress.message(
        f"imputed {summary.imputed_genes} of {summary.genes} genes in {summary.cells} cells; "
        f"{summary.zeros_filled} zeros filled; {summary.observed_changed} observed counts changed"
    )
    return summary
