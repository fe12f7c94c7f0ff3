"""The Python API on real AnnData objects: scverse conventions, every slot kept, the CLI's values."""

from __future__ import annotations

import json

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import deepimpute_tool as di
from deepimpute_tool.errors import InputError, ModelError, OutputError, ParameterError
from deepimpute_tool.loom import read_loom
from tests.helpers import PBMC_SMALL, QUICK, dense, run

ALL_SLOTS = ("obs", "var", "obsm", "varm", "obsp", "varp", "uns", "layers", "X", "raw")


def anndata_of(dataset, *, counts_format=sp.csr_matrix) -> anndata.AnnData:
    """An AnnData as a scanpy user has it: log-normalised X, the counts in a layer, and every slot."""
    counts = dataset.counts.astype(np.float32)
    normalised = sp.diags(1e4 / np.maximum(counts.sum(axis=1).A1, 1)) @ counts
    n_cells, n_genes = counts.shape
    rng = np.random.default_rng(1)
    adata = anndata.AnnData(
        X=np.log1p(normalised.toarray()).astype(np.float32),
        obs=pd.DataFrame(
            {
                "cell_type": pd.Categorical(rng.choice(["B", "T", "NK"], n_cells)),
                "n_counts": counts.sum(axis=1).A1,
                "flag": rng.random(n_cells) > 0.5,
            },
            index=pd.Index(dataset.cells.astype(str)),
        ),
        var=pd.DataFrame(
            {
                "highly_variable": rng.random(n_genes) > 0.5,
                "symbol": pd.Categorical(dataset.genes.astype(str)),
            },
            index=pd.Index(dataset.genes.astype(str)),
        ),
        layers={"counts": counts_format(counts), "other": sp.random(n_cells, n_genes, 0.1, "csr", rng=rng)},
        obsm={"X_umap": rng.random((n_cells, 2)), "X_pca": rng.random((n_cells, 5)).astype(np.float32)},
        varm={"PCs": rng.random((n_genes, 5))},
        obsp={"connectivities": sp.random(n_cells, n_cells, 0.05, "csr", rng=rng)},
        varp={"correlation": rng.random((n_genes, n_genes))},
        uns={
            "leiden": {"params": {"resolution": 1.0, "seed": np.int64(0)}},
            "colors": np.array(["red", "blue"]),
        },
    )
    adata.raw = anndata.AnnData(X=counts_format(counts), var=pd.DataFrame(index=adata.var_names))
    return adata


def same_slot(first, second) -> bool:
    if isinstance(first, pd.DataFrame):
        pd.testing.assert_frame_equal(first, second, check_exact=True)
        return True
    if isinstance(first, dict) or hasattr(first, "keys"):
        return set(first.keys()) == set(second.keys()) and all(same_slot(first[k], second[k]) for k in first)
    if sp.issparse(first) or isinstance(first, np.ndarray):
        return (
            type(first) is type(second)
            and first.dtype == second.dtype
            and np.array_equal(dense(first), dense(second))
        )
    return first == second


@pytest.fixture(scope="module")
def small_adata(pbmc_small) -> anndata.AnnData:
    return anndata_of(pbmc_small)


@pytest.fixture(scope="module")
def small_model(small_adata):
    return di.train(small_adata, **QUICK)


