"""The figures people expect: loss curves from train, quality control from filter, as PNG."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import deepimpute_tool as di
from tests.helpers import PBMC_SMALL, TINY_TRAINING, run

PNG = b"\x89PNG\r\n\x1a\n"


def test_train_draws_its_loss_curves_from_the_history_it_records(tmp_path):
    model, figure = tmp_path / "model.zip", tmp_path / "loss.png"
    result = run("deepimpute-train", PBMC_SMALL, model, "--loss-plot", figure, *TINY_TRAINING)
    assert f"loss curves drawn in {figure}" in result.stderr
    assert figure.read_bytes().startswith(PNG)
    with zipfile.ZipFile(model) as archive:
        training = json.loads(archive.read("model.json"))["training"]
    per_net = training["subnetwork_validation_loss"]
    n_nets = len(training["best_epoch"])
    assert len(per_net) == training["epochs"] and all(len(row) == n_nets for row in per_net)
    assert all(loss > 0 for loss in per_net[0])


def test_filter_draws_what_its_thresholds_cut(tmp_path):
    figure = tmp_path / "qc.png"
    result = run("deepimpute-filter", PBMC_SMALL, tmp_path / "f.loom", "--min-genes", 60, "--qc-plot", figure)
    assert "kept 31 of 80 cells" in result.stderr and figure.read_bytes().startswith(PNG)


def test_a_figure_that_cannot_be_written_stops_the_step_before_any_work(tmp_path):
    result = run(
        "deepimpute-train", PBMC_SMALL, tmp_path / "model.zip", "--loss-plot", tmp_path / "no" / "loss.png",
        *TINY_TRAINING, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "folder" in result.stderr and "does not exist" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def small_model(pbmc_small):
    from deepimpute_tool.training import TrainingParameters, train

    return train(pbmc_small.counts, pbmc_small.genes, params=TrainingParameters(max_epochs=4, cores=2))


def test_the_python_api_gives_the_same_figures(small_model, pbmc_small):
    from tests.unit.test_api import anndata_of

    figure = di.pl.loss_curves(small_model)
    totals, each = figure.axes[:2]
    assert len(totals.lines) >= 2 and len(each.lines) == len(small_model.subnetworks)
    losses = np.array(small_model.training["subnetwork_validation_loss"], dtype=float)
    assert np.allclose(each.lines[0].get_ydata(), losses[:, 0] / losses[0, 0], equal_nan=True)

    qc = di.pl.qc(anndata_of(pbmc_small), min_genes=60)
    assert [axis.get_title() for axis in qc.axes[:2]] == [
        "31 of 80 cells at or above",
        "80 of 80 cells at or above",
    ]
