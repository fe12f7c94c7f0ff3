"""Saving, loading and checking model directories."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from deepimpute_tool.errors import ModelError
from deepimpute_tool.model_loading import load_model
from deepimpute_tool.training import TrainingParameters, train
from tests.helpers import PBMC68K, QUICK, REPO, dense


def test_round_trip_predicts_identically(pbmc68k, pbmc68k_model, pbmc68k_model_dir):
    loaded = load_model(pbmc68k_model_dir)
    counts = dense(pbmc68k.counts)
    np.testing.assert_array_equal(
        loaded.predict_counts(counts, pbmc68k.genes), pbmc68k_model.predict_counts(counts, pbmc68k.genes)
    )
    assert loaded.parameters["learning_rate"] == 1e-4
    assert loaded.training["device"].endswith("CPU:0")
    assert loaded.versions["tensorflow"]


def test_another_process_imputes_identical_numbers(pbmc68k, pbmc68k_model, pbmc68k_model_dir, tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from deepimpute_tool.loom import read_loom\n"
        "from deepimpute_tool.model_loading import load_model\n"
        "d = read_loom(sys.argv[1])\n"
        "np.save(sys.argv[3], load_model(sys.argv[2]).predict_counts(d.counts.toarray(), d.genes))\n"
    )
    out = tmp_path / "prediction.npy"
    subprocess.run(
        [sys.executable, "-c", script, str(PBMC68K), str(pbmc68k_model_dir), str(out)], check=True, cwd=REPO
    )
    np.testing.assert_array_equal(
        np.load(out), pbmc68k_model.predict_counts(dense(pbmc68k.counts), pbmc68k.genes)
    )


def _copy(model_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(model_dir, target)
    return target


def test_missing_file_is_incomplete(pbmc68k_model_dir, tmp_path):
    model = _copy(pbmc68k_model_dir, tmp_path)
    (model / "weights.npz").unlink()
    with pytest.raises(ModelError, match=r"incomplete model: weights\.npz"):
        load_model(model)


def test_altered_weights_or_gene_lists_are_detected(pbmc68k_model_dir, tmp_path):
    model = _copy(pbmc68k_model_dir, tmp_path)
    with np.load(model / "weights.npz") as arrays:
        weights = dict(arrays)
    weights["subnet0000/b2"] = weights["subnet0000/b2"] + 1
    np.savez(model / "weights.npz", **weights)
    with pytest.raises(ModelError, match=r"weights\.npz does not match its checksum"):
        load_model(model)

    model = _copy(pbmc68k_model_dir, tmp_path / "second")
    content = json.loads((model / "model.json").read_text())
    content["subnetworks"][0]["targets"][0] = "SOMETHING_ELSE"
    (model / "model.json").write_text(json.dumps(content))
    with pytest.raises(ModelError, match=r"model\.json does not match its checksum"):
        load_model(model)


def test_incompatible_format_version_is_refused(pbmc68k_model_dir, tmp_path):
    model = _copy(pbmc68k_model_dir, tmp_path)
    content = json.loads((model / "model.json").read_text())
    content["format_version"] = 99
    (model / "model.json").write_text(json.dumps(content))
    with pytest.raises(ModelError, match="format version 99"):
        load_model(model)


def test_pickled_arrays_are_never_loaded(pbmc68k_model_dir, tmp_path):
    """A weights file carrying a Python object (which unpickling would run) is refused."""
    import hashlib

    model = _copy(pbmc68k_model_dir, tmp_path)
    with np.load(model / "weights.npz") as arrays:
        weights = dict(arrays)
    weights["subnet0000/W1"] = np.array([{"payload": 1}], dtype=object)
    np.savez(model / "weights.npz", **weights)
    content = json.loads((model / "model.json").read_text())
    content["weights"]["sha256"] = hashlib.sha256((model / "weights.npz").read_bytes()).hexdigest()
    body = {k: v for k, v in content.items() if k != "content_sha256"}
    content["content_sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    (model / "model.json").write_text(json.dumps(content))
    with pytest.raises(ModelError, match="is not a float32 matrix"):
        load_model(model)


def test_a_zipped_model_loads_and_predicts_identically(pbmc68k, pbmc68k_model, tmp_path):
    pbmc68k_model.save_zip(tmp_path / "model.zip")
    loaded = load_model(tmp_path / "model.zip")
    counts = dense(pbmc68k.counts)
    np.testing.assert_array_equal(
        loaded.predict_counts(counts, pbmc68k.genes), pbmc68k_model.predict_counts(counts, pbmc68k.genes)
    )


def test_library_normalisation_predicts_on_the_input_count_scale(pbmc68k):
    """With library-size normalisation a cell sequenced twice as deep reads the same network
    inputs, so its predicted counts are exactly twice as large; with log1p of raw counts they are not."""
    counts = dense(pbmc68k.counts)[:200]
    for normalisation in ("library", "log1p"):
        params = TrainingParameters(subset_size=400, normalisation=normalisation, **QUICK)
        model = train(pbmc68k.counts, pbmc68k.genes, params=params)
        single = model.predict_counts(counts, pbmc68k.genes)
        double = model.predict_counts(2 * counts, pbmc68k.genes)
        assert single.shape == (200, model.target_genes.size) and np.all(single >= 0)
        if normalisation == "library":
            np.testing.assert_allclose(double, 2 * single, rtol=1e-4, atol=1e-6)
        else:
            assert not np.allclose(double, 2 * single, rtol=1e-2)


def test_an_ensemble_averages_log_predictions_and_survives_saving(pbmc68k, tmp_path):
    """With --ensemble 2 every target has one sub-network in each partition, none reads its own
    targets, and a gene's prediction is expm1 of the mean of its two sub-networks' log predictions."""
    params = TrainingParameters(subset_size=400, ensemble=2, **QUICK)
    model = train(pbmc68k.counts, pbmc68k.genes, params=params)
    named = np.concatenate([net.targets for net in model.subnetworks])
    assert named.size == 2 * model.target_genes.size
    assert set(np.unique(named, return_counts=True)[1]) == {2}
    for net in model.subnetworks:
        assert not np.intersect1d(net.predictors, net.targets).size

    counts = dense(pbmc68k.counts)[:100]
    position = {g: i for i, g in enumerate(pbmc68k.genes)}
    logs = np.zeros((counts.shape[0], model.target_genes.size))
    column = {g: i for i, g in enumerate(model.target_genes)}
    for net in model.subnetworks:
        inputs = np.log1p(counts[:, [position[g] for g in net.predictors]]).astype(np.float32)
        logs[:, [column[g] for g in net.targets]] += net.predict_log(inputs)
    predicted = model.predict_counts(counts, pbmc68k.genes)
    np.testing.assert_allclose(predicted, np.expm1(logs / 2), rtol=1e-5, atol=1e-6)

    model.save(tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["format_version"] == 2
    np.testing.assert_array_equal(load_model(tmp_path).predict_counts(counts, pbmc68k.genes), predicted)


def test_a_format_1_model_still_imputes(pbmc_small):
    """A model of version 0.1.0 before --ensemble, written in format 1 (one sub-network per gene)."""
    archive = REPO / "tests" / "data" / "pbmc_small.model.format1.zip"
    with zipfile.ZipFile(archive) as opened:
        assert json.loads(opened.read("model.json"))["format_version"] == 1
    model = load_model(archive)
    predicted = model.predict_counts(dense(pbmc_small.counts), pbmc_small.genes)
    # what version 0.1.0's own code (commit 712c25d) predicted with this model, saved beside it
    with np.load(archive.with_name("pbmc_small.model.format1.predictions.npz")) as stored:
        np.testing.assert_array_equal(predicted, stored["predicted"])
