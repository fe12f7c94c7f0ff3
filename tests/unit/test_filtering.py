from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from deepimpute_tool.filtering import quality_filter_blocks


def quality_filter(counts, **thresholds):
    return quality_filter_blocks([counts], n_genes=counts.shape[1], **thresholds)


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


def test_a_loom_is_filtered_in_blocks_as_the_whole_matrix_is(pbmc68k, tmp_path, monkeypatch):
    """filter streams a Loom (two passes over blocks of cells); an h5ad is read whole: same result."""
    import anndata

    import deepimpute_tool.loom as loom
    from deepimpute_tool.filtering import FilterParameters
    from deepimpute_tool.progress import Progress
    from deepimpute_tool.steps.filter import filter_file
    from tests.helpers import PBMC68K

    adata = anndata.AnnData(X=pbmc68k.counts, obs={"CellType": pbmc68k.cell_attrs["CellType"]})
    adata.obs_names, adata.var_names = pbmc68k.cells, pbmc68k.genes
    adata.write_h5ad(tmp_path / "in.h5ad")
    params = FilterParameters(min_genes=150, min_counts=400, min_cells=20)
    monkeypatch.setattr(loom, "BLOCK_BYTES", 4 * 765 * 37)  # blocks of 37 cells
    filter_file(PBMC68K, tmp_path / "streamed.loom", params=params, progress=Progress(quiet=True))
    filter_file(tmp_path / "in.h5ad", tmp_path / "whole.loom", params=params, progress=Progress(quiet=True))
    streamed, whole = loom.read_loom(tmp_path / "streamed.loom"), loom.read_loom(tmp_path / "whole.loom")
    expected = quality_filter(pbmc68k.counts, min_genes=150, min_counts=400, min_cells=20)
    assert 0 < expected.keep_cells.sum() < pbmc68k.n_cells and 0 < expected.keep_genes.sum() < pbmc68k.n_genes
    for result in (streamed, whole):
        assert result.cells.tolist() == pbmc68k.cells[expected.keep_cells].tolist()
        assert result.genes.tolist() == pbmc68k.genes[expected.keep_genes].tolist()
        np.testing.assert_array_equal(
            result.counts.toarray(), pbmc68k.counts[expected.keep_cells][:, expected.keep_genes].toarray()
        )
        assert (
            result.cell_attrs["CellType"].tolist()
            == pbmc68k.cell_attrs["CellType"][expected.keep_cells].tolist()
        )
