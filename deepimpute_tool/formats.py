"""Reading counts from every format ``filter`` accepts: Loom, h5ad, 10x HDF5, a 10x folder, CSV/TSV.

Every reader checks what a file declares (shapes, index ranges, name lengths) against what it
holds and against the memory left before it allocates, and turns every way a file can be
unusable into :class:`~deepimpute_tool.errors.InputError` naming it. HDF5 inputs are opened
through :func:`deepimpute_tool.hdf5.open_hdf5`, which refuses references outside the file.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from deepimpute_tool.dataset import Dataset, as_counts, check_unique
from deepimpute_tool.errors import DeepImputeError, InputError
from deepimpute_tool.hdf5 import check_fully_stored, dataset, open_hdf5, read_strings, require_file
from deepimpute_tool.limits import MAX_NAME_CHARACTERS, require_memory
from deepimpute_tool.loom import LoomReader

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".tabular")


def _compressed_sparse(handle: h5py.File, group: h5py.Group, *, shape: tuple[int, int], path: Path,
                       by_rows: bool) -> sp.spmatrix:  # fmt: skip
    """A CSR (``by_rows``) or CSC matrix from ``data``/``indices``/``indptr``, checked before it is built."""
    parts = {
        name: dataset(handle, f"{group.name}/{name}", path=path) for name in ("data", "indices", "indptr")
    }
    for item in parts.values():
        if item.ndim != 1:
            raise InputError(path, f"'{item.name}' has {item.ndim} dimensions; it must have 1")
        check_fully_stored(item, path=path)
    n_major = shape[0] if by_rows else shape[1]
    if parts["indptr"].shape[0] != n_major + 1 or parts["data"].shape != parts["indices"].shape:
        raise InputError(path, f"'{group.name}' does not describe a sparse matrix of shape {shape}")
    require_memory(
        sum(item.size * max(item.dtype.itemsize, 4) for item in parts.values()) * 2,
        path=path,
        what=f"the matrix '{group.name}'",
    )
    data, indices, indptr = (np.asarray(parts[name][()]) for name in ("data", "indices", "indptr"))
    n_minor = shape[1] if by_rows else shape[0]
    if indptr[0] != 0 or indptr[-1] != data.size or np.any(np.diff(indptr) < 0):
        raise InputError(path, f"'{group.name}/indptr' is not a valid index")
    if indices.size and (indices.min() < 0 or indices.max() >= n_minor):
        raise InputError(path, f"'{group.name}/indices' points outside the matrix's {n_minor} columns")
    kind = sp.csr_matrix if by_rows else sp.csc_matrix
    return kind((data, indices, indptr), shape=shape)


def _read_h5ad(handle: h5py.File, path: Path) -> Dataset:
    try:
        from anndata.io import read_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import read_elem

    try:
        names = {}
        for axis in ("obs", "var"):
            group = handle[axis]
            index_name = group.attrs.get("_index", "_index")
            index_name = index_name.decode() if isinstance(index_name, bytes) else str(index_name)
            item = dataset(handle, f"{axis}/{index_name}", path=path)
            check_fully_stored(item, path=path)
            names[axis] = read_strings(item, path=path)
        shape = (names["obs"].size, names["var"].size)
        x = handle["X"]
        if isinstance(x, h5py.Dataset):
            if x.shape != shape or x.dtype.kind not in "iuf":
                raise InputError(path, f"X is {x.shape} {x.dtype}; expected numbers of shape {shape}")
            require_memory(x.size * 8, path=path, what="X")
            counts = sp.csr_matrix(np.asarray(x[()]))
        else:
            encoding = x.attrs.get("encoding-type", b"")
            encoding = encoding.decode() if isinstance(encoding, bytes) else str(encoding)
            declared = tuple(int(n) for n in x.attrs.get("shape", ()))
            if encoding not in ("csr_matrix", "csc_matrix") or declared != shape:
                raise InputError(path, f"X is a {encoding or 'group'} of shape {declared}, expected {shape}")
            counts = _compressed_sparse(handle, x, shape=shape, path=path, by_rows=encoding == "csr_matrix")
        annotations = {axis: read_elem(handle[axis]) for axis in ("obs", "var")}
    except DeepImputeError:
        raise
    except (KeyError, TypeError, ValueError, OSError, AttributeError) as error:
        raise InputError(path, f"cannot be read as h5ad: {error}") from None
    return Dataset(
        counts=as_counts(sp.csr_matrix(counts), path=path),
        genes=names["var"],
        cells=names["obs"],
        gene_attrs=_plain_columns(annotations["var"]),
        cell_attrs=_plain_columns(annotations["obs"]),
    )


def _plain_columns(frame) -> dict[str, np.ndarray]:
    """Columns of a data frame that Loom can hold: numbers, and text (categories as their labels)."""
    found = {}
    for name, column in frame.items():
        if column.dtype.kind in "biuf":
            found[str(name)] = column.to_numpy()
        elif column.dtype == object or str(column.dtype) in ("category", "string"):
            found[str(name)] = column.astype(str).to_numpy(dtype=object)
    return found


def _read_10x_h5(handle: h5py.File, path: Path) -> Dataset:
    try:
        if "matrix" in handle:  # Cell Ranger 3 and later
            group, genes_at, ids_at = handle["matrix"], "matrix/features/name", "matrix/features/id"
        else:  # Cell Ranger 2: one group per genome
            genome = next(iter(handle.keys()))
            group, genes_at, ids_at = handle[genome], f"{genome}/gene_names", f"{genome}/genes"
        shape_item = dataset(handle, f"{group.name}/shape", path=path)
        n_genes, n_cells = (int(n) for n in shape_item[()])
        genes = read_strings(dataset(handle, genes_at, path=path), path=path)
        accessions = read_strings(dataset(handle, ids_at, path=path), path=path)
        cells = read_strings(dataset(handle, f"{group.name}/barcodes", path=path), path=path)
        if (genes.size, cells.size, accessions.size) != (n_genes, n_cells, n_genes):
            raise InputError(
                path,
                f"declares {n_genes} genes x {n_cells} cells but names {genes.size} genes and {cells.size} cells",
            )
        matrix = _compressed_sparse(handle, group, shape=(n_genes, n_cells), path=path, by_rows=False)
    except DeepImputeError:
        raise
    except (KeyError, TypeError, ValueError, OSError, StopIteration) as error:
        raise InputError(
            path, f"is HDF5 but not a Loom, h5ad or 10x Genomics matrix file ({error})"
        ) from None
    return Dataset(
        counts=as_counts(sp.csr_matrix(matrix.T), path=path),
        genes=genes,
        cells=cells,
        gene_attrs={"Accession": accessions},
    )


def _open_text(path: Path):
    return (
        gzip.open(path, "rt", encoding="utf-8", newline="")
        if path.suffix == ".gz"
        else open(path, encoding="utf-8", newline="")
    )


def _find(directory: Path, *names: str) -> Path:
    for name in names:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise InputError(directory, f"is not a 10x folder: it has no {' or '.join(names)}[.gz]")


def _names_column(path: Path, column: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Names in a tab-separated file (first column; ``column`` too, when the file has it)."""
    first, chosen = [], []
    with _open_text(path) as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if not row:
                continue
            first.append(row[0])
            if column is not None:
                chosen.append(row[column] if len(row) > column else row[0])
    names = np.array(first, dtype=object)
    for value in names:
        if len(value) > MAX_NAME_CHARACTERS:
            raise InputError(path, f"holds a name of {len(value)} characters; at most {MAX_NAME_CHARACTERS}")
    return names, (np.array(chosen, dtype=object) if column is not None else None)