def test_impute_adds_a_layer_a_gene_flag_and_provenance_and_keeps_every_other_slot_exactly(
    small_adata, tmp_path
):
    adata = small_adata.copy()
    di.pp.impute(adata, **QUICK)
    for slot in ALL_SLOTS:
        if slot in ("layers", "var", "uns", "raw"):
            continue
        assert same_slot(getattr(small_adata, slot), getattr(adata, slot)), slot
    pd.testing.assert_frame_equal(adata.var.drop(columns="deepimpute_imputed"), small_adata.var)
    assert same_slot(
        {k: small_adata.layers[k] for k in small_adata.layers},
        {k: adata.layers[k] for k in small_adata.layers},
    )
    assert same_slot(small_adata.raw.X, adata.raw.X)
    assert {k: v for k, v in adata.uns.items() if k != "deepimpute"}.keys() == small_adata.uns.keys()
    assert set(adata.layers) - set(small_adata.layers) == {"deepimpute", "deepimpute_detected_fill"}

    imputed, counts = adata.layers["deepimpute"], small_adata.layers["counts"]
    assert imputed.shape == counts.shape
    flagged = adata.var["deepimpute_imputed"].to_numpy()
    assert flagged.dtype == bool and 0 < flagged.sum() <= adata.n_vars
    # genes the model does not impute are unchanged; the others denoised, the paper's fill beside
    assert np.array_equal(dense(imputed)[:, ~flagged], dense(counts)[:, ~flagged])
    assert (dense(imputed)[:, flagged] > 0).all()
    observed = dense(counts) > 0
    paper = dense(adata.layers["deepimpute_detected_fill"])
    assert np.array_equal(paper[observed], dense(counts)[observed])

    record = adata.uns["deepimpute"]
    assert json.loads(record["impute"])["parameters"]["layer"] == "counts"
    assert json.loads(record["train"])["parameters"]["max_epochs"] == QUICK["max_epochs"]
    assert record["loss"]["validation_loss"].shape == (QUICK["max_epochs"],)

    # written and read back by anndata: every slot as it was, the categoricals categorical
    adata.write_h5ad(tmp_path / "out.h5ad")
    back = anndata.read_h5ad(tmp_path / "out.h5ad")
    for slot in ("obs", "var", "obsm", "varm", "obsp", "varp", "layers", "X"):
        assert same_slot(getattr(adata, slot), getattr(back, slot)), slot
    assert isinstance(back.obs["cell_type"].dtype, pd.CategoricalDtype)
    assert back.uns["leiden"]["params"]["resolution"] == 1.0
    assert back.uns["deepimpute"]["impute"] == record["impute"]


def test_the_api_gives_what_the_command_line_gives_for_the_same_seed(small_adata, tmp_path):
    """deepimpute train + impute on the Loom, and train + Model.impute on the same counts as an AnnData."""
    model_dir, imputed_loom = tmp_path / "model", tmp_path / "imputed.loom"
    run("deepimpute-train", PBMC_SMALL, model_dir, "--max-epochs", 3, "--cores", 2)
    run("deepimpute-impute", PBMC_SMALL, model_dir, imputed_loom)
    with h5py.File(imputed_loom, "r") as loom:
        cli_imputed, cli_detected_fill = loom["matrix"][:].T, loom["layers/detected_fill"][:].T
        cli_flag = loom["row_attrs/deepimpute_imputed"][:] == 1

    model = di.train(small_adata, **QUICK)
    result = model.impute(small_adata, copy=True)
    assert np.array_equal(dense(result.layers["deepimpute"]), cli_imputed)
    assert np.array_equal(dense(result.layers["deepimpute_detected_fill"]), cli_detected_fill)
    assert np.array_equal(result.var["deepimpute_imputed"].to_numpy(), cli_flag)
    assert "deepimpute" not in small_adata.layers  # copy=True left the input alone


@pytest.mark.parametrize("counts_format", [np.asarray, sp.csc_matrix, sp.csr_array])
def test_dense_csc_and_csr_array_counts_give_the_values_of_csr(
    pbmc_small, small_adata, small_model, counts_format
):
    reference = small_model.impute(small_adata, copy=True)
    other = anndata_of(
        pbmc_small, counts_format=lambda m: counts_format(m.toarray() if counts_format is np.asarray else m)
    )
    result = small_model.impute(other, copy=True)
    assert np.array_equal(dense(result.layers["deepimpute"]), dense(reference.layers["deepimpute"]))
    # blocks of other sizes: the same values but for float32 rounding in the products
    in_blocks = small_model.impute(other, copy=True, chunk_cells=7)
    np.testing.assert_allclose(
        dense(in_blocks.layers["deepimpute"]), dense(reference.layers["deepimpute"]), rtol=1e-5
    )


