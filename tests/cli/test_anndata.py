"""AnnData through the executables: counts read from the layer named, every other slot kept."""

from __future__ import annotations

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from deepimpute_tool.loom import read_loom
from tests.helpers import PBMC_SMALL, TINY_TRAINING, dense, run
from tests.unit.test_api import same_slot

KEPT = ("obs", "obsm", "varm", "obsp", "varp")


@pytest.fixture(scope="module")
def model_of_counts(scanpy_h5ad, tmp_path_factory):
    model = tmp_path_factory.mktemp("model") / "model.zip"
    run("deepimpute-train", scanpy_h5ad, model, "--layer", "counts", *TINY_TRAINING)
    return model


def test_impute_h5ad_to_h5ad_keeps_every_slot_it_does_not_replace(scanpy_h5ad, model_of_counts, tmp_path):
    out = tmp_path / "imputed.h5ad"
    run("deepimpute-impute", scanpy_h5ad, model_of_counts, out, "--layer", "counts")
    before, after = anndata.read_h5ad(scanpy_h5ad), anndata.read_h5ad(out)
    for slot in KEPT:
        assert same_slot(getattr(before, slot), getattr(after, slot)), slot
    assert isinstance(after.obs["cell_type"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(after.var.drop(columns="deepimpute_imputed"), before.var)
    assert after.var["deepimpute_imputed"].dtype == bool and after.var["deepimpute_imputed"].all()
    assert same_slot(before.raw.X, after.raw.X)
    assert same_slot(before.layers["other"], after.layers["other"])
    assert same_slot(before.uns["leiden"], after.uns["leiden"]) and "deepimpute_impute" in after.uns
    # X: the imputed counts; layers["counts"]: the counts read, exactly
    counts = dense(before.layers["counts"])
    assert np.array_equal(dense(after.layers["counts"]), counts)
    # by default every entry of an imputed gene is denoised, zeros and observed counts alike
    assert (after.X > 0).all() and not np.array_equal(after.X, counts)
    # the same values as imputing the Loom of the same counts
    loom_out = tmp_path / "imputed.loom"
    run("deepimpute-impute", PBMC_SMALL, model_of_counts, loom_out)
    with h5py.File(loom_out, "r") as loom:
        assert np.array_equal(after.X, loom["matrix"][:].T)


def test_counts_from_raw_keep_only_what_is_per_cell(scanpy_h5ad, model_of_counts, tmp_path):
    """raw.X may have other genes than X: the output's var is raw's, and per-gene slots of X's genes go."""
    source, out = tmp_path / "in.h5ad", tmp_path / "imputed.h5ad"
    source.write_bytes(scanpy_h5ad.read_bytes())
    with h5py.File(source, "a") as handle:
        del handle["layers/counts"]
    run("deepimpute-impute", source, model_of_counts, out, "--layer", "raw")
    before, after = anndata.read_h5ad(source), anndata.read_h5ad(out)
    for slot in ("obs", "obsm", "obsp"):
        assert same_slot(getattr(before, slot), getattr(after, slot)), slot
    assert np.array_equal(dense(after.layers["counts"]), dense(before.raw.X))
    assert set(after.layers) == {"counts", "detected_fill"} and not after.varm and not after.varp
    assert list(after.var.columns) == ["deepimpute_imputed"]


def test_train_and_filter_read_the_layer_named(scanpy_h5ad, tmp_path):
    filtered = tmp_path / "filtered.loom"
    result = run("deepimpute-filter", scanpy_h5ad, filtered, "--layer", "counts", "--min-genes", 0)
    assert "reading 230 genes x 80 cells" in result.stderr
    pbmc = read_loom(PBMC_SMALL)
    kept = read_loom(filtered)
    columns = [list(pbmc.genes).index(g) for g in kept.genes]
    assert np.array_equal(dense(kept.counts), dense(pbmc.counts)[:, columns])
    from_raw = tmp_path / "raw.loom"
    run("deepimpute-filter", scanpy_h5ad, from_raw, "--layer", "raw", "--min-genes", 0)
    assert np.array_equal(dense(read_loom(from_raw).counts), dense(kept.counts))


def test_run_reads_the_layer_and_writes_h5ad(scanpy_h5ad, tmp_path):
    out = tmp_path / "out"
    run("deepimpute-run", scanpy_h5ad, out, "--layer", "counts", "--output-format", "h5ad", "--min-genes", 0,
        *TINY_TRAINING)  # fmt: skip
    imputed = anndata.read_h5ad(out / "imputed.h5ad")
    assert imputed.n_obs == 80 and sp.issparse(imputed.layers["counts"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--layer", "nope"], "has no layer 'nope' (--layer); its layers: counts, other"),
        ([], "the matrix holds non-integer values"),
    ],
)
def test_a_layer_that_is_not_there_or_not_counts_is_one_line(scanpy_h5ad, tmp_path, arguments, message):
    result = run("deepimpute-train", scanpy_h5ad, tmp_path / "model.zip", *arguments, check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: {scanpy_h5ad}: ") and message in result.stderr
    assert "--layer counts, or --layer raw for .raw.X" in result.stderr or arguments
    assert list(tmp_path.iterdir()) == []


def test_a_layer_of_a_loom_is_refused(model_of_counts, tmp_path):
    result = run(
        "deepimpute-impute", PBMC_SMALL, model_of_counts, tmp_path / "x.loom", "--layer", "raw", check=False
    )
    assert result.returncode == 2 and not (tmp_path / "x.loom").exists()
    assert result.stderr.splitlines()[-1] == (
        f"Error: {PBMC_SMALL}: is not an h5ad: --layer raw chooses the counts of an h5ad input only"
    )


def _edited(source, target, edit):
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "a") as handle:
        edit(handle)
    return target


def _links_to_one_dataset(handle):
    handle.create_dataset("uns/big", data=np.zeros(10_000))
    for i in range(5):
        handle[f"uns/link{i}"] = handle["uns/big"]  # each copied in full, were it allowed


def _loom_inside(handle):
    """The Loom of pbmc_small's counts under other names, inside the h5ad."""
    with h5py.File(PBMC_SMALL, "r") as loom:
        handle.create_dataset("matrix", data=loom["matrix"][:])
    handle.create_dataset("row_attrs/Gene", data=np.array([f"g{i}" for i in range(230)], dtype=object))
    handle.create_dataset("col_attrs/CellID", data=np.array([f"c{i}" for i in range(80)], dtype=object))
    del handle["layers"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: h.__setitem__("uns/alias", h5py.SoftLink("/X")), "'/uns/alias' is a soft link"),
        (
            lambda h: h["uns"].create_group("nested").__setitem__("to_x", h5py.SoftLink("/X")),
            "is a soft link",
        ),
        (_links_to_one_dataset, "is linked from several places"),
        (
            lambda h: (
                h["var"].attrs.__setitem__("_index", "deepimpute_imputed")
                or h["var"].move("_index", "deepimpute_imputed")
            ),
            "names its genes by 'var/deepimpute_imputed', a column impute writes",
        ),
        (
            lambda h: h["layers"].create_dataset("detected_fill", data=np.zeros((80, 230))),
            "already has a layer 'detected_fill': was it imputed already?",
        ),
    ],
)
def test_what_an_h5ad_output_cannot_keep_faithfully_is_refused(
    scanpy_h5ad, model_of_counts, tmp_path, edit, message
):
    source = _edited(scanpy_h5ad, tmp_path / "in.h5ad", edit)
    before = source.read_bytes()
    out = tmp_path / "imputed.h5ad"
    result = run("deepimpute-impute", source, model_of_counts, out, "--layer", "counts", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"Error: {source}: ") and message in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.h5ad"] and source.read_bytes() == before


