"""Reading count matrices and writing Loom files: the edges of every step.

Inside the package a matrix is cells x genes (``scipy.sparse.csr_matrix`` or a dense
``numpy`` array); in a Loom file it is genes x cells, as the Loom specification says.
Every output is written under a temporary name beside its final path and renamed into
place only when complete, so an interrupted or failed step never leaves a half-written
file behind.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import loompy
import numpy as np
import scipy.io
import scipy.sparse as sp

from deepimpute_tool import __version__
from deepimpute_tool.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

GENE_ATTRS = ("Gene", "var_names", "gene_names", "gene_ids")
CELL_ATTRS = ("CellID", "obs_names", "cell_names", "barcodes")
LOOM_READ_CHUNK_BYTES = 64 * 2**20
RESERVED_FILE_ATTRS = ("LOOM_SPEC_VERSION", "CreationDate", "last_modified")


@dataclass
class Dataset:
    """A count matrix with its names and annotations.

    Attributes
    ----------
    counts
        Cells x genes, float32.
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


# ---------------------------------------------------------------- validation


def check_counts(values: np.ndarray, *, path: str | os.PathLike, what: str = "matrix") -> None:
    """Raise :class:`InputError` unless ``values`` are finite, non-negative whole numbers."""
    values = np.asarray(values)
    if values.size == 0:
        return
    hint = (
        "DeepImpute needs raw UMI or read counts; if the data are normalised or "
        "log-transformed, give the raw counts instead (for AnnData, the 'counts' layer or .raw)"
    )
    if not np.all(np.isfinite(values)):
        raise InputError(str(path), f"the {what} holds NaN or infinite values; {hint}")
    if np.any(values < 0):
        raise InputError(str(path), f"the {what} holds negative values ({values.min():g}); {hint}")
    fractional = values[values != np.round(values)]
    if fractional.size:
        raise InputError(str(path), f"the {what} holds non-integer values (e.g. {fractional[0]:g}); {hint}")


def check_unique(names: np.ndarray, *, path: str | os.PathLike, what: str) -> None:
    """Raise :class:`InputError` if ``names`` has duplicates."""
    unique, counts = np.unique(names, return_counts=True)
    duplicated = unique[counts > 1]
    if duplicated.size:
        shown = ", ".join(map(str, duplicated[:5]))
        raise InputError(
            str(path),
            f"{duplicated.size} duplicate {what} (e.g. {shown}); {what} must be unique",
        )


def make_unique(names: np.ndarray) -> np.ndarray:
    """Append ``-1``, ``-2``... to repeated names, as scanpy's ``var_names_make_unique``."""
    names = np.asarray(names).astype(str)
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


# ------------------------------------------------------------------- reading


def _require_file(path: Path) -> None:
    if not path.exists():
        raise InputError(str(path), "no such file or directory")


def _pick_attr(attrs, names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in attrs), None)


@contextlib.contextmanager
def open_loom(path: str | os.PathLike) -> Iterator[loompy.LoomConnection]:
    """Open a Loom file read-only, turning every way it can be unreadable into InputError."""
    path = Path(path)
    _require_file(path)
    if path.is_dir():
        raise InputError(str(path), "is a directory, not a Loom file")
    if not h5py.is_hdf5(path):
        raise InputError(str(path), "is not a Loom file (not HDF5)")
    try:
        connection = loompy.connect(str(path), mode="r", validate=False)
    except Exception as error:  # h5py raises OSError, KeyError or ValueError on damage
        raise InputError(str(path), f"cannot be read as Loom (truncated or damaged?): {error}") from error
    try:
        if "matrix" not in connection._file:
            raise InputError(str(path), "is HDF5 but not Loom: it has no /matrix")
        yield connection
    finally:
        connection.close()


