"""A :class:`~deepimpute_tool.dataset.Dataset` in memory read as a Loom is: a block of cells at a time.

``impute`` streams a Loom through :class:`~deepimpute_tool.loom.LoomReader`; an input that
:func:`~deepimpute_tool.formats.open_input` reads whole (h5ad) goes through the same loop as a
:class:`DatasetReader`, whose blocks are dense slices of the sparse counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from deepimpute_tool.dataset import Dataset
from deepimpute_tool.loom import MAIN, CellBlock, cells_per_block


class DatasetReader:
    """The part of :class:`~deepimpute_tool.loom.LoomReader` that imputation uses, over a Dataset."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.genes, self.cells = dataset.genes, dataset.cells
        self.n_cells, self.n_genes = dataset.n_cells, dataset.n_genes
        self.layer_names: list[str] = []  # only the counts are read; an h5ad output copies the rest

    def count_dtype(self) -> np.dtype:
        return self.dataset.counts.dtype

    def layout(self) -> dict:
        return {
            "genes": self.genes,
            "gene_attrs": dict(self.dataset.gene_attrs),
            "layer_dtypes": {MAIN: self.count_dtype()},
        }

    def file_attrs(self) -> dict[str, str]:
        return dict(self.dataset.file_attrs)

    def blocks(
        self, *, layers: tuple[str, ...] = (MAIN,), chunk_cells: int | None = None, attrs: bool = False
    ) -> Iterator[CellBlock]:
        """Blocks of consecutive cells (cells x genes, dense), as :meth:`LoomReader.blocks` gives them."""
        if tuple(layers) != (MAIN,):
            raise ValueError("a DatasetReader has the counts alone")
        step = cells_per_block(self.n_genes, self.count_dtype().itemsize, chunk_cells)
        for start in range(0, self.n_cells, step):
            cells = slice(start, min(start + step, self.n_cells))
            cell_attrs = {}
            if attrs:
                cell_attrs = {
                    "CellID": self.cells[cells],
                    **{name: values[cells] for name, values in self.dataset.cell_attrs.items()},
                }
            yield CellBlock(cells, {MAIN: self.dataset.counts[cells].toarray()}, cell_attrs)
