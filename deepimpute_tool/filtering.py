"""Quality control: drop poor cells and rarely detected genes before imputation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from deepimpute_tool.options import option, parameters, shared_option

ORIENTATIONS = ("auto", "genes-by-cells", "cells-by-genes")


@parameters
class FilterParameters:
    """Every option of quality control (and of reading text tables)."""

    min_genes: int = option(
        200, minimum=0, label="Minimum detected genes per cell",
        help="Keep cells with at least this many detected genes.",
    )  # fmt: skip
    min_counts: int = option(
        0, minimum=0, label="Minimum counts per cell", help="Keep cells with at least this many counts."
    )
    min_cells: int = option(
        3, minimum=0, label="Minimum cells in which a gene is detected",
        help="Keep genes detected in at least this many of the kept cells.",
    )  # fmt: skip
    orientation: str = option(
        "auto",
        choices=ORIENTATIONS,
        choice_labels=(
            "automatic: the longer axis holds genes",
            "genes as rows, cells as columns",
            "cells as rows, genes as columns",
        ),
        label="Orientation of a CSV/tabular input",
        help="For CSV/TSV input: which axis holds genes (auto: the longer one).",
    )
    layer: str | None = shared_option("layer")


@dataclass(frozen=True)
class FilterResult:
    """Which cells and genes pass, and how many of each were dropped for which reason."""

    keep_cells: np.ndarray
    keep_genes: np.ndarray
    cells_few_genes: int
    cells_few_counts: int
    genes_few_cells: int
    genes_per_cell: np.ndarray  # of every cell, for the QC figures
    counts_per_cell: np.ndarray
    cells_per_gene: np.ndarray  # in the kept cells

    def summary(self) -> str:
        return (
            f"kept {int(self.keep_cells.sum())} of {self.keep_cells.size} cells "
            f"({self.cells_few_genes} with too few genes, {self.cells_few_counts} with too few "
            f"counts) and {int(self.keep_genes.sum())} of {self.keep_genes.size} genes "
            f"({self.genes_few_cells} detected in too few cells)"
        )


def quality_filter_blocks(
    blocks: Iterable[np.ndarray | sp.spmatrix],
    *,
    n_genes: int,
    min_genes: int = 200,
    min_counts: int = 0,
    min_cells: int = 3,
) -> FilterResult:
    """Cells and genes that pass quality control, as boolean masks, from consecutive blocks of cells.

    Cells are judged first on all genes; genes are then judged on the cells that remain,
    so a gene seen only in discarded cells is dropped too. One pass over the blocks: a cell's
    fate is known within its block.

    Parameters
    ----------
    blocks
        Cells x genes raw counts, dense or sparse, a block of consecutive cells at a time.
    n_genes
        Genes (columns) of every block.
    min_genes
        Keep cells with at least this many detected genes (non-zero counts).
    min_counts
        Keep cells with at least this many counts in total.
    min_cells
        Keep genes detected in at least this many of the kept cells.
    """
    keep_parts, few_genes_parts, few_counts_parts, genes_parts, counts_parts = [], [], [], [], []
    cells_per_gene = np.zeros(n_genes, np.int64)
    for block in blocks:
        detected = sp.csr_matrix(block > 0) if sp.issparse(block) else block > 0
        genes_per_cell = np.asarray(detected.sum(axis=1)).ravel()
        counts_per_cell = np.asarray(block.sum(axis=1)).ravel()
        few_genes = genes_per_cell < min_genes
        few_counts = counts_per_cell < min_counts
        keep = ~(few_genes | few_counts)
        cells_per_gene += np.asarray(detected[keep].sum(axis=0)).ravel().astype(np.int64)
        keep_parts.append(keep)
        genes_parts.append(genes_per_cell)
        counts_parts.append(counts_per_cell)
        few_genes_parts.append(few_genes)
        few_counts_parts.append(few_counts & ~few_genes)
    keep_genes = cells_per_gene >= min_cells
    return FilterResult(
        keep_cells=np.concatenate(keep_parts) if keep_parts else np.zeros(0, bool),
        keep_genes=keep_genes,
        cells_few_genes=int(sum(part.sum() for part in few_genes_parts)),
        cells_few_counts=int(sum(part.sum() for part in few_counts_parts)),
        genes_few_cells=int((~keep_genes).sum()),
        genes_per_cell=np.concatenate(genes_parts) if genes_parts else np.zeros(0),
        counts_per_cell=np.concatenate(counts_parts) if counts_parts else np.zeros(0),
        cells_per_gene=cells_per_gene,
    )
