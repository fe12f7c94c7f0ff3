"""AnnData through the evaluation and scaling steps: mask, score, split and merge read h5ad."""

from __future__ import annotations

import json

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from deepimpute_tool.loom import read_loom
from tests.helpers import PBMC_SMALL, REPO, TINY_TRAINING, dense, run


@pytest.fixture(scope="module")
def masked(scanpy_h5ad, tmp_path_factory):
    """The same counts masked from the h5ad's counts layer and from the Loom, and a model of them."""
    work = tmp_path_factory.mktemp("masked")
    run("deepimpute-mask", scanpy_h5ad, work / "masked.h5ad", "--layer", "counts", "--cells-per-gene", 3)
    run("deepimpute-mask", PBMC_SMALL, work / "masked.loom", "--cells-per-gene", 3)
    run("deepimpute-train", work / "masked.loom", work / "model.zip", *TINY_TRAINING)
    return work


def test_mask_of_an_h5ad_hides_the_same_counts_and_keeps_no_trace_of_them(scanpy_h5ad, masked):
    before, after = anndata.read_h5ad(scanpy_h5ad), anndata.read_h5ad(masked / "masked.h5ad")
    loom = read_loom(masked / "masked.loom")
    assert np.array_equal(dense(after.X), dense(loom.counts))
    assert np.array_equal(dense(after.layers["original"]), dense(before.layers["counts"]))
    # nothing that holds or describes the counts hidden is carried: the counts read, other layers
    # (a copy of the counts, often), the log-normalised X, embeddings, graphs, uns
    assert set(after.layers) == {"original"} and not after.obsm and not after.obsp
    assert "leiden" not in after.uns
    assert isinstance(after.obs["cell_type"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(after.obs, before.obs)
    assert json.loads(after.uns["deepimpute_mask"])["parameters"]["layer"] == "counts"


def test_score_of_an_h5ad_equals_that_of_the_loom(masked):
    model = masked / "model.zip"
    outputs = {
        "loom": masked / "from_loom.loom",
        "h5ad": masked / "from_h5ad.h5ad",
        "h5ad_to_loom": masked / "from_h5ad.loom",  # the mask's layer carried into a Loom
    }
    run("deepimpute-impute", masked / "masked.loom", model, outputs["loom"])
    run("deepimpute-impute", masked / "masked.h5ad", model, outputs["h5ad"])
    run("deepimpute-impute", masked / "masked.h5ad", model, outputs["h5ad_to_loom"])
    scores = {}
    for name, path in outputs.items():
        labels = ["--labels", "cell_type"] if name == "h5ad" else []  # the Loom names it CellType
        run("deepimpute-score", path, "--output", masked / f"{name}.json", *labels)
        scores[name] = json.loads((masked / f"{name}.json").read_text())
    for key in ("mse", "pearson", "mse_count_ge2", "detected_fill"):
        assert scores["h5ad"][key] == scores["loom"][key] == scores["h5ad_to_loom"][key], key
    assert scores["h5ad"]["masked_entries"] > 0
    assert scores["h5ad"]["clustering"]["labels"] == "cell_type"
    with h5py.File(outputs["h5ad_to_loom"], "r") as loom:
        assert "deepimpute_mask" in loom["attrs"], "the h5ad's provenance reaches the Loom"


def test_molecular_cross_validation_through_h5ad(scanpy_h5ad, masked, tmp_path):
    run("deepimpute-mask", scanpy_h5ad, tmp_path / "mcv.h5ad", "--layer", "counts", "--protocol", "mcv")
    before, after = anndata.read_h5ad(scanpy_h5ad), anndata.read_h5ad(tmp_path / "mcv.h5ad")
    assert np.array_equal(dense(after.X) + dense(after.layers["heldout"]), dense(before.layers["counts"]))
    run("deepimpute-impute", tmp_path / "mcv.h5ad", masked / "model.zip", tmp_path / "imputed.h5ad")
    run("deepimpute-score", tmp_path / "imputed.h5ad")
    scores = json.loads((tmp_path / "imputed.scores.json").read_text())
    assert np.isfinite(scores["mcv_score"]) and scores["mcv_mse_without_imputation"] > 0


def test_split_and_merge_of_an_h5ad(scanpy_h5ad, tmp_path):
    run("deepimpute-split", scanpy_h5ad, tmp_path / "chunks", "--layer", "counts", "--chunk-size", 30)
    chunks = sorted((tmp_path / "chunks").glob("*.loom"))
    assert [c.name for c in chunks] == [f"pbmc_small.chunk000{n}.loom" for n in (1, 2, 3)]
    run("deepimpute-merge", tmp_path / "merged.h5ad", *chunks)
    before, after = anndata.read_h5ad(scanpy_h5ad), anndata.read_h5ad(tmp_path / "merged.h5ad")
    assert np.array_equal(dense(after.X), dense(before.layers["counts"]))
    assert list(after.obs_names) == list(before.obs_names) and list(after.var_names) == list(before.var_names)
    assert list(after.obs["cell_type"]) == list(before.obs["cell_type"])


def test_score_of_an_h5ad_that_was_not_masked_names_what_it_lacks(scanpy_h5ad, tmp_path):
    result = run("deepimpute-score", scanpy_h5ad, "--output", tmp_path / "s.json", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: {scanpy_h5ad}: score needs a file made by 'deepimpute mask' then 'deepimpute impute' "
        "(layers 'counts', and 'original' or 'heldout')"
    ]
    assert not (tmp_path / "s.json").exists()


def test_a_raw_and_a_counts_layer_cannot_both_reach_an_h5ad(scanpy_h5ad, masked, tmp_path):
    """An h5ad holds the counts imputed in layers['counts']: split's chunks of an h5ad read from X
    carry its own counts layer, and their imputation adds 'raw' beside it."""
    source = tmp_path / "x_counts.h5ad"
    adata = anndata.read_h5ad(scanpy_h5ad)
    adata.X = adata.layers["counts"].copy()
    adata.write_h5ad(source)
    run("deepimpute-split", source, tmp_path / "chunks", "--chunk-size", 40)
    imputed = []
    for chunk in sorted((tmp_path / "chunks").glob("*.loom")):
        imputed.append(tmp_path / chunk.name.replace(".loom", ".imputed.loom"))
        run("deepimpute-impute", chunk, masked / "model.zip", imputed[-1])
    result = run("deepimpute-merge", tmp_path / "merged.h5ad", *imputed, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "has layers 'raw' and 'counts'" in result.stderr and "write a Loom instead" in result.stderr
    assert not (tmp_path / "merged.h5ad").exists()
    run("deepimpute-merge", tmp_path / "merged.loom", *imputed)


def test_what_could_leak_or_mislead_an_evaluation_is_refused(scanpy_h5ad, masked, tmp_path):
    """scanpy users keep a copy of the counts in a layer: masking must not carry it, and score
    must not take a user's counts layer for the counts an imputation read."""
    source = tmp_path / "x_counts.h5ad"
    adata = anndata.read_h5ad(scanpy_h5ad)
    adata.X = adata.layers["counts"].copy()
    adata.write_h5ad(source)
    run("deepimpute-mask", source, tmp_path / "m.h5ad", "--protocol", "mcv")
    assert set(anndata.read_h5ad(tmp_path / "m.h5ad").layers) == {"heldout"}
    again = run("deepimpute-mask", tmp_path / "m.h5ad", tmp_path / "m2.h5ad", check=False)
    assert again.returncode == 2 and "was masked already" in again.stderr
    with h5py.File(tmp_path / "m.h5ad", "a") as handle:  # a counts layer, as a user could add one
        handle.copy(handle["X"], "layers/counts")
    scored = run("deepimpute-score", tmp_path / "m.h5ad", "--output", tmp_path / "s.json", check=False)
    assert scored.returncode == 2 and "score needs a file made by 'deepimpute mask' then" in scored.stderr


def test_mcv_scored_with_plots_makes_the_folder_a_pipeline_expects(scanpy_h5ad, masked, tmp_path):
    run("deepimpute-mask", scanpy_h5ad, tmp_path / "mcv.h5ad", "--layer", "counts", "--protocol", "mcv")
    run("deepimpute-impute", tmp_path / "mcv.h5ad", masked / "model.zip", tmp_path / "imputed.loom")
    run("deepimpute-score", tmp_path / "imputed.loom", "--plots", tmp_path / "plots")
    assert (tmp_path / "plots").is_dir() and not any((tmp_path / "plots").iterdir())


def test_a_table_masks_into_an_h5ad_and_text_too_long_for_a_loom_is_one_line(scanpy_h5ad, tmp_path):
    run("deepimpute-mask", REPO / "galaxy" / "test-data" / "pbmc_small.csv", tmp_path / "m.h5ad")
    assert anndata.read_h5ad(tmp_path / "m.h5ad").n_obs == 80
    source = tmp_path / "long.h5ad"
    adata = anndata.read_h5ad(scanpy_h5ad)
    adata.obs["note"] = ["&" * 20000] + [""] * (adata.n_obs - 1)  # 100,000 bytes as Loom escapes it
    adata.write_h5ad(source)
    result = run("deepimpute-mask", source, tmp_path / "m.loom", "--layer", "counts", "-q", check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"Error: {source}: the attribute 'note' holds text of more than")
    assert not (tmp_path / "m.loom").exists()


def test_filter_writes_an_h5ad_of_sparse_counts_as_it_writes_a_loom(scanpy_h5ad, tmp_path):
    for name in ("f.h5ad", "f.loom"):
        run("deepimpute-filter", scanpy_h5ad, tmp_path / name, "--layer", "counts", "--min-genes", 50)
    as_h5ad, as_loom = anndata.read_h5ad(tmp_path / "f.h5ad"), read_loom(tmp_path / "f.loom")
    assert sp.issparse(as_h5ad.X) and np.array_equal(dense(as_h5ad.X), dense(as_loom.counts))
    assert list(as_h5ad.obs_names) == list(as_loom.cells) and list(as_h5ad.var_names) == list(as_loom.genes)
    assert list(as_h5ad.obs["cell_type"]) == list(as_loom.cell_attrs["cell_type"])
    assert "deepimpute_filter" in as_h5ad.uns
