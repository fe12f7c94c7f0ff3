"""``deepimpute split``: a Loom or h5ad into Looms of a fixed number of cells, to impute them in parallel.

Each chunk holds its cells' counts (of an h5ad: ``X`` or ``⟨layer⟩``) and layers, cell and gene
annotations, and the input's provenance; ``merge`` puts the chunks back together.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from pathlib import Path

from deepimpute_tool.chunking import (
    CHUNK_ATTR,
    ChunkSource,
    SplitParameters,
    cell_ids_sha256,
    chunk_name,
    is_chunk_folder,
)
from deepimpute_tool.errors import InputError
from deepimpute_tool.formats import open_blocks
from deepimpute_tool.limits import memory_guard
from deepimpute_tool.loom import LoomWriter, provenance
from deepimpute_tool.outputs import DIRECTORY, Output, atomic_directory, check_outputs
from deepimpute_tool.progress import Progress
from deepimpute_tool.steps.common import about, copy_blocks


def split_file(in_path, out_dir, *, params: SplitParameters, progress: Progress) -> list[Path]:
    """Split a Loom or h5ad into Looms of ``chunk_size`` cells each, each recording its place."""
    out_dir = Path(out_dir)
    output = Output(
        out_dir, DIRECTORY, replaceable=is_chunk_folder, what="a folder of chunks made by 'deepimpute split'"
    )
    check_outputs([output], inputs=[in_path])
    names = []
    with about(in_path), memory_guard(), open_blocks(in_path, layer=params.layer) as reader:
        if reader.n_cells == 0:
            raise InputError(in_path, "the matrix is empty")
        attrs = {**reader.file_attrs(), **provenance("split", asdict(params))}
        starts = range(0, reader.n_cells, params.chunk_size)
        stem = Path(in_path).name.removesuffix(".loom").removesuffix(".h5ad")
        split_id = uuid.uuid4().hex
        with atomic_directory(out_dir) as temporary:
            for number, start in enumerate(starts, start=1):
                names.append(chunk_name(stem, number))
                within = slice(start, min(start + params.chunk_size, reader.n_cells))
                source = ChunkSource(
                    split=split_id,
                    input=Path(in_path).name,
                    first_cell=within.start,
                    cells=within.stop - within.start,
                    of_cells=reader.n_cells,
                    cell_ids_sha256=cell_ids_sha256(reader.cells[within]),
                )
                with LoomWriter.create(temporary / names[-1], **reader.layout()) as writer:
                    copy_blocks(reader, writer, within=within)
                    writer.set_file_attrs({**attrs, CHUNK_ATTR: f"{number}/{len(starts)}", **source.attrs()})
    progress.message(f"wrote {len(names)} chunks of at most {params.chunk_size} cells to {out_dir}")
    return [out_dir / name for name in names]
