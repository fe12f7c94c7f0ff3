"""The steps made of other steps or of whole-file copies: split, merge, convert and ``run``.

Like :mod:`deepimpute_tool.steps`, each checks its outputs before reading anything and writes
under a temporary name; the names of ``run``'s files come from ``steps.RUN_FILES``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from deepimpute_tool.chunking import (
    CHUNK_ATTR,
    MERGED_ATTR,
    SplitParameters,
    chunk_name,
    chunk_place,
    in_order,
    is_chunk_folder,
)
from deepimpute_tool.errors import InputError
from deepimpute_tool.filtering import FilterParameters
from deepimpute_tool.imputation import ImputeParameters
from deepimpute_tool.limits import memory_guard
from deepimpute_tool.loom import MAIN, LoomReader, LoomWriter, provenance
from deepimpute_tool.masking import MaskParameters
from deepimpute_tool.outputs import DIRECTORY, FOLDER, Output, atomic_directory, atomic_file, check_outputs
from deepimpute_tool.progress import Progress
from deepimpute_tool.scoring import ScoreParameters
from deepimpute_tool.steps import (
    RUN_FILES,
    about,
    created,
    filter_file,
    impute_file,
    mask_file,
    model_output,
    score_file,
    train_file,
)
from deepimpute_tool.training import TrainingParameters


def split_file(in_path, out_dir, *, params: SplitParameters, progress: Progress) -> list[Path]:
    """Split a Loom into Looms of ``chunk_size`` cells each, to impute them in parallel."""
    out_dir = Path(out_dir)
    output = Output(
        out_dir, DIRECTORY, replaceable=is_chunk_folder, what="a folder of chunks made by 'deepimpute split'"
    )
    check_outputs([output], inputs=[in_path])
    names = []
    with about(in_path), memory_guard(), LoomReader.open(in_path) as reader:
        if reader.n_cells == 0:
            raise InputError(in_path, "the matrix is empty")
        attrs = {**reader.file_attrs(), **provenance("split", asdict(params))}
        starts = range(0, reader.n_cells, params.chunk_size)
        stem = Path(in_path).name.removesuffix(".loom")
        with atomic_directory(out_dir) as temporary:
            for number, start in enumerate(starts, start=1):
                names.append(chunk_name(stem, number))
                with LoomWriter.create(temporary / names[-1], **reader.layout()) as writer:
                    copy_blocks(
                        reader, writer, within=slice(start, min(start + params.chunk_size, reader.n_cells))
                    )
                    writer.set_file_attrs({**attrs, CHUNK_ATTR: f"{number}/{len(starts)}"})
    progress.message(f"wrote {len(names)} chunks of at most {params.chunk_size} cells to {out_dir}")
    return [out_dir / name for name in names]


def merge_files(chunk_paths: list, out_path, *, progress: Progress) -> None:
    """Merge chunks made by :func:`split_file` (imputed or not) back into one Loom, in cell order."""
    if not chunk_paths:
        raise InputError(None, "no chunks to merge")
    check_outputs([Output(Path(out_path))], inputs=chunk_paths)
    places, n_cells = {}, 0
    for path in map(Path, chunk_paths):
        if path in places:
            raise InputError(path, "is given twice")
        with about(path), LoomReader.open(path) as reader:
            places[path] = chunk_place(path, reader.file_attrs())
            n_cells += reader.n_cells
    ordered = in_order(places)
    with contextlib.ExitStack() as stack, memory_guard():
        temporary = stack.enter_context(atomic_file(out_path))
        writer, first = None, None
        for path in ordered:
            with about(path), LoomReader.open(path) as reader:
                layout = reader.layout()
                if first is None:
                    first = layout
                    writer = stack.enter_context(created(out_path, temporary, n_cells=n_cells, **layout))
                    attrs = reader.file_attrs(exclude=(CHUNK_ATTR,))
                elif (
                    list(layout["genes"]) != list(first["genes"])
                    or layout["layer_dtypes"] != first["layer_dtypes"]
                ):
                    raise InputError(path, "has other genes or layers than the first chunk")
                copy_blocks(reader, writer)
        provenance_of_merge = provenance("merge", {"chunks": len(ordered)})
        writer.set_file_attrs({**attrs, **provenance_of_merge, MERGED_ATTR: str(len(ordered))})
    progress.message(f"merged {len(ordered)} chunks ({n_cells} cells) into {out_path}")


def run_chain(in_path, out_dir, *, filtering: FilterParameters, masking: MaskParameters | None,
              training: TrainingParameters, imputing: ImputeParameters, scoring: ScoreParameters,
              output_format: str = "loom", progress: Progress) -> dict | None:  # fmt: skip
    """filter, train, impute into ``out_dir``; with ``masking``, mask before training and score after.

    The imputed counts go to imputed.loom, or imputed.h5ad with ``output_format="h5ad"``; with
    ``masking``, the score is of imputed.loom, which is then kept beside the h5ad. Returns the
    scores with ``masking``, else None.
    """
    out_dir = Path(out_dir)
    files = {key: out_dir / name for key, name in RUN_FILES.items()}
    evaluate = masking is not None
    imputed = [files["imputed_h5ad"]] if output_format == "h5ad" else []
    if evaluate or output_format == "loom":
        imputed.insert(0, files["imputed"])
    planned = [files["filtered"], *imputed, *([files["masked"], files["scores"]] if evaluate else [])]
    check_outputs([Output(out_dir, FOLDER)], inputs=[in_path])
    out_dir.mkdir(exist_ok=True)  # nothing was in a folder that did not exist: every output below is new
    inner = [*(Output(path) for path in planned), model_output(files["model"])]
    check_outputs(inner + ([Output(files["plots"], FOLDER)] if evaluate else []), inputs=[in_path])
    with _reported("filter", progress):
        filter_file(in_path, files["filtered"], params=filtering, progress=progress)
    training_input = files["filtered"]
    if evaluate:
        training_input = files["masked"]
        with _reported("mask", progress):
            mask_file(files["filtered"], training_input, params=masking, progress=progress)
    with _reported("train", progress):
        train_file(training_input, files["model"], params=training, progress=progress)
    with _reported("impute", progress):
        impute_file(training_input, files["model"], imputed[0], params=imputing, progress=progress)
    metrics = None
    if evaluate:
        with _reported("score", progress):
            metrics = score_file(
                imputed[0], files["scores"], params=scoring, plots=files["plots"], progress=progress
            )
    if len(imputed) == 2:
        with _reported("convert", progress):
            convert_file(imputed[0], imputed[1], progress=progress)
    progress.message(f"done: results in {out_dir}")
    return metrics


@contextlib.contextmanager
def _reported(step: str, progress: Progress) -> Iterator[None]:
    """Log a step's wall time and the process's peak memory so far when it ends."""
    import resource
    import time

    started = time.perf_counter()
    yield
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    progress.message(f"{step}: {time.perf_counter() - started:.1f} s; peak memory so far {peak_mb:.0f} MB")


def convert_file(in_path, out_path, *, progress: Progress) -> None:
    """A Loom copied, block by block, into the format of ``out_path`` (AnnData for .h5ad)."""
    check_outputs([Output(Path(out_path))], inputs=[in_path])
    with about(in_path), memory_guard(), LoomReader.open(in_path) as reader:
        with (
            atomic_file(out_path) as temporary,
            created(out_path, temporary, n_cells=reader.n_cells, **reader.layout()) as writer,
        ):
            copy_blocks(reader, writer)
            writer.set_file_attrs(reader.file_attrs())
    progress.message(f"wrote {out_path}")


def copy_blocks(reader: LoomReader, writer, *, within: slice | None = None) -> None:
    """Every layer and cell attribute of ``reader``'s cells (``within``), as they are, into ``writer``."""
    for block in reader.blocks(layers=(MAIN, *reader.layer_names), counts=(), attrs=True, within=within):
        writer.append(block)
