"""Each step from input files to output files: check the outputs, read, call the pure functions, write.

Every step first checks that its outputs can be written without touching an input
(:func:`deepimpute_tool.outputs.check_outputs`), then reads under a memory guard, and writes
under a temporary name moved into place when complete. Every problem is a
:class:`~deepimpute_tool.errors.DeepImputeError` naming the file it is about. The command line
calls these and those of :mod:`deepimpute_tool.workflow` (split, merge, run) and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np

from deepimpute_tool.dataset import check_unique, make_unique, require_cells_and_genes
from deepimpute_tool.errors import DeepImputeError, InputError
from deepimpute_tool.filtering import FilterParameters, FilterResult, quality_filter_blocks
from deepimpute_tool.formats import input_kind, read_counts
from deepimpute_tool.h5ad import H5adWriter
from deepimpute_tool.imputation import (
    ImputeParameters,
    ImputeSummary,
    impute_counts,
    missing_model_genes,
    prediction_spread,
)
from deepimpute_tool.limits import memory_guard
from deepimpute_tool.loom import (
    HELDOUT_LAYER,
    MAIN,
    ORIGINAL_LAYER,
    RAW_LAYER,
    UNCERTAINTY_LAYER,
    CellBlock,
    LoomReader,
    LoomWriter,
    provenance,
    write_dataset,
)
from deepimpute_tool.masking import MaskParameters, mask_counts, split_molecules
from deepimpute_tool.model_loading import is_model_directory, load_model
from deepimpute_tool.outputs import (
    DIRECTORY,
    FILE,
    FOLDER,
    Output,
    atomic_directory,
    atomic_file,
    check_outputs,
)
from deepimpute_tool.progress import Progress
from deepimpute_tool.scoring import (
    McvSums,
    ScoreParameters,
    accuracy_metrics,
    add_mcv,
    concatenate,
    masked_entries,
    mcv_metrics,
    mcv_totals,
)
from deepimpute_tool.training import TrainingParameters

# The files of `deepimpute run`'s output folder.
RUN_FILES = {
    "filtered": "filtered.loom",
    "masked": "masked.loom",
    "model": "model",
    "imputed": "imputed.loom",
    "imputed_h5ad": "imputed.h5ad",
    "scores": "scores.json",
    "plots": "plots",
}

MODEL_WHAT = "a model written by 'deepimpute train' (nor an empty folder)"


@contextlib.contextmanager
def about(path: str | os.PathLike, *, memory_hint: str = "") -> Iterator[None]:
    """Name ``path`` in errors that name nothing, and in running out of memory."""
    try:
        yield
    except DeepImputeError as error:
        if error.what is None:
            raise type(error)(path, error.problem) from None
        raise
    except MemoryError:
        raise InputError(path, f"needs more memory than this machine has available{memory_hint}") from None


def created(path: str | os.PathLike, temporary: Path, *, n_cells: int, **layout):
    """The writer of ``path``'s format for a file at ``temporary``: AnnData for .h5ad, else Loom."""
    if Path(path).name.endswith(".h5ad"):
        return H5adWriter.create(temporary, n_cells=n_cells, **layout)
    return LoomWriter.create(temporary, **layout)


def model_output(path: str | os.PathLike) -> Output:
    """A model is a zip file when its name ends in .zip, else a folder."""
    path = Path(path)
    if path.name.endswith(".zip"):
        return Output(path, FILE)
    return Output(path, DIRECTORY, replaceable=is_model_directory, what=MODEL_WHAT)


def filter_file(in_path, out_path, *, params: FilterParameters, progress: Progress) -> None:
    """Read any supported input, drop poor cells and rare genes, write Loom (a Loom input streams)."""
    check_outputs([Output(Path(out_path))], inputs=[in_path])
    file_attrs = provenance("filter", {**asdict(params), "input": str(in_path)})
    with about(in_path), memory_guard():
        if input_kind(in_path) == "loom":
            _filter_loom(in_path, out_path, params=params, file_attrs=file_attrs, progress=progress)
            return
        dataset = read_counts(in_path, orientation=params.orientation)
        require_cells_and_genes(dataset, in_path)
        progress.message(f"read {dataset.n_genes} genes x {dataset.n_cells} cells from {in_path}")
        dataset.genes = _unique_genes(dataset.genes, progress)
        result = _filtered(
            in_path, [dataset.counts], n_genes=dataset.n_genes, params=params, progress=progress
        )
        with atomic_file(out_path) as temporary:
            write_dataset(
                temporary,
                dataset.subset(cells=result.keep_cells, genes=result.keep_genes),
                file_attrs=file_attrs,
            )


def _unique_genes(genes, progress: Progress):
    unique = make_unique(genes)
    renamed = int((unique != genes).sum())
    if renamed:
        progress.message(f"{renamed} repeated gene names made unique by appending -1, -2, ...")
    return unique


