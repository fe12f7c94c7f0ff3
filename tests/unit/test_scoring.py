from __future__ import annotations

import numpy as np
import pytest

from deepimpute_tool.masking import mask_counts
from deepimpute_tool.plots import draw_plots
from deepimpute_tool.scoring import accuracy_metrics, clustering_metrics, masked_entries
from tests.helpers import dense


def test_masked_entries_are_positive_in_truth_and_zero_in_input():
    original = np.array([[3, 0, 1], [2, 5, 0]], np.float32)
    observed = np.array([[0, 0, 1], [2, 0, 0]], np.float32)
    imputed = np.array([[2.5, 0.1, 1], [2, 4.0, 0.2]], np.float32)
    entries = masked_entries(original, observed, imputed)
    np.testing.assert_array_equal(entries.truth, [3, 5])
    np.testing.assert_array_equal(entries.imputed, [2.5, 4.0])


def test_metrics_of_perfect_and_of_no_imputation(pbmc68k):
    original = dense(pbmc68k.counts)
    observed = dense(mask_counts(pbmc68k.counts, seed=0).masked)
    names = dict(gene_names=pbmc68k.genes, cell_names=pbmc68k.cells)
    perfect = accuracy_metrics(masked_entries(original, observed, original), **names)
    assert perfect["mse"] == 0 and perfect["pearson"] == pytest.approx(1.0)
    nothing = accuracy_metrics(masked_entries(original, observed, observed), **names)
    truth = np.log1p(original[(original > 0) & (observed == 0)])
    assert (
        nothing["mse"] == pytest.approx(np.mean(truth**2)) == pytest.approx(nothing["mse_without_imputation"])
    )
    assert nothing["mse_count_ge2"] > nothing["mse"]
    assert len(perfect["per_gene_mse"]["values"]) == (((original > 0) & (observed == 0)).sum(0) > 0).sum()


def test_clustering_scores_reward_labels_that_match(pbmc68k):
    labels = pbmc68k.cell_attrs["CellType"].astype(str)
    counts = dense(pbmc68k.counts)
    real = clustering_metrics(counts, labels)
    shuffled = clustering_metrics(counts, np.random.default_rng(0).permutation(labels))
    for key in ("ari", "ami", "fmi", "silhouette"):
        assert -1 <= real[key] <= 1
    assert real["ari"] > shuffled["ari"] + 0.2 and real["silhouette"] > shuffled["silhouette"]


def test_plots_are_png(pbmc68k, tmp_path):
    original = dense(pbmc68k.counts)
    observed = dense(mask_counts(pbmc68k.counts, seed=0).masked)
    entries = masked_entries(original, observed, original * 0.9)
    metrics = {"input": "x", **accuracy_metrics(entries, gene_names=pbmc68k.genes, cell_names=pbmc68k.cells)}
    for path in draw_plots(metrics, entries, tmp_path):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