def test_the_layers_are_sparse_for_sparse_counts_where_the_model_imputes_at_most_half_the_genes(
    pbmc_small, small_adata, small_model
):
    assert small_model.target_genes.size > small_adata.n_vars / 2
    assert isinstance(small_model.impute(small_adata, copy=True).layers["deepimpute"], np.ndarray)
    few = di.train(small_adata, max_genes=50, **QUICK)
    assert few.target_genes.size == 50
    result = few.impute(small_adata, copy=True)
    assert all(sp.issparse(result.layers[name]) for name in ("deepimpute", "deepimpute_detected_fill"))
    from_dense = few.impute(anndata_of(pbmc_small, counts_format=lambda m: m.toarray()), copy=True)
    assert isinstance(from_dense.layers["deepimpute"], np.ndarray)
    assert np.array_equal(from_dense.layers["deepimpute"], result.layers["deepimpute"].toarray())


def test_counts_from_x_or_raw_and_results_into_x(small_adata, small_model):
    reference = small_model.impute(small_adata, copy=True)
    from_raw = small_model.impute(small_adata, layer="raw", copy=True)
    assert np.array_equal(dense(from_raw.layers["deepimpute"]), dense(reference.layers["deepimpute"]))

    counts_in_x = small_adata.copy()
    counts_in_x.X = counts_in_x.layers.pop("counts")
    from_x = small_model.impute(counts_in_x, layer=None, copy=True)
    assert np.array_equal(dense(from_x.layers["deepimpute"]), dense(reference.layers["deepimpute"]))

    into_x = small_model.impute(small_adata, key_added=None, copy=True)
    assert np.array_equal(dense(into_x.X), dense(reference.layers["deepimpute"]))
    assert "deepimpute_detected_fill" in into_x.layers


def test_no_layer_is_written_over_unless_an_earlier_imputation_wrote_it(small_adata, small_model):
    adata = small_adata.copy()
    with pytest.raises(ParameterError, match=r"^key_added None: would write over the counts it reads \(X\)"):
        small_model.impute(adata, layer=None, key_added=None)
    with pytest.raises(ParameterError, match=r"^key_added 'counts': would write over the counts it reads"):
        small_model.impute(adata, key_added="counts")
    with pytest.raises(ParameterError, match=r"^key_added 'other': would write over the layer 'other'"):
        small_model.impute(adata, key_added="other")
    for bad in ("", "a/b", 5):
        with pytest.raises(TypeError, match="key_added must be a layer's name"):
            small_model.impute(adata, key_added=bad)
    assert set(adata.layers) == set(small_adata.layers) and "deepimpute" not in adata.uns
    small_model.impute(adata)
    small_model.impute(adata, fill="detected")  # its own layers, replaced
    assert json.loads(adata.uns["deepimpute"]["impute"])["parameters"]["fill"] == "detected"


def test_pp_impute_refuses_a_taken_layer_before_reading_or_training(small_adata):
    """The destination is checked first: here the counts are not counts either, and training
    would take a while, yet the refusal is the destination's."""
    adata = small_adata.copy()
    adata.layers["counts"] = adata.layers["counts"] * 0.5
    with pytest.raises(ParameterError, match=r"^key_added 'other': would write over the layer 'other'"):
        di.pp.impute(adata, key_added="other", max_epochs=1)
    with pytest.raises(InputError, match="non-integer"):
        di.pp.impute(adata, max_epochs=1)


def test_options_of_the_wrong_type_are_refused_naming_them(small_adata):
    for option, value, kind in (("detection", "no", "True or False"), ("max_epochs", 2.5, "a whole number"),
                                ("cell_fraction", True, "a number")):  # fmt: skip
        with pytest.raises(ParameterError, match=f"^{option} {value}: must be {kind}, not"):
            di.train(small_adata, **{option: value})


def test_a_model_with_a_malformed_history_still_imputes_and_plots(small_adata, small_model):
    import dataclasses

    for training in ({}, {"train_loss": "x", "best_epoch": [[1]]}, {"train_loss": [1.0, 2.0], "validation_loss": [1.0],
                     "subnetwork_validation_loss": [["a"]]}):  # fmt: skip
        forged = dataclasses.replace(small_model, training=training)
        result = forged.impute(small_adata, copy=True)
        assert "deepimpute" in result.layers and isinstance(result.uns["deepimpute"]["loss"], dict)
        di.pl.loss_curves(forged)


