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
from deepimpute_tool.model import MODEL_FORMAT_VERSION
from deepimpute_tool.model_loading import load_model
from deepimpute_tool.training import TrainingParameters, train
from tests.helpers import PBMC68K, QUICK, REPO, dense

FLOAT32_ROUNDING = 1e-5  # relative: a few units in the last place of float32


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
    pbmc68k_model.write_zip(tmp_path / "model.zip")
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
    probabilities = np.zeros_like(logs)
    column = {g: i for i, g in enumerate(model.target_genes)}
    for net in model.subnetworks:
        inputs = np.log1p(counts[:, [position[g] for g in net.predictors]]).astype(np.float32)
        values, probability = net.predict(inputs, detection=True)
        logs[:, [column[g] for g in net.targets]] += values
        probabilities[:, [column[g] for g in net.targets]] += probability
    predicted = model.predict(counts, pbmc68k.genes, detection=True)
    np.testing.assert_allclose(predicted.detected, np.expm1(logs / 2), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predicted.probability, probabilities / 2, rtol=1e-5, atol=1e-6)

    model.write_directory(tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["format_version"] == MODEL_FORMAT_VERSION
    loaded = load_model(tmp_path).predict(counts, pbmc68k.genes, detection=True)
    np.testing.assert_array_equal(loaded.detected, predicted.detected)
    np.testing.assert_array_equal(loaded.probability, predicted.probability)


def test_a_format_1_model_still_imputes(pbmc_small):
    """A model of version 0.1.0 before --ensemble, written in format 1 (one sub-network per gene)."""
    archive = REPO / "tests" / "data" / "pbmc_small.model.format1.zip"
    with zipfile.ZipFile(archive) as opened:
        assert json.loads(opened.read("model.json"))["format_version"] == 1
    model = load_model(archive)
    predicted = model.predict_counts(dense(pbmc_small.counts), pbmc_small.genes)
    # what version 0.1.0's own code (commit 712c25d) predicted with this model, saved beside it;
    # float32 products round differently from one numpy (and BLAS) release to another
    with np.load(archive.with_name("pbmc_small.model.format1.predictions.npz")) as stored:
        np.testing.assert_allclose(predicted, stored["predicted"], rtol=FLOAT32_ROUNDING)


def test_a_format_2_model_still_imputes_as_it_did(pbmc_small):
    """A model written before the detection head (format 2): the same predictions, and the
    defaults resolve to the paper's imputation it always gave (zeros filled, counts kept)."""
    from deepimpute_tool.imputation import ImputeParameters, for_model, impute_block

    archive = REPO / "galaxy" / "test-data" / "pbmc_small.model.format2.zip"
    with zipfile.ZipFile(archive) as opened:
        assert json.loads(opened.read("model.json"))["format_version"] == 2
    model = load_model(archive)
    assert not model.has_detection
    counts = dense(pbmc_small.counts)
    # saved by the code of commit 9b1c375, the last before the detection head
    with np.load(REPO / "tests" / "data" / "pbmc_small.model.format2.predictions.npz") as stored:
        np.testing.assert_allclose(
            model.predict_counts(counts, pbmc_small.genes), stored["predicted"], rtol=FLOAT32_ROUNDING
        )
        params = for_model(ImputeParameters(), model)
        imputed = impute_block(counts, pbmc_small.genes, model, params=params)
        np.testing.assert_allclose(imputed.counts, stored["imputed"], rtol=FLOAT32_ROUNDING)
        observed = counts > 0
        np.testing.assert_array_equal(imputed.counts[observed], counts[observed])
    assert imputed.detected_fill is None and imputed.detection is None


def _rewritten(source, target, *, weights=None, content=None):
    """A copy of the model ``source`` with some arrays or model.json fields replaced, checksums redone,
    as anyone who uploads a model can do."""
    import hashlib

    model = _copy(source, target)
    with np.load(model / "weights.npz") as arrays:
        arrays = dict(arrays)
    arrays.update(weights or {})
    for name in [k for k, v in arrays.items() if v is None]:
        del arrays[name]
    np.savez(model / "weights.npz", **arrays)
    document = json.loads((model / "model.json").read_text())
    document.update(content or {})
    document["weights"]["sha256"] = hashlib.sha256((model / "weights.npz").read_bytes()).hexdigest()
    body = {k: v for k, v in document.items() if k != "content_sha256"}
    document["content_sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    (model / "model.json").write_text(json.dumps(document))
    return model


@pytest.mark.parametrize(
    "change, says",
    [
        ({"weights": {"subnet0000/W3": None}}, "lacks W3 of sub-network 0"),
        ({"weights": {"subnet0000/b3": np.zeros(3, np.float32)}}, "detection weights do not match"),
        ({"weights": {"subnet0000/W3": "NaN"}}, "NaN or infinite"),
        ({"content": {"architecture": ["sigmoid"]}}, "unknown architecture"),
        ({"content": {"architecture": {"detection_activation": "tanh"}}}, "unknown architecture"),
        ({"content": {"format_version": 2}}, "format 2 cannot hold"),
    ],
)
def test_a_damaged_or_forged_detection_head_is_refused(pbmc68k_model_dir, tmp_path, change, says):
    if change.get("weights", {}).get("subnet0000/W3") == "NaN":
        with np.load(pbmc68k_model_dir / "weights.npz") as arrays:
            change = {"weights": {"subnet0000/W3": np.full_like(arrays["subnet0000/W3"], np.nan)}}
    model = _rewritten(pbmc68k_model_dir, tmp_path / "model", **change)
    with pytest.raises(ModelError, match=says):
        load_model(model)


def test_a_detection_head_that_overflows_is_refused_not_written(pbmc68k_model_dir, tmp_path):
    """Finite weights of mixed sign near float32's limit make inf - inf = NaN in the product.

    One cell at a time: OpenBLAS 0.3.31's float32 matrix product saturates such sums to +-inf
    for many rows at once (a finite probability after the sigmoid), its vector product does not."""
    from deepimpute_tool.imputation import ImputeParameters
    from deepimpute_tool.progress import Progress
    from deepimpute_tool.steps.impute import impute_file

    with np.load(pbmc68k_model_dir / "weights.npz") as arrays:
        shape = arrays["subnet0000/W3"].shape
    # signs alternate down every column (a checkerboard), whatever the number of targets
    forged = np.where(np.indices(shape).sum(axis=0) % 2, 3e38, -3e38).astype(np.float32)
    model = _rewritten(pbmc68k_model_dir, tmp_path / "model", weights={"subnet0000/W3": forged})
    out = tmp_path / "imputed.loom"
    with pytest.raises(ModelError, match="not numbers") as refused:
        impute_file(
            PBMC68K, model, out, params=ImputeParameters(chunk_cells=1), progress=Progress(quiet=True)
        )
    assert refused.value.what == str(model) and sorted(tmp_path.iterdir()) == [tmp_path / "model"]
