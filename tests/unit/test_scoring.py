from __future__ import annotations

import numpy as np
import pytest

from deepimpute_tool.clustering import clustering_metrics, leiden
from deepimpute_tool.masking import mask_counts, split_molecules
from deepimpute_tool.plots import draw_plots
from deepimpute_tool.scoring import (
    McvSums,
    accuracy_metrics,
    add_mcv,
    masked_entries,
    mcv_metrics,
    mcv_totals,
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


def test_mcv_errors_follow_their_definitions(pbmc68k):
    kept, heldout = (dense(m) for m in split_molecules(pbmc68k.counts, fraction=0.1, seed=0))
    target_sum, scale = mcv_totals(kept.sum(axis=1), heldout.sum(axis=1))
    assert target_sum == np.median(heldout.sum(axis=1)) and scale == pytest.approx(heldout.sum() / kept.sum())
    denoised = kept + 0.5
    sums = McvSums()
    for rows in (slice(0, 300), slice(300, None)):  # in blocks, as score adds them
        add_mcv(
            sums,
            denoised=denoised[rows],
            train=kept[rows],
            test=heldout[rows],
            target_sum=target_sum,
            scale=scale,
        )
    metrics = mcv_metrics(sums)

    def log_normalised(x):
        return np.log1p(x / x.sum(axis=1, keepdims=True) * target_sum)

    assert metrics["mcv_mse"] == pytest.approx(
        np.mean((log_normalised(denoised) - log_normalised(heldout)) ** 2)
    )
    mu = kept * scale
    assert metrics["mcv_poisson_without_imputation"] == pytest.approx(
        np.mean(mu - heldout * np.log(mu + 1e-6))
    )
    # the held-out molecules themselves, rescaled, would be the best possible prediction of them
    best = McvSums()
    add_mcv(best, denoised=heldout / scale, train=kept, test=heldout, target_sum=target_sum, scale=scale)
    assert mcv_metrics(best)["mcv_mse"] == pytest.approx(0.0, abs=1e-12)
