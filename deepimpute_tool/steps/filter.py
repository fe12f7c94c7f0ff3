"""``deepimpute filter``: any supported input to a Loom (or h5ad) of the cells and genes that pass quality control."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from deepimpute_tool.dataset import Dataset, make_unique, require_cells_and_genes
from deepimpute_tool.dataset_reader import dataset_blocks, dataset_layout
from deepimpute_tool.errors import InputError
from deepimpute_tool.filtering import FilterParameters, FilterResult, quality_filter_blocks
from deepimpute_tool.formats import open_input
from deepimpute_tool.limits import memory_guard
from deepimpute_tool.loom import MAIN, CellBlock, LoomReader, provenance
from deepimpute_tool.outputs import Output, atomic_file, check_outputs
from deepimpute_tool.progress import Progress
from deepimpute_tool.steps.common import about, writer_for


def filter_file(in_path, out_path, *, params: FilterParameters, progress: Progress, qc_plot=None) -> None:
    """Read any supported input, drop poor cells and rare genes, write Loom, or AnnData for a
    name ending in .h5ad (a Loom input streams); with ``qc_plot``, a PNG of what the thresholds cut."""
    check_outputs([Output(Path(out_path)), *([Output(Path(qc_plot))] if qc_plot else [])], inputs=[in_path])
    file_attrs = provenance("filter", {**asdict(params), "input": str(in_path)})
    with (
        about(in_path),
        memory_guard(),
        open_input(in_path, orientation=params.orientation, layer=params.layer) as source,
    ):
        require_cells_and_genes(source, in_path)
        progress.message(f"reading {source.n_genes} genes x {source.n_cells} cells from {in_path}")
        if isinstance(source, LoomReader):
            result = _filter_loom(source, out_path, params=params, file_attrs=file_attrs, progress=progress)
        else:
            result = _filter_dataset(
                source, out_path, params=params, file_attrs=file_attrs, progress=progress
            )
    if qc_plot:
        from deepimpute_tool.plots import draw_figure, qc_figure

        figure = qc_figure(
            result, min_genes=params.min_genes, min_counts=params.min_counts, min_cells=params.min_cells
        )
        draw_figure(figure, qc_plot)
        progress.message(f"quality control drawn in {qc_plot}")


def _filter_dataset(
    dataset: Dataset, out_path, *, params: FilterParameters, file_attrs: dict, progress: Progress
) -> FilterResult:
    dataset.genes = _unique_genes(dataset.genes, progress)
    result = _filtered([dataset.counts], n_genes=dataset.n_genes, params=params, progress=progress)
    kept = dataset.subset(cells=result.keep_cells, genes=result.keep_genes)
    with (
        atomic_file(out_path) as temporary,
        writer_for(out_path, temporary, n_cells=kept.n_cells, counts=True, **dataset_layout(kept)) as writer,
    ):
        for block in dataset_blocks(kept):
            writer.append(block)
        writer.set_file_attrs({**kept.file_attrs, **file_attrs})
    return result


def _filter_loom(
    reader: LoomReader, out_path, *, params: FilterParameters, file_attrs: dict, progress: Progress
) -> FilterResult:
    """Two passes over blocks of cells: which cells and genes pass, then those written."""
    blocks = (block.matrices[MAIN] for block in reader.blocks())
    result = _filtered(blocks, n_genes=reader.n_genes, params=params, progress=progress)
    genes = result.keep_genes
    layout = reader.layout()
    layout["genes"] = _unique_genes(reader.genes, progress)[genes]
    layout["gene_attrs"] = {name: values[genes] for name, values in layout["gene_attrs"].items()}
    layout["layer_dtypes"][MAIN] = reader.count_dtype()
    with (
        atomic_file(out_path) as temporary,
        writer_for(
            out_path, temporary, n_cells=int(result.keep_cells.sum()), counts=True, **layout
        ) as writer,
    ):
        for block in reader.blocks(layers=(MAIN, *reader.layer_names), attrs=True):
            cells = result.keep_cells[block.cells]
            if cells.any():
                matrices = {name: values[cells][:, genes] for name, values in block.matrices.items()}
                attrs = {name: values[cells] for name, values in block.cell_attrs.items()}
                writer.append(CellBlock(block.cells, matrices, attrs))
        writer.set_file_attrs({**reader.file_attrs(), **file_attrs})
    return result


def _unique_genes(genes, progress: Progress):
    unique = make_unique(genes)
    renamed = int((unique != genes).sum())
    if renamed:
        progress.message(f"{renamed} repeated gene names made unique by appending -1, -2, ...")
    return unique


def _filtered(blocks, *, n_genes: int, params: FilterParameters, progress: Progress) -> FilterResult:
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
            None,
            f"no cell passes the filter (⟨min_genes⟩ {params.min_genes}, ⟨min_counts⟩ {params.min_counts})",
        )
    if not result.keep_genes.any():
        raise InputError(None, f"no gene passes the filter (⟨min_cells⟩ {params.min_cells})")
    return result
