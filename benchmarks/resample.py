"""Make larger Loom files from a real one: cells drawn with replacement, binomially thinned.

Each drawn cell keeps every count with probability ``keep`` (binomial thinning), so copies
of one cell differ as two shallower sequencings of it would. Written one block of cells
at a time through the tool's own Loom writer, so a million cells need no more memory than a
block.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from deepimpute_tool.loom import MAIN, CellBlock, LoomWriter, read_loom


def most_detected_genes(counts: sp.csr_matrix, n_genes: int) -> np.ndarray:
    """Column indices of the ``n_genes`` genes detected in the most cells, in file order."""
    detected = np.asarray((counts > 0).sum(axis=0)).ravel()
    return np.sort(np.argsort(-detected, kind="stable")[:n_genes])


def write_resampled(
    source: Path,
    output: Path,
    *,
    n_cells: int,
    n_genes: int | None = None,
    keep: float = 0.9,
    seed: int = 0,
    block_bytes: int = 256 * 2**20,
) -> Path:
    """Write ``n_cells`` thinned copies of cells of ``source`` (its ``n_genes`` most detected genes)."""
    if output.exists():
        return output
    dataset = read_loom(source, layers=False)
    counts = dataset.counts
    columns = most_detected_genes(counts, n_genes) if n_genes else np.arange(counts.shape[1])
    counts = sp.csr_matrix(counts[:, columns]).astype(np.int64)
    genes = dataset.genes[columns]
    rng = np.random.default_rng(seed)
    partial = output.with_name(output.name + ".partial")
    partial.unlink(missing_ok=True)
    layout = {"genes": genes, "gene_attrs": {}, "layer_dtypes": {MAIN: np.dtype(np.float32)}}
    block_cells = max(1, block_bytes // (4 * len(genes)))  # a dense float32 block of about block_bytes
    with LoomWriter.create(partial, **layout) as writer:
        for start in range(0, n_cells, block_cells):
            size = min(block_cells, n_cells - start)
            drawn = counts[rng.integers(0, counts.shape[0], size)]
            drawn.data = rng.binomial(drawn.data, keep)
            cells = np.array([f"cell{start + i}" for i in range(size)], dtype=object)
            block = CellBlock(
                slice(start, start + size), {MAIN: drawn.toarray().astype(np.float32)}, {"CellID": cells}
            )
            writer.append(block)
    partial.rename(output)
    return output
