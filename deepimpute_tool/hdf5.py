"""Opening HDF5 inputs (Loom, h5ad, 10x HDF5) so that nothing outside the named file is read.

HDF5 can point elsewhere: an external link names another file, a dataset's storage may live
in external raw files, and a virtual dataset maps other files' datasets. h5py follows all
three silently, so a crafted upload could bring a server's ``/etc/passwd`` into an output.
:func:`open_hdf5` walks every link of a file before anything is read from it and refuses all
of these, naming the object. It also bounds what reading a dataset will allocate:
:func:`read_strings` and :func:`check_fully_stored` refuse text longer than the limits of
:mod:`deepimpute_tool.limits` and declared sizes that the file does not store.
"""

from __future__ import annotations

import contextlib
import html
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from deepimpute_tool.dataset import check_names
from deepimpute_tool.errors import InputError
from deepimpute_tool.limits import MAX_NAME_CHARACTERS, MAX_TEXT_BYTES, require_memory

STRING_BLOCK = 65536  # text values read at a time


def require_file(path: Path) -> None:
    """Raise :class:`InputError` unless ``path`` is an existing regular file (or a link to one)."""
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if path.is_dir():
        raise InputError(path, "is a directory, not a file")
    if not path.is_file():
        raise InputError(path, "is not a regular file")
    if not os.access(path, os.R_OK):
        raise InputError(path, "cannot be read: permission denied")


def _refuse_outside_references(handle: h5py.File, path: Path) -> None:
    problems: list[str] = []

    def visit(name: str) -> None:
        if problems:
            return
        link = handle.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            problems.append(f"'/{name}' is an external link to {link.filename}:{link.path}")
            return
        if isinstance(link, h5py.SoftLink):
            return
        if not isinstance(link, h5py.HardLink):
            problems.append(f"'/{name}' is a link of an unknown kind")
            return
        item = handle.get(name)
        if isinstance(item, h5py.Dataset):
            if item.is_virtual:
                problems.append(f"'/{name}' is a virtual dataset that maps other files")
            elif item.id.get_create_plist().get_external_count() > 0:
                problems.append(f"'/{name}' stores its data in external files")

    handle.visit_links(visit)
    if problems:
        raise InputError(path, f"refers outside itself, which is refused: {problems[0]}")


@contextlib.contextmanager
def open_hdf5(path: str | os.PathLike, *, kind: str = "HDF5") -> Iterator[h5py.File]:
    """Open ``path`` read-only after checking it refers to nothing outside itself.

    ``kind`` names the expected format in the error for a file that is not HDF5.
    """
    path = Path(path)
    require_file(path)
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as error:
        raise InputError(path, f"cannot be read: {error.strerror or error}") from None
    if not is_hdf5:
        raise InputError(path, f"is not a {kind} file (not HDF5)")
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise InputError(path, f"cannot be opened as HDF5 (truncated or damaged?): {error}") from None
    try:
        try:
            _refuse_outside_references(handle, path)
        except InputError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            raise InputError(path, f"cannot be read as HDF5 (truncated or damaged?): {error}") from None
        yield handle
    finally:
        handle.close()


def dataset(handle: h5py.File, name: str, *, path: Path) -> h5py.Dataset:
    """The dataset ``name``, or :class:`InputError` if it is missing or a group."""
    item = handle.get(name)
    if item is None:
        raise InputError(path, f"has no '/{name}'")
    if not isinstance(item, h5py.Dataset):
        raise InputError(path, f"'/{name}' is a group, not a dataset")
    return item


