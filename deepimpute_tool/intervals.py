"""Calibrated intervals for imputed values: split-conformal on counts the model never saw.

Before fitting, ``train`` hides a few positive counts of its target genes, chosen as the
paper's masking would choose them (:func:`choose_hidden`); the model trains on them as zeros,
as on real dropouts, and keeps what it then predicts of each (:class:`CalibrationSet`: the
detected log value, the probability of detection, the cell's scale factor) beside the true
count. Imputing with ⟨interval⟩ P then calibrates for the fill it writes (:func:`calibrate`):

1. the value the fill gives each calibration entry and its error on the log1p scale;
2. on one half of the entries, an error scale: the 90th percentile of the error in bins of
   the value written and of the detected value (the normalised log value the gene would have
   if detected: how far a hidden positive count may lie from a value shrunk towards zero;
   a table, :class:`ErrorScale`);
3. on the other half, the conformal multiplier: the ``ceil((n + 1) P) / n`` quantile of
   error / scale, so that ``log1p(value) +- multiplier x scale`` holds a share P of new
   entries that are exchangeable with these (Lei et al., 2018, locally weighted split-conformal).
   Too few entries for more than one bin make the scale one number: every entry then sets the
   multiplier (plain split-conformal on the absolute error).

The interval is on the log1p scale, clipped at 0, and written back as counts. The layer
``uncertainty`` is its half-width: a score where higher means less certain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from deepimpute_tool.denoising import MAX_SHAPE, MIN_SHAPE, model_totals
from deepimpute_tool.errors import InputError, ModelError
from deepimpute_tool.masking import MaskParameters, fit_dropout_model

MAX_ENTRIES = 20_000  # calibration entries a model keeps
MAX_CELL_TOTAL = 1e18  # counts in one cell: beyond any sequencing, within float32
MIN_ENTRIES = 40  # fewer cannot calibrate 80% intervals on a half
MAX_HIDDEN_SHARE = 0.02  # of a training matrix's positive counts, at most, hidden to calibrate
CALIBRATION_BLOCK_CELLS = 1024
SCALE_QUANTILE = 0.9
MIN_PER_BIN = 25
MAX_BINS = 10
SMALLEST_SCALE = 0.05  # log1p units: an error scale is never taken as zero


@dataclass(frozen=True)
class CalibrationSet:
    """Hidden entries of cells the model did not train on: what it predicted, and the truth.

    Every array has one value per entry: ``log_detected`` and ``probability`` (None without a
    detection head) as :class:`~deepimpute_tool.model.Prediction` holds them, the cell's
    ``factor`` (None for log1p of raw counts), the cell's total count with the entries hidden
    (``totals``) and the theta of the entry's gene (``shape``; both None in models without a
    dispersion), and the hidden ``truth`` (a positive count).
    """

    log_detected: np.ndarray
    truth: np.ndarray
    probability: np.ndarray | None = None
    factor: np.ndarray | None = None
    totals: np.ndarray | None = None
    shape: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.truth.size)

    def to_json(self) -> dict:
        return {
            "entries": self.size,
            "log_detected": self.log_detected.astype(float).tolist(),
            "truth": self.truth.astype(float).tolist(),
            "probability": None if self.probability is None else self.probability.astype(float).tolist(),
            "factor": None if self.factor is None else self.factor.astype(float).tolist(),
            "totals": None if self.totals is None else self.totals.astype(float).tolist(),
            "shape": None if self.shape is None else self.shape.astype(float).tolist(),
        }

    @classmethod
    def from_json(
        cls, content: object, *, where, detection: bool, library: bool, dispersion: bool = False
    ) -> CalibrationSet:
        """Parsed from a model's JSON, each list checked; :class:`ModelError` naming ``where``."""

        def numbers(key: str, *, required: bool) -> np.ndarray | None:
            values = content.get(key) if isinstance(content, dict) else None
            if values is None and not required:
                return None
            if not isinstance(values, list) or not 0 < len(values) <= MAX_ENTRIES:
                raise ModelError(
                    where, f"its calibration's '{key}' is not a list of 1 to {MAX_ENTRIES} numbers"
                )
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
                raise ModelError(where, f"its calibration's '{key}' holds something other than numbers")
            try:
                array = np.asarray(values, dtype=np.float64)
            except OverflowError:  # a JSON integer beyond any float
                array = np.array([np.inf])
            with np.errstate(over="ignore"):  # as float32 holds them: 1e300 is infinite there
                finite = np.isfinite(array.astype(np.float32)).all()
            if not finite:
                raise ModelError(where, f"its calibration's '{key}' holds NaN or infinite values")
            return array

        found = cls(
            log_detected=numbers("log_detected", required=True).astype(np.float32),
            truth=numbers("truth", required=True),
            probability=_float32(numbers("probability", required=detection)),
            factor=_float32(numbers("factor", required=library)),
            totals=numbers("totals", required=dispersion),
            shape=_float32(numbers("shape", required=dispersion)),
        )
        arrays = [found.log_detected, found.probability, found.factor, found.totals, found.shape]
        arrays = [a for a in arrays if a is not None]
        if any(a.size != found.size for a in arrays):
            raise ModelError(where, "its calibration's lists are of different lengths")
        if (found.truth <= 0).any() or (found.truth != np.round(found.truth)).any():
            raise ModelError(where, "its calibration's truth holds values that are not positive counts")
        if found.probability is not None and ((found.probability < 0) | (found.probability > 1)).any():
            raise ModelError(where, "its calibration's probabilities are not between 0 and 1")
        if found.factor is not None and (found.factor < np.finfo(np.float32).tiny).any():
            raise ModelError(where, "its calibration's scale factors are not positive")
        if found.totals is not None and ((found.totals < 0) | (found.totals > MAX_CELL_TOTAL)).any():
            raise ModelError(where, f"its calibration's cell totals are not between 0 and {MAX_CELL_TOTAL:g}")
        if (
            found.shape is not None
            and ((found.shape < np.float32(MIN_SHAPE)) | (found.shape > np.float32(MAX_SHAPE))).any()
        ):
            raise ModelError(where, f"its calibration's shapes are outside [{MIN_SHAPE:g}, {MAX_SHAPE:g}]")
        return found