def _matrix_market_header(path: Path) -> tuple[int, int, int]:
    with _open_text(path) as handle:
        line = handle.readline()
        if not line.startswith("%%MatrixMarket matrix coordinate"):
            raise InputError(path, "is not a Matrix Market coordinate file")
        for line in handle:
            if not line.startswith("%"):
                rows, columns, entries = (int(part) for part in line.split()[:3])
                return rows, columns, entries
    raise InputError(path, "has no size line")


def _read_10x_dir(path: Path) -> Dataset:
    import scipy.io

    matrix_path = _find(path, "matrix.mtx")
    features_path = _find(path, "features.tsv", "genes.tsv")
    barcodes_path = _find(path, "barcodes.tsv")
    try:
        n_genes, n_cells, entries = _matrix_market_header(matrix_path)
        accessions, genes = _names_column(features_path, column=1)
        cells, _ = _names_column(barcodes_path)
        if (genes.size, cells.size) != (n_genes, n_cells):
            raise InputError(
                matrix_path,
                f"is {n_genes} genes x {n_cells} cells but there are {genes.size} features and {cells.size} barcodes",
            )
        require_memory(entries * 40, path=matrix_path, what=f"reading {entries} entries")
        with _open_text(matrix_path) as handle:
            matrix = scipy.io.mmread(handle)
    except DeepImputeError:
        raise
    except (ValueError, OSError, UnicodeDecodeError, EOFError, IndexError) as error:
        raise InputError(path, f"cannot read the 10x files: {error}") from None
    return Dataset(
        counts=as_counts(sp.csr_matrix(sp.csc_matrix(matrix).T), path=matrix_path),
        genes=genes,
        cells=cells,
        gene_attrs={"Accession": accessions},
    )


