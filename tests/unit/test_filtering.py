from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from deepimpute_tool.filtering import quality_filter


def test_thresholds_apply_to_cells_then_genes(pbmc_small):
    counts = pbmc_small.counts
    result = quality_filter(counts, min_genes=60, min_counts=150, min_cells=5)
    detected = (counts > 0).toarray()
    expected_cells = (detected.sum(1) >= 60) & (np.asarray(counts.sum(1)).ravel() >= 150)
    np.testing.assert_array_equal(result.keep_cells, expected_cells)
    np.testing.assert_array_equal(result.keep_genes, detected[expected_cells].sum(0) >= 5)
    assert 0 < expected_cells.sum() < counts.shape[0]
    assert result.genes_few_cells == int((~result.keep_genes).sum())


def test_a_gene_seen_only_in_dropped_cells_is_dropped():
    counts = sp.csr_matrix(np.array([[5, 0, 1], [0, 9, 1], [0, 0, 1]], dtype=np.float32))
    result = quality_filter(counts, min_genes=2, min_cells=1)
    np.testing.assert_array_equal(result.keep_cells, [True, True, False])
    np.testing.assert_array_equal(result.keep_genes, [True, True, True])
    result = quality_filter(counts, min_genes=2, min_counts=7, min_cells=1)
    np.testing.assert_array_equal(result.keep_cells, [False, True, False])
    np.testing.assert_array_equal(result.keep_genes, [False, True, True])
