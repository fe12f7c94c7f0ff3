"""Scoring an imputation against what masking hid: masked entries, and held-out molecules.

A Loom that went through ``mask`` then ``impute`` holds the imputed counts as its main
matrix and the masked input in the layer ``raw``. After the paper's protocol the true counts
are in the layer ``original``, and the masked entries are those positive there and zero in
``raw``; after molecular cross-validation the held-out molecules are in the layer ``heldout``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

import numpy as np

from deepimpute_tool.options import option, parameters, shared_option


@parameters
class ScoreParameters:
    """Every option of scoring."""

    labels: str | None = option(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        label="Cell attribute with known cell types",
        help="Cell attribute with known cell types (e.g. CellType): adds the clustering scores (ARI, "
        "AMI, FMI of k-means and of Leiden, silhouette) of the imputed and of the unimputed counts.",
        default_text="no clustering scores",
    )
    seed: int = shared_option("seed")


@dataclass(frozen=True)
class MaskedEntries:
    """The masked entries of a masked-then-imputed matrix: where they are and their values."""

    gene_index: np.ndarray
    cell_index: np.ndarray
    truth: np.ndarray
    imputed: np.ndarray
    uncertainty: np.ndarray  # empty when the imputation has no layer 'uncertainty'
    low: np.ndarray  # the bounds of the intervals: empty when it has none
    high: np.ndarray


def concatenate(parts: list[MaskedEntries]) -> MaskedEntries:
    """The masked entries of consecutive blocks of cells as one."""
    return MaskedEntries(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(MaskedEntries))
    )


def masked_entries(
    original: np.ndarray,
    observed: np.ndarray,
    imputed: np.ndarray,
    *,
    cell_offset: int = 0,
    uncertainty: np.ndarray | None = None,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> MaskedEntries:
    """Entries of cells x genes matrices that were positive in ``original`` and zero in ``observed``."""
    cells, genes = np.nonzero((original > 0) & (observed == 0))

    def at(layer: np.ndarray | None) -> np.ndarray:
        return layer[cells, genes] if layer is not None else np.zeros(0, np.float32)

    return MaskedEntries(
        genes,
        cells + cell_offset,
        original[cells, genes],
        imputed[cells, genes],
        at(uncertainty),
        at(low),
        at(high),
    )


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a - b) ** 2)) if a.size else float("nan")


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _grouped_mse(groups: np.ndarray, squared_error: np.ndarray, n_groups: int) -> np.ndarray:
    sums = np.bincount(groups, weights=squared_error, minlength=n_groups)
    counts = np.bincount(groups, minlength=n_groups)
    return np.divide(sums, counts, out=np.full(n_groups, np.nan), where=counts > 0)


def accuracy_metrics(entries: MaskedEntries, *, gene_names: np.ndarray, cell_names: np.ndarray) -> dict:
    """MSE and Pearson on log1p at the masked entries, overall, for counts >= 2, per gene and per cell."""
    truth, imputed = np.log1p(entries.truth), np.log1p(np.maximum(entries.imputed, 0))
    at_least_two = entries.truth >= 2
    squared_error = (truth - imputed) ** 2
    per_gene = _grouped_mse(entries.gene_index, squared_error, gene_names.size)
    per_cell = _grouped_mse(entries.cell_index, squared_error, cell_names.size)
    scored_genes, scored_cells = ~np.isnan(per_gene), ~np.isnan(per_cell)
    return {
        "masked_entries": int(truth.size),
        "mse": _mse(truth, imputed),
        "pearson": _pearson(truth, imputed),
        "mse_count_ge2": _mse(truth[at_least_two], imputed[at_least_two]),
        "pearson_count_ge2": _pearson(truth[at_least_two], imputed[at_least_two]),
        "masked_entries_count_ge2": int(at_least_two.sum()),
        "mse_without_imputation": _mse(truth, np.zeros_like(truth)),
        **(uncertainty_metrics(entries) if entries.uncertainty.size else {}),
        **(interval_metrics(entries) if entries.low.size else {}),
        "fraction_filled": float(np.mean(entries.imputed > 0)) if truth.size else float("nan"),
        "per_gene_mse": {
            "median": float(np.median(per_gene[scored_genes])) if scored_genes.any() else float("nan"),
            "values": dict(zip(gene_names[scored_genes].tolist(), per_gene[scored_genes].round(6).tolist())),
        },
        "per_cell_mse": {
            "median": float(np.median(per_cell[scored_cells])) if scored_cells.any() else float("nan"),
            "values": dict(zip(cell_names[scored_cells].tolist(), per_cell[scored_cells].round(6).tolist())),
        },
    }


WORST_SHARE = 0.1  # the errors an uncertainty should flag: the largest tenth


def _rank_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """The area under the ROC curve of ``score`` for ``positive`` (Mann-Whitney, ties halved)."""
    from scipy.stats import rankdata

    n_positive, n_negative = int(positive.sum()), int((~positive).sum())
    if not n_positive or not n_negative:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def uncertainty_metrics(entries: MaskedEntries) -> dict:
    """Does the layer 'uncertainty' tell where the errors are, beyond what the prediction tells?

    At the masked entries, with the absolute error on the log1p scale: its rank correlation
    with the error; the partial rank correlation given the prediction (log1p of the imputed
    value); and the AUC of flagging the largest tenth of errors by the uncertainty and by the
    prediction alone (in whichever direction flags them better).
    """
    from scipy.stats import rankdata

    prediction = np.log1p(np.maximum(entries.imputed, 0))
    error = np.abs(np.log1p(entries.truth) - prediction)
    ranks = np.vstack([rankdata(entries.uncertainty), rankdata(error), rankdata(prediction)])
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.corrcoef(ranks)
        partial = (r[0, 1] - r[0, 2] * r[1, 2]) / np.sqrt((1 - r[0, 2] ** 2) * (1 - r[1, 2] ** 2))
    worst = error >= np.quantile(error, 1 - WORST_SHARE) if error.size else error.astype(bool)
    by_prediction = _rank_auc(prediction, worst)
    return {
        "uncertainty_error_spearman": float(r[0, 1]),
        "uncertainty_error_partial_spearman": float(partial),
        "uncertainty_auc_worst_tenth": _rank_auc(entries.uncertainty, worst),
        "prediction_auc_worst_tenth": max(by_prediction, 1 - by_prediction),
    }


def interval_metrics(entries: MaskedEntries) -> dict:
    """The share of masked entries whose true count lies in its interval, and the median width (counts)."""
    inside = (entries.truth >= entries.low * (1 - 1e-6)) & (entries.truth <= entries.high * (1 + 1e-6))
    return {
        "interval_coverage": float(inside.mean()) if inside.size else float("nan"),
        "interval_median_width": float(np.median(entries.high - entries.low))
        if inside.size
        else float("nan"),
    }


# counts per cell before log1p in Open Problems' MSE (task_denoising, src/metrics/mse)
OPEN_PROBLEMS_TARGET_SUM = 10_000
# what molecular cross-validation scores: the denoised counts, and Open Problems' two controls
MCV_CANDIDATES = ("denoised", "without_imputation", "perfect")


@dataclass
class McvSums:
    """What molecular cross-validation adds up over blocks of cells, for one candidate matrix."""

    squared_error: float = 0.0
    poisson: float = 0.0
    squared_error_median_depth: float = 0.0
    entries: int = 0


def _log_normalised(values: np.ndarray, target_sum: float) -> np.ndarray:
    """Each cell scaled to ``target_sum`` counts, then log1p; a cell without counts stays 0 (as scanpy)."""
    totals = values.sum(axis=1, keepdims=True)
    return np.log1p(values / np.where(totals > 0, totals, 1) * target_sum)


def add_mcv(
    sums: McvSums, *, candidate: np.ndarray, test: np.ndarray, scale: float, median_depth: float
) -> None:
    """Add a block's errors of ``candidate`` against the held-out ``test`` counts.

    As Open Problems' denoising task (task_denoising, src/metrics) computes them: MSE of log1p
    after normalising every cell of both to 10,000 counts; Poisson loss
    mean(mu - test * log(mu + 1e-6)) with mu the candidate times ``scale`` (test total / train
    total), the candidate as the mean and the test counts as the observation. Beside them, the
    MSE with cells normalised to ``median_depth`` (the median held-out library size), which this
    tool reported as its MCV MSE before version 0.2.
    """
    test_log = _log_normalised(test, OPEN_PROBLEMS_TARGET_SUM)
    sums.squared_error += float(
        ((_log_normalised(candidate, OPEN_PROBLEMS_TARGET_SUM) - test_log) ** 2).sum()
    )
    mu = candidate * scale
    sums.poisson += float((mu - test * np.log(mu + 1e-6)).sum())
    depth_error = _log_normalised(candidate, median_depth) - _log_normalised(test, median_depth)
    sums.squared_error_median_depth += float((depth_error**2).sum())
    sums.entries += test.size


def mcv_scores(blocks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]]) -> dict:
    """Molecular cross-validation's errors of a denoised matrix and of Open Problems' controls.

    ``blocks()`` yields each block's (denoised, train, test) cells x genes matrices, consecutive
    blocks of cells; it is called twice: once for the totals, once for the errors. The controls
    are Open Problems': no denoising (the train counts themselves) and perfect denoising (the
    test counts themselves). A scaled score is (control without denoising - error) / (control
    without denoising - perfect control): 0 for no denoising, 1 for perfect, higher is better.
    """
    sums = [(train.sum(axis=1), test.sum(axis=1)) for _, train, test in blocks()]
    train_sums, test_sums = (np.concatenate(part) for part in zip(*sums))
    scale = float(test_sums.sum() / max(train_sums.sum(), 1e-12))
    median_depth = float(np.median(test_sums))
    totals = {name: McvSums() for name in MCV_CANDIDATES}
    for denoised, train, test in blocks():
        for name, candidate in zip(MCV_CANDIDATES, (denoised, train, test)):
            add_mcv(totals[name], candidate=candidate, test=test, scale=scale, median_depth=median_depth)
    metrics = {}
    for name, total in totals.items():
        suffix = "" if name == "denoised" else f"_{name}"
        n = max(total.entries, 1)
        metrics[f"mcv_mse{suffix}"] = total.squared_error / n
        metrics[f"mcv_poisson{suffix}"] = total.poisson / n
        if name != "perfect":
            metrics[f"mcv_mse_median_depth{suffix}"] = total.squared_error_median_depth / n
    for measure in ("mcv_mse", "mcv_poisson"):
        none, perfect = metrics[f"{measure}_without_imputation"], metrics[f"{measure}_perfect"]
        gap = none - perfect
        metrics[f"{measure}_scaled"] = (none - metrics[measure]) / gap if gap > 0 else float("nan")
    # Open Problems ranks denoising methods by the mean of the two scaled scores
    metrics["mcv_score"] = (metrics["mcv_mse_scaled"] + metrics["mcv_poisson_scaled"]) / 2
    return metrics


def summary_table(metrics: dict) -> str:
    """A readable table of the headline scores."""
    rows = []
    if "masked_entries" in metrics:
        rows += [
            ("masked entries", f"{metrics['masked_entries']}"),
            ("MSE (log1p)", f"{metrics['mse']:.4f}"),
            ("Pearson (log1p)", f"{metrics['pearson']:.4f}"),
            (
                f"MSE, true count >= 2 (n={metrics['masked_entries_count_ge2']})",
                f"{metrics['mse_count_ge2']:.4f}",
            ),
            ("Pearson, true count >= 2", f"{metrics['pearson_count_ge2']:.4f}"),
            ("MSE without imputation (all zeros)", f"{metrics['mse_without_imputation']:.4f}"),
            *(
                [
                    (
                        "rank correlation, uncertainty and error",
                        f"{metrics['uncertainty_error_spearman']:.4f}",
                    ),
                    (
                        "... given the prediction (partial)",
                        f"{metrics['uncertainty_error_partial_spearman']:.4f}",
                    ),
                    (
                        "AUC, worst tenth of errors by uncertainty",
                        f"{metrics['uncertainty_auc_worst_tenth']:.3f}",
                    ),
                    (
                        "AUC, worst tenth of errors by prediction",
                        f"{metrics['prediction_auc_worst_tenth']:.3f}",
                    ),
                ]
                if "uncertainty_error_spearman" in metrics
                else []
            ),
            *(
                [
                    ("intervals: coverage of the true counts", f"{metrics['interval_coverage']:.3f}"),
                    ("intervals: median width (counts)", f"{metrics['interval_median_width']:.2f}"),
                ]
                if "interval_coverage" in metrics
                else []
            ),
            ("median per-gene MSE", f"{metrics['per_gene_mse']['median']:.4f}"),
            ("median per-cell MSE", f"{metrics['per_cell_mse']['median']:.4f}"),
        ]
    if "detected_fill" in metrics:
        paper = metrics["detected_fill"]
        rows += [
            ("layer detected_fill: MSE (log1p)", f"{paper['mse']:.4f}"),
            ("layer detected_fill: Pearson (log1p)", f"{paper['pearson']:.4f}"),
            ("layer detected_fill: MSE, true count >= 2", f"{paper['mse_count_ge2']:.4f}"),
        ]
    if "mcv_mse" in metrics:
        rows += [
            ("MCV MSE (log1p of 10,000 per cell)", f"{metrics['mcv_mse']:.4f}"),
            ("MCV MSE without imputation", f"{metrics['mcv_mse_without_imputation']:.4f}"),
            ("MCV MSE, scaled (0 none, 1 perfect)", f"{metrics['mcv_mse_scaled']:.3f}"),
            ("MCV Poisson loss", f"{metrics['mcv_poisson']:.4f}"),
            ("MCV Poisson loss without imputation", f"{metrics['mcv_poisson_without_imputation']:.4f}"),
            ("MCV Poisson loss, scaled (0 none, 1 perfect)", f"{metrics['mcv_poisson_scaled']:.3f}"),
            ("MCV mean scaled score (Open Problems' ranking)", f"{metrics['mcv_score']:.3f}"),
        ]
    if "clustering" in metrics:
        for name in ("imputed", "without_imputation"):
            scores = metrics["clustering"][name]
            for method, suffix in (("k-means", ""), ("Leiden", "_leiden")):
                values = " ".join(
                    f"{k.upper()}={scores[k + suffix]:.3f}±{scores[k + suffix + '_sd']:.3f}"
                    for k in ("ari", "ami", "fmi")
                )
                rows.append((f"{method}, {name.replace('_', ' ')}", values))
            rows.append(
                (f"silhouette of the labels, {name.replace('_', ' ')}", f"{scores['silhouette']:.3f}")
            )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
