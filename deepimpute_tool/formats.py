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

from deepimpute_tool.dataset import Dataset, as_counts, check_names, check_unique
from deepimpute_tool.dataset_reader import DatasetReader
from deepimpute_tool.errors import DeepImputeError, InputError
from deepimpute_tool.h5ad import is_h5ad, read_h5ad
from deepimpute_tool.hdf5 import compressed_sparse, dataset, open_hdf5, read_strings, require_file
from deepimpute_tool.limits import require_memory
from deepimpute_tool.loom import LoomReader

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".tabular")


def _read_10x_group(handle: h5py.File, group: h5py.Group, *, path: Path, names_at: str, ids_at: str):
    """One matrix of a 10x HDF5 file: (genes x cells CSC matrix, gene names, accessions, barcodes)."""
    shape_item = dataset(handle, f"{group.name}/shape", path=path)
    n_genes, n_cells = (int(n) for n in shape_item[()])
    genes = read_strings(dataset(handle, names_at, path=path), path=path)
    accessions = read_strings(dataset(handle, ids_at, path=path), path=path)
    cells = read_strings(dataset(handle, f"{group.name}/barcodes", path=path), path=path)
    if (genes.size, cells.size, accessions.size) != (n_genes, n_cells, n_genes):
        raise InputError(
            path,
            f"declares {n_genes} genes x {n_cells} cells but names {genes.size} genes and {cells.size} cells",
        )
    matrix = compressed_sparse(handle, group, shape=(n_genes, n_cells), path=path, by_rows=False)
    return matrix, genes, accessions, cells


def _read_10x_h5(handle: h5py.File, path: Path) -> Dataset:
    """Cell Ranger's HDF5: version 3 and later (one matrix, genomes in ``features/genome``), or
    version 2 (one group per genome, joined gene by gene when all genomes name the same cells)."""
    try:
        if "matrix" in handle:
            group = handle["matrix"]
            matrix, genes, accessions, cells = _read_10x_group(
                handle, group, path=path, names_at="matrix/features/name", ids_at="matrix/features/id"
            )
            gene_attrs = {"Accession": accessions}
            if isinstance(handle.get("matrix/features/genome"), h5py.Dataset):
                genome = read_strings(handle["matrix/features/genome"], path=path)
                if genome.size == genes.size:
                    gene_attrs["Genome"] = genome
        else:
            genomes = sorted(handle.keys())
            parts = [
                _read_10x_group(handle, handle[g], path=path, names_at=f"{g}/gene_names", ids_at=f"{g}/genes")
                for g in genomes
            ]
            cells = parts[0][3]
            if any(not np.array_equal(part[3], cells) for part in parts[1:]):
                raise InputError(
                    path,
                    f"holds {len(genomes)} genomes ({', '.join(genomes)}) that do not name the same cells; "
                    "give one genome's matrix",
                )
            matrix = sp.vstack([part[0] for part in parts], format="csc")
            genes = np.concatenate([part[1] for part in parts])
            gene_attrs = {"Accession": np.concatenate([part[2] for part in parts])}
            if len(genomes) > 1:
                gene_attrs["Genome"] = np.concatenate(
                    [np.full(part[1].size, g, dtype=object) for g, part in zip(genomes, parts)]
                )
    except DeepImputeError:
        raise
    except (KeyError, TypeError, ValueError, OSError, AttributeError) as error:
        raise InputError(
            path, f"is HDF5 but not a Loom, h5ad or 10x Genomics matrix file ({error})"
        ) from None
    return Dataset(
        counts=as_counts(sp.csr_matrix(matrix.T), path=path),
        genes=genes,
        cells=cells,
        gene_attrs=gene_attrs,
    )


