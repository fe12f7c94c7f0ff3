"""The denoised value of every entry: the model's expected count and the observed count, together.

The sub-networks predict, from other genes, how likely a gene is to be detected in a cell (p) and
the count it has when it is (d): an expected count mu = p x d that never saw the entry's own
count. Training also fits each target gene's negative-binomial shape theta around mu
(:func:`fit_dispersion`: variance = mu + mu^2 / theta, by moments). Imputing then treats mu and
theta as a gamma prior on the gene's rate in the cell and the observed count y as a Poisson draw
from it (as SAVER does): the rate's posterior is a gamma of shape y + theta and mean
(y + theta) / (1 + theta / mu), and a new measurement of the cell is negative binomial with that
mean and shape.

The value written (:func:`denoised_counts`) is the count whose normalised log value,
log1p(count x 10,000 / the cell's total count), is the expected normalised log value of that new
measurement: what scanpy's ``normalize_total`` and ``log1p`` would give a replicate of the cell,
on average. Averaging on the log scale, at the cell's own depth, keeps a gene that is rarely
detected near zero in a shallow cell, where the mean count would lift every such gene; on
molecular cross-validation it was the only value tried that beat no imputation on Open
Problems' MSE on more than two of the six benchmark datasets (benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from deepimpute_tool.model import Model

FIT_BLOCK_BYTES = 8 * 2**20  # counts of training cells predicted at a time to fit theta
SLICE_ENTRIES = 2**20  # entries denoised at a time: their dozen temporaries stay near 50 MB
TARGET_SUM = 10_000.0  # counts per cell of the normalised log scale (scanpy's and Open Problems')
MIN_SHAPE, MAX_SHAPE = 1e-2, 1e3  # theta's bounds: a gene seen once, and one as regular as Poisson
MIN_MEAN = 1e-6  # mu's floor: a gene the model calls off is still a gamma, not a point at 0
EXACT_BELOW = 40.0  # posterior means under this are summed term by term; above, the delta method
MAX_TERMS = 200  # counts summed at most (a mean under 40 and variance under 80 leave < 1e-5 beyond)
TAIL_MASS = 1e-5  # entries whose mass beyond the first counts is under this stop there
FIRST_TERMS = 3  # counts summed for every entry; two thirds have no mass left beyond them
CHECKS = (5, 10, 20, 40, 80, 120, MAX_TERMS)  # counts after which entries with no mass left stop


@dataclass
class DispersionSums:
    """Per target gene, what the moment estimate of theta adds up over blocks of cells:
    sum((y - mu)^2 - mu) and sum(mu^2)."""

    excess: np.ndarray
    squared_mean: np.ndarray
    cells: int = field(default=0)

    @classmethod
    def zeros(cls, n_genes: int) -> DispersionSums:
        return cls(np.zeros(n_genes), np.zeros(n_genes))

    def add(self, observed: np.ndarray, mean: np.ndarray, *, left_out: np.ndarray | None = None) -> None:
        """Add a block's observed counts and expected counts (cells x target genes), but not the
        entries ``left_out`` marks."""
        mean = mean.astype(np.float64)
        excess, squared = ((observed - mean) ** 2) - mean, mean**2
        if left_out is not None:
            excess[left_out], squared[left_out] = 0, 0
        self.excess += excess.sum(axis=0)
        self.squared_mean += squared.sum(axis=0)
        self.cells += observed.shape[0]

    def shapes(self) -> np.ndarray:
        """theta per gene, within [MIN_SHAPE, MAX_SHAPE]: no more variance than Poisson's gives
        MAX_SHAPE."""
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse = np.where(self.squared_mean > 0, self.excess / self.squared_mean, 0.0)
        return 1.0 / np.clip(inverse, 1 / MAX_SHAPE, 1 / MIN_SHAPE)


def fit_dispersion(
    model: Model, counts: sp.csr_matrix, genes: np.ndarray, *, left_out: sp.csr_matrix | None = None
) -> np.ndarray:
    """theta of each of ``model``'s target genes (float32), by moments over the cells of ``counts``
    (cells x ``genes``, the cells it trained on) around the expected counts it predicts; entries
    marked in ``left_out`` (the counts hidden to calibrate intervals, zeros to the model but not
    zeros in truth) are left out."""
    position = {name: i for i, name in enumerate(genes)}
    target_columns = np.array([position[g] for g in model.target_genes])
    sums = DispersionSums.zeros(target_columns.size)
    step = max(1, FIT_BLOCK_BYTES // (4 * counts.shape[1]))
    for start in range(0, counts.shape[0], step):
        block = counts[start : start + step].toarray()
        prediction = model.predict(block, genes, detection=True)
        skipped = None if left_out is None else left_out[start : start + step][:, target_columns].toarray()
        sums.add(block[:, target_columns], prediction.detected * prediction.probability, left_out=skipped)
    return sums.shapes().astype(np.float32)


def model_totals(counts: np.ndarray, model_columns: np.ndarray) -> np.ndarray:
    """Each cell's total count over the genes the model reads (cells x 1, float64): the depth the
    denoised value is taken at, the same whatever other genes the file holds, as in training."""
    return counts[:, model_columns].sum(axis=1, keepdims=True, dtype=np.float64)


def posterior(observed: np.ndarray, mean: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and shape of a new measurement's negative binomial, given the observed counts,
    the expected counts and each gene's theta (cells x genes, genes, broadcast)."""
    mean = np.maximum(mean, np.float32(MIN_MEAN))
    new_shape = observed + shape
    return new_shape / (1 + shape / mean), new_shape