def _read_table(path: Path, *, orientation: str) -> Dataset:
    import pandas as pd  # only text inputs need it; importing it costs every step 0.3 s

    separator = "," if ".csv" in path.suffixes else "\t"
    try:
        with _open_text(path) as handle:
            header = next(csv.reader(handle, delimiter=separator), None)
            if header is None:
                raise InputError(path, "the table is empty")
            table = pd.read_csv(
                handle, sep=separator, header=None, index_col=0, dtype={0: str}, keep_default_na=False,
                na_values=[""],
            )  # fmt: skip
    except DeepImputeError:
        raise
    except (ValueError, OSError, UnicodeDecodeError, EOFError, pd.errors.ParserError) as error:
        raise InputError(path, f"cannot be read as a table: {error}") from None
    if table.empty:
        raise InputError(path, "the table is empty")
    n_values = table.shape[1]
    if len(header) == n_values + 1:
        columns = header[1:]
    elif len(header) == n_values:
        columns = header
    else:
        raise InputError(path, f"the header names {len(header)} columns but the rows hold {n_values} values")
    if not all(dtype.kind in "iuf" for dtype in table.dtypes):
        raise InputError(path, "the table holds non-numeric values besides its first column")
    rows = np.array([str(name) for name in table.index], dtype=object)
    columns = np.array(columns, dtype=object)
    genes_are_rows = rows.size >= columns.size if orientation == "auto" else orientation == "genes-by-cells"
    genes, cells = (rows, columns) if genes_are_rows else (columns, rows)
    check_unique(cells, path=path, what="cell IDs")
    for names in (genes, cells):
        for value in names:
            if len(value) > MAX_NAME_CHARACTERS:
                raise InputError(
                    path, f"holds a name of {len(value)} characters; at most {MAX_NAME_CHARACTERS}"
                )
    values = table.to_numpy()
    counts = as_counts(sp.csr_matrix(values.T if genes_are_rows else values), path=path)
    return Dataset(counts=counts, genes=genes, cells=cells)


@contextlib.contextmanager
def open_input(path: str | os.PathLike, *, orientation: str = "auto") -> Iterator[LoomReader | Dataset]:
    """Open any supported input, once: a Loom as a :class:`LoomReader`, which reads blocks of
    cells on demand; h5ad, 10x HDF5, a 10x folder and CSV/TSV read whole into a :class:`Dataset`.

    Either has ``n_cells``, ``n_genes``, ``genes``, ``cells`` and ``read_dataset(layers=,
    cells=)``, so a step that needs no more treats every format alike.

    Parameters
    ----------
    path
        The input file or 10x folder.
    orientation
        For CSV/TSV: ``genes-by-cells``, ``cells-by-genes``, or ``auto`` (the longer axis
        is taken as genes).
    """
    path = Path(path)
    if path.is_dir():
        yield _read_10x_dir(path)
        return
    require_file(path)
    if path.name.lower().endswith(TABLE_SUFFIXES):
        yield _read_table(path, orientation=orientation)
        return
    with open_hdf5(path, kind="Loom, h5ad or 10x HDF5") as handle:
        keys = set(handle.keys())
        if "matrix" in keys and ("row_attrs" in keys or "col_attrs" in keys):
            yield LoomReader.of(handle, path)
        elif "X" in keys and "obs" in keys and "var" in keys:
            yield _read_h5ad(handle, path)
        elif keys:
            yield _read_10x_h5(handle, path)
        else:
            raise InputError(path, "is HDF5 but not a Loom, h5ad or 10x Genomics matrix file")


def read_counts(path: str | os.PathLike, *, orientation: str = "auto") -> Dataset:
    """Read counts from Loom, h5ad, a 10x folder, 10x HDF5, or CSV/TSV, whole (see :func:`open_input`)."""
    with open_input(path, orientation=orientation) as source:
        return source.read_dataset()
