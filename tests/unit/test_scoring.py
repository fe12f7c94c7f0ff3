from __future__ import annotations

import math

import numpy as np
import pytest

from deepimpute_tool.clustering import clustering_metrics, leiden
from deepimpute_tool.masking import mask_counts, split_molecules
from deepimpute_tool.plots import draw_plots
from deepimpute_tool.scoring import (
    accuracy_metrics,
    masked_entries,
    mcv_scores,
)
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
    for key in ("ari", "ami", "fmi", "ari_leiden", "ami_leiden", "fmi_leiden", "silhouette"):
        assert -1 <= real[key] <= 1
    assert real["ari"] > shuffled["ari"] + 0.2 and real["ari_leiden"] > shuffled["ari_leiden"] + 0.2
    assert real["silhouette"] > shuffled["silhouette"]
    assert real["leiden_clusters"] == real["clusters"] == 10


def test_plots_are_png(pbmc68k, tmp_path):
    original = dense(pbmc68k.counts)
    observed = dense(mask_counts(pbmc68k.counts, seed=0).masked)
    entries = masked_entries(original, observed, original * 0.9)
    metrics = {"input": "x", **accuracy_metrics(entries, gene_names=pbmc68k.genes, cell_names=pbmc68k.cells)}
    for path in draw_plots(metrics, entries, tmp_path):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_leiden_finds_as_many_clusters_as_asked_on_separate_groups():
    from sklearn.datasets import make_blobs

    points, groups = make_blobs(n_samples=300, centers=4, cluster_std=0.5, random_state=0)
    found = leiden(points, 4, seed=0)
    from sklearn.metrics import adjusted_rand_score

    assert found.max() + 1 == 4 and adjusted_rand_score(groups, found) == 1.0
    np.testing.assert_array_equal(found, leiden(points, 4, seed=0))  # seeded


def test_molecules_are_split_exactly_and_at_the_fraction_asked(pbmc68k):
    kept, heldout = split_molecules(pbmc68k.counts, fraction=0.1, seed=0)
    np.testing.assert_array_equal(dense(kept) + dense(heldout), dense(pbmc68k.counts))
    assert abs(heldout.sum() / pbmc68k.counts.sum() - 0.1) < 0.005
    again, _ = split_molecules(pbmc68k.counts, fraction=0.1, seed=0)
    np.testing.assert_array_equal(dense(again), dense(kept))


def test_mcv_errors_are_open_problems_on_a_matrix_worked_by_hand():
    """Two cells, two genes, every value worked out on paper (Open Problems' task_denoising)."""
    test = np.array([[1.0, 3.0], [0.0, 2.0]])  # held out: cells of 4 and 2 counts, 6 in all
    train = np.array([[4.0, 4.0], [2.0, 2.0]])  # 12 in all: the Poisson scale is 6 / 12
    denoised = np.array([[2.0, 4.0], [2.0, 2.0]])
    metrics = mcv_scores(lambda: [(denoised, train, test)])

    # MSE: every cell to 10,000 counts, log1p. test: [2500, 7500], [0, 10000]; denoised:
    # [3333.3, 6666.7], [5000, 5000]; train: [5000, 5000] twice
    ln = math.log
    test_log = [ln(2501), ln(7501), 0.0, ln(10001)]
    denoised_log = [ln(1 + 10000 / 3), ln(1 + 20000 / 3), ln(5001), ln(5001)]
    train_log = [ln(5001)] * 4
    assert metrics["mcv_mse"] == pytest.approx(sum((a - b) ** 2 for a, b in zip(test_log, denoised_log)) / 4)
    assert metrics["mcv_mse_without_imputation"] == pytest.approx(
        sum((a - b) ** 2 for a, b in zip(test_log, train_log)) / 4
    )
    assert metrics["mcv_mse_perfect"] == 0.0

    # Poisson: mu = candidate * 6 / 12; mean(mu - test * ln(mu + 1e-6)), test as the observation
    def poisson(mu):
        return sum(m - t * ln(m + 1e-6) for m, t in zip(mu, [1, 3, 0, 2])) / 4

    assert metrics["mcv_poisson"] == pytest.approx(poisson([1, 2, 1, 1]))
    assert metrics["mcv_poisson_without_imputation"] == pytest.approx(poisson([2, 2, 1, 1]))
    assert metrics["mcv_poisson_perfect"] == pytest.approx(poisson([0.5, 1.5, 0, 1]))

    # scaled: 0 without denoising, 1 for perfect, by Open Problems' two controls
    for measure in ("mcv_mse", "mcv_poisson"):
        none, perfect = metrics[f"{measure}_without_imputation"], metrics[f"{measure}_perfect"]
        assert metrics[f"{measure}_scaled"] == pytest.approx((none - metrics[measure]) / (none - perfect))

    # the form this tool reported before 0.2, under its own name: cells to the median held-out depth (3)
    depth_test = [ln(1 + 0.75), ln(1 + 2.25), 0.0, ln(4)]
    depth_denoised = [ln(2), ln(3), ln(2.5), ln(2.5)]
    assert metrics["mcv_mse_median_depth"] == pytest.approx(
        sum((a - b) ** 2 for a, b in zip(depth_test, depth_denoised)) / 4
    )


def test_mcv_scores_of_blocks_of_cells_are_those_of_the_whole_matrix(pbmc68k):
    kept, heldout = (dense(m) for m in split_molecules(pbmc68k.counts, fraction=0.1, seed=0))
    denoised = kept + 0.5
    whole = mcv_scores(lambda: [(denoised, kept, heldout)])
    rows = (slice(0, 300), slice(300, 650), slice(650, None))
    blocks = mcv_scores(lambda: ((denoised[r], kept[r], heldout[r]) for r in rows))
    assert blocks == pytest.approx(whole)
    assert (
        whole["mcv_mse_scaled"] < 1 and whole["mcv_poisson_perfect"] < whole["mcv_poisson_without_imputation"]
    )