def _filtered(in_path, blocks, *, n_genes: int, params: FilterParameters, progress: Progress) -> FilterResult:
    result = quality_filter_blocks(
        blocks,
        n_genes=n_genes,
        min_genes=params.min_genes,
        min_counts=params.min_counts,
        min_cells=params.min_cells,
    )
    progress.message(result.summary())
    if not result.keep_cells.any():
        raise InputError(
            in_path,
            f"no cell passes the filter (--min-genes {params.min_genes}, --min-counts {params.min_counts})",
        )
    if not result.keep_genes.any():
        raise InputError(in_path, f"no gene passes the filter (--min-cells {params.min_cells})")
    return result


def _filter_loom(
    in_path, out_path, *, params: FilterParameters, file_attrs: dict, progress: Progress
) -> None:
    """Two passes over blocks of cells: which cells and genes pass, then those written."""
    with LoomReader.open(in_path) as reader:
        if reader.n_cells == 0 or reader.n_genes == 0:
            raise InputError(
                in_path, f"the matrix is empty ({reader.n_genes} genes x {reader.n_cells} cells)"
            )
        check_unique(reader.cells, path=in_path, what="cell IDs")
        progress.message(f"reading {reader.n_genes} genes x {reader.n_cells} cells from {in_path}")
        blocks = (block.matrices[MAIN] for block in reader.blocks())
        result = _filtered(in_path, blocks, n_genes=reader.n_genes, params=params, progress=progress)
        genes = result.keep_genes
        layout = reader.layout()
        layout["genes"] = _unique_genes(reader.genes, progress)[genes]
        layout["gene_attrs"] = {name: values[genes] for name, values in layout["gene_attrs"].items()}
        layout["layer_dtypes"][MAIN] = reader.count_dtype()
        with atomic_file(out_path) as temporary, LoomWriter.create(temporary, **layout) as writer:
            for block in reader.blocks(layers=(MAIN, *reader.layer_names), attrs=True):
                cells = result.keep_cells[block.cells]
                if cells.any():
                    matrices = {name: values[cells][:, genes] for name, values in block.matrices.items()}
                    attrs = {name: values[cells] for name, values in block.cell_attrs.items()}
                    writer.append(CellBlock(block.cells, matrices, attrs))
            writer.set_file_attrs({**reader.file_attrs(), **file_attrs})


def mask_file(in_path, out_path, *, params: MaskParameters, progress: Progress) -> None:
    """Hide real counts: positive entries into the layer ``original`` (the paper's protocol), or a
    fraction of every count's molecules into the layer ``heldout`` (molecular cross-validation)."""
    check_outputs([Output(Path(out_path))], inputs=[in_path])
    with about(in_path), memory_guard():
        with LoomReader.open(in_path) as reader:
            dataset = reader.read_dataset()
        require_cells_and_genes(dataset, in_path)
        for layer in (ORIGINAL_LAYER, HELDOUT_LAYER):
            if layer in dataset.layers:
                raise InputError(in_path, f"already has a layer '{layer}': was it masked already?")
        parameters = asdict(params)
        if params.protocol == "mcv":
            kept, heldout = split_molecules(dataset.counts, fraction=params.mcv_fraction, seed=params.seed)
            held = int(heldout.sum())
            progress.message(
                f"held out {held} of {held + int(kept.sum())} molecules ({params.mcv_fraction:g})"
            )
            dataset.layers[HELDOUT_LAYER], dataset.counts = heldout, kept
            parameters["molecules_held_out"] = held
        else:
            result = mask_counts(dataset.counts, cells_per_gene=params.cells_per_gene, seed=params.seed)
            model = result.dropout_model
            progress.message(
                f"masked {result.n_entries_masked} entries: {params.cells_per_gene} in each of "
                f"{result.n_genes_masked} genes (dropout curve midpoint {model.midpoint:.3f}, shape {model.shape:.3f})"
            )
            dataset.layers[ORIGINAL_LAYER], dataset.counts = dataset.counts, result.masked
            parameters.update(
                dropout_model=asdict(model),
                genes_masked=result.n_genes_masked,
                entries_masked=result.n_entries_masked,
            )
        with atomic_file(out_path) as temporary:
            write_dataset(temporary, dataset, file_attrs=provenance("mask", parameters))


