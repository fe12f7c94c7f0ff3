"""Scoring an imputation against the values that masking hid (the paper's protocol).

A Loom that went through ``mask`` then ``impute`` holds the imputed counts as its main
matrix, the masked input in the layer ``raw`` and the true counts in the layer
``original``; the masked entries are those positive in ``original`` and zero in ``raw``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from deepimpute_tool.options import option, parameters


@parameters
class ScoreParameters:
    """Every option of scoring."""

    labels: str | None = option(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        label="Cell attribute with known cell types",
        help="Cell attribute with known cell types (e.g. CellType): adds the clustering scores "
        "(ARI, AMI, FMI, silhouette) of the imputed and of the unimputed counts.",
        default_text="no clustering scores",
    )
    seed: int = option(0, label="Random seed", help="Seed of every random draw (clustering).")


@dataclass(frozen=True)
class MaskedEntries:
    """The masked entries of a masked-then-imputed matrix: where they are and their values."""

    gene_index: np.ndarray
    cell_index: np.ndarray
    truth: np.ndarray
    imputed: np.ndarray


def concatenate(parts: list[MaskedEntries]) -> MaskedEntries:
    """The masked entries of consecutive blocks of cells as one."""
    return MaskedEntries(
        *(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(MaskedEntries))
    )


def masked_entries(
    original: np.ndarray, observed: np.ndarray, imputed: np.ndarray, *, cell_offset: int = 0
) -> MaskedEntries:
    """Entries of cells x genes matrices that were positive in ``original`` and zero in ``observed``."""
    cells, genes = np.nonzero((original > 0) & (observed == 0))
    return MaskedEntries(genes, cells + cell_offset, original[cells, genes], imputed[cells, genes])


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


def clustering_metrics(
    counts: np.ndarray, labels: np.ndarray, *, seed: int = 0, n_components: int = 50
) -> dict:
    """The paper's clustering scores of a cells x genes count matrix against known labels.

    Cells are normalised to 10,000 counts, log1p-transformed, reduced to ``n_components``
    principal components, and clustered by k-means into as many clusters as there are
    labels; ARI, AMI and Fowlkes-Mallows compare clusters with labels, and the silhouette
    measures how well the labels separate in PCA space.
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import (
        adjusted_mutual_info_score,
        adjusted_rand_score,
        fowlkes_mallows_score,
        silhouette_score,
    )

    totals = counts.sum(axis=1, keepdims=True)
    log_values = np.log1p(counts / np.where(totals > 0, totals, 1) * 1e4)
    n_components = min(n_components, *log_values.shape) - 1
    embedding = PCA(n_components=n_components, random_state=seed).fit_transform(log_values)
    n_clusters = np.unique(labels).size
    clusters = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(embedding)
    return {
        "clusters": int(n_clusters),
        "ari": float(adjusted_rand_score(labels, clusters)),
        "ami": float(adjusted_mutual_info_score(labels, clusters)),
        "fmi": float(fowlkes_mallows_score(labels, clusters)),
        "silhouette": float(silhouette_score(embedding, labels)),
    }


def summary_table(metrics: dict) -> str:
    """A readable table of the headline scores."""
    rows = [
        ("masked entries", f"{metrics['masked_entries']}"),
        ("MSE (log1p)", f"{metrics['mse']:.4f}"),
        ("Pearson (log1p)", f"{metrics['pearson']:.4f}"),
        (
            f"MSE, true count >= 2 (n={metrics['masked_entries_count_ge2']})",
            f"{metrics['mse_count_ge2']:.4f}",
        ),
        ("Pearson, true count >= 2", f"{metrics['pearson_count_ge2']:.4f}"),
        ("MSE without imputation (all zeros)", f"{metrics['mse_without_imputation']:.4f}"),
        ("median per-gene MSE", f"{metrics['per_gene_mse']['median']:.4f}"),
        ("median per-cell MSE", f"{metrics['per_cell_mse']['median']:.4f}"),
    ]
    if "clustering" in metrics:
        for name in ("imputed", "without_imputation"):
            scores = metrics["clustering"][name]
            rows.append(
                (
                    f"clustering, {name.replace('_', ' ')}",
                    " ".join(f"{k.upper()}={scores[k]:.3f}" for k in ("ari", "ami", "fmi", "silhouette")),
                )
            )
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
