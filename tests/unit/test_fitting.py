"""The training loop on real data with real TensorFlow: learning rates, phases, early stopping, shrinking."""

from __future__ import annotations

import numpy as np
import pytest

from deepimpute_tool.fitting import fit_subnetworks
from deepimpute_tool.network import Layout, StepSettings
from deepimpute_tool.training import TrainingParameters
from tests.helpers import dense


def fit(x, inputs, outputs, params: TrainingParameters):
    """fit_subnetworks as train() calls it; returns (weights, history)."""
    layout = Layout.of(inputs, outputs, n_columns=x.shape[1], hidden=params.hidden)
    settings = StepSettings(dropout=params.dropout, batch_size=params.batch_size, precision=params.precision)
    result = fit_subnetworks(
        x,
        layout,
        phases=params.phases,
        settings=settings,
        max_epochs=params.max_epochs,
        validation_fraction=params.validation_fraction,
        seed=params.seed,
        cores=params.cores,
        device=params.device,
        rng=np.random.default_rng(0),
    )
    return result.weights, result.history


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
    weights, history = fit(x, inputs, outputs, params)
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
    _, history = fit(x, inputs, outputs, params)
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
    _, history = fit(x, inputs, outputs, single)
    assert history["phase_epochs"] == [history["epochs"]]


def test_early_stopping_keeps_each_subnetworks_best_epoch(pbmc68k):
    x, inputs, outputs = _small_problem(pbmc68k)
    params = TrainingParameters(
        learning_rate=3e-2, coarse_learning_rate=0.0, max_epochs=60, patience=3, cores=2
    )
    weights, history = fit(x, inputs, outputs, params)
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
        _, history = fit(x, inputs, outputs, params)
        losses[precision] = np.array(history["validation_loss"])
    assert losses["bfloat16"].min() < 0.92 * losses["bfloat16"][0]  # it learns
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.02)
    assert not np.array_equal(losses["bfloat16"], losses["float32"])  # and really in bfloat16


def test_stopped_subnetworks_leave_the_computation_without_changing_the_others(pbmc68k, monkeypatch):
    import deepimpute_tool.fitting as fitting

    x = np.log1p(dense(pbmc68k.counts)[:, :60]).astype(np.float32)
    inputs = [np.arange(0, 20), np.arange(20, 40), np.arange(40, 60)]
    outputs = [np.arange(40, 60), np.arange(0, 20), np.arange(20, 40)]
    params = TrainingParameters(
        learning_rate=3e-2, coarse_learning_rate=0.0, max_epochs=40, patience=2, dropout=0.0, cores=2
    )
    results = {}
    for shrink in (0.0, 0.99):  # never / as soon as one sub-network stops
        monkeypatch.setattr(fitting, "SHRINK_WHEN", shrink)
        results[shrink] = fit(x, inputs, outputs, params)
    (never, never_history), (always, always_history) = results[0.0], results[0.99]
    assert len(set(never_history["best_epoch"])) > 1  # they did stop at different epochs
    assert always_history["best_epoch"] == never_history["best_epoch"]
    for a, b in zip(always, never):
        for wa, wb in zip(a, b):
            np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-5)
