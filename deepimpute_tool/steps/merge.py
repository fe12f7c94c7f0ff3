"""``deepimpute merge``: chunks made by ``split`` (imputed or not) back into one file, in cell order."""

from __future__ import annotations

import contextlib
from pathlib import Path

from deepimpute_tool.chunking import (
    CHUNK_ATTR,
    CHUNK_SOURCE_ATTR,
    check_chunk_cells,
    check_same_processing,
    chunk_place,
    chunk_source,
    in_order,
)
from deepimpute_tool.errors import InputError
from deepimpute_tool.limits import memory_guard
from deepimpute_tool.loom import LoomReader, provenance
from deepimpute_tool.outputs import Output, atomic_file, check_outputs
from deepimpute_tool.progress import Progress
from deepimpute_tool.steps.common import about, copy_blocks, writer_for


def merge_files(chunk_paths: list, out_path, *, progress: Progress) -> None:
    """Merge one complete set of chunks into ``out_path`` (Loom, or AnnData for .h5ad)."""
    if not chunk_paths:
        raise InputError(None, "no chunks to merge")
    check_outputs([Output(Path(out_path))], inputs=chunk_paths)
    places, sources, cells, attrs_of, n_cells = {}, {}, {}, {}, 0
    for path in map(Path, chunk_paths):
        if path in places:
            raise InputError(path, "is given twice")
        with about(path), LoomReader.open(path) as reader:
            attrs_of[path] = reader.file_attrs()
            places[path] = chunk_place(path, attrs_of[path])
            sources[path] = chunk_source(path, attrs_of[path])
            cells[path] = reader.cells
            n_cells += reader.n_cells
    ordered = in_order(places)
    check_chunk_cells(ordered, sources, cells)
    check_same_processing(ordered, attrs_of)
    with contextlib.ExitStack() as stack, memory_guard():
        temporary = stack.enter_context(atomic_file(out_path))
        writer, first = None, None
        for path in ordered:
            with about(path), LoomReader.open(path) as reader:
                layout = reader.layout()
                if first is None:
                    first = layout
                    writer = stack.enter_context(writer_for(out_path, temporary, n_cells=n_cells, **layout))
                    attrs = reader.file_attrs(exclude=(CHUNK_ATTR, CHUNK_SOURCE_ATTR))
                elif (
                    list(layout["genes"]) != list(first["genes"])
                    or layout["layer_dtypes"] != first["layer_dtypes"]
                ):
                    raise InputError(path, "has other genes or layers than the first chunk")
                copy_blocks(reader, writer)
        writer.set_file_attrs({**attrs, **provenance("merge", {"chunks": len(ordered)})})
    progress.message(f"merged {len(ordered)} chunks ({n_cells} cells) into {out_path}")
