"""Reading every supported input format and writing Loom, on real data."""

from __future__ import annotations

import gzip

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from deepimpute_tool.dataset import check_counts, make_unique
from deepimpute_tool.dataset_reader import write_dataset
from deepimpute_tool.errors import InputError
from deepimpute_tool.formats import read_counts
from deepimpute_tool.loom import read_loom
from tests.helpers import PBMC_SMALL, dense


@pytest.fixture(scope="module")
def small():
    return read_loom(PBMC_SMALL)


def test_loom_is_read_cells_by_genes_with_names(small):
    import loompy

    with loompy.connect(str(PBMC_SMALL), "r") as ds:
        truth = ds[:, :]
        assert small.counts.shape == (ds.shape[1], ds.shape[0])
        np.testing.assert_array_equal(dense(small.counts), truth.T)
        np.testing.assert_array_equal(small.genes, ds.ra.Gene)
        np.testing.assert_array_equal(small.cells, ds.ca.CellID)
        assert set(small.cell_attrs) >= {"CellType"}


def test_h5ad_10x_and_tables_give_the_same_counts(small, tmp_path):
    counts = dense(small.counts)
    adata = anndata.AnnData(
        X=sp.csr_matrix(counts), obs=pd.DataFrame(index=small.cells), var=pd.DataFrame(index=small.genes)
    )
    adata.write_h5ad(tmp_path / "x.h5ad")

    tenx = tmp_path / "tenx"
    tenx.mkdir()
    with gzip.open(tenx / "matrix.mtx.gz", "wb") as handle:
        scipy.io.mmwrite(handle, sp.coo_matrix(counts.T))
    pd.DataFrame(
        {"id": [f"ENSG{i}" for i in range(small.n_genes)], "name": small.genes, "type": "Gene Expression"}
    ).to_csv(tenx / "features.tsv.gz", sep="\t", header=False, index=False)
    pd.Series(small.cells).to_csv(tenx / "barcodes.tsv.gz", sep="\t", header=False, index=False)

    csc = sp.csc_matrix(counts.T)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        group = f.create_group("matrix")
        group["data"], group["indices"], group["indptr"] = csc.data.astype(np.int32), csc.indices, csc.indptr
        group["shape"] = np.array(csc.shape)
        group["barcodes"] = small.cells.astype("S")
        group.create_group("features")
        group["features/name"] = small.genes.astype("S")
        group["features/id"] = np.array([f"ENSG{i}" for i in range(small.n_genes)], dtype="S")

    genes_by_cells = pd.DataFrame(counts.T, index=small.genes, columns=small.cells)
    genes_by_cells.to_csv(tmp_path / "genes_by_cells.csv")
    genes_by_cells.T.to_csv(tmp_path / "cells_by_genes.tsv", sep="\t")

    for path, options in [
        (tmp_path / "x.h5ad", {}),
        (tenx, {}),
        (tmp_path / "x.h5", {}),
        (tmp_path / "genes_by_cells.csv", {}),
        (tmp_path / "cells_by_genes.tsv", {"orientation": "cells-by-genes"}),
    ]:
        dataset = read_counts(path, **options)
        np.testing.assert_array_equal(dense(dataset.counts), counts, err_msg=str(path))
        np.testing.assert_array_equal(dataset.genes, small.genes, err_msg=str(path))
        np.testing.assert_array_equal(dataset.cells, small.cells, err_msg=str(path))


def test_scanpy_style_names_are_accepted(small, tmp_path):
    import loompy

    path = tmp_path / "scanpy.loom"
    loompy.create(str(path), dense(small.counts).T, {"var_names": small.genes}, {"obs_names": small.cells})
    dataset = read_loom(path)
    np.testing.assert_array_equal(dataset.genes, small.genes)
    np.testing.assert_array_equal(dataset.cells, small.cells)


@pytest.mark.parametrize(
    ("values", "problem"),
    [([1.0, -2.0], "negative"), ([1.0, np.nan], "NaN"), ([1.0, 0.5], "non-integer")],
)
def test_values_that_are_not_counts_are_refused(values, problem):
    with pytest.raises(InputError, match=problem) as caught:
        check_counts(np.array(values), path="in.loom")
    assert caught.value.path == "in.loom"
    assert "raw" in caught.value.problem


def test_make_unique_suffixes_repeats_only():
    np.testing.assert_array_equal(
        make_unique(np.array(["A", "B", "A", "A", "A-1"])), ["A", "B", "A-2", "A-3", "A-1"]
    )


