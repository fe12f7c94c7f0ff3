"""The Loom edge: every Loom file is read by :class:`LoomReader` and written by :class:`LoomWriter`.

Genes are rows and cells are columns, as the Loom 3.0 specification says; inside the
package a block of cells is cells x genes. The reader checks the whole structure when it
opens a file (through :func:`deepimpute_tool.hdf5.open_hdf5`, which refuses anything that
reaches outside it), then yields blocks of cells of bounded size; the writer appends such
blocks. The layer names the steps share are defined here.

Text is written as the Loom specification asks (ASCII, other characters as XML character
references, ``&`` escaped too), so loompy, scanpy and this reader all read back exactly the
names that were written. Matrices go through HDF5's byte-shuffle filter before gzip: about a
third less time to write imputed values and a tenth smaller, readable by every HDF5 reader.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from deepimpute_tool import __version__
from deepimpute_tool.dataset import Dataset, as_counts, count_dtype
from deepimpute_tool.errors import DeepImputeError, InputError
from deepimpute_tool.hdf5 import check_fully_stored, dataset, encode_strings, open_hdf5, read_strings
from deepimpute_tool.limits import BLOCK_BYTES, MAX_TEXT_BYTES, require_memory

MAIN = ""  # the main matrix, as a layer name
RAW_LAYER = "raw"  # impute: the input's counts
ORIGINAL_LAYER = "original"  # mask: the true counts
HELDOUT_LAYER = "heldout"  # masking by molecular cross-validation: the held-out molecules
UNCERTAINTY_LAYER = "uncertainty"  # imputing with uncertainty: the spread of dropout-sampled predictions
DETECTED_FILL_LAYER = "detected_fill"  # impute: the paper's imputation beside a denoised main matrix
DETECTION_LAYER = "detection_probability"  # impute: the probability of detection
INTERVAL_LOW_LAYER = "interval_low"  # impute with intervals: the bounds of the calibrated interval
INTERVAL_HIGH_LAYER = "interval_high"
# dense, noise-like floats: gzip would take 7 times as long to write them, for 30% less space
UNCOMPRESSED_LAYERS = (UNCERTAINTY_LAYER, INTERVAL_LOW_LAYER, INTERVAL_HIGH_LAYER)
IMPUTED_GENE_ATTR = "deepimpute_imputed"  # impute: 1 for the genes the model imputes, else 0
GENE_ATTRS = ("Gene", "var_names", "gene_names", "gene_ids")
CELL_ATTRS = ("CellID", "obs_names", "cell_names", "barcodes")
RESERVED_FILE_ATTRS = ("LOOM_SPEC_VERSION", "CreationDate", "last_modified")
MAX_FILE_ATTR_BYTES = 2**20
COMPRESSION = {"compression": "gzip", "compression_opts": 2}


@dataclass(frozen=True)
class CellBlock:
    """Consecutive cells: their matrices (cells x genes, by layer name, ``""`` the main one)."""

    cells: slice
    matrices: dict[str, np.ndarray]
    cell_attrs: dict[str, np.ndarray]


def provenance(step: str, parameters: dict) -> dict[str, str]:
    """The global attribute that records which tool version ran a step with which parameters."""
    record = {
        "tool": "deepimpute-tool",
        "version": __version__,
        "step": step,
        "parameters": parameters,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return {f"deepimpute_{step}": json.dumps(record, default=str)}


def cells_per_block(n_genes: int, itemsize: int, chunk_cells: int | None = None) -> int:
    """Cells in one dense block: ``chunk_cells``, or as many as fit in about 64 MiB."""
    if chunk_cells is not None:
        return chunk_cells
    return max(1, BLOCK_BYTES // (itemsize * max(n_genes, 1)))


def _is_number(item: h5py.Dataset) -> bool:
    return item.dtype.kind in "iufb"


class LoomReader:
    """An open Loom file, its structure checked: use :meth:`open`."""

    def __init__(self, handle: h5py.File, path: Path) -> None:
        self.path = path
        self._file = handle
        matrix = dataset(handle, "matrix", path=path)
        if matrix.ndim != 2:
            raise InputError(path, f"'/matrix' has {matrix.ndim} dimensions; a Loom matrix has 2")
        if not _is_number(matrix):
            raise InputError(path, f"'/matrix' holds {matrix.dtype} values, not numbers")
        self.n_genes, self.n_cells = matrix.shape
        self._layers = {MAIN: matrix}
        layers = handle.get("layers")
        for name in layers.keys() if isinstance(layers, h5py.Group) else ():
            item = dataset(handle, f"layers/{name}", path=path)
            if item.shape != matrix.shape or not _is_number(item):
                raise InputError(
                    path,
                    f"layer '{name}' is {item.shape} {item.dtype}; layers must be numbers of the "
                    f"matrix's shape {matrix.shape}",
                )
            self._layers[name] = item
        self._row_attrs = self._attrs("row_attrs", self.n_genes, "genes")
        self._col_attrs = self._attrs("col_attrs", self.n_cells, "cells")
        self.gene_attr = next((n for n in GENE_ATTRS if n in self._row_attrs), None)
        self.cell_attr = next((n for n in CELL_ATTRS if n in self._col_attrs), None)
        if self.gene_attr is None:
            raise InputError(path, f"has no gene names (row attribute {' or '.join(GENE_ATTRS)})")
        if self.cell_attr is None:
            raise InputError(path, f"has no cell IDs (column attribute {' or '.join(CELL_ATTRS)})")
        self.genes = read_strings(self._row_attrs[self.gene_attr], path=path)
        self.cells = read_strings(self._col_attrs[self.cell_attr], path=path)

    def _attrs(self, group_name: str, length: int, what: str) -> dict[str, h5py.Dataset]:
        group = self._file.get(group_name)
        found = {}
        for name in group.keys() if isinstance(group, h5py.Group) else ():
            item = dataset(self._file, f"{group_name}/{name}", path=self.path)
            if item.ndim == 0 or item.shape[0] != length:
                raise InputError(
                    self.path, f"attribute '{group_name}/{name}' has shape {item.shape} for {length} {what}"
                )
            if not (_is_number(item) or h5py.check_string_dtype(item.dtype) or item.dtype.kind in "SU"):
                raise InputError(
                    self.path,
                    f"attribute '{group_name}/{name}' holds {item.dtype} values: numbers or text only",
                )
            check_fully_stored(item, path=self.path)
            found[name] = item
        return found

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: str | os.PathLike) -> Iterator[LoomReader]:
        """Open a Loom file read-only; every way it can be unusable becomes :class:`InputError`."""
        path = Path(path)
        with open_hdf5(path, kind="Loom") as handle:
            yield cls.of(handle, path)

    @classmethod
    def of(cls, handle: h5py.File, path: Path) -> LoomReader:
        """The Loom in ``handle``, an HDF5 file opened by :func:`~deepimpute_tool.hdf5.open_hdf5`."""
        if "matrix" not in handle:
            raise InputError(path, "is HDF5 but not a Loom file: it has no /matrix")
        try:
            return cls(handle, path)
        except DeepImputeError:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
            raise InputError(path, f"cannot be read as Loom (truncated or damaged?): {error}") from None

    @property
    def layer_names(self) -> list[str]:
        """Layers besides the main matrix."""
        return [name for name in self._layers if name != MAIN]

    def layout(self) -> dict:
        """What a writer needs to make a file of this one's genes and layers (with their types)."""
        return {
            "genes": self.genes,
            "gene_attrs": self.gene_attrs(),
            "layer_dtypes": {name: layer.dtype for name, layer in self._layers.items()},
        }

    def read(self, item: h5py.Dataset, index) -> np.ndarray:
        """``item[index]``; a chunk that cannot be read or decompressed is an :class:`InputError`."""
        try:
            return np.asarray(item[index])
        except (OSError, ValueError, RuntimeError) as error:
            raise InputError(
                self.path, f"'{item.name}' cannot be read (truncated or damaged?): {error}"
            ) from None

    def _attr_values(self, item: h5py.Dataset, rows: slice | None = None) -> np.ndarray:
        if _is_number(item):
            return self.read(item, rows or slice(None))
        return read_strings(item, path=self.path, names=False, rows=rows)

    def gene_attrs(self) -> dict[str, np.ndarray]:
        """Every row (gene) attribute but the gene names."""
        return {k: self._attr_values(v) for k, v in self._row_attrs.items() if k != self.gene_attr}

    def cell_attrs(self, cells: slice | None = None) -> dict[str, np.ndarray]:
        """Every column (cell) attribute but the cell IDs, for ``cells``."""
        return {k: self._attr_values(v, cells) for k, v in self._col_attrs.items() if k != self.cell_attr}

    def file_attrs(self, *, exclude: tuple[str, ...] = ()) -> dict[str, str]:
        """Global attributes worth carrying to an output: all but the format's own and ``exclude``."""
        found: dict[str, str] = {}
        for key, value in self._file.attrs.items():  # Loom 2: attributes of the root
            found[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        group = self._file.get("attrs")
        for key in group.keys() if isinstance(group, h5py.Group) else ():  # Loom 3: /attrs/NAME
            item = dataset(self._file, f"attrs/{key}", path=self.path)
            if item.ndim == 0:
                found[key] = _scalar(item)
            elif _is_number(item) and item.size * item.dtype.itemsize <= MAX_FILE_ATTR_BYTES:
                found[key] = json.dumps(np.asarray(item[()]).tolist())
        return {
            k: v
            for k, v in found.items()
            if k not in (*RESERVED_FILE_ATTRS, *exclude) and len(v) <= MAX_FILE_ATTR_BYTES
        }

    def count_dtype(self) -> np.dtype:
        """float32 or float64: the narrower that holds the main matrix's counts exactly."""
        matrix = self._layers[MAIN]
        if matrix.dtype.kind == "b" or (matrix.dtype.kind in "iuf" and matrix.dtype.itemsize <= 2):
            return np.dtype(np.float32)
        if matrix.dtype == np.float32:
            return np.dtype(np.float32)
        largest = 0.0
        for block in self.blocks(layers=(MAIN,), counts=()):
            values = block.matrices[MAIN]
            if values.size:
                largest = max(largest, float(values.max()))
        return count_dtype(largest)

    def blocks(
        self,
        *,
        layers: tuple[str, ...] = (MAIN,),
        counts: tuple[str, ...] = (MAIN,),
        chunk_cells: int | None = None,
        attrs: bool = False,
        within: slice | None = None,
    ) -> Iterator[CellBlock]:
        """Blocks of consecutive cells, cells x genes, of about 64 MiB each (or ``chunk_cells`` cells).

        Layers named in ``counts`` are checked to hold counts and given as float32 or float64;
        the others keep their type. With ``attrs``, each block carries its cells' attributes
        (IDs as ``CellID``). ``within`` restricts the blocks to a range of cells.
        """
        first, last = (within.start, within.stop) if within else (0, self.n_cells)
        for name in layers:
            if name not in self._layers:
                raise InputError(self.path, f"has no layer '{name}'")
        widest = max(self._layers[name].dtype.itemsize for name in layers)
        step = cells_per_block(self.n_genes, max(widest, 4), chunk_cells)
        for start in range(first, last, step):
            cells = slice(start, min(start + step, last))
            matrices = {}
            for name in layers:
                values = self.read(self._layers[name], (slice(None), cells)).T
                if name in counts:
                    what = "matrix" if name == MAIN else f"layer '{name}'"
                    values = as_counts(values, path=self.path, what=what)
                matrices[name] = values
            cell_attrs = {}
            if attrs:
                cell_attrs = {"CellID": self.cells[cells], **self.cell_attrs(cells)}
            yield CellBlock(cells, matrices, cell_attrs)

    def read_dataset(
        self, *, layers: bool = True, chunk_cells: int | None = None, cells: np.ndarray | None = None
    ) -> Dataset:
        """The file (its ``cells``, indices in order, if given) as a sparse :class:`Dataset`, memory
        checked as it grows."""
        names = (MAIN, *self.layer_names) if layers else (MAIN,)
        parts: dict[str, list[sp.csr_matrix]] = {name: [] for name in names}
        keep = None
        if cells is not None:
            keep = np.zeros(self.n_cells, bool)
            keep[cells] = True
        held = 0
        for block in self.blocks(layers=names, counts=(MAIN,), chunk_cells=chunk_cells):
            for name, values in block.matrices.items():
                part = sp.csr_matrix(values if keep is None else values[keep[block.cells]])
                held += part.data.nbytes + part.indices.nbytes + part.indptr.nbytes
                parts[name].append(part)
            require_memory(held, path=self.path, what=f"holding the matrix ({held} bytes so far)")

        def stack(blocks: list[sp.csr_matrix], name: str) -> sp.csr_matrix:
            if not blocks:
                return sp.csr_matrix((0, self.n_genes), dtype=self._layers[name].dtype)
            return sp.csr_matrix(sp.vstack(blocks, format="csr"))

        chosen = slice(None) if cells is None else cells
        return Dataset(
            counts=stack(parts[MAIN], MAIN),
            genes=self.genes,
            cells=self.cells[chosen],
            gene_attrs=self.gene_attrs(),
            cell_attrs={name: values[chosen] for name, values in self.cell_attrs().items()},
            layers={name: stack(parts[name], name) for name in names if name != MAIN},
            file_attrs=self.file_attrs(),
        )


def _scalar(item: h5py.Dataset) -> str:
    """A global attribute's value as text (text attributes as written, ASCII ones unescaped)."""
    value = item[()]
    if not isinstance(value, bytes):
        return str(value)
    text = value.decode("utf-8", "replace")
    info = h5py.check_string_dtype(item.dtype)
    return html.unescape(text) if info is None or info.encoding == "ascii" else text


def read_loom(path: str | os.PathLike, *, layers: bool = True) -> Dataset:
    """Read a whole Loom file into a sparse :class:`Dataset`, checking that it holds counts."""
    with LoomReader.open(path) as reader:
        return reader.read_dataset(layers=layers)


# ------------------------------------------------------------------- writing


def _attr_dataset(group: h5py.Group, name: str, values: np.ndarray, *, growable: bool) -> None:
    values = np.asarray(values)
    if values.dtype.kind == "b":  # loompy refuses boolean attributes
        values = values.astype(np.uint8)
    maxshape = (None, *values.shape[1:]) if growable else values.shape
    chunks = (max(1, min(values.shape[0], 4096)), *values.shape[1:]) if values.size else None
    if values.dtype.kind in "iufb":
        group.create_dataset(name, data=values, maxshape=maxshape, chunks=chunks, **COMPRESSION)
        return
    encoded = np.array([bytes(v) for v in encode_strings(values)], dtype=object).reshape(values.shape)
    if any(len(v) > MAX_TEXT_BYTES for v in encoded.ravel()):
        # an h5ad's text, within its limit, can outgrow it as Loom writes it (& as &amp;, é as &#233;)
        raise InputError(
            None, f"the attribute '{name}' holds text of more than {MAX_TEXT_BYTES} bytes as a Loom stores it"
        )
    group.create_dataset(
        name, data=encoded, dtype=h5py.string_dtype("ascii"), maxshape=maxshape, chunks=chunks, **COMPRESSION
    )


def _append(item: h5py.Dataset, values: np.ndarray, *, axis: int) -> None:
    start = item.shape[axis]
    item.resize(start + values.shape[axis], axis=axis)
    index = [slice(None)] * item.ndim
    index[axis] = slice(start, start + values.shape[axis])
    if h5py.check_string_dtype(item.dtype):
        values = np.array([bytes(v) for v in encode_strings(values)], dtype=object).reshape(values.shape)
    item[tuple(index)] = values


class LoomWriter:
    """A new Loom file filled with blocks of cells: use :meth:`create`."""

    def __init__(self, handle: h5py.File, *, genes: np.ndarray, gene_attrs: dict[str, np.ndarray],
                 layer_dtypes: dict[str, np.dtype]) -> None:  # fmt: skip
        self._file = handle
        n_genes = len(genes)
        for group in ("layers", "row_attrs", "col_attrs", "row_graphs", "col_graphs", "attrs"):
            handle.create_group(group)
        self._matrices = {}
        for name, dtype in layer_dtypes.items():
            self._matrices[name] = handle.create_dataset(
                "matrix" if name == MAIN else f"layers/{name}",
                shape=(n_genes, 0),
                maxshape=(n_genes, None),
                dtype=dtype,
                chunks=(max(1, min(n_genes, 64)), 64),
                **({} if name in UNCOMPRESSED_LAYERS else {"shuffle": True, **COMPRESSION}),
            )
        for name, values in {"Gene": genes, **gene_attrs}.items():
            _attr_dataset(handle["row_attrs"], name, values, growable=False)
        self.n_cells = 0

    @classmethod
    @contextlib.contextmanager
    def create(cls, path: str | os.PathLike, **layout) -> Iterator[LoomWriter]:
        """Create ``path`` (a temporary path from :mod:`deepimpute_tool.outputs`) for ``layout``.

        HDF5's failures to write (a full disk, a file-size limit) come out as ``OSError``.
        """
        try:
            with h5py.File(path, "w", libver=("earliest", "v110")) as handle:
                writer = cls(handle, **layout)
                yield writer
                attrs = handle["attrs"]
                for key, value in {
                    "LOOM_SPEC_VERSION": "3.0.0",
                    "CreationDate": datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ"),
                }.items():
                    if key not in attrs:
                        attrs.create_dataset(key, data=encode_strings(np.array([value]))[0])
        except RuntimeError as error:  # h5py reports a failed flush or close this way
            raise OSError(str(error)) from None

    def append(self, block: CellBlock) -> None:
        """Add a block's cells: a matrix for every layer, and its cell attributes (IDs as ``CellID``)."""
        if set(block.matrices) != set(self._matrices):
            raise ValueError(
                f"a block has layers {sorted(block.matrices)}, the file {sorted(self._matrices)}"
            )
        for name, values in block.matrices.items():
            _append(self._matrices[name], np.asarray(values).T, axis=1)
        group = self._file["col_attrs"]
        for name, values in block.cell_attrs.items():
            if self.n_cells == 0:
                _attr_dataset(group, name, values, growable=True)
            elif name in group:
                _append(group[name], values, axis=0)
            else:
                raise ValueError(f"cell attribute {name} appears after the first block")
        self.n_cells += next(iter(block.matrices.values())).shape[0]

    def set_file_attrs(self, attrs: dict[str, str]) -> None:
        """Global attributes (provenance), as text."""
        group = self._file["attrs"]
        for key, value in attrs.items():
            if key in group:
                del group[key]
            group.create_dataset(key, data=encode_strings(np.array([value]))[0])