def train_file(in_path, model_path, *, params: TrainingParameters, progress: Progress) -> None:
    """Train on a Loom (or any supported input) and write the model directory or zip."""
    from deepimpute_tool.training import choose_training_cells, train

    output = model_output(model_path)
    check_outputs([output], inputs=[in_path])
    hint = "; try --cell-fraction, --max-cells or --max-genes"
    sample, rng = None, np.random.default_rng(params.seed)
    with about(in_path, memory_hint=hint):
        with memory_guard():
            if input_kind(in_path) == "loom":  # only the cells training uses are read
                with LoomReader.open(in_path) as reader:
                    require_cells_and_genes(reader, in_path)
                    sample = choose_training_cells(reader.n_cells, reader.n_genes, params, rng)
                    dataset = reader.read_dataset(layers=False, cells=sample.chosen)
            else:
                dataset = read_counts(in_path)
                require_cells_and_genes(dataset, in_path)
            check_unique(dataset.genes, path=in_path, what="gene names")
        progress.message(f"training on {dataset.n_genes} genes x {sample.n_cells if sample else dataset.n_cells} "
                         f"cells from {in_path}")  # fmt: skip

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
        model = train(
            dataset.counts,
            dataset.genes,
            params=params,
            log=progress.message,
            on_epoch=on_epoch,
            sample=sample,
            rng=rng,
        )
    if output.kind == FILE:
        with atomic_file(model_path) as temporary:
            model.save_zip(temporary)
    else:
        with atomic_directory(model_path) as temporary:
            model.save(temporary)
    progress.message(f"model written to {model_path}")


def impute_file(
    in_path, model_path, out_path, *, params: ImputeParameters, progress: Progress
) -> ImputeSummary:
    """Impute a Loom with a saved model into a new Loom, a block of cells at a time."""
    check_outputs([Output(Path(out_path))], inputs=[in_path, model_path])
    model = load_model(model_path)
    progress.message(
        f"model: {model.target_genes.size} target genes in {len(model.subnetworks)} sub-networks"
    )
    zeros_filled = 0
    with about(in_path), memory_guard(), LoomReader.open(in_path) as reader:
        if reader.n_cells == 0 or reader.n_genes == 0:
            raise InputError(in_path, "the matrix is empty")
        check_unique(reader.cells, path=in_path, what="cell IDs")
        problem = missing_model_genes(model, reader.genes)
        if problem:
            raise InputError(in_path, problem)
        model_genes, targets = set(model.genes.tolist()), set(model.target_genes.tolist())
        check_unique([g for g in reader.genes if g in model_genes], path=in_path, what="gene names")
        for layer in (RAW_LAYER, UNCERTAINTY_LAYER):
            if layer in reader.layer_names:
                raise InputError(in_path, f"already has a layer '{layer}': was it imputed already?")
        counts_dtype = reader.count_dtype()
        others = reader.layer_names
        layout = reader.layout()
        layout["layer_dtypes"].update({MAIN: counts_dtype, RAW_LAYER: counts_dtype})
        if params.uncertainty:
            layout["layer_dtypes"][UNCERTAINTY_LAYER] = np.dtype(np.float32)
        spread = _Spread(model, reader.genes, params)
        parameters = {"model": str(model_path), **asdict(params), "model_parameters": model.parameters}
        progress.start()
        with (
            atomic_file(out_path) as temporary,
            created(out_path, temporary, n_cells=reader.n_cells, **layout) as writer,
        ):
            for block in reader.blocks(layers=(MAIN, *others), chunk_cells=params.chunk_cells, attrs=True):
                counts = block.matrices[MAIN].astype(counts_dtype, copy=False)
                imputed = impute_counts(counts, reader.genes, model, policy=params.policy, fill=params.fill)
                # genes the model does not impute are unchanged, so all columns can be counted
                zeros_filled += int(((counts == 0) & (imputed > 0)).sum())
                matrices = {**block.matrices, MAIN: imputed, RAW_LAYER: counts, **spread.of(counts)}
                writer.append(CellBlock(block.cells, matrices, block.cell_attrs))
                progress.advance("imputing cells", block.cells.stop, reader.n_cells)
            writer.set_file_attrs({**reader.file_attrs(), **provenance("impute", parameters)})
        summary = ImputeSummary(
            cells=reader.n_cells,
            genes=reader.n_genes,
            imputed_genes=sum(g in targets for g in reader.genes),
            zeros_filled=zeros_filled,
        )
    progress.message(
        f"imputed {summary.imputed_genes} of {summary.genes} genes in {summary.cells} cells; "
        f"{summary.zeros_filled} zeros filled"
    )
    return summary


