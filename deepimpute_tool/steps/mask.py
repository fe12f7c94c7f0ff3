"""``deepimpute mask``: hide real counts, by the paper's protocol or by molecular cross-validation.

Reads a Loom or an h5ad (its counts from ``⟨layer⟩``) and writes either (by the output's name):
the masked counts as the main matrix (X), what masking hid as a layer, and the cells' and genes'
annotations (of an h5ad, obs and var as stored). Nothing else is carried: the input's other layers
may hold the very counts masking hides (scanpy users keep a copy in ``layers["counts"]``), and a
normalised X, embeddings, graphs and uns describe them.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from deepimpute_tool.dataset import require_cells_and_genes
from deepimpute_tool.dataset_reader import dataset_blocks, dataset_layout
from deepimpute_tool.errors import InputError
from deepimpute_tool.formats import open_input
from deepimpute_tool.limits import memory_guard
from deepimpute_tool.loom import HELDOUT_LAYER, ORIGINAL_LAYER, provenance
from deepimpute_tool.masking import MaskParameters, mask_counts, split_molecules
from deepimpute_tool.outputs import Output, atomic_file, check_outputs
from deepimpute_tool.progress import Progress
from deepimpute_tool.steps.common import about, kept_slots_of, writer_for


def mask_file(in_path, out_path, *, params: MaskParameters, progress: Progress) -> None:
    """Hide real counts: positive entries into the layer ``original`` (the paper's protocol), or a
    fraction of every count's molecules into the layer ``heldout`` (molecular cross-validation);
    Loom or h5ad in, Loom or h5ad out (by ``out_path``'s name)."""
    check_outputs([Output(Path(out_path))], inputs=[in_path])
    with (
        about(in_path),
        memory_guard(),
        kept_slots_of(in_path, out_path, layer=params.layer, annotations_only=True) as keep,
    ):
        with open_input(in_path, layer=params.layer) as source:
            dataset = source.read_dataset(layers=False)
        require_cells_and_genes(dataset, in_path)
        if "deepimpute_mask" in dataset.file_attrs:
            raise InputError(
                in_path, "was masked already (it records a 'deepimpute mask'): mask the counts once"
            )
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
        with (
            atomic_file(out_path) as temporary,
            writer_for(
                out_path,
                temporary,
                n_cells=dataset.n_cells,
                keep=keep,
                counts=True,
                **dataset_layout(dataset),
            ) as writer,
        ):
            for block in dataset_blocks(dataset):
                writer.append(block)
            writer.set_file_attrs({**dataset.file_attrs, **provenance("mask", parameters)})
