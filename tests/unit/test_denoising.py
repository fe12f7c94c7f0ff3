"""The denoised value: the negative binomial around the model's expected count, and what it is worth."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from deepimpute_tool.denoising import (
    EXACT_BELOW,
    MAX_SHAPE,
    DispersionSums,
    denoised_counts,
    expected_log_normalised,
    posterior,
)
from deepimpute_tool.errors import InputError, ModelError
from deepimpute_tool.imputation import ImputeParameters, for_model, impute_block
from deepimpute_tool.masking import split_molecules
from deepimpute_tool.model_loading import load_model
from deepimpute_tool.scoring import mcv_scores
from deepimpute_tool.training import TrainingParameters, train
from tests.helpers import QUICK, REPO, dense
from tests.unit.test_model import _rewritten


def _by_summation(mean: float, shape: float, scale: float) -> float:
    counts = np.arange(0, 20_000)
    pmf = stats.nbinom.pmf(counts, shape, shape / (shape + mean))
    return float((pmf * np.log1p(counts * scale)).sum())


# a posterior's mean is never above its shape: (y + theta) / (1 + theta / mu) <= y + theta
DOMAIN = [
    (m, s) for s in (0.05, 1.0, 12.0, 900.0) for m in (1e-4, 0.04, 0.3, 1.0, 7.5, 12.0, 30.0, 400.0) if m <= s
]


@pytest.mark.parametrize("mean, shape", DOMAIN)
def test_the_expected_normalised_log_value_is_the_sum_over_counts(mean, shape):
    scale = np.array([[0.5], [80.0]], np.float32)  # a deep cell and a shallow one
    found = expected_log_normalised(
        np.full((2, 1), mean, np.float32), np.full((2, 1), shape, np.float32), scale
    )
    for row in range(2):
        exact = _by_summation(mean, shape, float(scale[row, 0]))
        # summed exactly below EXACT_BELOW; the delta method above is good where the log is nearly straight
        tolerance = 1e-4 if mean < EXACT_BELOW else 0.01 * exact
        assert abs(found[row, 0] - exact) <= tolerance + 1e-6, (row, found[row, 0], exact)


def test_the_dispersion_is_recovered_from_negative_binomial_counts():
    rng = np.random.default_rng(0)
    mean = rng.gamma(2.0, 2.0, size=(20_000, 1)) * np.ones((1, 4))
    theta = np.array([0.3, 2.0, 20.0, np.inf])
    counts = np.column_stack(
        [
            rng.negative_binomial(t, t / (t + mean[:, j])) if np.isfinite(t) else rng.poisson(mean[:, j])
            for j, t in enumerate(theta)
        ]
    ).astype(np.float32)
    sums = DispersionSums.zeros(4)
    for block in range(0, 20_000, 7_000):  # added up over blocks as training does
        sums.add(counts[block : block + 7_000], mean[block : block + 7_000])
    found = sums.shapes()
    np.testing.assert_allclose(found[:3], theta[:3], rtol=0.25)
    assert found[3] > 100 and found[3] <= MAX_SHAPE  # Poisson: as little extra variance as allowed


def test_the_posterior_weighs_the_observed_count_by_the_genes_dispersion():
    observed = np.array([[0.0, 1.0, 5.0, 20.0]], np.float32)
    expected = np.full((1, 4), 4.0, np.float32)
    means = {}
    for theta in (0.1, 1.0, MAX_SHAPE):
        means[theta], shape = posterior(observed, expected, np.float32(theta))
        # a gamma prior of shape theta and mean 4, updated by one Poisson count
        np.testing.assert_allclose(means[theta], (observed + theta) / (1 + theta / 4.0), rtol=1e-6)
        np.testing.assert_allclose(shape, observed + theta, rtol=1e-6)
        assert (np.diff(means[theta]) > 0).all()  # more observed, more expected
        assert (means[theta] <= shape).all()
    # a noisy gene trusts the observed count, a regular one the model
    assert np.abs(means[0.1] - observed).max() < 0.5
    assert np.abs(means[MAX_SHAPE] - expected).max() < 0.1


def test_denoised_counts_keep_the_ordering_of_the_observed_counts_and_the_depth():
    observed = np.array([[0, 1, 3, 10], [0, 1, 3, 10]], np.float32)
    expected = np.full((2, 4), 2.0, np.float32)
    totals = np.array([[500.0], [5_000.0]])
    values = denoised_counts(observed, expected, np.float32(2.0), totals)
    assert (np.diff(values, axis=1) > 0).all()
    assert (values > 0).all()
    # on its normalised log scale a zero of a shallow cell is less sure to hide a count than a deep cell's
    log_values = np.log1p(values * 1e4 / totals)
    assert log_values[0, 0] < np.log1p(2.0 * 1e4 / totals[0, 0])


def test_the_default_denoises_every_entry_of_the_imputed_genes(pbmc68k, pbmc68k_model):
    counts = dense(pbmc68k.counts)[:60]
    params = for_model(ImputeParameters(detection_layer=True), pbmc68k_model)
    assert (params.fill, params.policy, params.detected_layer) == ("denoised", "all", True)
    block = impute_block(counts, pbmc68k.genes, pbmc68k_model, params=params)
    targets = np.isin(pbmc68k.genes, pbmc68k_model.target_genes)
    np.testing.assert_array_equal(block.counts[:, ~targets], counts[:, ~targets])
    assert (block.counts[:, targets] > 0).all()
    # the paper's imputation beside it, observed counts kept there
    observed = counts > 0
    np.testing.assert_array_equal(block.detected_fill[observed], counts[observed])
    # within a gene, the denoised value rises with the observed count where the model expects the same
    column = np.flatnonzero(targets)[np.argmax((counts[:, targets] > 0).sum(axis=0))]
    same_cell_kind = np.argsort(counts[:, column])
    assert np.corrcoef(counts[same_cell_kind, column], block.counts[same_cell_kind, column])[0, 1] > 0.5
    with pytest.raises(InputError, match="no dispersion"):
        for_model(ImputeParameters(fill="denoised"), dataclasses.replace(pbmc68k_model, dispersion=None))


def test_a_model_before_the_dispersion_imputes_as_it_did(pbmc_small):
    """Its default: zeros get expm1(p x log1p(detected)), observed counts are kept bit for bit."""
    old = load_model(REPO / "galaxy" / "test-data" / "pbmc_small.model.format3.zip")
    assert old.has_detection and old.dispersion is None
    params = for_model(ImputeParameters(), old)
    assert (params.fill, params.policy) == ("expected_log", "restore")
    counts = dense(pbmc_small.counts)
    imputed = impute_block(counts, pbmc_small.genes, old, params=params).counts
    prediction = old.predict(counts, pbmc_small.genes, detection=True)
    columns = [list(pbmc_small.genes).index(g) for g in old.target_genes]
    observed = counts[:, columns]
    expected = np.where(
        observed > 0, observed, np.expm1(prediction.probability * np.log1p(prediction.detected))
    )
    np.testing.assert_allclose(imputed[:, columns], expected, rtol=1e-5)
    np.testing.assert_array_equal(imputed[:, columns][observed > 0], observed[observed > 0])


def test_molecular_cross_validation_the_denoised_default_beats_no_imputation(pbmc68k):
    """Open Problems' MSE and Poisson loss on held-out molecules: the old default (zeros filled with
    the expected log count, counts kept) lost to no imputation on the MSE; the denoised one wins both."""
    train_counts, heldout = split_molecules(pbmc68k.counts, fraction=0.1, seed=0)
    model = train(train_counts, pbmc68k.genes, params=TrainingParameters(subset_size=400, **QUICK))
    counts, test = dense(train_counts), dense(heldout)
    scores = {}
    for fill, policy in (("denoised", "auto"), ("expected_log", "restore")):
        params = for_model(ImputeParameters(fill=fill, policy=policy, detected_layer=False), model)
        imputed = impute_block(counts, pbmc68k.genes, model, params=params).counts
        scores[fill] = mcv_scores(lambda imputed=imputed: [(imputed, counts, test)])
    new, old = scores["denoised"], scores["expected_log"]
    assert new["mcv_mse"] < new["mcv_mse_without_imputation"]
    assert new["mcv_poisson"] < new["mcv_poisson_without_imputation"]
    assert old["mcv_mse"] > old["mcv_mse_without_imputation"]
    assert new["mcv_score"] > old["mcv_score"] + 0.05


def test_the_dispersion_is_saved_checked_and_refused_when_forged(pbmc68k_model, tmp_path):
    (tmp_path / "model").mkdir()
    pbmc68k_model.write_directory(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    np.testing.assert_array_equal(loaded.dispersion, pbmc68k_model.dispersion)
    n = pbmc68k_model.target_genes.size
    forged = {
        "short": {"dispersion": [1.0] * (n - 1)},
        "nan": {"dispersion": [1.0] * (n - 1) + [float("nan")]},
        "out of range": {"dispersion": [1.0] * (n - 1) + [1e9]},
        "text": {"dispersion": ["1"] * n},
        "an integer beyond any float": {"dispersion": [1.0] * (n - 1) + [10**400]},
        "old format": {"format_version": 4},
    }
    for name, content in forged.items():
        path = _rewritten(tmp_path / "model", tmp_path / name.replace(" ", "_"), content=content)
        with pytest.raises(ModelError, match="dispersion") as refused:
            load_model(path)
        assert str(path) in str(refused.value)
    assert json.loads((tmp_path / "model" / "model.json").read_text())["format_version"] == 5


def test_training_fits_the_dispersion_on_its_cells(pbmc68k, pbmc68k_model):
    assert pbmc68k_model.dispersion.shape == pbmc68k_model.target_genes.shape
    assert pbmc68k_model.dispersion.dtype == np.float32
    without = train(
        sp.csr_matrix(pbmc68k.counts[:200]),
        pbmc68k.genes,
        params=TrainingParameters(subset_size=400, detection=False, **QUICK),
    )
    assert without.dispersion is None


def test_counts_hidden_for_calibration_are_left_out_of_the_dispersion():
    """A hidden count is a zero to the model but not in truth: it must not count as a zero."""
    rng = np.random.default_rng(1)
    mean = rng.gamma(2.0, 2.0, size=(5_000, 2))
    counts = rng.poisson(mean).astype(np.float32)
    hidden = (counts > 0) & (rng.random(counts.shape) < 0.3)
    as_zeros = np.where(hidden, 0, counts)
    left_out, kept_as_zeros = DispersionSums.zeros(2), DispersionSums.zeros(2)
    left_out.add(as_zeros, mean, left_out=hidden)
    kept_as_zeros.add(as_zeros, mean)
    assert (left_out.shapes() > 30).all()  # Poisson counts: hardly any extra variance
    assert (kept_as_zeros.shapes() < 10).all()  # zeros that are not: spurious overdispersion
