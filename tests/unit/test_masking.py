from __future__ import annotations

import numpy as np
import pytest

from deepimpute_tool.masking import fit_dropout_model, mask_counts
from tests.helpers import dense


@pytest.mark.parametrize("cells_per_gene", [1, 10])
def test_mask_hides_exactly_the_asked_number_of_positive_entries_per_gene(pbmc68k, cells_per_gene):
    original = dense(pbmc68k.counts)
    result = mask_counts(pbmc68k.counts, cells_per_gene=cells_per_gene, seed=0)
    masked = dense(result.masked)
    changed = masked != original
    assert np.all(masked[changed] == 0) and np.all(original[changed] > 0)
    per_gene = changed.sum(axis=0)
    eligible = (original > 0).sum(axis=0) >= 2 * cells_per_gene
    np.testing.assert_array_equal(per_gene[eligible], cells_per_gene)
    np.testing.assert_array_equal(per_gene[~eligible], 0)
    assert result.n_genes_masked == eligible.sum() > 0
    assert result.n_entries_masked == changed.sum()


def test_same_seed_same_mask_other_seed_other_mask(pbmc68k):
    first = dense(mask_counts(pbmc68k.counts, seed=3).masked)
    np.testing.assert_array_equal(first, dense(mask_counts(pbmc68k.counts, seed=3).masked))
    assert np.any(first != dense(mask_counts(pbmc68k.counts, seed=4).masked))


def test_dropout_curve_falls_with_expression_and_weights_low_counts(pbmc68k):
    model = fit_dropout_model(pbmc68k.counts)
    assert model.shape < 0
    probabilities = model.probability(np.array([1.0, 5.0, 50.0]))
    assert np.all(np.diff(probabilities) < 0)