def _float32(values: np.ndarray | None) -> np.ndarray | None:
    return None if values is None else values.astype(np.float32)


@dataclass(frozen=True)
class HiddenEntries:
    """Entries of a training matrix hidden before training (``rows``, ``columns`` into it), and
    their counts."""

    rows: np.ndarray
    columns: np.ndarray
    truth: np.ndarray

    def positions(self, shape: tuple[int, int]) -> sp.csr_matrix:
        """These entries as a boolean matrix of ``shape``."""
        marked = np.ones(self.rows.size, dtype=bool)
        return sp.csr_matrix((marked, (self.rows, self.columns)), shape=shape)

    def hide(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """A copy of ``counts`` with these entries zero."""
        hidden = sp.csr_matrix(counts, copy=True)
        hidden[self.rows, self.columns] = 0
        hidden.eliminate_zeros()
        return hidden


def choose_hidden(counts: sp.csr_matrix, columns: np.ndarray, *, seed: int) -> HiddenEntries | None:
    """Positive entries of ``counts`` (cells x genes) in the genes ``columns`` to hide from training,
    as ``deepimpute mask`` (the paper's masking, its default entries per gene) would choose them:
    each with its gene's dropout weight of its count over the sum of the weights of the gene's
    positive counts, times the entries per gene; scaled down to at most MAX_ENTRIES and
    MAX_HIDDEN_SHARE of the positive counts. None when fewer than MIN_ENTRIES can be hidden."""
    per_gene = MaskParameters().cells_per_gene
    by_gene = sp.csc_matrix(counts)
    by_gene.eliminate_zeros()
    try:
        dropout = fit_dropout_model(by_gene)
    except InputError:
        return None
    positives = np.diff(by_gene.indptr)
    weights = dropout.probability(by_gene.data)
    gene = np.repeat(np.arange(by_gene.shape[1]), positives)
    totals = np.bincount(gene, weights=weights, minlength=by_gene.shape[1])
    eligible = np.zeros(by_gene.shape[1], bool)
    eligible[columns] = True
    eligible &= positives >= 2 * per_gene
    with np.errstate(divide="ignore", invalid="ignore"):
        chance = np.where(eligible[gene], np.minimum(per_gene * weights / totals[gene], 1.0), 0.0)
    expected = chance.sum()
    if expected <= 0:
        return None
    chance *= min(1.0, MAX_ENTRIES / expected, MAX_HIDDEN_SHARE * by_gene.nnz / expected)
    chosen = np.flatnonzero(np.random.default_rng(seed).random(chance.size) < chance)
    if chosen.size < MIN_ENTRIES:
        return None
    return HiddenEntries(
        rows=by_gene.indices[chosen], columns=gene[chosen], truth=by_gene.data[chosen].astype(np.float64)
    )


def calibration_set(model, counts: sp.csr_matrix, genes: np.ndarray, hidden: HiddenEntries) -> CalibrationSet:
    """What ``model``, trained on ``counts`` (cells x ``genes``) with the ``hidden`` entries zero,
    predicts of them, beside their true counts."""
    target = {gene: i for i, gene in enumerate(model.target_genes)}
    target_of_column = np.array([target.get(name, -1) for name in genes])
    model_columns = np.flatnonzero(np.isin(genes, model.genes))
    cells, row_in_cells = np.unique(hidden.rows, return_inverse=True)
    found: dict[str, np.ndarray | None] = {"log_detected": np.empty(hidden.truth.size, np.float32)}
    for start in range(0, cells.size, CALIBRATION_BLOCK_CELLS):
        entries = np.flatnonzero((row_in_cells >= start) & (row_in_cells < start + CALIBRATION_BLOCK_CELLS))
        block = counts[cells[start : start + CALIBRATION_BLOCK_CELLS]].toarray()
        prediction = model.predict(block, genes, detection=True)
        rows, columns = row_in_cells[entries] - start, target_of_column[hidden.columns[entries]]
        arrays = {
            "totals": None if model.dispersion is None else model_totals(block, model_columns)[rows, 0],
            "shape": None if model.dispersion is None else model.dispersion[columns],
            "log_detected": prediction.log_detected[rows, columns],
            "probability": None if prediction.probability is None else prediction.probability[rows, columns],
            "factor": None if prediction.factors is None else prediction.factors[rows, 0],
        }
        for name, values in arrays.items():
            if values is not None:
                found.setdefault(name, np.empty(hidden.truth.size, np.float32))[entries] = values
    return CalibrationSet(truth=hidden.truth, **found)


@dataclass(frozen=True)
class ErrorScale:
    """The SCALE_QUANTILE of the log1p error in bins of the log1p value written (``value_edges``)
    and of the detected log value the model predicts (``detected_edges``; empty: by the value
    alone)."""

    value_edges: np.ndarray
    detected_edges: np.ndarray
    table: np.ndarray  # (len(value_edges) + 1) x (len(detected_edges) + 1)

    def __call__(self, log_value: np.ndarray, log_detected: np.ndarray) -> np.ndarray:
        cell = _bin(log_value, self.value_edges) * np.int16(self.table.shape[1])
        cell += _bin(log_detected.astype(log_value.dtype, copy=False), self.detected_edges)
        return self.table.astype(log_value.dtype).ravel().take(cell)


def _bin(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value (the number of edges below it), as ``np.searchsorted(edges, values)``
    gives it, but ten times faster for the few edges a table has."""
    index = np.zeros(values.shape, np.int16)
    for edge in edges.astype(values.dtype):
        index += values > edge
    return index


def _edges(values: np.ndarray, bins: int) -> np.ndarray:
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])) if bins > 1 else np.zeros(0)


def _bins(n: int, *, axes: int) -> int:
    """Bins per axis that ``n`` entries fill on ``axes`` axes (about 2 x MIN_PER_BIN each, at
    most MAX_BINS per axis)."""
    return int(np.clip((n / (2 * MIN_PER_BIN)) ** (1 / axes), 1, MAX_BINS))


def fit_error_scale(
    log_value: np.ndarray, log_detected: np.ndarray | None, error: np.ndarray, *, bins: int
) -> ErrorScale:
    """An :class:`ErrorScale` of ``bins`` bins of equal counts per axis (one: a single number;
    ``log_detected`` None: by the value written alone); a bin with fewer than MIN_PER_BIN takes
    the quantile of all."""
    value_edges = _edges(log_value, bins)
    detected_edges = np.zeros(0) if log_detected is None else _edges(log_detected, bins)
    overall = max(float(np.quantile(error, SCALE_QUANTILE)), SMALLEST_SCALE)
    table = np.full((value_edges.size + 1, detected_edges.size + 1), overall)
    rows = _bin(log_value, value_edges)
    columns = np.zeros_like(rows) if log_detected is None else _bin(log_detected, detected_edges)
    for row in range(table.shape[0]):
        for column in range(table.shape[1]):
            inside = error[(rows == row) & (columns == column)]
            if inside.size >= MIN_PER_BIN:
                table[row, column] = max(float(np.quantile(inside, SCALE_QUANTILE)), SMALLEST_SCALE)
    return ErrorScale(value_edges, detected_edges, table)


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` found: the error scale, the conformal multiplier for ``level``, and
    the coverage and median width (counts) it gave on its own conformal half."""

    level: float
    scale: ErrorScale
    multiplier: float
    entries: int
    coverage: float
    median_width: float

    def bounds(
        self, values: np.ndarray, log_detected: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(low, high, half-width on the log1p scale) of the interval around each value (counts),
        given the detected log value the model predicts for each entry."""
        log_value = np.log1p(np.maximum(values, 0), dtype=np.float32)
        half = self.scale(log_value, log_detected)
        half *= np.float32(self.multiplier)
        low = np.expm1(np.maximum(log_value - half, 0))
        high = np.expm1(log_value + half)
        return low, high, half


def calibrate(values: np.ndarray, truth: np.ndarray, log_detected: np.ndarray, *, level: float,
              seed: int = 0) -> Calibration:  # fmt: skip
    """Calibrate intervals of coverage ``level`` for a fill that gives the calibration entries
    ``values`` (counts) where ``truth`` was hidden and the model predicted ``log_detected``:
    the scale on one half, the multiplier on the other.

    Where half the entries would fill a single bin, the scale is one number, which changes no
    score's rank: every entry then sets the multiplier (the coverage recorded is then that of
    the calibration entries themselves, at least ``level`` by construction)."""
    # binned in float32, as :meth:`Calibration.bounds` bins the entries it is applied to
    log_value = np.log1p(np.maximum(values, 0), dtype=np.float32)
    log_detected = log_detected.astype(np.float32)
    error = np.abs(np.log1p(truth) - log_value.astype(np.float64))
    # a fill that writes the detected value itself (log1p models) leaves the second axis nothing
    by_value_alone = bool(np.allclose(log_value, log_detected, rtol=0, atol=1e-3))
    bins = _bins(error.size // 2, axes=1 if by_value_alone else 2)
    if bins == 1:
        fit = conformal = np.arange(error.size)
    else:
        order = np.random.default_rng(seed).permutation(error.size)
        fit, conformal = np.sort(order[: error.size // 2]), np.sort(order[error.size // 2 :])
    scale = fit_error_scale(
        log_value[fit], None if by_value_alone else log_detected[fit], error[fit], bins=bins
    )
    scores = error[conformal] / scale(log_value[conformal], log_detected[conformal])
    n = scores.size
    rank = math.ceil((n + 1) * level)
    if rank > n:
        raise ModelError(
            None, f"its {error.size} calibration entries are too few for intervals of {level:.0%} coverage"
        )
    multiplier = float(np.sort(scores)[rank - 1])
    calibration = Calibration(level, scale, multiplier, int(error.size), 0.0, 0.0)
    low, high, _ = calibration.bounds(values[conformal], log_detected[conformal])
    inside = (truth[conformal] >= low * (1 - 1e-6)) & (truth[conformal] <= high * (1 + 1e-6))
    return Calibration(
        level, scale, multiplier, int(error.size), float(inside.mean()), float(np.median(high - low))
    )
