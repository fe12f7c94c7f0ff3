"""The executables chained on real Loom files, and every kind of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import loompy
import numpy as np
import pytest

from tests.helpers import PBMC68K, PBMC_SMALL, TINY_TRAINING, run, sha256, write_raw_loom

STEPS = ("filter", "mask", "train", "impute", "score", "split", "merge", "run")


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """filter -> mask -> train -> impute -> score with the stand-alone executables on pbmc68k_reduced."""
    work = tmp_path_factory.mktemp("chain")
    before = sha256(PBMC68K)
    run("deepimpute-filter", PBMC68K, work / "filtered.loom", "--min-genes", "10")
    run("deepimpute-mask", work / "filtered.loom", work / "masked.loom", "--seed", "0")
    run("deepimpute-train", work / "masked.loom", work / "model", *TINY_TRAINING)
    run("deepimpute-impute", work / "masked.loom", work / "model", work / "imputed.loom")
    scored = run("deepimpute-score", work / "imputed.loom", "--labels", "CellType", "--plots", work / "plots")
    assert sha256(PBMC68K) == before
    return work, scored


def test_chain_outputs(chain):
    work, scored = chain
    with (
        loompy.connect(str(work / "masked.loom"), "r") as masked,
        loompy.connect(str(work / "imputed.loom"), "r") as imputed,
    ):
        np.testing.assert_array_equal(imputed.ca.CellID, masked.ca.CellID)
        np.testing.assert_array_equal(imputed.ra.Gene, masked.ra.Gene)
        np.testing.assert_array_equal(imputed.layers["raw"][:, :], masked[:, :])
        np.testing.assert_array_equal(imputed.layers["original"][:, :], masked.layers["original"][:, :])
        assert (imputed[:, :] > 0).mean() > (masked[:, :] > 0).mean()
        # by default every entry of the imputed genes is denoised (the counts are in the layer raw),
        # and the paper's imputation (zeros filled with the detected count) is beside it
        modelled = imputed.ra.deepimpute_imputed == 1
        assert (
            modelled.sum()
            == json.loads((work / "model" / "model.json").read_text())["training"]["target_genes"]
        )
        observed = masked[:, :] > 0
        paper, main = imputed.layers["detected_fill"][:, :], imputed[:, :]
        np.testing.assert_array_equal(paper[observed], masked[:, :][observed])
        for matrix in (paper, main):
            np.testing.assert_array_equal(matrix[~modelled], masked[:, :][~modelled])
        zeros = ~observed & modelled[:, None]
        assert (main[modelled] > 0).all() and (main[zeros] < paper[zeros]).all()
        # a count observed once is mostly noise to the denoised matrix; a large one is mostly kept
        assert np.median(main[(masked[:, :] == 1) & modelled[:, None]]) < 1
        large = (masked[:, :] >= 20) & modelled[:, None]
        assert np.median(main[large] / masked[:, :][large]) > 0.5
        for step in ("filter", "mask", "impute"):
            record = json.loads(imputed.attrs[f"deepimpute_{step}"])
            assert record["step"] == step and record["version"]
    scores = json.loads((work / "imputed.scores.json").read_text())
    assert scores["masked_entries"] > 1000 and 0 < scores["pearson"] <= 1
    assert scores["mse"] < scores["mse_without_imputation"]
    measures = {f"{m}{c}{sd}" for m in ("ari", "ami", "fmi") for c in ("", "_leiden") for sd in ("", "_sd")}
    assert set(scores["clustering"]["imputed"]) == {
        "clusters",
        "leiden_clusters",
        "silhouette",
        "starts",
        *measures,
    }
    assert scores["clustering"]["imputed"]["starts"] == {"kmeans": 10, "leiden": 5}
    assert "Pearson (log1p)" in scored.stdout
    # the paper's imputation beside the denoised matrix is scored at the same masked entries
    paper = scores["detected_fill"]
    assert 0 < paper["pearson"] <= 1 and paper["pearson"] != scores["pearson"]
    assert "layer detected_fill: Pearson (log1p)" in scored.stdout
    assert sorted(p.name for p in (work / "plots").iterdir()) == [
        "imputed_vs_true.png",
        "mse_distributions.png",
    ]
    assert sorted(p.name for p in (work / "model").iterdir()) == ["model.json", "weights.npz"]


def test_calibrated_intervals_hold_about_their_share_of_the_masked_counts(chain):
    """Calibrated on counts hidden from training, scored at the masked entries of every cell."""
    work, _ = chain
    run("deepimpute-train", work / "masked.loom", work / "calibrated", *TINY_TRAINING, "--calibration")
    run(
        "deepimpute-impute",
        work / "masked.loom",
        work / "calibrated",
        work / "intervals.loom",
        "--interval",
        "0.8",
    )
    scored = run("deepimpute-score", work / "intervals.loom", "-o", work / "intervals.json")
    scores = json.loads((work / "intervals.json").read_text())
    assert 0.7 < scores["interval_coverage"] < 0.92
    assert scores["interval_median_width"] > 0
    for key in (
        "uncertainty_error_partial_spearman",
        "uncertainty_auc_worst_tenth",
        "prediction_auc_worst_tenth",
    ):
        assert np.isfinite(scores[key])
    assert "intervals: coverage of the true counts" in scored.stdout
    with h5py.File(work / "intervals.loom", "r") as f:
        record = json.loads(f["attrs/deepimpute_impute"][()])
        assert record["parameters"]["interval"] == 0.8
        assert 0.7 < record["parameters"]["interval_calibration"]["coverage"] < 0.92
        low, high, main = f["layers/interval_low"][()], f["layers/interval_high"][()], f["matrix"][()]
        raw = f["layers/raw"][()]
        zeros = raw == 0  # the denoised value written at a zero lies in its interval
        assert (low[zeros] <= main[zeros] * (1 + 1e-5)).all() and (
            main[zeros] <= high[zeros] * (1 + 1e-5)
        ).all()
        observed = raw > 0  # an observed count is its own interval
        assert (low[observed] == raw[observed]).all() and (high[observed] == raw[observed]).all()


def run_on_pbmc_small(out, *options):
    """`deepimpute run` on pbmc_small into ``out``, with tiny training and ``options``."""
    return run("deepimpute", "run", PBMC_SMALL, out, "--min-genes", "10", *options, *TINY_TRAINING)


def test_run_does_the_whole_chain(tmp_path):
    result = run_on_pbmc_small(tmp_path / "out", "--evaluate", "--cells-per-gene", "2")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["filtered.loom", "imputed.loom", "masked.loom", "model", "plots", "scores.json"]
    assert "MSE (log1p)" in result.stdout


def test_run_writes_anndata_when_asked(tmp_path):
    import anndata

    run_on_pbmc_small(tmp_path / "out", "--output-format", "h5ad")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["filtered.loom", "imputed.h5ad", "model"]
    adata = anndata.read_h5ad(tmp_path / "out" / "imputed.h5ad")
    assert adata.n_vars == 230 and "counts" in adata.layers and "deepimpute_impute" in adata.uns


def test_log_lines_when_not_a_terminal_and_quiet_silences(chain, tmp_path):
    work, _ = chain
    loud = run("deepimpute-impute", work / "masked.loom", work / "model", tmp_path / "a.loom")
    assert "imputing cells" in loud.stderr and "\r" not in loud.stderr
    quiet = run("deepimpute-impute", work / "masked.loom", work / "model", tmp_path / "b.loom", "--quiet")
    assert quiet.stderr == "" and quiet.stdout == ""


def test_help_and_version():
    assert run("deepimpute", "--version").stdout.strip() == f"deepimpute, version {_version()}"
    for step in STEPS:
        text = run(f"deepimpute-{step}", "--help").stdout
        assert text.startswith(f"Usage: deepimpute-{step}")
        for option in ("--quiet",):
            assert option in text
    train_help = " ".join(run("deepimpute", "train", "--help").stdout.split())
    from deepimpute_tool.training import TrainingParameters

    defaults = TrainingParameters()
    for option, default in [
        ("--learning-rate", "0.0001"),
        ("--coarse-learning-rate", str(defaults.coarse_learning_rate)),
        ("--coarse-patience", "2"),
        ("--patience", str(defaults.patience)),
        ("--max-cells", str(defaults.max_cells)),
        ("--subset-size", "512"),
        ("--subset-split", "equal"),
        ("--ensemble", "1"),
        ("--batch-size", "64"),
        ("--max-epochs", "500"),
        ("--dropout", "0.2"),
        ("--min-vmr", "0.5"),
        ("--ntop", "5"),
    ]:
        assert option in train_help and f"default: {default}" in train_help


def _version() -> str:
    from deepimpute_tool import __version__

    return __version__


# ------------------------------------------------------------------ bad input


def _truncated(tmp_path: Path) -> Path:
    path = tmp_path / "truncated.loom"
    data = PBMC68K.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _counts(tmp_path: Path, value: float) -> Path:
    counts = np.random.default_rng(0).poisson(2, (50, 40)).astype(np.float32)
    counts[3, 4] = value
    return write_raw_loom(tmp_path / "bad.loom", counts)


def _duplicate_cells(tmp_path: Path) -> Path:
    counts = np.random.default_rng(0).poisson(2, (50, 40)).astype(np.float32)
    cells = np.array([f"C{i}" for i in range(40)])
    cells[7] = "C3"
    return write_raw_loom(tmp_path / "dup.loom", counts, cells=cells)


BAD_INPUTS = {
    "missing file": (lambda t: t / "absent.loom", "no such file"),
    "not HDF5": (lambda t: (t / "text.loom").write_text("hello") and t / "text.loom", "not HDF5"),
    "truncated": (_truncated, "truncated"),
    "HDF5 but not Loom": (lambda t: h5py.File(t / "other.h5", "w").close() or t / "other.h5", "not"),
    "negative": (lambda t: _counts(t, -1), "negative"),
    "NaN": (lambda t: _counts(t, np.nan), "NaN"),
    "non-integer": (lambda t: _counts(t, 0.5), "non-integer"),
    "empty": (lambda t: write_raw_loom(t / "empty.loom", np.zeros((5, 0), np.float32)), "empty"),
    "duplicate cells": (_duplicate_cells, "duplicate cell IDs"),
}


def assert_clean_failure(result, path: Path, problem: str, outdir: Path, before: set):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if not line.startswith("[deepimpute")]  # progress lines may precede
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.stderr
    assert str(path) in errors[0] and problem in errors[0], errors[0]
    assert {p.name for p in outdir.iterdir()} == before


@pytest.mark.parametrize("case", list(BAD_INPUTS))
@pytest.mark.parametrize("step", ["filter", "mask", "train"])
def test_bad_input_gives_one_line_error_and_no_output(step, case, tmp_path):
    make, problem = BAD_INPUTS[case]
    if step != "filter" and case == "empty":
        problem = "empty"
    path = make(tmp_path)
    checksum = sha256(path) if path.exists() and path.is_file() else None
    before = {p.name for p in tmp_path.iterdir()}
    output = tmp_path / ("out_model" if step == "train" else "out.loom")
    result = run(f"deepimpute-{step}", path, output, check=False)
    assert_clean_failure(result, path, problem, tmp_path, before)
    if checksum:
        assert sha256(path) == checksum


def test_no_gene_passing_the_filter(tmp_path):
    before = {p.name for p in tmp_path.iterdir()}
    result = run(
        "deepimpute-filter",
        PBMC_SMALL,
        tmp_path / "out.loom",
        "--min-genes",
        "0",
        "--min-cells",
        "1000",
        check=False,
    )
    assert_clean_failure(result, PBMC_SMALL, "no gene passes the filter", tmp_path, before)


def test_too_few_cells_to_train(tmp_path):
    counts = np.random.default_rng(0).poisson(3, (60, 30)).astype(np.float32)
    path = write_raw_loom(tmp_path / "few.loom", counts)
    before = {p.name for p in tmp_path.iterdir()}
    result = run("deepimpute-train", path, tmp_path / "model", check=False)
    assert_clean_failure(result, path, "too few cells", tmp_path, before)


@pytest.mark.parametrize("damage", ["incomplete", "altered", "incompatible", "not a directory"])
def test_bad_model_directory(chain, tmp_path, damage):
    work, _ = chain
    model = tmp_path / "model"
    shutil.copytree(work / "model", model)
    if damage == "incomplete":
        (model / "weights.npz").unlink()
    elif damage == "altered":
        with open(model / "weights.npz", "r+b") as handle:
            handle.seek(-100, 2)
            handle.write(b"\x00" * 10)
    elif damage == "incompatible":
        content = json.loads((model / "model.json").read_text())
        content["format_version"] = 0
        (model / "model.json").write_text(json.dumps(content))
    else:
        shutil.rmtree(model)
        model.write_text("a zip?")
    before = {p.name for p in tmp_path.iterdir()}
    result = run("deepimpute-impute", work / "masked.loom", model, tmp_path / "out.loom", check=False)
    assert_clean_failure(
        result,
        model,
        {
            "incomplete": "incomplete",
            "altered": "does not match its checksum",
            "incompatible": "not supported",
            "not a directory": "not a model",
        }[damage],
        tmp_path,
        before,
    )


def test_model_genes_missing_from_input(chain, tmp_path):
    work, _ = chain
    with loompy.connect(str(work / "masked.loom"), "r") as ds:
        path = write_raw_loom(tmp_path / "other.loom", ds[:50, :], genes=ds.ra.Gene[:50], cells=ds.ca.CellID)
    before = {p.name for p in tmp_path.iterdir()}
    result = run("deepimpute-impute", path, work / "model", tmp_path / "out.loom", check=False)
    assert_clean_failure(result, path, "lacks", tmp_path, before)


def test_training_logs_epochs_with_an_upper_bound_on_time_left(tmp_path):
    result = run("deepimpute-train", PBMC_SMALL, tmp_path / "model", *TINY_TRAINING)
    assert "epoch 2/2" in result.stderr and "left at most" in result.stderr and "\r" not in result.stderr
    # two epochs cannot finish the coarse phase (it needs two without improvement): the user is told
    assert "--max-epochs 2 ended training in the coarse phase" in result.stderr
