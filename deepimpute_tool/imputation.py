"""Imputation: fill a Loom's zeros with a trained model's predictions, one block of cells at a time."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from deepimpute_tool.errors import InputError
from deepimpute_tool.io import (
    atomic_path,
    check_counts,
    check_unique,
    loom_cell_chunks,
    loom_file_attrs,
    loom_names,
    loom_row_attrs,
    new_loom,
    open_loom,
)
from deepimpute_tool.model import Model
from deepimpute_tool.progress import Progress

POLICIES = ("restore", "max", "all")
RAW_LAYER = "raw"


def apply_policy(observed: np.ndarray, predicted: np.ndarray, *, policy: str = "restore") -> np.ndarray:
    """Combine observed counts and predictions of the same genes and cells.

    ``restore`` fills only the zeros and keeps every observed value exactly; ``max`` keeps
    the larger of the two; ``all`` returns the prediction everywhere.
    """
    if policy == "restore":
        return np.where(observed > 0, observed, predicted)
    if policy == "max":
        return np.maximum(observed, predicted)
    if policy == "all":
        return predicted.copy()
    raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")


def impute_counts(
    counts: np.ndarray, genes: np.ndarray, model: Model, *, policy: str = "restore"
) -> np.ndarray:
    """Imputed copy of a cells x genes count matrix; genes the model does not impute are unchanged."""
    position = {name: i for i, name in enumerate(genes)}
    target_columns = np.array([position[g] for g in model.target_genes])
    imputed = counts.astype(np.float32, copy=True)
    predicted = model.predict_counts(counts, genes)
    imputed[:, target_columns] = apply_policy(counts[:, target_columns], predicted, policy=policy)
    return imputed


@dataclass(frozen=True)
class ImputeSummary:
    cells: int
    genes: int
    imputed_genes: int
    zeros_filled: int


def check_model_genes(model: Model, genes: np.ndarray, *, path: str) -> None:
    """Raise InputError naming a few of the model's genes that the input lacks."""
    missing = np.setdiff1d(model.genes, genes)
    if missing.size:
        shown = ", ".join(missing[:5]) + (", ..." if missing.size > 5 else "")
        raise InputError(
            path,
            f"lacks {missing.size} of the model's {model.genes.size} genes ({shown}); "
            "impute data with the genes the model was trained on",
        )


def impute_loom(
    in_path: str | os.PathLike,
    model: Model,
    out_path: str | os.PathLike,
    *,
    policy: str = "restore",
    chunk_cells: int | None = None,
    file_attrs: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> ImputeSummary:
    """Impute a Loom file into a new one, streaming blocks of cells.

    The output has the input's genes and cells in the same order with the same
    attributes; its main matrix holds imputed counts, the input's counts go to the layer
    ``raw``, and the input's other layers are carried over.
    """
    progress = progress or Progress(quiet=True)
    in_path = str(in_path)
    zeros_filled = 0
    with open_loom(in_path) as source:
        genes, cells = loom_names(source, path=in_path)
        check_unique(cells, path=in_path, what="cell IDs")
        check_model_genes(model, genes, path=in_path)
        check_unique(genes[np.isin(genes, model.genes)], path=in_path, what="gene names")
        if RAW_LAYER in source.layers.keys():
            raise InputError(in_path, f"already has a layer '{RAW_LAYER}': was it imputed already?")
        n_genes, n_cells = source.shape
        if n_cells == 0 or n_genes == 0:
            raise InputError(in_path, "the matrix is empty")
        layer_names = [name for name in source.layers.keys() if name != ""]
        row_attrs = loom_row_attrs(source)
        attrs = loom_file_attrs(source)
        attrs.update(file_attrs or {})
        target_columns = np.isin(genes, model.target_genes)
        chunks = loom_cell_chunks(n_genes, n_cells, chunk_cells=chunk_cells)
        progress.start()
        with atomic_path(out_path) as temporary:
            with new_loom(temporary) as out:
                for cols in chunks:
                    counts = np.asarray(source[:, cols], dtype=np.float32).T
                    check_counts(counts, path=in_path)
                    imputed = impute_counts(counts, genes, model, policy=policy)
                    # genes the model does not impute are unchanged, so all columns can be counted
                    zeros_filled += int(np.count_nonzero((counts == 0) & (imputed > 0)))
                    layers = {"": imputed.T, RAW_LAYER: counts.T}
                    layers.update({name: source.layers[name][:, cols] for name in layer_names})
                    col_attrs = {k: np.asarray(source.ca[k][cols]) for k in source.ca.keys()}
                    out.add_columns(layers, col_attrs, row_attrs=row_attrs)
                    progress.advance("imputing cells", cols.stop, n_cells)
                for key, value in attrs.items():
                    out.attrs[key] = value
    return ImputeSummary(
        cells=n_cells, genes=n_genes, imputed_genes=int(target_columns.sum()), zeros_filled=zeros_filled
    )
