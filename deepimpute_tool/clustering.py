"""Clustering scores of a count matrix against known cell types: k-means, and Leiden on a kNN graph.

Both start from the same embedding: counts normalised to 10,000 per cell, log1p, the 2,000
most variable genes (all, when fewer), 50 principal components. k-means asks for as many
clusters as there are labels; Leiden (as the DeepImpute paper clustered) runs on the
15-nearest-neighbour graph of the embedding at the resolution that gives that many clusters,
found by bisection. ARI, AMI and Fowlkes-Mallows compare clusters with labels; the silhouette
measures how well the labels themselves separate in the embedding.
"""

from __future__ import annotations

import numpy as np

HIGHLY_VARIABLE = 2000
NEIGHBOURS = 15


def embedding(counts: np.ndarray, *, seed: int = 0, n_components: int = 50) -> np.ndarray:
    """Principal components of the normalised log values of the most variable genes."""
    from sklearn.decomposition import PCA

    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    log_values = np.log1p(counts / np.where(totals > 0, totals, 1) * 1e4)
    if log_values.shape[1] > HIGHLY_VARIABLE:
        mean = log_values.mean(axis=0)
        dispersion = log_values.var(axis=0) / np.where(mean > 0, mean, 1)
        log_values = log_values[:, np.sort(np.argsort(-dispersion, kind="stable")[:HIGHLY_VARIABLE])]
    n_components = min(n_components, *log_values.shape) - 1
    return PCA(n_components=n_components, random_state=seed).fit_transform(log_values)


def leiden(points: np.ndarray, n_clusters: int, *, seed: int = 0) -> np.ndarray:
    """Leiden communities (modularity) of the kNN graph of ``points``, as close to ``n_clusters`` as
    a bisection on the resolution gets in 30 tries."""
    import random

    import igraph
    from sklearn.neighbors import NearestNeighbors

    k = min(NEIGHBOURS, len(points) - 1)
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(return_distance=False)[:, 1:]
    rows = np.repeat(np.arange(len(points)), k)
    edges = np.unique(np.sort(np.stack([rows, neighbours.ravel()], axis=1), axis=1), axis=0)
    graph = igraph.Graph(n=len(points), edges=edges.tolist())
    low, high, best = -3.0, 1.5, None  # log10 of the resolution
    for _ in range(30):
        middle = (low + high) / 2
        igraph.set_random_number_generator(random.Random(seed))
        membership = np.array(
            graph.community_leiden(
                objective_function="modularity", resolution=10**middle, n_iterations=10
            ).membership
        )
        found = membership.max() + 1
        if best is None or abs(found - n_clusters) < abs(best.max() + 1 - n_clusters):
            best = membership
        if found == n_clusters:
            break
        low, high = (middle, high) if found < n_clusters else (low, middle)
    return best


def clustering_metrics(counts: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> dict:
    """ARI, AMI and Fowlkes-Mallows of k-means and of Leiden against ``labels``, and the labels' silhouette."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import (
        adjusted_mutual_info_score,
        adjusted_rand_score,
        fowlkes_mallows_score,
        silhouette_score,
    )

    points = embedding(counts, seed=seed)
    n_clusters = np.unique(labels).size
    clusters = {
        "kmeans": KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(points),
        "leiden": leiden(points, n_clusters, seed=seed),
    }
    scores = {"clusters": int(n_clusters), "silhouette": float(silhouette_score(points, labels))}
    for method, found in clusters.items():
        suffix = "" if method == "kmeans" else "_leiden"
        scores[f"ari{suffix}"] = float(adjusted_rand_score(labels, found))
        scores[f"ami{suffix}"] = float(adjusted_mutual_info_score(labels, found))
        scores[f"fmi{suffix}"] = float(fowlkes_mallows_score(labels, found))
    scores["leiden_clusters"] = int(clusters["leiden"].max() + 1)
    return scores