def test_a_file_that_is_both_loom_and_h5ad_is_read_and_kept_as_loom(scanpy_h5ad, model_of_counts, tmp_path):
    """open_input reads such a file as Loom: names from the h5ad part must not be kept beside its rows."""
    source = _edited(scanpy_h5ad, tmp_path / "both.h5ad", _loom_inside)
    out = tmp_path / "imputed.h5ad"
    model = tmp_path / "model.zip"
    run("deepimpute-train", source, model, *TINY_TRAINING)
    run("deepimpute-impute", source, model, out)
    after = anndata.read_h5ad(out)  # the Loom's own names, and no slot of the h5ad part
    assert list(after.var_names[:2]) == ["g0", "g1"] and list(after.obs_names[:2]) == ["c0", "c1"]
    assert not after.obsm and "leiden" not in after.uns


def test_a_byte_string_column_order_and_raw_beside_a_counts_layer(scanpy_h5ad, model_of_counts, tmp_path):
    def bytes_order(handle):
        handle["var"].attrs["column-order"] = np.array([b"highly_variable", b"symbol"])

    source = _edited(scanpy_h5ad, tmp_path / "in.h5ad", bytes_order)
    run("deepimpute-impute", source, model_of_counts, tmp_path / "a.h5ad", "--layer", "counts")
    assert list(anndata.read_h5ad(tmp_path / "a.h5ad").var.columns) == [
        "highly_variable",
        "symbol",
        "deepimpute_imputed",
    ]
    # raw.X read: the input's counts layer is not kept, so nothing is written over
    run("deepimpute-impute", scanpy_h5ad, model_of_counts, tmp_path / "b.h5ad", "--layer", "raw")
    assert set(anndata.read_h5ad(tmp_path / "b.h5ad").layers) == {"counts", "detected_fill"}
