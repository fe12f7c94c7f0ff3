"""train(): real TensorFlow training on real data, from counts to a model."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from deepimpute_tool.errors import DeviceError, InputError
from deepimpute_tool.training import TrainingParameters, choose_training_cells, train
from tests.helpers import QUICK, dense


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


def train_chosen(dataset, params, **options):
    """Train as the train step does: the cells chosen for the input's size, then only those."""
    cells = choose_training_cells(n_cells=dataset.n_cells, n_genes=dataset.n_genes, params=params)
    chosen = dataset.read_dataset(layers=False, cells=cells.chosen)
    return train(chosen.counts, chosen.genes, params=params, cells=cells, **options)


def test_cell_fraction_and_cell_count_subsample(pbmc68k):
    model = train_chosen(pbmc68k, TrainingParameters(cell_fraction=0.5, max_genes=50, **QUICK))
    assert model.training["cells"] == 350
    model = train_chosen(pbmc68k, TrainingParameters(cell_fraction=200, max_genes=50, **QUICK))
    assert model.training["cells"] == 200
    assert model.training["validation_cells"] == 10


def test_train_refuses_counts_its_parameters_would_subsample(pbmc68k):
    with pytest.raises(ValueError, match="350 of the 700 cells given"):
        train(pbmc68k.counts, pbmc68k.genes, params=TrainingParameters(cell_fraction=0.5, **QUICK))


def test_the_same_choice_of_cells_trains_the_same_model_twice(pbmc68k):
    params = TrainingParameters(max_cells=300, max_genes=30, **QUICK)
    first, second = train_chosen(pbmc68k, params), train_chosen(pbmc68k, params)
    for a, b in zip(first.subnetworks, second.subnetworks):
        np.testing.assert_array_equal(a.W1, b.W1)


def test_too_few_cells_is_a_clear_error(pbmc68k):
    with pytest.raises(InputError, match="too few cells"):
        train(pbmc68k.counts[:30], pbmc68k.genes, params=TrainingParameters(**QUICK))


def test_gpu_request_without_gpu_fails_clearly(pbmc68k):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    with pytest.raises(DeviceError, match="no GPU"):
        train(pbmc68k.counts, pbmc68k.genes, params=TrainingParameters(device="gpu", **QUICK))


def test_a_cell_budget_and_the_memory_of_the_training_matrix_bound_the_training_cells(pbmc68k, monkeypatch):
    import deepimpute_tool.training as training

    messages = []
    model = train_chosen(
        pbmc68k, TrainingParameters(max_cells=300, max_genes=50, **QUICK), log=messages.append
    )
    assert model.training["cells"] == 300 and model.parameters["max_cells"] == 300
    assert any("training on 300 of 700 cells" in m and "⟨max_cells⟩ 300" in m for m in messages)
    monkeypatch.setattr(training, "TRAINING_MATRIX_BYTES", 4 * 765 * 250)  # 250 cells of every gene
    messages.clear()
    model = train_chosen(pbmc68k, TrainingParameters(max_genes=50, **QUICK), log=messages.append)
    assert model.training["cells"] == 250  # a dense copy of every gene of the input
    assert any("a dense copy of" in m for m in messages)
