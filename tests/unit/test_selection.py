"""Choosing each sub-network's targets and predictors (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from deepimpute_tool.errors import ParameterError
from deepimpute_tool.selection import (
    normalised_log,
    select_predictors,
    select_targets,
    split_subsets,
    variance_mean_ratio,
)
from tests.helpers import dense


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
    with pytest.raises(ParameterError, match=r"^subset_split halves: expected one of equal, remainder"):
        split_subsets(np.arange(10), split="halves", rng=np.random.default_rng(0))


def test_too_few_genes_for_one_subset_still_gives_every_subnetwork_inputs():
    for split in ("equal", "remainder"):
        subsets = split_subsets(
            np.arange(230), subset_size=512, split=split, min_subsets=2, rng=np.random.default_rng(0)
        )
        assert [s.size for s in subsets] == [115, 115]


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
