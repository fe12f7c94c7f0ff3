"""A count matrix in memory with its names and annotations, and the checks every input passes.

Inside the package a matrix is cells x genes (``scipy.sparse.csr_matrix`` or a dense
``numpy`` array); in a Loom file it is genes x cells, as the Loom specification says.
Counts are float32 whenever float32 holds every one of them exactly (up to 2^24) and float64
otherwise, so that an observed count is never rounded.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import scipy.sparse as sp

from deepimpute_tool.errors import InputError
from deepimpute_tool.limits import MAX_NAME_CHARACTERS

CONTROL = re.compile("[\\x00-\\x1f\\x7f-\\x9f]")  # never in a name; not kept by Loom's text encoding
FLOAT32_EXACT = 2**24  # every whole number up to this is exact in float32
FLOAT64_EXACT = 2**53
RAW_COUNTS_HINT = (
    "DeepImpute needs raw UMI or read counts; if the data are normalised or log-transformed, "
    "give the raw counts instead (for AnnData, where it holds them: ⟨layer⟩ counts, or ⟨layer⟩ raw for .raw.X)"
)


@dataclass
class Dataset:
    """A count matrix with its names and annotations.

    Attributes
    ----------
    counts
        Cells x genes, float32 (float64 when a count exceeds 2^24).
    genes, cells
        Gene names and cell IDs, in matrix order.
    gene_attrs, cell_attrs
        Further per-gene and per-cell annotations (Loom row and column attributes).
    layers
        Further cells x genes matrices of the same shape, by name.
    file_attrs
        Global attributes (provenance of earlier steps).
    """

    counts: sp.csr_matrix
    genes: np.ndarray
    cells: np.ndarray
    gene_attrs: dict[str, np.ndarray] = field(default_factory=dict)
    cell_attrs: dict[str, np.ndarray] = field(default_factory=dict)
    layers: dict[str, sp.csr_matrix] = field(default_factory=dict)
    file_attrs: dict[str, str] = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return self.counts.shape[0]

    @property
    def n_genes(self) -> int:
        return self.counts.shape[1]

    def read_dataset(self, *, layers: bool = True, cells: np.ndarray | None = None) -> Dataset:
        """Its ``cells`` (indices, in order; all if None), with its layers if ``layers``: what
        :meth:`deepimpute_tool.loom.LoomReader.read_dataset` reads of a Loom, so that a step
        takes either as the source of its counts."""
        chosen = self if cells is None else self.subset(cells=cells)
        return chosen if layers else dataclasses.replace(chosen, layers={})

    def subset(self, *, cells: np.ndarray | None = None, genes: np.ndarray | None = None) -> Dataset:
        """Rows (cells) and columns (genes) picked by boolean masks or index arrays."""
        cell_ix = np.arange(self.n_cells) if cells is None else np.asarray(cells)
        gene_ix = np.arange(self.n_genes) if genes is None else np.asarray(genes)

        def take(matrix: sp.csr_matrix) -> sp.csr_matrix:
            return sp.csr_matrix(matrix[cell_ix][:, gene_ix])

        return Dataset(
            counts=take(self.counts),
            genes=self.genes[gene_ix],
            cells=self.cells[cell_ix],
            gene_attrs={k: v[gene_ix] for k, v in self.gene_attrs.items()},
            cell_attrs={k: v[cell_ix] for k, v in self.cell_attrs.items()},
            layers={k: take(v) for k, v in self.layers.items()},
            file_attrs=dict(self.file_attrs),
        )


def count_dtype(largest: float) -> np.dtype:
    """float32 when it holds every count up to ``largest`` exactly, else float64."""
    return np.dtype(np.float32 if largest <= FLOAT32_EXACT else np.float64)


def as_counts(values, *, path: str | os.PathLike, what: str = "matrix"):
    """``values`` (dense or sparse) checked by :func:`check_counts`, as float32 or float64 exactly."""
    data = values.data if sp.issparse(values) else np.asarray(values)
    check_counts(data, path=path, what=what)
    dtype = count_dtype(float(data.max()) if data.size else 0.0)
    if sp.issparse(values):
        return sp.csr_matrix(values, dtype=dtype)
    return np.asarray(values, dtype=dtype)


def check_counts(values: np.ndarray, *, path: str | os.PathLike, what: str = "matrix") -> None:
    """Raise :class:`InputError` unless ``values`` are finite, non-negative whole numbers that
    float64 holds exactly (up to 2^53)."""
    values = np.asarray(values)
    if values.size == 0:
        return
    if values.dtype.kind in "iub":
        if values.dtype.kind == "i" and values.min() < 0:
            raise InputError(path, f"the {what} holds negative values ({values.min()}); {RAW_COUNTS_HINT}")
        if values.max() > FLOAT64_EXACT:
            raise InputError(
                path, f"the {what} holds counts above 2^53 ({values.max()}), which no float holds exactly"
            )
        return
    if values.dtype.kind != "f":
        raise InputError(path, f"the {what} holds {values.dtype} values, not numbers")
    if not np.all(np.isfinite(values)):
        raise InputError(path, f"the {what} holds NaN or infinite values; {RAW_COUNTS_HINT}")
    if values.min() < 0:
        raise InputError(path, f"the {what} holds negative values ({values.min():g}); {RAW_COUNTS_HINT}")
    fractional = values[values != np.round(values)]
    if fractional.size:
        raise InputError(
            path, f"the {what} holds non-integer values (e.g. {fractional[0]:g}); {RAW_COUNTS_HINT}"
        )
    if values.max() > FLOAT64_EXACT:
        raise InputError(
            path, f"the {what} holds counts above 2^53 ({values.max():g}), which no float holds exactly"
        )


def check_names(names, *, path: str | os.PathLike, where: str = "") -> None:
    """Raise :class:`InputError` for a name longer than the limit or holding a control character
    (which no later step, nor Loom's text encoding, would keep). ``where`` names the dataset."""
    for name in names:
        if len(name) > MAX_NAME_CHARACTERS:
            raise InputError(
                path,
                f"{where}holds a name of {len(name)} characters; at most {MAX_NAME_CHARACTERS} are allowed",
            )
        if CONTROL.search(name):
            raise InputError(path, f"{where}holds a name with a control character: {name!r}")


def check_unique(names: np.ndarray, *, path: str | os.PathLike, what: str) -> None:
    """Raise :class:`InputError` if ``names`` has duplicates."""
    names = np.asarray(names, dtype=object).tolist()
    if len(set(names)) == len(names):
        return
    duplicated = sorted(name for name, count in Counter(names).items() if count > 1)
    shown = ", ".join(map(str, duplicated[:5]))
    raise InputError(path, f"{len(duplicated)} duplicate {what} (e.g. {shown}); {what} must be unique")


def make_unique(names: np.ndarray) -> np.ndarray:
    """Append ``-1``, ``-2``... to repeated names, as scanpy's ``var_names_make_unique``."""
    names = np.asarray(names, dtype=object)
    seen: dict[str, int] = {}
    taken = set(names.tolist())
    result = names.copy()
    for i, name in enumerate(names):
        if name not in seen:
            seen[name] = 0
            continue
        while True:
            seen[name] += 1
            candidate = f"{name}-{seen[name]}"
            if candidate not in taken:
                break
        taken.add(candidate)
        result[i] = candidate
    return result


class CountsSource(Protocol):
    """An opened input (:func:`deepimpute_tool.formats.open_input`): a :class:`Dataset` in
    memory, or a Loom whose cells are read on demand."""

    n_cells: int
    n_genes: int
    genes: np.ndarray
    cells: np.ndarray

    def read_dataset(self, *, layers: bool = True, cells: np.ndarray | None = None) -> Dataset: ...


def require_cells_and_genes(dataset: CountsSource, path: str | os.PathLike) -> None:
    """Raise :class:`InputError` for an empty matrix or repeated cell IDs."""
    if dataset.n_cells == 0 or dataset.n_genes == 0:
        raise InputError(path, f"the matrix is empty ({dataset.n_genes} genes x {dataset.n_cells} cells)")
    check_unique(dataset.cells, path=path, what="cell IDs")
