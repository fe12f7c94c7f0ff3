"""Which genes each sub-network predicts and reads: pure numpy, no TensorFlow.

The paper's design: targets are genes whose variance/mean ratio exceeds ``min_vmr``; they are
split at random into ``ceil(targets / subset_size)`` subsets, one per sub-network (never
padded with duplicate genes; of equal sizes by default); the inputs of a sub-network are the
``ntop`` genes most correlated with each of its targets, never one of its own targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from deepimpute_tool.errors import ParameterError

CORRELATION_BLOCK = 512
CORRELATION_CHUNK_BYTES = 256 * 2**20
SUBSET_SPLITS = ("equal", "remainder")


def variance_mean_ratio(counts: sp.csr_matrix) -> np.ndarray:
    """Variance / mean of each gene's counts (0 for genes never detected)."""
    counts = sp.csr_matrix(counts)
    n = counts.shape[0]
    mean = np.asarray(counts.sum(axis=0)).ravel() / n
    mean_sq = np.asarray(counts.multiply(counts).sum(axis=0)).ravel() / n
    variance = (mean_sq - mean**2) * n / max(n - 1, 1)
    return np.divide(variance, mean, out=np.zeros_like(mean), where=mean > 0)


def select_targets(
    counts: sp.csr_matrix,
    *,
    min_vmr: float = 0.5,
    max_genes: int | None = None,
    vmr: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of target genes: variance/mean above ``min_vmr``, highest first, at most ``max_genes``.

    ``vmr``, when the caller already has :func:`variance_mean_ratio` of ``counts``, is used as is.
    """
    vmr = variance_mean_ratio(counts) if vmr is None else vmr
    order = np.argsort(-vmr, kind="stable")
    chosen = order[vmr[order] > min_vmr]
    return chosen if max_genes is None else chosen[:max_genes]


def split_subsets(
    targets: np.ndarray,
    *,
    subset_size: int = 512,
    split: str = "equal",
    min_subsets: int = 1,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Shuffle targets into ``ceil(targets / subset_size)`` subsets, at least ``min_subsets``.

    ``split="equal"``: the subsets' sizes differ by one at most. ``split="remainder"`` (the
    paper's): full subsets of ``subset_size`` and the remainder in a last, smaller one, unless
    that gives fewer than ``min_subsets`` subsets, which are then of equal sizes.
    """
    if split not in SUBSET_SPLITS:
        raise ParameterError(f"⟨subset_split⟩ {split}", f"expected one of {', '.join(SUBSET_SPLITS)}")
    shuffled = rng.permutation(targets)
    n_subsets = -(-shuffled.size // subset_size)
    if split == "equal" or n_subsets < min_subsets:
        return [np.sort(part) for part in np.array_split(shuffled, max(n_subsets, min_subsets))]
    return [np.sort(shuffled[i : i + subset_size]) for i in range(0, shuffled.size, subset_size)]


def select_predictors(
    log_values: sp.csr_matrix,
    partitions: Sequence[Sequence[np.ndarray]],
    *,
    ntop: int = 5,
    chunk_bytes: int = CORRELATION_CHUNK_BYTES,
) -> list[list[np.ndarray]]:
    """Predictors of each subset of each partition: the union of its targets' ``ntop`` most correlated genes.

    Correlation is Pearson's, in absolute value, on the normalised log values. Genes of the
    subset itself and genes that do not vary are never chosen. Every partition holds the same
    targets (an ensemble's members), so the correlations are computed once for all of them.

    The standardised values of a chunk of genes (at most ``chunk_bytes`` as dense float32) are
    multiplied with those of ``CORRELATION_BLOCK`` targets at a time, and each target keeps a
    running top ``ntop``: memory grows with cells x chunk and chunk x block, never genes x genes.
    Targets come first in the gene order and a block of targets is multiplied only with the
    genes from its own first one onwards: a product of two targets serves both, so the
    target x target part, most of the work, is computed once instead of twice.
    """
    X = sp.csc_matrix(log_values, dtype=np.float32)
    n_cells, n_genes = X.shape
    mean = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
    mean_sq = np.asarray(X.multiply(X).mean(axis=0), dtype=np.float64).ravel()
    sd = np.sqrt(np.maximum(mean_sq - mean**2, 0.0))
    excluded = sd <= 1e-6 * np.maximum(mean, 1.0)
    scale = np.divide(1.0, sd * np.sqrt(n_cells), out=np.zeros_like(sd), where=sd > 0)
    owners = np.full((len(partitions), n_genes), -1)
    for owner, partition in zip(owners, partitions):
        for i, subset in enumerate(partition):
            owner[subset] = i
    targets = np.sort(np.concatenate(partitions[0]))
    is_target = np.zeros(n_genes, bool)
    is_target[targets] = True
    order = np.concatenate([targets, np.flatnonzero(~is_target & ~excluded)])
    n_targets = targets.size

    def standardised(columns: np.ndarray) -> np.ndarray:
        dense = X[:, columns].toarray()
        dense -= mean[columns].astype(np.float32)
        dense *= scale[columns].astype(np.float32)
        return dense

    best_corr = np.full((len(partitions), n_targets, ntop), -1.0, np.float32)
    best_gene = np.full((len(partitions), n_targets, ntop), -1)

    def offer(rows: slice, genes: np.ndarray, corr: np.ndarray) -> None:
        """Merge ``genes`` (the columns of ``corr``) into the running top of ``targets[rows]``."""
        k = min(ntop, genes.size)
        row_genes, not_varying = targets[rows], excluded[genes][None, :]
        for p, owner in enumerate(owners):
            refused = (owner[row_genes][:, None] == owner[genes][None, :]) | not_varying
            candidate_corr = np.array(corr, order="C")
            np.copyto(candidate_corr, -1.0, where=refused)
            top = np.argpartition(candidate_corr, -k, axis=1)[:, -k:]
            candidates = np.hstack([best_corr[p, rows], np.take_along_axis(candidate_corr, top, axis=1)])
            candidate_genes = np.hstack([best_gene[p, rows], genes[top]])
            keep = np.argpartition(-candidates, ntop - 1, axis=1)[:, :ntop]
            best_corr[p, rows] = np.take_along_axis(candidates, keep, axis=1)
            best_gene[p, rows] = np.take_along_axis(candidate_genes, keep, axis=1)

    chunk = max(CORRELATION_BLOCK, chunk_bytes // (4 * max(n_cells, 1)))
    for chunk_start in range(0, order.size, chunk):
        chunk_stop = min(chunk_start + chunk, order.size)
        chunk_values = standardised(order[chunk_start:chunk_stop])
        for start in range(0, min(n_targets, chunk_stop), CORRELATION_BLOCK):
            stop = min(start + CORRELATION_BLOCK, n_targets)
            first = max(start, chunk_start)
            if start >= chunk_start and stop <= chunk_stop:  # targets come first in the order
                block_values = chunk_values[:, start - chunk_start : stop - chunk_start]
            else:
                block_values = standardised(targets[start:stop])
            corr = block_values.T @ chunk_values[:, first - chunk_start :]
            np.abs(corr, out=corr)
            offer(slice(start, stop), order[first:chunk_stop], corr)
            # targets past this block's own square get the same products, transposed
            transposed_start, transposed_stop = max(first, stop), min(chunk_stop, n_targets)
            if transposed_start < transposed_stop:
                columns = slice(transposed_start - first, transposed_stop - first)
                offer(slice(transposed_start, transposed_stop), targets[start:stop], corr[:, columns].T)
    predictors = []
    for p, partition in enumerate(partitions):
        target_owner = owners[p][targets]
        chosen = best_corr[p] >= 0
        predictors.append(
            [
                np.unique(best_gene[p][target_owner == i][chosen[target_owner == i]])
                for i in range(len(partition))
            ]
        )
    return predictors


def normalised_log(counts: sp.csr_matrix, factors: np.ndarray) -> sp.csr_matrix:
    """log1p(counts * factor of each cell), staying sparse."""
    scaled = sp.csr_matrix(sp.diags(factors) @ counts, dtype=np.float32)
    scaled.data = np.log1p(scaled.data)
    return scaled