def test_raw_with_more_genes_gives_the_columns_of_var_names(pbmc_small, small_adata, small_model):
    subset = small_adata[:, ::-1].copy()  # raw keeps every gene, in the first order
    subset.raw = small_adata.raw.to_adata()
    result = small_model.impute(subset, layer="raw", copy=True)
    reference = small_model.impute(small_adata, copy=True)
    assert np.array_equal(dense(result.layers["deepimpute"]), dense(reference.layers["deepimpute"])[:, ::-1])


def test_pp_impute_returns_as_scanpy_does(small_adata):
    adata = small_adata.copy()
    assert di.pp.impute(adata, **QUICK) is None
    copied, model = di.pp.impute(small_adata, copy=True, return_model=True, **QUICK)
    assert isinstance(copied, anndata.AnnData) and isinstance(model, di.Model)
    assert np.array_equal(dense(copied.layers["deepimpute"]), dense(adata.layers["deepimpute"]))
    with_model = di.pp.impute(small_adata, model=model, copy=True, key_added="again")
    assert np.array_equal(dense(with_model.layers["again"]), dense(adata.layers["deepimpute"]))


def test_options_are_the_command_lines_with_its_checks(small_adata, small_model):
    with pytest.raises(ParameterError, match=r"^max_epochs 0: must be at least 1$"):
        di.pp.impute(small_adata, max_epochs=0, copy=True)
    with pytest.raises(ParameterError, match=r"^fill nope: expected one of"):
        small_model.impute(small_adata, fill="nope", copy=True)
    with pytest.raises(TypeError, match="unexpected option 'max_epoch'; did you mean 'max_epochs'"):
        di.pp.impute(small_adata, max_epoch=3, copy=True)
    with pytest.raises(TypeError, match="unexpected option 'max_epochs'"):
        di.pp.impute(small_adata, model=small_model, max_epochs=3, copy=True)


def test_what_is_not_raw_counts_is_refused_naming_where_it_was(small_adata, small_model):
    with pytest.raises(InputError, match=r"^adata\.X: the matrix holds non-integer values"):
        small_model.impute(small_adata, layer=None, copy=True)
    with pytest.raises(
        InputError, match=r"^adata\.layers\['nope'\]: does not exist \(layers: 'counts', 'other'\)"
    ):
        small_model.impute(small_adata, layer="nope", copy=True)
    negative = small_adata.copy()
    negative.layers["counts"] = -negative.layers["counts"]
    with pytest.raises(InputError, match=r"^adata\.layers\['counts'\]: the matrix holds negative values"):
        di.train(negative, **QUICK)
    no_raw = small_adata.copy()
    del no_raw.raw
    with pytest.raises(InputError, match=r"^adata\.raw: is not set"):
        small_model.impute(no_raw, layer="raw", copy=True)
    with pytest.raises(InputError, match=r"^adata\.var_names: lacks 10 of the model's"):
        small_model.impute(small_adata[:, 10:].copy(), copy=True)
    with pytest.raises(InputError, match=r"^adata\.layers\['counts'\]: too few cells to train"):
        di.train(small_adata[:5].copy(), **QUICK)


def test_a_saved_model_loads_and_imputes_the_same_and_never_replaces_other_files(
    small_adata, small_model, tmp_path
):
    reference = small_model.impute(small_adata, copy=True)
    for path in (tmp_path / "model.zip", tmp_path / "model"):
        small_model.save(path)
        loaded = di.load_model(path)
        again = loaded.impute(small_adata, copy=True)
        assert np.array_equal(dense(again.layers["deepimpute"]), dense(reference.layers["deepimpute"]))
        small_model.save(path)  # a model replaces a model
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="exists and is not a model"):
        small_model.save(folder)
    assert (folder / "notes.txt").read_text() == "mine"
    with pytest.raises(ModelError):
        di.load_model(folder)


def test_the_shipped_example_data_is_the_pbmc3k_counts():
    adata = di.datasets.pbmc3k()
    assert adata.shape == (2700, 11139)
    assert adata.obs_names.is_unique and adata.var_names.is_unique
    counts = adata.layers["counts"]
    assert (
        sp.issparse(counts) and np.array_equal(counts.data, np.round(counts.data)) and counts.data.min() > 0
    )
    assert (counts != adata.X).nnz == 0
    assert int(counts.sum()) == int(read_loom(di.datasets.pbmc3k_path()).counts.sum())