def loom_names(ds: loompy.LoomConnection, *, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Gene names and cell IDs of an open Loom, from ``Gene``/``CellID`` or scanpy's names."""
    gene_attr = _pick_attr(ds.ra, GENE_ATTRS)
    cell_attr = _pick_attr(ds.ca, CELL_ATTRS)
    if gene_attr is None:
        raise InputError(str(path), f"has no gene names (row attribute {' or '.join(GENE_ATTRS)})")
    if cell_attr is None:
        raise InputError(str(path), f"has no cell IDs (column attribute {' or '.join(CELL_ATTRS)})")
    return np.asarray(ds.ra[gene_attr]).astype(str), np.asarray(ds.ca[cell_attr]).astype(str)


def loom_file_attrs(ds: loompy.LoomConnection, *, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """Global attributes worth carrying to an output: all but loompy's own and ``exclude``."""
    return {k: str(ds.attrs[k]) for k in ds.attrs.keys() if k not in (*RESERVED_FILE_ATTRS, *exclude)}


def loom_row_attrs(ds: loompy.LoomConnection) -> dict[str, np.ndarray]:
    """Every row (gene) attribute of an open Loom."""
    return {k: np.asarray(ds.ra[k]) for k in ds.ra.keys()}


def loom_cell_chunks(n_genes: int, n_cells: int, *, chunk_cells: int | None = None) -> list[slice]:
    """Column slices that keep one dense genes x cells block near 64 MiB."""
    if chunk_cells is None:
        chunk_cells = max(64, LOOM_READ_CHUNK_BYTES // (4 * max(n_genes, 1)))
    return [slice(start, min(start + chunk_cells, n_cells)) for start in range(0, n_cells, chunk_cells)]


def read_loom(path: str | os.PathLike, *, layers: bool = True) -> Dataset:
    """Read a whole Loom file into a sparse :class:`Dataset`, checking that it holds counts."""
    with open_loom(path) as ds:
        genes, cells = loom_names(ds, path=path)
        n_genes, n_cells = ds.shape
        layer_names = [name for name in ds.layers.keys() if name != ""] if layers else []
        blocks: dict[str, list[sp.csr_matrix]] = {name: [] for name in ["", *layer_names]}
        try:
            for cols in loom_cell_chunks(n_genes, n_cells):
                for name in blocks:
                    block = np.asarray(ds.layers[name][:, cols], dtype=np.float32).T
                    if name == "":
                        check_counts(block, path=path)
                    blocks[name].append(sp.csr_matrix(block))
            gene_attrs = loom_row_attrs(ds)
            cell_attrs = {k: np.asarray(ds.ca[k]) for k in ds.ca.keys()}
            file_attrs = loom_file_attrs(ds)
        except InputError:
            raise
        except Exception as error:
            raise InputError(str(path), f"cannot be read as Loom (truncated or damaged?): {error}") from error

    def stack(parts: list[sp.csr_matrix]) -> sp.csr_matrix:
        if not parts:
            return sp.csr_matrix((0, n_genes), dtype=np.float32)
        return sp.csr_matrix(sp.vstack(parts, format="csr"), dtype=np.float32)

    return Dataset(
        counts=stack(blocks[""]),
        genes=genes,
        cells=cells,
        gene_attrs=gene_attrs,
        cell_attrs=cell_attrs,
        layers={name: stack(blocks[name]) for name in layer_names},
        file_attrs=file_attrs,
    )


def _read_h5ad(path: Path) -> Dataset:
    import anndata

    try:
        adata = anndata.read_h5ad(path)
    except Exception as error:
        raise InputError(str(path), f"cannot be read as h5ad: {error}") from error
    counts = sp.csr_matrix(adata.X, dtype=np.float32)
    check_counts(counts.data, path=path)
    return Dataset(
        counts=counts,
        genes=np.asarray(adata.var_names).astype(str),
        cells=np.asarray(adata.obs_names).astype(str),
        gene_attrs={k: np.asarray(v) for k, v in adata.var.items() if _is_plain(v)},
        cell_attrs={k: np.asarray(v) for k, v in adata.obs.items() if _is_plain(v)},
    )


def _is_plain(column: pd.Series) -> bool:
    return column.dtype.kind in "biufU" or column.dtype == object or str(column.dtype) == "category"


def _read_10x_h5(path: Path) -> Dataset:
    try:
        with h5py.File(path, "r") as f:
            if "matrix" in f:  # Cell Ranger 3 and later
                group = f["matrix"]
                features = group["features"]
                genes = features["name"][:].astype(str)
                gene_attrs = {"Accession": features["id"][:].astype(str)}
            else:  # Cell Ranger 2: one group per genome
                group = f[next(iter(f.keys()))]
                genes = group["gene_names"][:].astype(str)
                gene_attrs = {"Accession": group["genes"][:].astype(str)}
            n_genes, n_cells = group["shape"][:]
            matrix = sp.csc_matrix(
                (group["data"][:], group["indices"][:], group["indptr"][:]),
                shape=(n_genes, n_cells),
            )
            cells = group["barcodes"][:].astype(str)
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(
            str(path), f"is HDF5 but not a Loom, h5ad or 10x Genomics matrix file ({error})"
        ) from error
    counts = sp.csr_matrix(matrix.T, dtype=np.float32)
    check_counts(counts.data, path=path)
    return Dataset(counts=counts, genes=genes, cells=cells, gene_attrs=gene_attrs)


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def _find(directory: Path, *names: str) -> Path:
    for name in names:
        for candidate in (directory / name, directory / f"{name}.gz"):
            if candidate.exists():
                return candidate
    raise InputError(str(directory), f"is not a 10x directory: it has no {' or '.join(names)}[.gz]")


def _read_10x_dir(path: Path) -> Dataset:
    matrix_path = _find(path, "matrix.mtx")
    features_path = _find(path, "features.tsv", "genes.tsv")
    barcodes_path = _find(path, "barcodes.tsv")
    import pandas as pd  # only text inputs need it; importing it costs every step 0.3 s

    try:
        with _open_text(matrix_path) as handle:
            matrix = scipy.io.mmread(handle)
        with _open_text(features_path) as handle:
            features = pd.read_csv(handle, sep="\t", header=None, dtype=str)
        with _open_text(barcodes_path) as handle:
            cells = pd.read_csv(handle, sep="\t", header=None, dtype=str)[0].to_numpy()
    except Exception as error:
        raise InputError(str(path), f"cannot read the 10x files: {error}") from error
    name_column = 1 if features.shape[1] > 1 else 0
    counts = sp.csr_matrix(sp.csc_matrix(matrix).T, dtype=np.float32)
    if counts.shape != (len(cells), len(features)):
        raise InputError(
            str(matrix_path),
            f"is {counts.shape[1]} x {counts.shape[0]} but there are "
            f"{len(features)} features and {len(cells)} barcodes",
        )
    check_counts(counts.data, path=matrix_path)
    return Dataset(
        counts=counts,
        genes=features[name_column].to_numpy().astype(str),
        cells=cells.astype(str),
        gene_attrs={"Accession": features[0].to_numpy().astype(str)},
    )


def _read_table(path: Path, *, orientation: str) -> Dataset:
    separator = "," if ".csv" in path.suffixes else "\t"
    import pandas as pd  # only text inputs need it; importing it costs every step 0.3 s

    try:
        with _open_text(path) as handle:
            table = pd.read_csv(handle, sep=separator, index_col=0)
    except Exception as error:
        raise InputError(str(path), f"cannot be read as a table: {error}") from error
    if table.empty:
        raise InputError(str(path), "the table is empty")
    if not all(dtype.kind in "iuf" for dtype in table.dtypes):
        raise InputError(str(path), "the table holds non-numeric values besides its first column")
    genes_are_rows = (
        table.shape[0] >= table.shape[1] if orientation == "auto" else orientation == "genes-by-cells"
    )
    if genes_are_rows:
        table = table.T
    values = table.to_numpy(dtype=np.float32)
    check_counts(values, path=path)
    return Dataset(
        counts=sp.csr_matrix(values),
        genes=table.columns.to_numpy().astype(str),
        cells=table.index.to_numpy().astype(str),
    )


def read_dataset(path: str | os.PathLike, *, orientation: str = "auto") -> Dataset:
    """Read counts from Loom, h5ad, a 10x directory, 10x HDF5, or CSV/TSV.

    Parameters
    ----------
    path
        The input file or 10x directory.
    orientation
        For CSV/TSV: ``genes-by-cells``, ``cells-by-genes``, or ``auto`` (the longer axis
        is taken as genes).
    """
    path = Path(path)
    _require_file(path)
    if path.is_dir():
        return _read_10x_dir(path)
    name = path.name.lower()
    if name.endswith((".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".tabular")):
        return _read_table(path, orientation=orientation)
    if not h5py.is_hdf5(path):
        raise InputError(
            str(path),
            "is not a Loom, h5ad or 10x HDF5 file (not HDF5), nor a .csv/.tsv table",
        )
    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
    except OSError as error:
        raise InputError(str(path), f"cannot be opened as HDF5 (truncated?): {error}") from error
    if "matrix" in keys and ("row_attrs" in keys or "col_attrs" in keys):
        return read_loom(path)
    if "X" in keys and "obs" in keys:
        return _read_h5ad(path)
    if keys:
        return _read_10x_h5(path)
    raise InputError(str(path), "is HDF5 but not a Loom, h5ad or 10x Genomics matrix file")


# ------------------------------------------------------------------- writing


def provenance(step: str, parameters: dict) -> dict[str, str]:
    """Global attributes that record which tool version ran a step with which parameters."""
    record = {
        "tool": "deepimpute-tool",
        "version": __version__,
        "step": step,
        "parameters": parameters,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return {f"deepimpute_{step}": json.dumps(record, default=str)}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only on success."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(str(path), f"cannot write: folder {parent} does not exist")
    if directory:
        temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=parent))
    else:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=parent)
        os.close(handle)
        os.unlink(name)
        temporary = Path(name)
    try:
        yield temporary
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise
    if directory:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o777 & ~umask)  # mkdtemp makes it private
        if path.is_dir():
            shutil.rmtree(path)
    os.replace(temporary, path)


def _loom_attr(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind in "OU" or values.dtype.name == "category":
        return values.astype(str)
    return values


@contextlib.contextmanager
def new_loom(path: str | os.PathLike) -> Iterator[loompy.LoomConnection]:
    """An empty Loom to fill with ``add_columns``; closed without loompy's check on errors.

    Its main matrix (imputed values: floats) goes through HDF5's byte-shuffle filter before
    gzip, which loompy always leaves off: on pbmc3k's imputed matrix, 30% less time to write
    and 9% smaller. The filter is built into HDF5, so every Loom reader reads it.
    """
    connection = loompy.new(str(path))
    create_dataset = connection._file.create_dataset

    def create_shuffled(name, *args, **kwargs):
        if name == "/matrix" and kwargs.get("compression"):
            kwargs["shuffle"] = True
        return create_dataset(name, *args, **kwargs)

    connection._file.create_dataset = create_shuffled
    try:
        yield connection
    finally:
        connection.close()


def write_loom(path: str | os.PathLike, dataset: Dataset, *, file_attrs: dict[str, str]) -> None:
    """Write ``dataset`` as a Loom file (genes x cells), atomically."""
    gene_attrs = {k: _loom_attr(v) for k, v in dataset.gene_attrs.items()}
    cell_attrs = {k: _loom_attr(v) for k, v in dataset.cell_attrs.items()}
    gene_attrs["Gene"] = dataset.genes.astype(str)
    cell_attrs["CellID"] = dataset.cells.astype(str)
    layers = {"": dataset.counts.T.tocoo()}
    layers.update({name: matrix.T.tocoo() for name, matrix in dataset.layers.items()})
    attrs = {**dataset.file_attrs, **file_attrs}
    with atomic_path(path) as temporary:
        loompy.create(str(temporary), layers, gene_attrs, cell_attrs, file_attrs=attrs)
