"""Gene selection, sub-network layout and real TensorFlow training on real data."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import QUICK, dense

from deepimpute_tool.training import (
    TrainingError,
    TrainingParameters,
    fit_subnetworks,
    normalised_log,
    select_predictors,
    select_targets,
    split_subsets,
    train,
    variance_mean_ratio,
)


def test_variance_mean_ratio_matches_numpy(pbmc68k):
    counts = dense(pbmc68k.counts)
    mean = counts.mean(0)
    expected = np.divide(counts.var(0, ddof=1), mean, out=np.zeros_like(mean), where=mean > 0)
    np.testing.assert_allclose(variance_mean_ratio(pbmc68k.counts), expected, rtol=1e-4, atol=1e-6)


def test_targets_pass_the_threshold_highest_first_and_respect_the_cap(pbmc68k):
    vmr = variance_mean_ratio(pbmc68k.counts)
    targets = select_targets(pbmc68k.counts, min_vmr=2.0)
    assert np.all(vmr[targets] > 2.0) and np.all(np.diff(vmr[targets]) <= 0)
    assert set(np.flatnonzero(vmr > 2.0)) == set(targets)
    np.testing.assert_array_equal(select_targets(pbmc68k.counts, min_vmr=2.0, max_genes=7), targets[:7])


@pytest.mark.parametrize(
    ("n_targets", "split", "sizes"),
    [
        (1300, "equal", [434, 433, 433]),
        (715, "equal", [358, 357]),
        (1300, "remainder", [512, 512, 276]),
        (715, "remainder", [512, 203]),
        (100, "equal", [100]),
        (100, "remainder", [100]),
        (1024, "equal", [512, 512]),
    ],
)
def test_subsets_cover_each_target_once_in_as_many_subsets_as_the_paper(n_targets, split, sizes):
    subsets = split_subsets(np.arange(n_targets), subset_size=512, split=split, rng=np.random.default_rng(0))
    assert [s.size for s in subsets] == sizes
    np.testing.assert_array_equal(np.sort(np.concatenate(subsets)), np.arange(n_targets))


def test_an_unknown_subset_split_is_refused():
    with pytest.raises(TrainingError, match="unknown subset split 'halves'"):
        split_subsets(np.arange(10), split="halves", rng=np.random.default_rng(0))


def test_too_few_genes_for_one_subset_still_gives_every_subnetwork_inputs():
    for split in ("equal", "remainder"):
        subsets = split_subsets(
            np.arange(230), subset_size=512, split=split, min_subsets=2, rng=np.random.default_rng(0)
        )
        assert [s.size for s in subsets] == [115, 115]


def test_a_dataset_smaller_than_one_subset_trains(pbmc_small):  # 230 genes, all of them targets
    model = train(pbmc_small.counts, pbmc_small.genes, params=TrainingParameters(**QUICK))
    assert len(model.subnetworks) == 2 and model.target_genes.size == 230
    for net in model.subnetworks:
        assert net.predictors.size >= 5 and not np.intersect1d(net.predictors, net.targets).size


@pytest.mark.parametrize(("split", "sizes"), [("equal", [77, 77, 76]), ("remainder", [100, 100, 30])])
def test_training_splits_the_targets_as_asked(pbmc_small, split, sizes):
    params = TrainingParameters(**{**QUICK, "max_epochs": 1}, subset_size=100, subset_split=split)
    model = train(pbmc_small.counts, pbmc_small.genes, params=params)
    assert sorted((net.targets.size for net in model.subnetworks), reverse=True) == sizes
    assert model.parameters["subset_split"] == split


@pytest.fixture(scope="module")
def pbmc68k_log_values(pbmc68k):
    return normalised_log(pbmc68k.counts, np.ones(pbmc68k.n_cells, np.float32))


def _partitions(pbmc68k, n_targets, n_partitions, *, subset_size=200, seed=2):
    targets = np.random.default_rng(0).permutation(pbmc68k.n_genes)[:n_targets]
    rng = np.random.default_rng(seed)
    return [split_subsets(targets, subset_size=subset_size, rng=rng) for _ in range(n_partitions)]


@pytest.mark.parametrize("n_targets", [765, 600])
def test_predictors_are_top_correlated_genes_never_own_targets(pbmc68k, pbmc68k_log_values, n_targets):
    """With every gene a target, and with 165 genes that are only ever predictors."""
    [subsets] = _partitions(pbmc68k, n_targets, 1, subset_size=300, seed=1)
    [predictors] = select_predictors(pbmc68k_log_values, [subsets], ntop=5)
    x = dense(pbmc68k_log_values)
    corr = np.abs(np.corrcoef(x.T))
    for own, chosen in zip(subsets, predictors):
        assert not np.intersect1d(own, chosen).size
        assert 5 <= chosen.size <= 5 * own.size
        # the best outside gene of every target is among the predictors
        for target in own:
            row = corr[target].copy()
            row[own] = -1
            row[~np.isfinite(row)] = -1
            assert np.argmax(row) in chosen


@pytest.mark.parametrize("n_targets", [765, 600])
@pytest.mark.parametrize("chunk_genes", [512, 700])
def test_predictors_do_not_depend_on_how_genes_are_chunked(
    pbmc68k, pbmc68k_log_values, n_targets, chunk_genes
):
    """The running top-k over chunks of genes equals the top-k over all genes at once.

    Chunks of 700 genes end inside the second block of 512 targets.
    """
    partitions = _partitions(pbmc68k, n_targets, 1)
    [whole] = select_predictors(pbmc68k_log_values, partitions, ntop=5)
    [chunked] = select_predictors(
        pbmc68k_log_values, partitions, ntop=5, chunk_bytes=4 * pbmc68k.n_cells * chunk_genes
    )
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a, b)


def test_an_ensemble_gets_the_predictors_each_partition_gets_alone(pbmc68k, pbmc68k_log_values):
    partitions = _partitions(pbmc68k, 600, 3)
    together = select_predictors(pbmc68k_log_values, partitions, ntop=5)
    for partition, predictors in zip(partitions, together):
        [alone] = select_predictors(pbmc68k_log_values, [partition], ntop=5)
        for a, b in zip(alone, predictors):
            np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(together[0], together[1]))


def _small_problem(pbmc68k, n_genes=40):
    x = np.log1p(dense(pbmc68k.counts)[:, :n_genes]).astype(np.float32)
    inputs = [np.arange(0, 20), np.arange(10, 40)]
    outputs = [np.arange(20, 40), np.arange(0, 10)]
    return x, inputs, outputs


@pytest.mark.parametrize(
    ("learning_rate", "coarse_learning_rate", "first_rate"),
    [(1e-4, 0.0, 1e-4), (1e-3, 0.0, 1e-3), (1e-4, 3e-3, 3e-3)],
)
def test_adam_uses_exactly_the_learning_rate_asked_for(
    pbmc68k, learning_rate, coarse_learning_rate, first_rate
):
    x, inputs, outputs = _small_problem(pbmc68k)
    params = TrainingParameters(
        learning_rate=learning_rate,
        coarse_learning_rate=coarse_learning_rate,
        batch_size=10_000,
        max_epochs=1,
        dropout=0.0,
        cores=2,
    )
    weights, history = fit_subnetworks(x, inputs, outputs, params=params, rng=np.random.default_rng(0))
    # one step from zero-initialised output biases moves each by lr * g / (|g| + eps)
    steps = np.abs(np.concatenate([w[3] for w in weights]))
    assert history["epochs"] == 1
    assert steps.max() <= first_rate * (1 + 1e-4)
    assert np.median(steps) > 0.9 * first_rate


def test_the_coarse_phase_hands_its_best_weights_to_the_paper_phase(pbmc68k):
    x, inputs, outputs = _small_problem(pbmc68k)
    params = TrainingParameters(
        coarse_learning_rate=3e-2, coarse_patience=1, learning_rate=1e-3, patience=3, max_epochs=80, cores=2
    )
    _, history = fit_subnetworks(x, inputs, outputs, params=params, rng=np.random.default_rng(0))
    coarse_end, end = history["phase_epochs"]
    assert 1 < coarse_end < end == history["epochs"] < 80
    losses = np.array(history["validation_loss"])
    # the fine phase starts from the coarse phase's best weights and improves on them
    assert sum(history["best_validation_loss"]) < losses[:coarse_end].min()
    assert max(history["best_epoch"]) > coarse_end
    # a paper-style run has one phase
    single = TrainingParameters(
        coarse_learning_rate=0.0, learning_rate=3e-2, patience=1, max_epochs=80, cores=2
    )
    _, history = fit_subnetworks(x, inputs, outputs, params=single, rng=np.random.default_rng(0))
    assert history["phase_epochs"] == [history["epochs"]]


def test_early_stopping_keeps_each_subnetworks_best_epoch(pbmc68k):
    x, inputs, outputs = _small_problem(pbmc68k)
    params = TrainingParameters(
        learning_rate=3e-2, coarse_learning_rate=0.0, max_epochs=60, patience=3, cores=2
    )
    weights, history = fit_subnetworks(x, inputs, outputs, params=params, rng=np.random.default_rng(0))
    assert history["epochs"] < 60
    assert all(best <= history["epochs"] - 3 for best in history["best_epoch"])
    assert [w[0].shape for w in weights] == [(20, 256), (30, 256)]
    assert [w[2].shape for w in weights] == [(256, 20), (256, 10)]


def test_bfloat16_products_train_as_well_as_float32(pbmc68k):
    x, inputs, outputs = _small_problem(pbmc68k)
    losses = {}
    for precision in ("float32", "bfloat16"):
        params = TrainingParameters(
            learning_rate=1e-2,
            coarse_learning_rate=0.0,
            max_epochs=8,
            patience=8,
            cores=2,
            precision=precision,
        )
        _, history = fit_subnetworks(x, inputs, outputs, params=params, rng=np.random.default_rng(0))
        losses[precision] = np.array(history["validation_loss"])
    assert losses["bfloat16"].min() < 0.92 * losses["bfloat16"][0]  # it learns
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.02)
    assert not np.array_equal(losses["bfloat16"], losses["float32"])  # and really in bfloat16


def test_stopped_subnetworks_leave_the_computation_without_changing_the_others(pbmc68k, monkeypatch):
    import deepimpute_tool.training as training

    x = np.log1p(dense(pbmc68k.counts)[:, :60]).astype(np.float32)
    inputs = [np.arange(0, 20), np.arange(20, 40), np.arange(40, 60)]
    outputs = [np.arange(40, 60), np.arange(0, 20), np.arange(20, 40)]
    params = TrainingParameters(
        learning_rate=3e-2, coarse_learning_rate=0.0, max_epochs=40, patience=2, dropout=0.0, cores=2
    )
    results = {}
    for shrink in (0.0, 0.99):  # never / as soon as one sub-network stops
        monkeypatch.setattr(training, "SHRINK_WHEN", shrink)
        results[shrink] = fit_subnetworks(x, inputs, outputs, params=params, rng=np.random.default_rng(0))
    (never, never_history), (always, always_history) = results[0.0], results[0.99]
    assert len(set(never_history["best_epoch"])) > 1  # they did stop at different epochs
    assert always_history["best_epoch"] == never_history["best_epoch"]
    for a, b in zip(always, never):
        for wa, wb in zip(a, b):
            np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def pbmc68k_doubled(pbmc68k):
    """1,300+ genes of real PBMC data: pbmc68k_reduced's 765 genes are too few, so stack two copies thinned."""
    rng = np.random.default_rng(0)
    counts = dense(pbmc68k.counts)
    thinned = rng.binomial(counts.astype(np.int64), 0.7).astype(np.float32)
    genes = np.concatenate([pbmc68k.genes, np.char.add(pbmc68k.genes.astype(str), "_thinned")])
    return sp.csr_matrix(np.hstack([counts, thinned])), genes


