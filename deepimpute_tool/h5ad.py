"""AnnData (.h5ad): read within the limits, and written a block of cells at a time as Loom is.

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
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import scipy.sparse as sp

from deepimpute_tool.dataset import Dataset, as_counts
from deepimpute_tool.errors import InputError
from deepimpute_tool.hdf5 import check_fully_stored, compressed_sparse, dataset, read_strings
from deepimpute_tool.limits import require_memory
from deepimpute_tool.loom import MAIN, MAX_FILE_ATTR_BYTES, RAW_LAYER, CellBlock

if TYPE_CHECKING:
    from deepimpute_tool.h5ad_slots import KeptSlots

COUNTS_LAYER = "counts"
RAW_X = "raw"  # ⟨layer⟩ raw: the counts in .raw.X
TEXT = h5py.string_dtype("utf-8")
COMPRESSION = {"compression": "gzip", "compression_opts": 2, "shuffle": True}


def _encoding(item, kind: str, version: str = "0.2.0") -> None:
    item.attrs["encoding-type"] = kind
    item.attrs["encoding-version"] = version


def write_array(group: h5py.Group, name: str, values: np.ndarray) -> None:
    values = np.asarray(values)
    if values.dtype.kind in "iufb":
        _encoding(group.create_dataset(name, data=values), "array")
    else:
        data = np.array([str(v) for v in values.ravel()], dtype=object).reshape(values.shape)
        _encoding(group.create_dataset(name, data=data, dtype=TEXT), "string-array")


def _dataframe(group: h5py.Group, index: np.ndarray, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Write a data frame of the 1-D ``columns``; return the 2-D ones (for obsm/varm)."""
    write_array(group, "_index", index)
    plain = {name: values for name, values in columns.items() if np.ndim(values) == 1 and name != "_index"}
    for name, values in plain.items():
        write_array(group, name, values)
    _encoding(group, "dataframe")
    group.attrs["_index"] = "_index"
    group.attrs["column-order"] = (
        np.array(list(plain), dtype=object) if plain else np.array([], dtype="float64")
    )
    return {name: values for name, values in columns.items() if np.ndim(values) == 2}


def write_dictionary(handle: h5py.File, name: str) -> h5py.Group:
    group = handle.create_group(name)
    _encoding(group, "dict", "0.1.0")
    return group


class H5adWriter:
    """A new .h5ad filled with blocks of cells, in the order they come: use :meth:`create`."""

    def __init__(self, handle: h5py.File, *, genes: np.ndarray, gene_attrs: dict[str, np.ndarray],
                 layer_dtypes: dict[str, np.dtype], n_cells: int, keep: KeptSlots | None = None,
                 sparse_x: bool = False) -> None:  # fmt: skip
        """``sparse_x``: X as a CSR matrix (counts, mostly zeros) rather than dense (imputed values)."""
        self._file, self._genes, self._gene_attrs, self.n_cells = handle, genes, gene_attrs, 0
        self._keep = keep
        if RAW_LAYER in layer_dtypes and COUNTS_LAYER in layer_dtypes:
            raise InputError(
                None,
                f"has layers '{RAW_LAYER}' and '{COUNTS_LAYER}', which an h5ad holds in one place, "
                f"layers['{COUNTS_LAYER}']: write a Loom instead",
            )
        n_genes = len(genes)
        _encoding(handle, "anndata", "0.1.0")
        self._x = None
        if not sparse_x:
            self._x = handle.create_dataset(
                "X",
                shape=(n_cells, n_genes),
                dtype=layer_dtypes[MAIN],
                chunks=(max(1, min(n_cells, 64)), max(1, min(n_genes, 1024))),
                **COMPRESSION,
            )
            _encoding(self._x, "array")
        layers = write_dictionary(handle, "layers")
        self._sparse = {}
        for name, dtype in layer_dtypes.items():
            if name == MAIN and not sparse_x:
                continue
            parent, key = (
                (handle, "X") if name == MAIN else (layers, COUNTS_LAYER if name == RAW_LAYER else name)
            )
            group = parent.create_group(key)
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
        self._uns = write_dictionary(handle, "uns")

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
        if self._x is not None:
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
        if self._keep is not None:
            self._keep.copy_into(self._file, gene_attrs=self._gene_attrs, uns=self._uns)
            return
        handle = self._file
        cells = np.concatenate(self._cell_ids) if self._cell_ids else np.array([], dtype=object)
        cell_columns = {name: np.concatenate(parts) for name, parts in self._cell_attrs.items()}
        obsm = _dataframe(handle.create_group("obs"), cells, cell_columns)
        varm = _dataframe(handle.create_group("var"), self._genes, self._gene_attrs)
        for name, found in (("obsm", obsm), ("varm", varm)):
            group = write_dictionary(handle, name)
            for key, values in found.items():
                write_array(group, key, values)
        for name in ("obsp", "varp"):
            write_dictionary(handle, name)


