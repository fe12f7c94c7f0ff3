"""What every step does at its edges: name the file in its errors, pick a writer, place a model.

Every step first checks that its outputs can be written without touching an input
(:func:`deepimpute_tool.outputs.check_outputs`), then reads under a memory guard, and writes
under a temporary name moved into place when complete. Every problem is a
:class:`~deepimpute_tool.errors.DeepImputeError` naming the file it is about.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import h5py

from deepimpute_tool.errors import DeepImputeError, InputError
from deepimpute_tool.formats import input_kind
from deepimpute_tool.h5ad import H5adWriter
from deepimpute_tool.h5ad_slots import KeptSlots, kept_slots
from deepimpute_tool.hdf5 import open_hdf5
from deepimpute_tool.loom import MAIN, LoomReader, LoomWriter
from deepimpute_tool.model_loading import is_model_directory
from deepimpute_tool.outputs import DIRECTORY, FILE, Output, atomic_directory, atomic_file, check_outputs

MODEL_WHAT = "a model written by 'deepimpute train' (nor an empty folder)"


@contextlib.contextmanager
def about(path: str | os.PathLike, *, memory_hint: str = "") -> Iterator[None]:
    """Name ``path`` in errors that name nothing, and in running out of memory."""
    try:
        yield
    except DeepImputeError as error:
        if error.what is None:
            raise type(error)(path, error.problem) from None
        raise
    except MemoryError:
        raise InputError(path, f"needs more memory than this machine has available{memory_hint}") from None


def writer_for(
    path: str | os.PathLike,
    temporary: Path,
    *,
    n_cells: int,
    keep: KeptSlots | None = None,
    counts: bool = False,
    **layout,
):
    """The writer of ``path``'s format for a file at ``temporary``: AnnData for .h5ad (keeping
    ``keep`` of an h5ad input; X sparse when it holds ``counts``), else Loom."""
    if is_h5ad_name(path):
        return H5adWriter.create(temporary, n_cells=n_cells, keep=keep, sparse_x=counts, **layout)
    return LoomWriter.create(temporary, **layout)


def is_h5ad_name(path: str | os.PathLike) -> bool:
    return Path(path).name.endswith(".h5ad")


@contextlib.contextmanager
def kept_slots_of(
    in_path,
    out_path,
    *,
    layer: str | None,
    gene_columns: tuple[str, ...] = (),
    annotations_only: bool = False,
) -> Iterator[KeptSlots | None]:
    """What an h5ad output keeps of an h5ad input (None for any other pair of formats): the input
    as :func:`deepimpute_tool.formats.open_input` reads it, so that the names kept are its rows'."""
    if not is_h5ad_name(out_path) or not Path(in_path).is_file() or not h5py.is_hdf5(in_path):
        yield None  # a 10x folder or a table (or no file: reading it will say so)
        return
    with open_hdf5(in_path) as handle:
        if input_kind(handle) != "h5ad":
            yield None
            return
        yield kept_slots(
            handle, in_path, layer=layer, gene_columns=gene_columns, annotations_only=annotations_only
        )


def model_output(path: str | os.PathLike) -> Output:
    """A model is a zip file when its name ends in .zip, else a folder."""
    path = Path(path)
    if path.name.endswith(".zip"):
        return Output(path, FILE)
    return Output(path, DIRECTORY, replaceable=is_model_directory, what=MODEL_WHAT)


def write_model(model, path: str | os.PathLike, *, inputs: tuple[str | os.PathLike, ...] = ()) -> None:
    """Write ``model`` to ``path`` (:func:`model_output` says as what), never over an input."""
    output = model_output(path)
    check_outputs([output], inputs=list(inputs))
    if output.kind == FILE:
        with atomic_file(path) as temporary:
            model.write_zip(temporary)
    else:
        with atomic_directory(path) as temporary:
            model.write_directory(temporary)


def refuse_layers(path: str | os.PathLike, present: list[str], layers: tuple[str, ...], *, done: str) -> None:
    """Refuse an input that already has one of ``layers``: a step that makes them ran on it (``done``)."""
    for layer in layers:
        if layer in present:
            raise InputError(path, f"already has a layer '{layer}': was it {done} already?")


def copy_blocks(reader: LoomReader, writer, *, within: slice | None = None) -> None:
    """Every layer and cell attribute of ``reader``'s cells (``within``), as they are, into ``writer``."""
    for block in reader.blocks(layers=(MAIN, *reader.layer_names), counts=(), attrs=True, within=within):
        writer.append(block)