def test_write_loom_round_trips_attributes_layers_and_provenance(small, tmp_path):
    small.layers["spliced"] = small.counts * 2
    path = tmp_path / "out.loom"
    write_dataset(path, small, file_attrs={"deepimpute_test": "{}"})
    again = read_loom(path)
    np.testing.assert_array_equal(dense(again.counts), dense(small.counts))
    np.testing.assert_array_equal(dense(again.layers["spliced"]), dense(small.counts) * 2)
    np.testing.assert_array_equal(again.cell_attrs["CellType"], small.cell_attrs["CellType"])
    assert again.file_attrs["deepimpute_test"] == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["out.loom"]


def test_a_folder_is_swapped_for_its_replacement_and_the_old_one_removed(tmp_path):
    from deepimpute_tool.outputs import atomic_directory

    target = tmp_path / "model"
    target.mkdir()
    (target / "model.json").write_text("old")
    with atomic_directory(target) as temporary:
        (temporary / "model.json").write_text("new")
    assert (target / "model.json").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    with pytest.raises(RuntimeError), atomic_directory(target) as temporary:
        (temporary / "model.json").write_text("half")
        raise RuntimeError("training failed")
    assert (target / "model.json").read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["model"]


@pytest.mark.parametrize("suffix", [".loom", ".h5ad"])
def test_filter_and_train_open_their_input_once(small, suffix, tmp_path, monkeypatch):
    """One open of the input per step, whatever its format: the format is told from the open file."""
    from deepimpute_tool.filtering import FilterParameters
    from deepimpute_tool.progress import Progress
    from deepimpute_tool.steps.filter import filter_file
    from deepimpute_tool.steps.train import train_file
    from deepimpute_tool.training import TrainingParameters

    source = tmp_path / f"in{suffix}"
    if suffix == ".h5ad":
        anndata.AnnData(
            X=small.counts, obs={"obs_names": small.cells}, var={"var_names": small.genes}
        ).write_h5ad(source)
    else:
        source.write_bytes(PBMC_SMALL.read_bytes())
    opened = []
    real_file = h5py.File

    def counting(name, *args, **kwargs):
        opened.append(str(name))
        return real_file(name, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", counting)
    quiet = Progress(quiet=True)
    filter_file(source, tmp_path / "filtered.loom", params=FilterParameters(min_genes=10), progress=quiet)
    assert opened.count(str(source)) == 1
    opened.clear()
    train_file(
        source, tmp_path / "model", params=TrainingParameters(max_epochs=1, max_genes=20), progress=quiet
    )
    assert opened.count(str(source)) == 1


def test_h5ad_annotations_are_read_as_anndata_wrote_them(tmp_path):
    """Categoricals as their labels, nullable columns with NaN (or 'nan') where missing, as the
    tool's own reader reads them within the limits (not through anndata's)."""
    obs = pd.DataFrame(
        {
            "kind": pd.Categorical(["b", "a", None]),
            "count": pd.array([1, None, 3], dtype="Int64"),
            "flag": pd.array([True, None, False], dtype="boolean"),
            "text": pd.array(["x", None, "z"], dtype="string"),
            "plain": [True, False, True],
            "score": [0.5, 1.5, 2.5],
        },
        index=["c1", "c2", "c3"],
    )
    var = pd.DataFrame({"symbol": ["A", "B"], "level": pd.Categorical([2, 10])}, index=["g1", "g2"])
    anndata.AnnData(np.array([[1, 0], [2, 3], [0, 4]], np.float32), obs=obs, var=var).write_h5ad(
        tmp_path / "in.h5ad"
    )
    found = read_counts(tmp_path / "in.h5ad")
    assert found.cells.tolist() == ["c1", "c2", "c3"] and found.genes.tolist() == ["g1", "g2"]
    attrs = found.cell_attrs
    assert attrs["kind"].tolist() == ["b", "a", "nan"]
    np.testing.assert_array_equal(attrs["count"], [1.0, np.nan, 3.0])
    np.testing.assert_array_equal(attrs["flag"], [1.0, np.nan, 0.0])
    assert attrs["text"].tolist() == ["x", "nan", "z"]
    assert attrs["plain"].tolist() == [True, False, True] and attrs["score"].tolist() == [0.5, 1.5, 2.5]
    assert found.gene_attrs["symbol"].tolist() == ["A", "B"]
    assert found.gene_attrs["level"].tolist() == ["2", "10"]