# ------------------------------------------------------------------ reading


def text_attr(item, name: str, default: str = "") -> str:
    value = item.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _numbers(item: h5py.Dataset, *, path: Path) -> np.ndarray:
    require_memory(item.size * 8 * 2, path=path, what=f"reading '{item.name}'")
    try:
        values = np.asarray(item[()])
    except (OSError, ValueError, RuntimeError) as error:
        raise InputError(path, f"'{item.name}' cannot be read (truncated or damaged?): {error}") from None
    return values.astype(np.float32) if values.dtype == np.float16 else values


def _values(item, *, path: Path, n: int) -> np.ndarray:
    """A 1-D dataset of ``n`` numbers or text values, read within the limits."""
    if not isinstance(item, h5py.Dataset) or item.shape != (n,):
        shape = getattr(item, "shape", "a group")
        raise InputError(path, f"'{item.name}' is {shape}; a column of {n} values was expected")
    check_fully_stored(item, path=path)
    if item.dtype.kind in "biuf":
        return _numbers(item, path=path)
    if item.dtype.kind in "SOU":
        return read_strings(item, path=path, names=False, loom=False)
    raise InputError(path, f"'{item.name}' holds {item.dtype} values, neither numbers nor text")


def _categories(group: h5py.Group, name: str, item, *, path: Path, n: int) -> np.ndarray:
    """The labels of a categorical column: codes into categories, missing (-1) as 'nan'."""
    if isinstance(item, h5py.Group):  # anndata 0.7 and later
        codes, categories = item.get("codes"), item.get("categories")
    else:  # anndata before 0.7: codes here, categories under __categories
        codes, categories = item, group.get(f"__categories/{name}")
    if codes is None or categories is None:
        raise InputError(path, f"the categorical column '{group.name}/{name}' lacks its codes or categories")
    codes = _values(codes, path=path, n=n)
    labels = _values(categories, path=path, n=(getattr(categories, "shape", None) or (-1,))[0])
    if codes.dtype.kind not in "iu" or (codes.size and (codes.min() < -1 or codes.max() >= labels.size)):
        raise InputError(
            path, f"the codes of '{group.name}/{name}' do not index its {labels.size} categories"
        )
    labels = np.append(labels.astype(str).astype(object), "nan")
    return labels[codes]


def _column(group: h5py.Group, name: str, *, path: Path, n: int) -> np.ndarray:
    item = group.get(name)
    if item is None:
        raise InputError(path, f"'{group.name}' lists a column '{name}' that it does not hold")
    encoding = text_attr(item, "encoding-type")
    if encoding == "categorical" or (isinstance(item, h5py.Dataset) and "categories" in item.attrs):
        return _categories(group, name, item, path=path, n=n)
    if isinstance(item, h5py.Dataset) and encoding in ("", "array", "string-array"):
        return _values(item, path=path, n=n)
    if encoding in ("nullable-integer", "nullable-boolean", "nullable-string-array"):
        values = _values(dataset(item.file, f"{item.name}/values", path=path), path=path, n=n)
        mask = _values(dataset(item.file, f"{item.name}/mask", path=path), path=path, n=n).astype(bool)
        if not mask.any():
            return values
        if values.dtype == object:
            return np.where(mask, "nan", values).astype(object)
        return np.where(mask, np.nan, values.astype(np.float64))
    raise InputError(
        path,
        f"the column '{group.name}/{name}' is stored as '{encoding or 'a group'}', which this tool cannot "
        "read; remove or convert it (e.g. del adata.obs[name]) and write the file again",
    )


