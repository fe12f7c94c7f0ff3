"""DeepImpute on AnnData objects in memory: training, imputation, and where the results go.

The functions behind :func:`deepimpute_tool.train`, :meth:`deepimpute_tool.model.Model.impute`
and :func:`deepimpute_tool.pp.impute`. Options are the fields of the steps' parameter
classes (:class:`~deepimpute_tool.training.TrainingParameters`,
:class:`~deepimpute_tool.imputation.ImputeParameters`), the same declarations the command line,
Nextflow and Galaxy are made from, checked with the same messages. Counts are read a block of
cells at a time, so a sparse matrix is never made dense whole.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from deepimpute_tool.dataset import check_counts, check_unique, count_dtype
from deepimpute_tool.errors import InputError, ParameterError, spell
from deepimpute_tool.imputation import (
    ImputeParameters,
    calibrate_intervals,
    for_model,
    impute_block,
    uncertainty_layer,
)
from deepimpute_tool.loom import (
    DETECTED_FILL_LAYER,
    DETECTION_LAYER,
    IMPUTED_GENE_ATTR,
    INTERVAL_HIGH_LAYER,
    INTERVAL_LOW_LAYER,
    UNCERTAINTY_LAYER,
    cells_per_block,
    provenance,
)
from deepimpute_tool.options import declared, spellings
from deepimpute_tool.plots import loss_history
from deepimpute_tool.training import TrainingParameters, choose_training_cells
from deepimpute_tool.training import train as train_counts

if TYPE_CHECKING:
    from anndata import AnnData

    from deepimpute_tool.model import Model

LOGGER = logging.getLogger("deepimpute_tool")
DEFAULT_KEY = "deepimpute"
UNS_KEY = "deepimpute"
RAW = "raw"


def _log(message: str) -> None:
    LOGGER.info(spell(message, spellings("python")))


def split_options(options: Mapping[str, Any], *classes: type) -> list[dict[str, Any]]:
    """``options`` shared out among ``classes`` by their declared options; a name none of them
    declares is a TypeError, as for any Python function."""
    names = [{item.name for item in declared(cls)} for cls in classes]
    known = sorted(set().union(*names))
    for name in sorted(set(options) - set(known)):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"the options are: {', '.join(known)}"
        raise TypeError(f"unexpected option {name!r}; {hint}")
    return [{name: value for name, value in options.items() if name in allowed} for allowed in names]


@dataclasses.dataclass(frozen=True)
class Counts:
    """Where an AnnData holds its raw counts: a cells x genes matrix, its genes, and its name."""

    matrix: Any
    genes: np.ndarray
    where: str
    dtype: np.dtype

    @property
    def n_cells(self) -> int:
        return self.matrix.shape[0]

    def blocks(self, chunk_cells: int | None = None, *, stored: bool = False):
        """``(rows, counts)`` a block of cells at a time: dense in :attr:`dtype`, or with
        ``stored`` as they are stored (the nonzero values alone for a sparse matrix)."""
        step = cells_per_block(len(self.genes), 8, chunk_cells)
        for start in range(0, self.n_cells, step):
            rows = slice(start, min(start + step, self.n_cells))
            part = self.matrix[rows]
            if stored:
                yield rows, part.data if sp.issparse(part) else np.asarray(part)
            else:
                part = part.toarray() if sp.issparse(part) else np.asarray(part)
                yield rows, part.astype(self.dtype, copy=False)


def counts_of(adata: AnnData, layer: str | None) -> Counts:
    """The raw counts of ``adata``: ``layers[layer]``, ``X`` for None, ``raw.X`` for ``"raw"``
    (the columns of ``adata``'s genes), checked block by block to be whole non-negative numbers."""
    if layer is None:
        matrix, where = adata.X, "adata.X"
    elif layer == RAW:
        if adata.raw is None:
            raise InputError("adata.raw", "is not set: give the layer of the raw counts with layer=")
        missing = adata.var_names.difference(adata.raw.var_names)
        if len(missing):
            raise InputError(
                "adata.raw", f"lacks {len(missing)} genes of adata.var_names (e.g. {missing[0]})"
            )
        check_unique(np.asarray(adata.raw.var_names), path="adata.raw.var_names", what="gene names")
        columns = adata.raw.var_names.get_indexer(adata.var_names)
        matrix, where = adata.raw.X, "adata.raw.X"
        if not np.array_equal(columns, np.arange(adata.raw.n_vars)):
            matrix = matrix[:, columns]
    elif layer in adata.layers:
        matrix, where = adata.layers[layer], f"adata.layers[{layer!r}]"
    else:
        present = ", ".join(map(repr, adata.layers)) or "none"
        raise InputError(
            f"adata.layers[{layer!r}]",
            f"does not exist (layers: {present}); layer=None reads X, layer='raw' reads raw.X",
        )
    if matrix is None or len(matrix.shape) != 2:
        raise InputError(where, "is not a matrix")
    if sp.issparse(matrix) and (matrix.format != "csr" or not isinstance(matrix, sp.spmatrix)):
        matrix = sp.csr_matrix(matrix)  # rows are read a block at a time
    genes = np.asarray(adata.var_names, dtype=object).astype(str)
    counts = Counts(matrix, genes, where, np.dtype(np.float64))
    if counts.n_cells == 0 or len(counts.genes) == 0:
        raise InputError(where, f"is empty ({len(counts.genes)} genes x {counts.n_cells} cells)")
    check_unique(counts.genes, path="adata.var_names", what="gene names")
    largest = 0.0
    for _, values in counts.blocks(stored=True):
        check_counts(values, path=where)
        largest = max(largest, float(values.max()) if values.size else 0.0)
    return dataclasses.replace(counts, dtype=count_dtype(largest))


def train(
    adata: AnnData,
    *,
    layer: str | None = "counts",
    log: Callable[[str], None] = _log,
    counts: Counts | None = None,
    **options: Any,
) -> Model:
    """Train a DeepImpute model on the raw counts of ``adata``; see :func:`deepimpute_tool.train`.
    ``counts``: those :func:`counts_of` read already (not read and checked again)."""
    (values,) = split_options(options, TrainingParameters)
    params = TrainingParameters(**values, layer=layer)
    counts = counts or counts_of(adata, layer)
    try:
        cells = choose_training_cells(n_cells=counts.n_cells, n_genes=len(counts.genes), params=params)
        chosen = counts.matrix if cells.chosen is None else counts.matrix[cells.chosen]
        log(f"training on {len(counts.genes)} genes x {cells.n_train} cells of {counts.where}")
        return train_counts(
            sp.csr_matrix(chosen, dtype=np.float32), counts.genes, params=params, cells=cells, log=log
        )
    except InputError as error:
        if error.what is None:
            raise InputError(counts.where, error.problem) from None
        raise


def _layer_name(key_added: str | None, layer: str) -> str:
    return f"{key_added or DEFAULT_KEY}_{layer}"


def impute(
    model: Model,
    adata: AnnData,
    *,
    layer: str | None = "counts",
    key_added: str | None = DEFAULT_KEY,
    copy: bool = False,
    counts: Counts | None = None,
    **options: Any,
) -> AnnData | None:
    """Impute ``adata`` with ``model``; see :meth:`deepimpute_tool.model.Model.impute`.
    ``counts``: those :func:`counts_of` read already (not read and checked again)."""
    (values,) = split_options(options, ImputeParameters)
    params = for_model(ImputeParameters(**values, layer=layer), model)
    extras = [
        name
        for name, wanted in (
            (DETECTED_FILL_LAYER, params.detected_layer),
            (DETECTION_LAYER, params.detection_layer),
            (INTERVAL_LOW_LAYER, params.interval > 0),
            (INTERVAL_HIGH_LAYER, params.interval > 0),
            (UNCERTAINTY_LAYER, params.interval > 0 or params.uncertainty > 0),
        )
        if wanted
    ]
    check_destinations(adata, layer=layer, key_added=key_added, extras=extras)
    counts = counts or counts_of(adata, layer)
    missing = np.setdiff1d(model.genes, counts.genes)
    if missing.size:
        raise InputError(
            "adata.var_names",
            f"lacks {missing.size} of the model's {model.genes.size} genes (e.g. {missing[0]})",
        )
    calibration = calibrate_intervals(model, params) if params.interval else None
    target = adata.copy() if copy else adata  # a backed AnnData refuses here, before any work
    # the imputed genes' columns fill up: sparse rows would cost more than dense ones past half
    sparse = sp.issparse(counts.matrix) and model.target_genes.size <= len(counts.genes) / 2
    outputs = _Outputs(counts.n_cells, sparse=sparse)
    rng = np.random.default_rng(params.seed)
    for rows, block in counts.blocks(params.chunk_cells):
        result = impute_block(block, counts.genes, model, params=params, calibration=calibration)
        outputs.add(key_added, rows, result.counts)
        for name, values in result.layers().items():
            outputs.add(_layer_name(key_added, name), rows, values)
        if params.uncertainty:
            spread = uncertainty_layer(block, counts.genes, model, samples=params.uncertainty, rng=rng)
            outputs.add(_layer_name(key_added, UNCERTAINTY_LAYER), rows, spread)
    record = {"model_sha256": model.identity, "key_added": key_added, **dataclasses.asdict(params)}
    if calibration is not None:
        record["interval_calibration"] = {
            "entries": calibration.entries,
            "multiplier": calibration.multiplier,
            "coverage": calibration.coverage,
            "median_width": calibration.median_width,
        }
    provenance_record = _provenance(model, record)  # before the AnnData changes: nothing half-done
    targets = set(model.target_genes.tolist())
    for name, matrix in outputs.finished().items():
        if name is None:
            target.X = matrix
        else:
            target.layers[name] = matrix
    target.var[IMPUTED_GENE_ATTR] = np.fromiter((g in targets for g in counts.genes), bool, len(counts.genes))
    target.uns[UNS_KEY] = provenance_record
    return target if copy else None


def check_destinations(adata: AnnData, *, layer: str | None, key_added, extras: list[str]) -> None:
    """Refuse a ``key_added`` that is not a name, or layers to be written over the counts read or
    over a layer that an earlier imputation of the same ``key_added`` did not write."""
    if key_added is not None and (not isinstance(key_added, str) or not key_added or "/" in key_added):
        raise TypeError(
            f"key_added must be a layer's name (text without '/') or None for X, not {key_added!r}"
        )
    names = [key_added, *(_layer_name(key_added, name) for name in extras)]
    if layer in names or (layer is None and key_added is None):
        where = "X" if layer is None else f"layers[{layer!r}]"
        raise ParameterError(
            f"key_added {key_added!r}",
            f"would write over the counts it reads ({where}); choose another name (None writes X)",
        )
    earlier = adata.uns.get(UNS_KEY)
    try:
        ours = json.loads(earlier["impute"])["parameters"]["key_added"] if earlier is not None else object()
    except (TypeError, KeyError, ValueError):
        ours = object()
    taken = [name for name in names if name is not None and name in adata.layers and ours != key_added]
    if taken:
        raise ParameterError(
            f"key_added {key_added!r}",
            f"would write over the layer {taken[0]!r}, which no imputation with this key_added wrote; "
            "choose another name, or delete the layer",
        )


class _Outputs:
    """Matrices built a block of cells at a time: sparse rows for a sparse input, else dense."""

    def __init__(self, n_cells: int, *, sparse: bool) -> None:
        self._n_cells, self._sparse = n_cells, sparse
        self._parts: dict[str | None, Any] = {}

    def add(self, name: str | None, rows: slice, values: np.ndarray) -> None:
        if self._sparse:
            self._parts.setdefault(name, []).append(sp.csr_matrix(values))
            return
        if name not in self._parts:
            self._parts[name] = np.empty((self._n_cells, values.shape[1]), values.dtype)
        self._parts[name][rows] = values

    def finished(self) -> dict[str | None, Any]:
        if self._sparse:
            return {name: sp.vstack(parts, format="csr") for name, parts in self._parts.items()}
        return self._parts


def _provenance(model: Model, record: dict) -> dict:
    """What ``uns["deepimpute"]`` holds: the training and imputation records as JSON text (as the
    files of the command line hold them) and the loss history as arrays, which h5ad stores."""
    return {
        "train": json.dumps({"parameters": model.parameters, "versions": model.versions}, default=str),
        "impute": next(iter(provenance("impute", record).values())),
        "loss": loss_history(model.training),
    }