@pytest.mark.parametrize(("max_genes", "n_nets"), [(100, 1), (1300, 3)])
def test_gene_sets_of_100_and_1300_genes_train(pbmc68k_doubled, max_genes, n_nets):
    counts, genes = pbmc68k_doubled
    model = train(counts, genes, params=TrainingParameters(min_vmr=0.0, max_genes=max_genes, **QUICK))
    assert len(model.subnetworks) == n_nets
    assert model.target_genes.size == max_genes == np.unique(model.target_genes).size
    predicted = model.predict_counts(dense(counts)[:50], genes)
    assert predicted.shape == (50, max_genes)
    assert np.all(np.isfinite(predicted)) and np.all(predicted >= 0)


def test_cell_fraction_and_cell_count_subsample(pbmc68k):
    model = train(
        pbmc68k.counts, pbmc68k.genes, params=TrainingParameters(cell_fraction=0.5, max_genes=50, **QUICK)
    )
    assert model.training["cells"] == 350
    model = train(
        pbmc68k.counts, pbmc68k.genes, params=TrainingParameters(cell_fraction=200, max_genes=50, **QUICK)
    )
    assert model.training["cells"] == 200
    assert model.training["validation_cells"] == 10


def test_too_few_cells_is_a_clear_error(pbmc68k):
    with pytest.raises(TrainingError, match="too few cells"):
        train(pbmc68k.counts[:30], pbmc68k.genes, params=TrainingParameters(**QUICK))


def test_gpu_request_without_gpu_fails_clearly(pbmc68k):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    with pytest.raises(TrainingError, match="no GPU"):
        train(pbmc68k.counts, pbmc68k.genes, params=TrainingParameters(device="gpu", **QUICK))