class _Spread:
    """The layer 'uncertainty' of a block, when --uncertainty asks for it: the Monte Carlo dropout
    spread of every zero of the genes the model imputes, 0 elsewhere."""

    def __init__(self, model, genes: np.ndarray, params: ImputeParameters) -> None:
        self.model, self.genes, self.samples = model, genes, params.uncertainty
        position = {name: i for i, name in enumerate(genes)}
        self.columns = np.array([position[g] for g in model.target_genes])
        self.rng = np.random.default_rng(params.seed)

    def of(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        if not self.samples:
            return {}
        spread = prediction_spread(counts, self.genes, self.model, samples=self.samples, rng=self.rng)
        layer = np.zeros(counts.shape, np.float32)
        layer[:, self.columns] = np.where(counts[:, self.columns] == 0, spread, 0)
        return {UNCERTAINTY_LAYER: layer}


def default_scores_path(in_path: str | os.PathLike) -> Path:
    """IN.scores.json beside IN (its .loom suffix dropped)."""
    in_path = Path(in_path)
    return in_path.with_name(in_path.name.removesuffix(".loom") + ".scores.json")


def score_file(in_path, out_path=None, *, params: ScoreParameters, plots=None, progress: Progress) -> dict:
    """Score a masked-then-imputed Loom; write JSON and, with ``plots``, PNG figures into that folder.

    The scores are those of the protocol the Loom was masked with: at the masked entries (layer
    ``original``), or by molecular cross-validation (layer ``heldout``); with ``params.labels``,
    clustering scores too.
    """
    out_path = Path(out_path) if out_path else default_scores_path(in_path)
    check_outputs([Output(out_path)] + ([Output(Path(plots), FOLDER)] if plots else []), inputs=[in_path])
    with about(in_path), memory_guard(), LoomReader.open(in_path) as reader:
        protocols = [layer for layer in (ORIGINAL_LAYER, HELDOUT_LAYER) if layer in reader.layer_names]
        if RAW_LAYER not in reader.layer_names or not protocols:
            raise InputError(
                in_path,
                "score needs a Loom made by 'deepimpute mask' then 'deepimpute impute' (layers 'raw', "
                "and 'original' or 'heldout')",
            )
        cell_attrs = reader.cell_attrs(slice(0, 0))
        if params.labels is not None and params.labels not in cell_attrs:
            raise InputError(
                in_path, f"has no cell attribute '{params.labels}' (has: {', '.join(cell_attrs)})"
            )
        metrics = {"input": Path(in_path).name, "cells": reader.n_cells, "genes": reader.n_genes}
        spread = [UNCERTAINTY_LAYER] if UNCERTAINTY_LAYER in reader.layer_names else []
        layers = (MAIN, RAW_LAYER, *protocols, *spread)
        blocks = lambda: reader.blocks(layers=layers, counts=(RAW_LAYER, *protocols))  # noqa: E731
        entries = None
        if ORIGINAL_LAYER in protocols:
            parts = [masked_entries(b.matrices[ORIGINAL_LAYER], b.matrices[RAW_LAYER], _imputed(b, in_path),
                                    cell_offset=b.cells.start, uncertainty=b.matrices.get(UNCERTAINTY_LAYER))
                     for b in blocks()]  # fmt: skip
            entries = concatenate(parts)
            if entries.truth.size == 0:
                raise InputError(in_path, "has no masked entries (positive in 'original', zero in 'raw')")
            metrics.update(accuracy_metrics(entries, gene_names=reader.genes, cell_names=reader.cells))
        if HELDOUT_LAYER in protocols:
            sums = [
                (b.matrices[RAW_LAYER].sum(axis=1), b.matrices[HELDOUT_LAYER].sum(axis=1)) for b in blocks()
            ]
            target_sum, scale = mcv_totals(*(np.concatenate(part) for part in zip(*sums)))
            mcv = McvSums()
            for b in blocks():
                add_mcv(mcv, denoised=_imputed(b, in_path), train=b.matrices[RAW_LAYER],
                        test=b.matrices[HELDOUT_LAYER], target_sum=target_sum, scale=scale)  # fmt: skip
            metrics.update(mcv_metrics(mcv))
        if params.labels is not None:
            from deepimpute_tool.clustering import clustering_metrics

            labels = reader.cell_attrs()[params.labels].astype(str)
            imputed, raw = (np.vstack([b.matrices[name] for b in blocks()]) for name in (MAIN, RAW_LAYER))
            metrics["clustering"] = {
                "labels": params.labels,
                "imputed": clustering_metrics(imputed, labels, seed=params.seed),
                "without_imputation": clustering_metrics(raw, labels, seed=params.seed),
            }
    with atomic_file(out_path) as temporary:
        temporary.write_text(json.dumps(metrics, indent=1, allow_nan=True))
    if plots is not None and entries is not None:
        from deepimpute_tool.plots import draw_plots

        Path(plots).mkdir(exist_ok=True)
        for figure in draw_plots(metrics, entries, plots):
            progress.message(f"figure: {figure}")
    return metrics


def _imputed(block: CellBlock, in_path) -> np.ndarray:
    imputed = block.matrices[MAIN]
    if not (imputed >= 0).all():  # also refuses NaN
        raise InputError(in_path, "the main matrix holds negative or NaN values: is it imputed counts?")
    return imputed
