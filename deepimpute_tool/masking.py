"""Hiding real counts to score imputation against: the paper's masking, and molecular cross-validation.

The paper's protocol (``paper``): for each gene, the fraction of zeros is modelled as a
logistic function of the log of the mean of its positive counts (as Splatter does). Each
positive entry of a gene then gets the dropout probability that function gives for its own
log count, and ``cells_per_gene`` entries are drawn without replacement with probabilities
proportional to those (the paper's multinomial), and set to zero.

Molecular cross-validation (``mcv``; Batson, Royer & Webber, 2019, as Open Problems in
Single-Cell Analysis uses it to rank denoising methods): every count is split at random
between the data (each molecule with probability 1 - ``mcv_fraction``) and a held-out part;
a method that denoises well predicts the held-out molecules, zeros included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.sparse as sp

from deepimpute_tool.errors import InputError
from deepimpute_tool.options import option, parameters, shared_option

PROTOCOLS = ("paper", "mcv")


@parameters
class MaskParameters:
    """Every option of masking."""

    cells_per_gene: int = option(
        10,
        minimum=1,
        label="Positive entries hidden per gene",
        help="Positive entries hidden in each gene (genes with fewer than twice as many are left alone).",
    )
    protocol: str = option(
        "paper",
        choices=PROTOCOLS,
        choice_labels=(
            "paper: hide positive entries (the DeepImpute paper); scored at those entries",
            "mcv: molecular cross-validation; every count split, scored on the held-out molecules",
        ),
        label="Protocol",
        help="paper: hide ⟨cells_per_gene⟩ positive entries per gene, kept in the layer 'original'; "
        "mcv: split every count's molecules at random, ⟨mcv_fraction⟩ of them into the layer 'heldout'.",
    )
    mcv_fraction: float = option(
        0.1,
        minimum=0,
        maximum=1,
        min_open=True,
        max_open=True,
        label="Molecules held out (mcv)",
        help="With ⟨protocol⟩ mcv: the fraction of each count's molecules held out (Open Problems: 0.1).",
    )
    seed: int = shared_option("seed")
    layer: str | None = shared_option("layer")


@dataclass(frozen=True)
class DropoutModel:
    """Zero fraction = 1 / (1 + exp(-shape * (log(mean positive count) - midpoint)))."""

    midpoint: float
    shape: float

    def probability(self, counts: np.ndarray) -> np.ndarray:
        """Dropout probability of entries with these (positive) counts."""
        return 1.0 / (1.0 + np.exp(-self.shape * (np.log(counts) - self.midpoint)))


@dataclass(frozen=True)
class MaskResult:
    masked: sp.csr_matrix
    dropout_model: DropoutModel
    n_genes_masked: int
    n_entries_masked: int


def fit_dropout_model(counts: sp.csc_matrix) -> DropoutModel:
    """Fit the logistic dropout curve to the genes of a cells x genes count matrix."""
    counts = sp.csc_matrix(counts)
    n_cells = counts.shape[0]
    positives = np.diff(sp.csc_matrix(counts > 0).indptr)
    expressed = positives > 0
    totals = np.asarray(counts.sum(axis=0)).ravel()
    log_positive_mean = np.log(totals[expressed] / positives[expressed])
    zero_fraction = 1.0 - positives[expressed] / n_cells

    def logistic(x, midpoint, shape):
        return 1.0 / (1.0 + np.exp(-shape * (x - midpoint)))

    try:
        (midpoint, shape), _ = scipy.optimize.curve_fit(
            logistic,
            log_positive_mean,
            zero_fraction,
            p0=(float(np.median(log_positive_mean)), -1.0),
            maxfev=10000,
        )
    except (ValueError, RuntimeError, TypeError) as error:  # too few, or too alike, expressed genes
        raise InputError(None, f"the dropout curve cannot be fitted to these counts: {error}") from None
    return DropoutModel(midpoint=float(midpoint), shape=float(shape))


def mask_counts(counts: sp.csr_matrix, *, cells_per_gene: int = 10, seed: int = 0) -> MaskResult:
    """Hide ``cells_per_gene`` positive entries of every gene that has at least twice as many.

    Genes with fewer than ``2 * cells_per_gene`` positive entries are left untouched, so that
    masking never hides more than half of what was observed of a gene.

    Parameters
    ----------
    counts
        Cells x genes raw counts.
    cells_per_gene
        How many positive entries to hide in each eligible gene.
    seed
        Seed of the random draws; the same seed gives the same mask.
    """
    if cells_per_gene < 1:
        raise ValueError("cells_per_gene must be at least 1")
    columns = sp.csc_matrix(counts, copy=True)
    columns.eliminate_zeros()
    if not (np.diff(columns.indptr) >= 2 * cells_per_gene).any():
        raise InputError(
            None,
            f"no gene has {2 * cells_per_gene} positive counts to mask {cells_per_gene} of (⟨cells_per_gene⟩)",
        )
    model = fit_dropout_model(columns)
    rng = np.random.default_rng(seed)
    n_genes_masked = 0
    for gene in range(columns.shape[1]):
        start, end = columns.indptr[gene], columns.indptr[gene + 1]
        if end - start < 2 * cells_per_gene:
            continue
        values = columns.data[start:end]
        weights = model.probability(values)
        chosen = rng.choice(end - start, size=cells_per_gene, replace=False, p=weights / weights.sum())
        values[chosen] = 0.0
        n_genes_masked += 1
    masked = sp.csr_matrix(columns)
    masked.eliminate_zeros()
    return MaskResult(
        masked=masked,
        dropout_model=model,
        n_genes_masked=n_genes_masked,
        n_entries_masked=n_genes_masked * cells_per_gene,
    )


def split_molecules(
    counts: sp.csr_matrix, *, fraction: float = 0.1, seed: int = 0
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(kept, held out): each molecule of every count held out with probability ``fraction``.

    Binomial thinning, as Batson et al. (2019) split molecules: the two parts are independent
    Poisson samples of the same expression when the counts are.
    """
    counts = sp.csr_matrix(counts, copy=True)
    counts.eliminate_zeros()
    rng = np.random.default_rng(seed)
    heldout = counts.copy()
    heldout.data = rng.binomial(counts.data.astype(np.int64), fraction).astype(counts.dtype)
    kept = counts - heldout
    kept.eliminate_zeros()
    heldout.eliminate_zeros()
    return kept, heldout
