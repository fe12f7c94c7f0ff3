"""AnnData out: what impute writes as .h5ad is what it writes as Loom, read back by anndata and scanpy."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from deepimpute_tool.imputation import ImputeParameters
from deepimpute_tool.progress import Progress
from deepimpute_tool.steps.impute import impute_file
from deepimpute_tool.steps.merge import merge_files
from deepimpute_tool.steps.run import convert_file
from deepimpute_tool.steps.split import split_file
from tests.helpers import PBMC68K, read_matrix


@pytest.fixture(scope="module")
def imputed(pbmc68k_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("h5ad")
    quiet = Progress(quiet=True)
    for name, chunk_cells in (("imputed.loom", None), ("imputed.h5ad", 97)):
        impute_file(
            PBMC68K,
            pbmc68k_model_dir,
            folder / name,
            params=ImputeParameters(chunk_cells=chunk_cells),
            progress=quiet,
        )
    return folder


def test_anndata_and_scanpy_read_what_the_loom_holds(imputed, pbmc68k, pbmc68k_model):
    import anndata
    import scanpy as sc

    loom = imputed / "imputed.loom"
    for adata in (anndata.read_h5ad(imputed / "imputed.h5ad"), sc.read_h5ad(imputed / "imputed.h5ad")):
        assert adata.shape == (pbmc68k.n_cells, pbmc68k.n_genes)
        assert adata.obs_names.tolist() == pbmc68k.cells.tolist()
        assert adata.var_names.tolist() == pbmc68k.genes.tolist()
        assert adata.obs["CellType"].tolist() == pbmc68k.cell_attrs["CellType"].tolist()
        np.testing.assert_allclose(adata.X, read_matrix(loom).T, rtol=1e-5)  # other blocks: float32 rounding
        np.testing.assert_array_equal(adata.layers["counts"].toarray(), read_matrix(loom, "raw").T)
        record = json.loads(adata.uns["deepimpute_impute"])
        assert record["step"] == "impute" and record["parameters"]["chunk_cells"] == 97
    observed = read_matrix(loom, "raw").T > 0
    kept = adata.layers["detected_fill"].toarray()
    np.testing.assert_array_equal(kept[observed], read_matrix(loom, "raw").T[observed])  # bit for bit
    imputed_genes = adata.var_names[adata.var["deepimpute_imputed"] == 1]
    assert sorted(imputed_genes) == sorted(pbmc68k_model.target_genes)


def test_scanpy_works_on_it(imputed):
    import scanpy as sc

    adata = sc.read_h5ad(imputed / "imputed.h5ad")
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=10)
    assert adata.obsm["X_pca"].shape == (adata.n_obs, 10)


def test_a_converted_loom_and_merged_chunks_give_the_same_anndata(imputed, tmp_path):
    import anndata

    quiet = Progress(quiet=True)
    convert_file(imputed / "imputed.loom", tmp_path / "converted.h5ad", progress=quiet)
    chunks = split_file(
        imputed / "imputed.loom",
        tmp_path / "chunks",
        params=__import__("deepimpute_tool.chunking", fromlist=["SplitParameters"]).SplitParameters(
            chunk_size=300
        ),
        progress=quiet,
    )
    merge_files(list(reversed(chunks)), tmp_path / "merged.h5ad", progress=quiet)
    converted, merged = (anndata.read_h5ad(tmp_path / name) for name in ("converted.h5ad", "merged.h5ad"))
    np.testing.assert_array_equal(converted.X, read_matrix(imputed / "imputed.loom").T)
    for adata in (converted, merged):
        np.testing.assert_array_equal(adata.X, converted.X)
        np.testing.assert_array_equal(adata.layers["counts"].toarray(), converted.layers["counts"].toarray())
        assert adata.obs_names.tolist() == converted.obs_names.tolist()
    with h5py.File(tmp_path / "merged.h5ad", "r") as f:
        assert f.attrs["encoding-type"] == "anndata" and f["X"].compression == "gzip"
