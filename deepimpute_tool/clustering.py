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


KMEANS_SEEDS = 10
LEIDEN_SEEDS = 5


def clustering_metrics(counts: np.ndarray, labels: np.ndarray, *, seed: int = 0) -> dict:
    """ARI, AMI and Fowlkes-Mallows of k-means and of Leiden against ``labels``, and the labels' silhouette.

    Each score is the mean over several random starts (:data:`KMEANS_SEEDS` of k-means, each
    the best of 10 initialisations, and :data:`LEIDEN_SEEDS` of Leiden, seeds from ``seed`` on),
    with its standard deviation beside it: one start's ARI can swing by 0.2 on the same matrix.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import (
        adjusted_mutual_info_score,
        adjusted_rand_score,
        fowlkes_mallows_score,
        silhouette_score,
    )

    points = embedding(counts, seed=seed)
    n_clusters = np.unique(labels).size
    starts = {
        "kmeans": [
            KMeans(n_clusters=n_clusters, n_init=10, random_state=seed + s).fit_predict(points)
            for s in range(KMEANS_SEEDS)
        ],
        "leiden": [leiden(points, n_clusters, seed=seed + s) for s in range(LEIDEN_SEEDS)],
    }
    scores = {"clusters": int(n_clusters), "silhouette": float(silhouette_score(points, labels))}
    measures = {"ari": adjusted_rand_score, "ami": adjusted_mutual_info_score, "fmi": fowlkes_mallows_score}
    for method, found in starts.items():
        suffix = "" if method == "kmeans" else "_leiden"
        for name, measure in measures.items():
            values = [float(measure(labels, clusters)) for clusters in found]
            scores[f"{name}{suffix}"] = float(np.mean(values))
            scores[f"{name}{suffix}_sd"] = float(np.std(values))
    scores["starts"] = {"kmeans": KMEANS_SEEDS, "leiden": LEIDEN_SEEDS}
    scores["leiden_clusters"] = int(starts["leiden"][0].max() + 1)
    return scores