def check_fully_stored(item: h5py.Dataset, *, path: Path) -> None:
    """Refuse a dataset that declares more values than it stores (unwritten chunks read as fill)."""
    if item.size == 0:
        return
    if item.chunks is None:
        if item.id.get_storage_size() == 0 and item.id.get_offset() is None:
            raise InputError(path, f"'{item.name}' declares {item.size} values but stores none")
        return
    expected = 1
    for length, chunk in zip(item.shape, item.chunks):
        expected *= -(-length // chunk)
    stored = item.id.get_num_chunks()
    if stored < expected:
        raise InputError(
            path,
            f"'{item.name}' declares shape {item.shape} but stores only {stored} of its {expected} chunks",
        )


def _decode(values: np.ndarray, *, encoding: str, escaped: bool) -> np.ndarray:
    if values.dtype.kind == "O":
        decoded = [v.decode(encoding) if isinstance(v, bytes) else str(v) for v in values]
    else:
        decoded = [v.decode(encoding) for v in values.tolist()]
    if escaped:  # loompy's convention: ASCII with XML character references
        decoded = [html.unescape(v) if "&" in v else v for v in decoded]
    return np.array(decoded, dtype=object)


def read_strings(
    item: h5py.Dataset,
    *,
    path: Path,
    names: bool = True,
    rows: slice | None = None,
    limit: int | None = None,
    loom: bool = True,
) -> np.ndarray:
    """The text values of a 1-D dataset, as a numpy array of ``str`` objects.

    Values stored as UTF-8 are decoded as such; ASCII values (as loompy writes them) are
    read with loompy's convention, XML character references unescaped, so that names that
    loompy wrote read back as loompy reads them. Refuses values longer than the limit
    (``limit`` characters, by default those of a name with ``names`` and of any text attribute
    otherwise), checking fixed-size text before reading it and variable-length text in blocks
    as it is read. ``names`` also refuses control characters. ``loom=False`` reads text exactly
    as stored, as anndata does (no character references unescaped).
    """
    rows = rows or slice(0, item.shape[0])
    limit_chars = limit or (MAX_NAME_CHARACTERS if names else MAX_TEXT_BYTES)
    what = "a name" if names else "a text value"
    string_info = h5py.check_string_dtype(item.dtype)
    if item.dtype.kind == "S" and item.dtype.itemsize > 4 * limit_chars:
        raise InputError(
            path, f"'{item.name}' holds text of {item.dtype.itemsize} bytes; {what} may have {limit_chars}"
        )
    encoding = "utf-8"
    escaped = item.dtype.kind == "S"
    if string_info is not None:
        escaped = string_info.encoding == "ascii"
    elif item.dtype.kind == "U":
        encoding, escaped = "utf-8", False
    elif item.dtype.kind not in "SO":
        return np.asarray(item[rows]).astype(str).astype(object)
    escaped = escaped and loom
    n = rows.stop - rows.start
    if item.dtype.kind == "S":
        require_memory(n * item.dtype.itemsize * 2, path=path, what=f"reading '{item.name}'")
    parts = []
    for start in range(rows.start, rows.stop, STRING_BLOCK):
        try:
            raw = np.asarray(item[start : min(start + STRING_BLOCK, rows.stop)])
        except (OSError, ValueError, RuntimeError) as error:
            raise InputError(path, f"'{item.name}' cannot be read (truncated or damaged?): {error}") from None
        try:
            block = _decode(raw.ravel(), encoding=encoding, escaped=escaped)
        except UnicodeDecodeError as error:
            raise InputError(
                path, f"'{item.name}' holds text that is not {encoding}: {error.reason}"
            ) from None
        if names:
            check_names(block, path=path, where=f"'{item.name}' ")
        else:
            too_long = [v for v in block if len(v) > limit_chars]
            if too_long:
                raise InputError(
                    path,
                    f"'{item.name}' holds {what} of {len(too_long[0])} characters; at most {limit_chars} are allowed",
                )
        parts.append(block.reshape(raw.shape))
    return np.concatenate(parts) if parts else np.empty((0, *item.shape[1:]), dtype=object)


def encode_strings(values: np.ndarray) -> np.ndarray:
    """Text as loompy stores it (ASCII with XML character references), every ``&`` escaped too,
    so that :func:`read_strings` and loompy read back exactly ``values``."""
    encoded = [
        str(v).replace("&", "&amp;").encode("ascii", "xmlcharrefreplace") for v in np.asarray(values).ravel()
    ]
    width = max((len(v) for v in encoded), default=1)
    return np.array(encoded, dtype=f"S{max(width, 1)}")


def compressed_sparse(handle: h5py.File, group: h5py.Group, *, shape: tuple[int, int], path: Path,
                       by_rows: bool) -> sp.spmatrix:  # fmt: skip
    """A CSR (``by_rows``) or CSC matrix from ``data``/``indices``/``indptr``, checked before it is built."""
    parts = {
        name: dataset(handle, f"{group.name}/{name}", path=path) for name in ("data", "indices", "indptr")
    }
    for item in parts.values():
        if item.ndim != 1:
            raise InputError(path, f"'{item.name}' has {item.ndim} dimensions; it must have 1")
        check_fully_stored(item, path=path)
    if parts["data"].dtype.kind not in "biuf":
        raise InputError(path, f"'{group.name}/data' holds {parts['data'].dtype} values, not numbers")
    n_major = shape[0] if by_rows else shape[1]
    if parts["indptr"].shape[0] != n_major + 1 or parts["data"].shape != parts["indices"].shape:
        raise InputError(path, f"'{group.name}' does not describe a sparse matrix of shape {shape}")
    require_memory(
        sum(item.size * max(item.dtype.itemsize, 4) for item in parts.values()) * 2,
        path=path,
        what=f"the matrix '{group.name}'",
    )
    data, indices, indptr = (np.asarray(parts[name][()]) for name in ("data", "indices", "indptr"))
    if data.dtype == np.float16:  # scipy.sparse refuses half precision; float32 holds it exactly
        data = data.astype(np.float32)
    n_minor = shape[1] if by_rows else shape[0]
    if indptr[0] != 0 or indptr[-1] != data.size or np.any(np.diff(indptr) < 0):
        raise InputError(path, f"'{group.name}/indptr' is not a valid index")
    if indices.size and (indices.min() < 0 or indices.max() >= n_minor):
        raise InputError(path, f"'{group.name}/indices' points outside the matrix's {n_minor} columns")
    kind = sp.csr_matrix if by_rows else sp.csc_matrix
    return kind((data, indices, indptr), shape=shape)
