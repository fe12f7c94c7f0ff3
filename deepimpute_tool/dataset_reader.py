"""A :class:`~deepimpute_tool.dataset.Dataset` in memory read, and written, a block of cells at a time.

The steps stream a Loom through :class:`~deepimpute_tool.loom.LoomReader`; an input that
:func:`~deepimpute_tool.formats.open_input` reads whole (h5ad) goes through the same loops as a
:class:`DatasetReader`, whose blocks are dense slices of the sparse counts and layers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from deepimpute_tool.dataset import Dataset, as_counts
from deepimpute_tool.errors import InputError
from deepimpute_tool.loom import MAIN, CellBlock, LoomWriter, cells_per_block


class DatasetReader:
    """The part of :class:`~deepimpute_tool.loom.LoomReader` that the steps use, over a Dataset
    (its counts as the main matrix, its layers by name)."""

    def __init__(self, dataset: Dataset, *, path: str | os.PathLike | None = None) -> None:
        self.dataset, self.path = dataset, None if path is None else Path(path)
        self.genes, self.cells = dataset.genes, dataset.cells
        self.n_cells, self.n_genes = dataset.n_cells, dataset.n_genes
        self.layer_names: list[str] = list(dataset.layers)
        self._matrices = {MAIN: dataset.counts, **dataset.layers}

    def count_dtype(self) -> np.dtype:
        return self.dataset.counts.dtype

    def layout(self) -> dict:
        return {
            "genes": self.genes,
            "gene_attrs": dict(self.dataset.gene_attrs),
            "layer_dtypes": {name: matrix.dtype for name, matrix in self._matrices.items()},
        }

    def file_attrs(self, *, exclude: tuple[str, ...] = ()) -> dict[str, str]:
        return {key: value for key, value in self.dataset.file_attrs.items() if key not in exclude}

    def cell_attrs(self, cells: slice | None = None) -> dict[str, np.ndarray]:
        chosen = cells or slice(None)
        return {name: values[chosen] for name, values in self.dataset.cell_attrs.items()}

    def blocks(
        self,
        *,
        layers: tuple[str, ...] = (MAIN,),
        counts: tuple[str, ...] = (MAIN,),
        chunk_cells: int | None = None,
        attrs: bool = False,
        within: slice | None = None,
    ) -> Iterator[CellBlock]:
        """Blocks of consecutive cells (cells x genes, dense), as :meth:`LoomReader.blocks` gives them."""
        for name in layers:
            if name not in self._matrices:
                raise InputError(self.path, f"has no layer '{name}'")
        first, last = (within.start, within.stop) if within else (0, self.n_cells)
        widest = max(self._matrices[name].dtype.itemsize for name in layers)
        step = cells_per_block(self.n_genes, max(widest, 4), chunk_cells)
        for start in range(first, last, step):
            cells = slice(start, min(start + step, last))
            matrices = {}
            for name in layers:
                values = self._matrices[name][cells].toarray()
                if name in counts and name != MAIN:  # the counts were checked as they were read
                    values = as_counts(values, path=self.path, what=f"layer '{name}'")
                matrices[name] = values
            cell_attrs = {"CellID": self.cells[cells], **self.cell_attrs(cells)} if attrs else {}
            yield CellBlock(cells, matrices, cell_attrs)


def dataset_layout(data: Dataset) -> dict:
    """What a writer needs to make a file of a :class:`Dataset`'s genes and layers."""
    return {
        "genes": data.genes,
        "gene_attrs": data.gene_attrs,
        "layer_dtypes": {MAIN: data.counts.dtype, **{name: m.dtype for name, m in data.layers.items()}},
    }


def dataset_blocks(data: Dataset) -> Iterator[CellBlock]:
    """A :class:`Dataset` as blocks of cells for a writer (dense, about 64 MiB each)."""
    matrices = {MAIN: data.counts, **data.layers}
    step = cells_per_block(data.n_genes, 8)
    for start in range(0, max(data.n_cells, 1), step):
        cells = slice(start, min(start + step, data.n_cells))
        yield CellBlock(
            cells,
            {name: matrix[cells].toarray() for name, matrix in matrices.items()},
            {"CellID": data.cells[cells], **{k: v[cells] for k, v in data.cell_attrs.items()}},
        )


def write_dataset(path: str | os.PathLike, data: Dataset, *, file_attrs: dict[str, str]) -> None:
    """Write a :class:`Dataset` as a Loom file at ``path`` (a temporary path), a block at a time."""
    with LoomWriter.create(path, **dataset_layout(data)) as writer:
        for block in dataset_blocks(data):
            writer.append(block)
        writer.set_file_attrs({**data.file_attrs, **file_attrs})