def _dataframe_of(handle: h5py.File, axis: str, *, path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The names (index) and the 1-D columns of ``obs`` or ``var``."""
    group = handle.get(axis)
    if not isinstance(group, h5py.Group):
        raise InputError(path, f"has no '{axis}' data frame")
    index = dataset(handle, f"{axis}/{text_attr(group, '_index', '_index')}", path=path)
    check_fully_stored(index, path=path)
    if index.ndim != 1:
        raise InputError(path, f"'{index.name}' has {index.ndim} dimensions; names must have 1")
    names = read_strings(index, path=path, loom=False)
    order = group.attrs.get("column-order", [])
    columns = [c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(order) if str(c)]
    found = {}
    for name in columns:
        if "/" in name:  # Loom's attributes are HDF5 datasets, whose names cannot hold one
            raise InputError(path, f"the {axis} column {name!r} has a '/' in its name; rename it")
        found[name] = _column(group, name, path=path, n=names.size)
    return names, found


def _rename_name_column(columns: dict[str, np.ndarray], names: np.ndarray, *, name: str, axis: str) -> None:
    """A column named as Loom's name attribute (``CellID``, ``Gene``) must not replace the index:
    dropped where it repeats the index, else kept as ``<axis>_<name>`` (``_2``, ``_3``... when
    that is taken too)."""
    column = columns.pop(name, None)
    if column is None or np.array_equal(column.astype(str), names.astype(str)):
        return
    renamed, number = f"{axis}_{name}", 1
    while renamed in columns:
        number += 1
        renamed = f"{axis}_{name}_{number}"
    columns[renamed] = column


def is_h5ad(handle: h5py.File) -> bool:
    """Whether an open HDF5 file is laid out as AnnData (by its encoding, or by obs and var)."""
    return text_attr(handle, "encoding-type") == "anndata" or {"obs", "var"} <= set(handle.keys())


def read_h5ad(
    handle: h5py.File,
    path: Path,
    *,
    layer: str | None = None,
    layers: bool | tuple[str, ...] = False,
    counts: bool = True,
) -> Dataset:
    """:func:`_read_h5ad`, with every way a malformed file can fail as an :class:`InputError`."""
    try:
        return _read_h5ad(handle, path, layer=layer, layers=layers, counts=counts)
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, OSError, AttributeError, IndexError) as error:
        raise InputError(path, f"cannot be read as h5ad: {error}") from None


def counts_location(handle: h5py.File, path: Path, layer: str | None) -> tuple[str, str]:
    """Where ``layer`` says the counts are: the matrix's HDF5 path and the data frame naming its
    genes (``var``, or ``raw/var`` for ``raw.X``)."""
    if layer is None:
        return "X", "var"
    if layer == RAW_X:
        if "raw" not in handle:
            raise InputError(path, f"has no .raw (⟨layer⟩ {RAW_X}); its layers: {_layer_list(handle)}")
        return "raw/X", "raw/var"
    layers = handle.get("layers")
    if not isinstance(layers, h5py.Group) or layer not in layers:
        raise InputError(path, f"has no layer '{layer}' (⟨layer⟩); its layers: {_layer_list(handle)}")
    return f"layers/{layer}", "var"


def _layer_list(handle: h5py.File) -> str:
    layers = handle.get("layers")
    names = sorted(layers.keys()) if isinstance(layers, h5py.Group) else []
    return ", ".join(names) or "none"


def _read_h5ad(
    handle: h5py.File,
    path: Path,
    *,
    layer: str | None = None,
    layers: bool | tuple[str, ...] = False,
    counts: bool = True,
) -> Dataset:
    """The counts of an open h5ad (``X``, or ``layer``), cells named by ``obs``'s index and genes
    by ``var``'s (``raw/var``'s for ``raw.X``), with the provenance of earlier steps
    (``uns["deepimpute_<step>"]``); with ``layers``, the other layers of those genes (by name; all
    for True, else those named that it has) too. With
    ``counts=False`` the main matrix may hold any numbers (imputed values), as float32 or float64.

    Reads every value itself, within the limits of :mod:`deepimpute_tool.limits`: names,
    numeric and text columns, categoricals (as their labels) and nullable columns (missing
    values as NaN, or 'nan' for text). Anything else is refused, naming the column.
    """
    where, genes_at = counts_location(handle, path, layer)
    cells, cell_attrs = _dataframe_of(handle, "obs", path=path)
    genes, gene_attrs = _dataframe_of(handle, genes_at, path=path)
    _rename_name_column(cell_attrs, cells, name="CellID", axis="obs")
    _rename_name_column(gene_attrs, genes, name="Gene", axis="var")
    shape = (cells.size, genes.size)
    main = _matrix(handle, where, shape=shape, path=path)
    what = "matrix" if layer is None else ("matrix raw.X" if layer == RAW_X else f"layer '{layer}'")
    others = {}
    if layers and genes_at == "var" and isinstance(handle.get("layers"), h5py.Group):
        others = {
            name: _matrix(handle, f"layers/{name}", shape=shape, path=path)
            for name in handle["layers"].keys()
            if f"layers/{name}" != where and (layers is True or name in layers)
        }
    return Dataset(
        counts=as_counts(main, path=path, what=what)
        if counts
        else main.astype(np.result_type(main.dtype, np.float32)),
        genes=genes,
        cells=cells,
        gene_attrs=gene_attrs,
        cell_attrs=cell_attrs,
        layers=others,
        file_attrs=_provenance(handle, path),
    )


def _matrix(handle: h5py.File, where: str, *, shape: tuple[int, int], path: Path) -> sp.csr_matrix:
    """The cells x genes matrix at ``where`` (dense, CSR or CSC), as CSR, checked before it is built."""
    x = handle.get(where)
    if x is None:
        raise InputError(path, f"is an h5ad without {where} (no matrix of counts)")
    if isinstance(x, h5py.Dataset):
        if x.shape != shape or x.dtype.kind not in "biuf":
            raise InputError(path, f"{where} is {x.shape} {x.dtype}; expected numbers of shape {shape}")
        check_fully_stored(x, path=path)
        return sp.csr_matrix(_numbers(x, path=path))
    encoding = text_attr(x, "encoding-type")
    declared = tuple(int(n) for n in np.atleast_1d(x.attrs.get("shape", ())))
    if encoding not in ("csr_matrix", "csc_matrix") or declared != shape:
        raise InputError(path, f"{where} is a {encoding or 'group'} of shape {declared}, expected {shape}")
    return sp.csr_matrix(
        compressed_sparse(handle, x, shape=shape, path=path, by_rows=encoding == "csr_matrix")
    )


def _provenance(handle: h5py.File, path: Path) -> dict[str, str]:
    """The text entries ``uns["deepimpute_<step>"]`` that earlier steps wrote, as Loom's global attributes."""
    uns = handle.get("uns")
    found = {}
    for key in uns.keys() if isinstance(uns, h5py.Group) else ():
        item = uns[key] if key.startswith("deepimpute_") else None
        text = h5py.check_string_dtype(item.dtype) if isinstance(item, h5py.Dataset) else None
        if text is not None and item.ndim == 0 and (text.length or 0) <= MAX_FILE_ATTR_BYTES:
            value = item[()]
            value = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            if len(value) <= MAX_FILE_ATTR_BYTES:
                found[key] = value
    return found
