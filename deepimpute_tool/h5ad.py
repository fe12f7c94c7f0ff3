"""Writing AnnData (.h5ad) for scanpy users, a block of cells at a time, as the Loom writer does.

The layout is AnnData's on-disk format (encoding-version 0.1.0/0.2.0 attributes), which
``anndata.read_h5ad`` and scanpy read: the imputed counts are ``X`` (dense), the input's
counts ``layers["counts"]`` (sparse rows), any other layer ``layers[name]``, the cells'
and genes' annotations ``obs`` and ``var`` (2-D ones in ``obsm``/``varm``), and the
provenance of every step ``uns[deepimpute_<step>]`` as JSON text.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import h5py
import numpy as np
import scipy.sparse as sp

from deepimpute_tool.loom import MAIN, RAW_LAYER, CellBlock

COUNTS_LAYER = "counts"
TEXT = h5py.string_dtype("utf-8")
COMPRESSION = {"compression": "gzip", "compression_opts": 2, "shuffle": True}


def _encoding(item, kind: str, version: str = "0.2.0") -> None:
    item.attrs["encoding-type"] = kind
    item.attrs["encoding-version"] = version


def _array(group: h5py.Group, name: str, values: np.ndarray) -> None:
    values = np.asarray(values)
    if values.dtype.kind in "iufb":
        _encoding(group.create_dataset(name, data=values), "array")
    else:
        data = np.array([str(v) for v in values.ravel()], dtype=object).reshape(values.shape)
        _encoding(group.create_dataset(name, data=data, dtype=TEXT), "string-array")


def _dataframe(group: h5py.Group, index: np.ndarray, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Write a data frame of the 1-D ``columns``; return the 2-D ones (for obsm/varm)."""
    _array(group, "_index", index)
    plain = {name: values for name, values in columns.items() if np.ndim(values) == 1 and name != "_index"}
    for name, values in plain.items():
        _array(group, name, values)
    _encoding(group, "dataframe")
    group.attrs["_index"] = "_index"
    group.attrs["column-order"] = (
        np.array(list(plain), dtype=object) if plain else np.array([], dtype="float64")
    )
    return {name: values for name, values in columns.items() if np.ndim(values) == 2}


def _dictionary(handle: h5py.File, name: str) -> h5py.Group:
    group = handle.create_group(name)
    _encoding(group, "dict", "0.1.0")
    return group


class H5adWriter:
    """A new .h5ad filled with blocks of cells, in the order they come: use :meth:`create`."""

    def __init__(self, handle: h5py.File, *, genes: np.ndarray, gene_attrs: dict[str, np.ndarray],
                 layer_dtypes: dict[str, np.dtype], n_cells: int) -> None:  # fmt: skip
        self._file, self._genes, self._gene_attrs, self.n_cells = handle, genes, gene_attrs, 0
        n_genes = len(genes)
        _encoding(handle, "anndata", "0.1.0")
        self._x = handle.create_dataset(
            "X",
            shape=(n_cells, n_genes),
            dtype=layer_dtypes[MAIN],
            chunks=(max(1, min(n_cells, 64)), max(1, min(n_genes, 1024))),
            **COMPRESSION,
        )
        _encoding(self._x, "array")
        layers = _dictionary(handle, "layers")
        self._sparse = {}
        for name, dtype in layer_dtypes.items():
            if name == MAIN:
                continue
            group = layers.create_group(COUNTS_LAYER if name == RAW_LAYER else name)
            _encoding(group, "csr_matrix", "0.1.0")
            group.attrs["shape"] = np.array([n_cells, n_genes])
            group.create_dataset(
                "data", shape=(0,), maxshape=(None,), dtype=dtype, chunks=(2**16,), **COMPRESSION
            )
            group.create_dataset(
                "indices", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(2**16,), **COMPRESSION
            )
            group.create_dataset("indptr", data=np.zeros(n_cells + 1, np.int64))
            self._sparse[name] = group
        self._cell_ids: list[np.ndarray] = []
        self._cell_attrs: dict[str, list[np.ndarray]] = {}
        self._uns = _dictionary(handle, "uns")

    @classmethod
    @contextlib.contextmanager
    def create(cls, path: str | os.PathLike, **layout) -> Iterator[H5adWriter]:
        """Create ``path`` (a temporary path from :mod:`deepimpute_tool.outputs`) for ``layout``."""
        try:
            with h5py.File(path, "w") as handle:
                writer = cls(handle, **layout)
                yield writer
                writer._finish()
        except RuntimeError as error:  # h5py reports a failed flush or close this way
            raise OSError(str(error)) from None

    def append(self, block: CellBlock) -> None:
        """Add a block's cells: its matrices (cells x genes) and attributes (IDs as ``CellID``)."""
        rows = slice(self.n_cells, self.n_cells + block.matrices[MAIN].shape[0])
        self._x[rows] = block.matrices[MAIN]
        for name, group in self._sparse.items():
            part = sp.csr_matrix(block.matrices[name])
            start = group["data"].shape[0]
            for key, values in (("data", part.data), ("indices", part.indices.astype(np.int32))):
                group[key].resize((start + values.size,))
                group[key][start:] = values
            group["indptr"][rows.start + 1 : rows.stop + 1] = part.indptr[1:] + start
        attrs = dict(block.cell_attrs)
        self._cell_ids.append(attrs.pop("CellID"))
        for name, values in attrs.items():
            self._cell_attrs.setdefault(name, []).append(values)
        self.n_cells = rows.stop

    def set_file_attrs(self, attrs: dict[str, str]) -> None:
        """Provenance: each global attribute as text in ``uns``."""
        for key, value in attrs.items():
            if key in self._uns:
                del self._uns[key]
            _encoding(self._uns.create_dataset(key, data=str(value), dtype=TEXT), "string")

    def _finish(self) -> None:
        handle = self._file
        cells = np.concatenate(self._cell_ids) if self._cell_ids else np.array([], dtype=object)
        cell_columns = {name: np.concatenate(parts) for name, parts in self._cell_attrs.items()}
        obsm = _dataframe(handle.create_group("obs"), cells, cell_columns)
        varm = _dataframe(handle.create_group("var"), self._genes, self._gene_attrs)
        for name, found in (("obsm", obsm), ("varm", varm)):
            group = _dictionary(handle, name)
            for key, values in found.items():
                _array(group, key, values)
        for name in ("obsp", "varp"):
            _dictionary(handle, name)
