"""The detection head: what it learns, what it leaves alone, and the values built from it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from deepimpute_tool.errors import InputError
from deepimpute_tool.imputation import ImputeParameters, fill_values, for_model, impute_block
from deepimpute_tool.model_loading import load_model
from deepimpute_tool.training import TrainingParameters, train
from tests.helpers import QUICK, REPO, dense


def test_the_detection_head_leaves_the_detected_values_as_the_papers_network_has_them(pbmc68k):
    """The head reads the hidden units without training them, starts from zero and draws no random
    number, and early stopping judges the paper's loss: the values are those of a model without it."""
    params = TrainingParameters(subset_size=400, **QUICK)
    with_head = train(pbmc68k.counts, pbmc68k.genes, params=params)
    without = train(pbmc68k.counts, pbmc68k.genes, params=dataclasses.replace(params, detection=False))
    assert with_head.has_detection and not without.has_detection
    counts = dense(pbmc68k.counts)
    np.testing.assert_array_equal(
        with_head.predict_counts(counts, pbmc68k.genes), without.predict_counts(counts, pbmc68k.genes)
    )
    assert with_head.training["best_epoch"] == without.training["best_epoch"]


def test_the_probability_of_detection_tells_detected_entries_from_zeros(pbmc68k, pbmc68k_model):
    counts = dense(pbmc68k.counts)
    probability = pbmc68k_model.predict(counts, pbmc68k.genes, detection=True).probability
    position = {g: i for i, g in enumerate(pbmc68k.genes)}
    detected = counts[:, [position[g] for g in pbmc68k_model.target_genes]] > 0
    assert ((probability > 0) & (probability < 1)).all()
    # after three epochs already far better than chance at ranking detected entries above zeros
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(detected.ravel(), probability.ravel()) > 0.75
    # and calibrated on the whole: the mean probability is near the detected share
    assert abs(probability.mean() - detected.mean()) < 0.05


def _by_hand(model, counts, genes, factors):
    """Each target's normalised log value where detected and its probability, from the sub-networks'
    own numpy passes (one sub-network per gene), without :meth:`Model.predict`."""
    position = {g: i for i, g in enumerate(genes)}
    column = {g: i for i, g in enumerate(model.target_genes)}
    log_values = np.zeros((counts.shape[0], model.target_genes.size), np.float32)
    probability = np.zeros_like(log_values)
    for net in model.subnetworks:
        inputs = np.log1p(counts[:, [position[g] for g in net.predictors]] * factors).astype(np.float32)
        values, detected = net.predict(inputs, detection=True)
        log_values[:, [column[g] for g in net.targets]] = values
        probability[:, [column[g] for g in net.targets]] = detected
    return log_values, probability


@pytest.mark.parametrize("normalisation", ["log1p", "library"])
def test_each_fill_is_its_formula(pbmc68k, normalisation):
    params = TrainingParameters(subset_size=400, normalisation=normalisation, **QUICK)
    model = train(pbmc68k.counts, pbmc68k.genes, params=params)
    counts = dense(pbmc68k.counts)[:50]
    factors = np.ones((50, 1))
    if normalisation == "library":
        used = np.isin(pbmc68k.genes, model.genes)
        factors = 1e4 / counts[:, used].sum(axis=1, keepdims=True)
    log_values, p = _by_hand(model, counts, pbmc68k.genes, factors)
    detected = np.expm1(log_values) / factors
    prediction = model.predict(counts, pbmc68k.genes, detection=True)
    tolerance = {"rtol": 1e-4, "atol": 1e-5}
    np.testing.assert_allclose(fill_values(prediction, fill="detected"), detected, **tolerance)
    np.testing.assert_allclose(fill_values(prediction, fill="expected"), p * detected, **tolerance)
    # the count whose normalised log1p is the expected normalised log1p value
    np.testing.assert_allclose(
        fill_values(prediction, fill="expected_log"), np.expm1(p * log_values) / factors, **tolerance
    )
    confident = fill_values(prediction, fill="confident")
    np.testing.assert_array_equal(confident == 0, prediction.probability < 0.5)
    np.testing.assert_allclose(confident, np.where(prediction.probability >= 0.5, detected, 0), **tolerance)
    assert (fill_values(prediction, fill="expected_log") <= detected * (1 + 1e-5)).all()


def test_the_expected_log_fill_fills_zeros_below_the_detected_count_beside_the_papers_imputation(
    pbmc68k, pbmc68k_model
):
    """The default before the dispersion (and still the default of such models)."""
    counts = dense(pbmc68k.counts)[:60]
    params = for_model(ImputeParameters(detection_layer=True, fill="expected_log"), pbmc68k_model)
    assert (params.fill, params.policy, params.detected_layer) == ("expected_log", "restore", True)
    assert for_model(ImputeParameters(fill="detected"), pbmc68k_model).detected_layer is False
    block = impute_block(counts, pbmc68k.genes, pbmc68k_model, params=params)
    targets = np.isin(pbmc68k.genes, pbmc68k_model.target_genes)
    observed = counts > 0
    zeros = ~observed & targets
    # observed counts kept bit for bit in both; genes the model does not impute unchanged
    for matrix in (block.counts, block.detected_fill):
        np.testing.assert_array_equal(matrix[observed], counts[observed])
        np.testing.assert_array_equal(matrix[:, ~targets], counts[:, ~targets])
    # a zero gets less than the detected count, the less the likelier the gene is off
    assert (block.counts[zeros] > 0).all() and (block.detected_fill[zeros] > 0).all()
    assert (block.counts[zeros] < block.detected_fill[zeros]).all()
    p = block.detection[zeros]
    shrink = np.log1p(block.counts[zeros]) / np.log1p(block.detected_fill[zeros])
    np.testing.assert_allclose(shrink, p, rtol=1e-3, atol=1e-5)
    # the probability layer: the model's at imputed genes, what was observed elsewhere
    assert ((block.detection[:, targets] > 0) & (block.detection[:, targets] < 1)).all()
    np.testing.assert_array_equal(block.detection[:, ~targets], observed[:, ~targets].astype(np.float32))
    # --policy all: a denoised matrix, the model's value at every entry of the imputed genes
    everywhere = ImputeParameters(fill="expected_log", policy="all")
    denoised = impute_block(
        counts, pbmc68k.genes, pbmc68k_model, params=for_model(everywhere, pbmc68k_model)
    ).counts
    np.testing.assert_array_equal(denoised[zeros], block.counts[zeros])
    assert (denoised[observed & targets] != counts[observed & targets]).mean() > 0.9


def test_a_model_without_detection_head_imputes_as_before_and_refuses_what_needs_one(pbmc_small):
    archive = REPO / "tests" / "data" / "pbmc_small.model.format1.zip"
    model = load_model(archive)
    assert not model.has_detection
    params = for_model(ImputeParameters(), model)
    assert (params.fill, params.policy, params.detected_layer) == ("detected", "restore", False)
    for asked in ({"fill": "expected_log"}, {"fill": "confident"}, {"detection_layer": True}):
        with pytest.raises(InputError, match="no detection head"):
            for_model(ImputeParameters(**asked), model)
