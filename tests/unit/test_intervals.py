"""Calibrated intervals: the conformal guarantee, what a model keeps to calibrate, how they are written and scored."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from deepimpute_tool.errors import InputError, ModelError
from deepimpute_tool.imputation import ImputeParameters, calibrate_intervals, for_model, impute_block
from deepimpute_tool.intervals import CalibrationSet, calibrate
from deepimpute_tool.model_loading import load_model
from deepimpute_tool.scoring import MaskedEntries, interval_metrics, uncertainty_metrics
from deepimpute_tool.training import TrainingParameters, train
from tests.helpers import QUICK, REPO, dense


@pytest.fixture(scope="module")
def calibrated(pbmc68k):
    """A model of pbmc68k_reduced trained with counts hidden to calibrate on."""
    params = TrainingParameters(subset_size=400, calibration=True, **QUICK)
    return train(pbmc68k.counts, pbmc68k.genes, params=params)


@pytest.fixture(scope="module")
def calibrated_dir(calibrated, tmp_path_factory):
    directory = tmp_path_factory.mktemp("calibrated")
    calibrated.write_directory(directory)
    return directory


def _entries(rng: np.random.Generator, n: int):
    """Counts whose log1p error grows with how far the detected value lies above the value written."""
    gap = rng.uniform(0, 2, n)
    values = rng.gamma(2.0, 2.0, n)
    noise = rng.normal(0, 0.2 + 0.6 * gap, n)
    truth = np.maximum(np.round(np.expm1(np.log1p(values) + noise)), 1)
    return values, truth, np.log1p(values) + gap


@pytest.mark.parametrize("level", [0.5, 0.8, 0.95])
def test_conformal_intervals_hold_their_share_of_new_entries(level):
    rng = np.random.default_rng(0)
    calibration = calibrate(*_entries(rng, 4000), level=level)
    values, truth, log_detected = _entries(rng, 20_000)
    low, high, half = calibration.bounds(values, log_detected)
    inside = (truth >= low * (1 - 1e-6)) & (truth <= high * (1 + 1e-6))
    # at least the level, up to what ties among whole counts add
    assert level - 0.02 < inside.mean() < level + 0.05
    assert (low <= values + 1e-4).all() and (values <= high * (1 + 1e-6)).all() and (half > 0).all()
    # the scale follows the detected value: less certain where it lies far above the value written
    gap = log_detected - np.log1p(values)
    assert np.median(half[gap > 1.5]) > 1.5 * np.median(half[gap < 0.5])


@pytest.mark.parametrize("n", [150, 399])
def test_entries_too_few_for_a_scale_table_all_set_the_multiplier(n):
    # half of them would fill one bin, so the scale is one number (even where all of them would
    # fill two, at 399) and every entry sets the multiplier: plain split-conformal
    values, truth, log_detected = _entries(np.random.default_rng(2), n)
    calibration = calibrate(values, truth, log_detected, level=0.8)
    error = np.sort(np.abs(np.log1p(truth) - np.log1p(values)))
    _, _, half = calibration.bounds(values, log_detected)
    assert np.ptp(half) == 0
    assert half[0] == pytest.approx(error[math.ceil((n + 1) * 0.8) - 1], rel=1e-5)


def test_a_fill_that_writes_the_detected_value_is_binned_by_the_value_alone():
    # log1p models' paper fill: the detected value is the value written, so a second axis would
    # only thin the bins; the value alone gets them all (up to MAX_BINS)
    rng = np.random.default_rng(3)
    values, truth, _ = _entries(rng, 4000)
    calibration = calibrate(values, truth, np.log1p(values), level=0.8)
    assert calibration.scale.detected_edges.size == 0
    assert calibration.scale.value_edges.size == 9
    values, truth, log_detected = _entries(rng, 4000)
    assert calibrate(values, truth, log_detected, level=0.8).scale.detected_edges.size > 0


def test_too_few_calibration_entries_for_the_coverage_asked_are_refused():
    values, truth, log_detected = _entries(np.random.default_rng(1), 30)
    with pytest.raises(ModelError, match="too few for intervals of 99% coverage"):
        calibrate(values, truth, log_detected, level=0.99)


def _calibration_json(**changes) -> dict:
    found = {
        "log_detected": [0.5, 1.0, 2.0],
        "truth": [1, 2, 5],
        "probability": [0.2, 0.5, 0.9],
        "factor": None,
    }
    return {**found, **changes}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"truth": [1, 2]}, "different lengths"),
        ({"truth": [1, 0, 5]}, "not positive counts"),
        ({"truth": [1, 2.5, 5]}, "not positive counts"),
        ({"probability": [0.2, 1.5, 0.9]}, "between 0 and 1"),
        ({"log_detected": [0.5, float("nan"), 2.0]}, "NaN or infinite"),
        ({"log_detected": [0.5, "x", 2.0]}, "other than numbers"),
        ({"probability": None}, "'probability' is not a list"),
        ({"truth": list(range(1, 30_000))}, "1 to 20000 numbers"),
        ({"truth": [1, 10**400, 5]}, "NaN or infinite"),
        ({"log_detected": [0.5, 1e300, 2.0]}, "NaN or infinite"),  # finite in float64, not in float32
        ({"factor": [1.0, 1e-40, 1.0]}, "scale factors are not positive"),
        ({"totals": None}, "'totals' is not a list"),
        ({"totals": [100.0, 1e20, 50.0]}, "cell totals are not between"),
        ({"totals": [100.0, 1e300, 50.0]}, "NaN or infinite"),
        ({"totals": [100.0, -1.0, 50.0]}, "cell totals are not between"),
        ({"shape": [1.0, 1e9, 2.0]}, "shapes are outside"),
        ({"shape": [1.0, 2.0]}, "different lengths"),
    ],
)
def test_a_damaged_calibration_is_refused_naming_the_model(changes, problem):
    content = {"totals": [100.0, 200.0, 50.0], "shape": [1.0, 2.0, 3.0], **changes}
    with pytest.raises(ModelError, match=problem) as refused:
        CalibrationSet.from_json(
            _calibration_json(**content), where="m.zip", detection=True, library=False, dispersion=True
        )
    assert str(refused.value).startswith("m.zip")


def test_a_model_trained_with_calibration_keeps_what_it_predicts_of_the_hidden_counts(
    calibrated, calibrated_dir, pbmc68k_model
):
    found = calibrated.calibration
    assert found is not None and found.size >= 200
    assert (found.truth >= 1).all() and ((found.probability > 0) & (found.probability < 1)).all()
    loaded = load_model(calibrated_dir)
    for name in ("log_detected", "truth", "probability", "totals", "shape"):
        np.testing.assert_array_equal(getattr(loaded.calibration, name), getattr(found, name))
    # what the denoised fill needs of each entry: its cell's total with the entries hidden, its gene's theta
    assert (found.totals > 0).all() and np.isin(found.shape, calibrated.dispersion).all()
    content = json.loads((calibrated_dir / "model.json").read_text())
    assert content["format_version"] == 5 and content["calibration"]["entries"] == found.size
    assert pbmc68k_model.calibration is None  # off by default: the default model is as before


@pytest.mark.parametrize("fill", ["denoised", "expected_log"])
def test_intervals_cover_the_value_written_at_zeros_and_an_observed_count_is_its_own(
    pbmc68k, calibrated, fill
):
    """Calibrated on counts hidden as zeros, intervals are for zeros; an observed count is its own,
    also under the default policy, which writes a denoised value there."""
    params = for_model(ImputeParameters(interval=0.8, fill=fill), calibrated)
    calibration = calibrate_intervals(calibrated, params)
    assert np.isfinite(calibration.multiplier)
    counts = dense(pbmc68k.counts)[:200]
    block = impute_block(counts, pbmc68k.genes, calibrated, params=params, calibration=calibration)
    observed = counts > 0
    np.testing.assert_array_equal(block.interval_low[observed], counts[observed])
    np.testing.assert_array_equal(block.interval_high[observed], counts[observed])
    assert (block.uncertainty[observed] == 0).all()
    filled = ~observed & (block.counts > 0)
    assert filled.sum() > 1000
    assert (block.interval_low[filled] <= block.counts[filled] * (1 + 1e-5)).all()
    assert (block.counts[filled] <= block.interval_high[filled] * (1 + 1e-5)).all()
    assert (block.uncertainty[filled] > 0).all()


def test_intervals_need_a_calibrated_model_and_exclude_dropout_samples(pbmc68k_model, calibrated):
    old = load_model(REPO / "galaxy" / "test-data" / "pbmc_small.model.format3.zip")
    for model in (old, pbmc68k_model):
        with pytest.raises(InputError, match="has no calibration"):
            for_model(ImputeParameters(interval=0.8), model)
        assert for_model(ImputeParameters(), model).interval == 0
    with pytest.raises(InputError, match="give one"):
        for_model(ImputeParameters(interval=0.8, uncertainty=5), calibrated)


def test_calibration_entries_whose_fill_overflows_are_refused(calibrated):
    found = calibrated.calibration
    forged = dataclasses.replace(
        found, log_detected=np.full(found.size, 88, np.float32), factor=np.full(found.size, 1e-3, np.float32)
    )
    model = dataclasses.replace(calibrated, calibration=forged)
    with pytest.raises(ModelError, match="calibration entries give values that are not numbers"):
        calibrate_intervals(model, for_model(ImputeParameters(interval=0.8, fill="detected"), model))


def test_a_model_without_calibration_still_saves_and_loads(calibrated, tmp_path):
    dataclasses.replace(calibrated, calibration=None).write_directory(tmp_path)
    assert load_model(tmp_path).calibration is None


def test_calibration_hides_counts_as_masking_would_and_the_model_sees_zeros_there(pbmc68k, calibrated):
    from deepimpute_tool.intervals import MAX_HIDDEN_SHARE, MIN_ENTRIES, calibration_set, choose_hidden

    columns = np.arange(pbmc68k.n_genes)
    assert choose_hidden(pbmc68k.counts[:10], columns, seed=0) is None  # no gene has 20 counts
    hidden = choose_hidden(pbmc68k.counts, columns, seed=0)
    assert MIN_ENTRIES <= hidden.truth.size <= MAX_HIDDEN_SHARE * pbmc68k.counts.nnz * 1.2
    counts = dense(pbmc68k.counts)
    np.testing.assert_array_equal(hidden.truth, counts[hidden.rows, hidden.columns])
    # the paper's masking hides small counts most
    assert np.median(hidden.truth) <= np.median(counts[counts > 0])
    without = hidden.hide(pbmc68k.counts)
    assert (dense(without)[hidden.rows, hidden.columns] == 0).all()
    assert without.nnz == pbmc68k.counts.nnz - hidden.truth.size
    found = calibration_set(calibrated, without, pbmc68k.genes, hidden)
    assert found.size == hidden.truth.size
    # what the model predicts from the counts without them, in the order they were hidden
    prediction = calibrated.predict(dense(without), pbmc68k.genes, detection=True)
    target = {g: i for i, g in enumerate(calibrated.target_genes)}
    at = [target[g] for g in pbmc68k.genes[hidden.columns]]
    np.testing.assert_allclose(found.log_detected, prediction.log_detected[hidden.rows, at], rtol=1e-6)
    np.testing.assert_allclose(found.probability, prediction.probability[hidden.rows, at], rtol=1e-6)
    again = choose_hidden(pbmc68k.counts, columns, seed=0)
    np.testing.assert_array_equal(again.rows, hidden.rows)


def _scored(uncertainty: np.ndarray, truth: np.ndarray, imputed: np.ndarray) -> dict:
    n = truth.size
    entries = MaskedEntries(
        np.zeros(n, int), np.arange(n), truth, imputed, uncertainty, imputed * 0.5, imputed * 2
    )
    return {**uncertainty_metrics(entries), **interval_metrics(entries)}


def test_scores_tell_an_uncertainty_that_knows_the_errors_from_one_that_restates_the_prediction():
    rng = np.random.default_rng(2)
    imputed = rng.gamma(2.0, 2.0, 5000)
    spread = rng.uniform(0.1, 1.5, 5000)
    truth = np.maximum(np.round(np.expm1(np.log1p(imputed) + rng.normal(0, spread))), 1)
    informed = _scored(spread, truth, imputed)
    restating = _scored(np.log1p(imputed), truth, imputed)
    assert informed["uncertainty_error_partial_spearman"] > 0.3
    assert abs(restating["uncertainty_error_partial_spearman"]) < 0.05
    assert informed["uncertainty_auc_worst_tenth"] > informed["prediction_auc_worst_tenth"]
    expected = np.mean((truth >= imputed * 0.5) & (truth <= imputed * 2))
    assert informed["interval_coverage"] == pytest.approx(expected)
    assert informed["interval_median_width"] == pytest.approx(np.median(imputed * 1.5))