def expected_log_normalised(mean: np.ndarray, shape: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """E[log1p(Y x scale)] for Y negative binomial of ``mean`` and ``shape`` (cells x genes, float32)
    and ``scale`` per cell (cells x 1), for a mean no greater than the shape, as every
    :func:`posterior` has (its variance is then at most twice its mean).

    Summed over the counts for means under EXACT_BELOW, until the remaining mass is negligible
    (it is then counted at the next count): the first counts for every entry at once, then only
    the entries whose mass reaches further; the second-order delta method above EXACT_BELOW, where
    the log is nearly straight over the distribution.
    """
    shape = np.broadcast_to(shape, mean.shape)
    scale = scale.astype(np.float32).reshape(-1, 1)
    odds = mean / (mean + shape)
    probability = np.log1p(-odds)
    probability *= shape
    np.exp(probability, out=probability)  # P(Y = 0)
    remaining = 1 - probability
    total = np.zeros_like(mean)
    term = np.empty_like(mean)  # in place: a block's arrays are the bulk of imputation's memory
    for k in range(1, FIRST_TERMS + 1):
        np.add(shape, np.float32(k - 1), out=term)
        term *= odds
        term /= np.float32(k)
        probability *= term
        remaining -= probability
        np.multiply(probability, np.log1p(k * scale), out=term)
        total += term
    del term
    going = np.flatnonzero(((remaining >= TAIL_MASS) & (mean < EXACT_BELOW)).ravel())
    p, left, odds, r = (a.ravel()[going] for a in (probability, remaining, odds, shape))
    s = np.broadcast_to(scale, mean.shape).ravel()[going]
    sums = total.ravel()[going]
    flat = total.ravel()  # a view: total is a fresh array
    for k in range(FIRST_TERMS + 1, MAX_TERMS + 1):
        p *= (k - 1 + r) / k * odds
        left -= p
        sums += p * np.log1p(k * s)
        if k in CHECKS:
            done = (left < TAIL_MASS) | (k == MAX_TERMS)
            flat[going[done]] = sums[done] + np.maximum(left[done], 0) * np.log1p((k + 1) * s[done])
            going, p, left, odds, r, s, sums = (a[~done] for a in (going, p, left, odds, r, s, sums))
            if not going.size:
                break
    total = flat.reshape(mean.shape)
    rows, columns = np.nonzero(mean >= EXACT_BELOW)
    if rows.size:
        m, r, s = (a.astype(np.float64) for a in (mean[rows, columns], shape[rows, columns], scale[rows, 0]))
        total[rows, columns] = np.log1p(m * s) - s * s * (m + m * m / r) / (2 * (1 + m * s) ** 2)
    return total


def denoised_counts(
    observed: np.ndarray, mean: np.ndarray, shape: np.ndarray, totals: np.ndarray
) -> np.ndarray:
    """The denoised counts of the target genes (cells x genes) from the observed counts, the
    model's expected counts, each gene's theta (per gene, or per entry) and each cell's total
    count (cells x 1); a few cells at a time, so that the temporaries stay small."""
    scale = TARGET_SUM / np.maximum(totals, 1).astype(np.float32)
    per_entry = np.shape(shape) == mean.shape
    result = np.empty(mean.shape, np.float32)
    step = max(1, SLICE_ENTRIES // max(mean.shape[1], 1))
    for start in range(0, mean.shape[0], step):
        rows = slice(start, start + step)
        new_mean, new_shape = posterior(observed[rows], mean[rows], shape[rows] if per_entry else shape)
        log_value = expected_log_normalised(new_mean, new_shape, scale[rows])
        result[rows] = np.expm1(log_value) / scale[rows]
    return result