def _open_text(path: Path):
    """A text file (gzipped or not) as UTF-8, without the byte-order mark some editors write."""
    return (
        gzip.open(path, "rt", encoding="utf-8-sig", newline="")
        if path.suffix == ".gz"
        else open(path, encoding="utf-8-sig", newline="")
    )


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _refuse_nul(path: Path) -> None:
    """A NUL is no text's character; the table parser would silently cut a name there."""
    with _open_bytes(path) as handle:
        offset = 0
        while block := handle.read(2**20):
            if (at := block.find(b"\x00")) >= 0:
                raise InputError(path, f"holds a NUL byte at offset {offset + at}: it is not a text table")
            offset += len(block)


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
    check_names(names, path=path)
    chosen = np.array(chosen, dtype=object) if column is not None else None
    if chosen is not None:
        check_names(chosen, path=path)
    return names, chosen


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
        with _open_bytes(matrix_path) as handle:
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
        _refuse_nul(path)
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
    # an empty name is read as NaN with the empty values; it stays empty, as the file has it
    rows = np.array(["" if isinstance(name, float) else str(name) for name in table.index], dtype=object)
    columns = np.array(columns, dtype=object)
    genes_are_rows = rows.size >= columns.size if orientation == "auto" else orientation == "genes-by-cells"
    genes, cells = (rows, columns) if genes_are_rows else (columns, rows)
    check_unique(cells, path=path, what="cell IDs")
    for names in (genes, cells):
        check_names(names, path=path)
    values = table.to_numpy()
    counts = as_counts(sp.csr_matrix(values.T if genes_are_rows else values), path=path)
    return Dataset(counts=counts, genes=genes, cells=cells)


@contextlib.contextmanager
def open_input(
    path: str | os.PathLike,
    *,
    orientation: str = "auto",
    layer: str | None = None,
    layers: bool | tuple[str, ...] = False,
    counts: bool = True,
) -> Iterator[LoomReader | Dataset]:
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
    layer
        For h5ad: the layer holding the counts (``raw`` for ``.raw.X``); None reads ``X``.
        Refused for the other formats.
    layers
        For h5ad: read its other layers too, all or those named (a Loom's are read on demand).
    counts
        For h5ad: whether the main matrix must hold counts (False: imputed values are read as they are).
    """
    path = Path(path)
    if path.is_dir():
        _no_layer(path, layer)
        yield _read_10x_dir(path)
        return
    require_file(path)
    if path.name.lower().endswith(TABLE_SUFFIXES):
        _no_layer(path, layer)
        yield _read_table(path, orientation=orientation)
        return
    with open_hdf5(path, kind="Loom, h5ad or 10x HDF5") as handle:
        kind = input_kind(handle)
        if kind == "loom":
            _no_layer(path, layer)
            yield LoomReader.of(handle, path)
        elif kind == "h5ad":
            yield read_h5ad(handle, path, layer=layer, layers=layers, counts=counts)
        elif kind == "10x":
            _no_layer(path, layer)
            yield _read_10x_h5(handle, path)
        else:
            raise InputError(path, "is HDF5 but not a Loom, h5ad or 10x Genomics matrix file")


@contextlib.contextmanager
def open_blocks(
    path: str | os.PathLike,
    *,
    layer: str | None = None,
    layers: bool | tuple[str, ...] = True,
    counts: bool = True,
) -> Iterator[LoomReader | DatasetReader]:
    """Any input as a reader of blocks of cells (see :func:`open_input`): a Loom streamed, any
    other format read whole, an h5ad with its other layers (all, or those named) when ``layers``."""
    with open_input(path, layer=layer, layers=layers, counts=counts) as source:
        yield source if isinstance(source, LoomReader) else DatasetReader(source, path=path)


def input_kind(handle: h5py.File) -> str:
    """What an open HDF5 input is read as: ``loom``, ``h5ad``, ``10x``, or ``""`` (none); the one
    decision, for a file laid out as more than one."""
    keys = set(handle.keys())
    if "matrix" in keys and ("row_attrs" in keys or "col_attrs" in keys):
        return "loom"
    if is_h5ad(handle):
        return "h5ad"
    return "10x" if keys else ""


def _no_layer(path: Path, layer: str | None) -> None:
    if layer is not None:
        raise InputError(path, f"is not an h5ad: ⟨layer⟩ {layer} chooses the counts of an h5ad input only")


def read_counts(path: str | os.PathLike, *, orientation: str = "auto", layer: str | None = None) -> Dataset:
    """Read counts from Loom, h5ad, a 10x folder, 10x HDF5, or CSV/TSV, whole (see :func:`open_input`)."""
    with open_input(path, orientation=orientation, layer=layer) as source:
        return source.read_dataset()
