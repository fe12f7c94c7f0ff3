"""``deepimpute run``: filter, train, impute (and with ``evaluate``, mask and score) into one folder.

Its own options (:class:`RunParameters`, :class:`OutputParameters`) are declared here; those
of the steps it chains come from their parameter classes. Like every step, it checks all its
outputs before reading anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from deepimpute_tool.filtering import FilterParameters
from deepimpute_tool.imputation import ImputeParameters
from deepimpute_tool.limits import memory_guard
from deepimpute_tool.loom import LoomReader
from deepimpute_tool.masking import MaskParameters
from deepimpute_tool.options import option, parameters
from deepimpute_tool.outputs import FOLDER, Output, atomic_file, check_outputs
from deepimpute_tool.progress import Progress
from deepimpute_tool.scoring import ScoreParameters
from deepimpute_tool.steps.common import about, copy_blocks, model_output, writer_for
from deepimpute_tool.steps.filter import filter_file
from deepimpute_tool.steps.impute import impute_file
from deepimpute_tool.steps.mask import mask_file
from deepimpute_tool.steps.score import score_file
from deepimpute_tool.steps.train import train_file
from deepimpute_tool.training import TrainingParameters

OUTPUT_FORMATS = ("loom", "h5ad")
# the files of run's output folder
RUN_FILES = {
    "filtered": "filtered.loom",
    "masked": "masked.loom",
    "model": "model",
    "imputed": "imputed.loom",
    "imputed_h5ad": "imputed.h5ad",
    "scores": "scores.json",
    "plots": "plots",
}


@parameters
class RunParameters:
    """Options of ``run`` itself, besides those of the steps it chains."""

    evaluate: bool = option(
        False,
        label="Measure accuracy",
        help="Also measure accuracy: mask before training, score after imputing.",
    )


@parameters
class OutputParameters:
    """The format of the imputed output where a step names it (run, the Galaxy tools, the pipeline)."""

    output_format: str = option(
        "loom",
        choices=OUTPUT_FORMATS,
        choice_labels=("Loom (genes as rows)", "AnnData h5ad (for scanpy)"),
        label="Format of the imputed output",
        help="loom, or h5ad for scanpy: imputed counts in X, the input's counts in layers['counts'], "
        "annotations in obs/var, provenance in uns.",
    )


def run_chain(in_path, out_dir, *, filtering: FilterParameters, masking: MaskParameters | None,
              training: TrainingParameters, imputing: ImputeParameters, scoring: ScoreParameters,
              output_format: str = "loom", progress: Progress) -> dict | None:  # fmt: skip
    """filter, train, impute into ``out_dir``; with ``masking``, mask before training and score after.

    The imputed counts go to imputed.loom, or imputed.h5ad with ``output_format="h5ad"``; with
    ``masking``, the score is of imputed.loom, which is then kept beside the h5ad. Returns the
    scores with ``masking``, else None.
    """
    out_dir = Path(out_dir)
    # ⟨layer⟩ chooses the counts of the input; every later step reads the Loom filter wrote
    training, imputing = (dataclasses.replace(params, layer=None) for params in (training, imputing))
    masking = masking and dataclasses.replace(masking, layer=None)
    files = {key: out_dir / name for key, name in RUN_FILES.items()}
    evaluate = masking is not None
    imputed = [files["imputed_h5ad"]] if output_format == "h5ad" else []
    if evaluate or output_format == "loom":
        imputed.insert(0, files["imputed"])
    planned = [files["filtered"], *imputed, *([files["masked"], files["scores"]] if evaluate else [])]
    check_outputs([Output(out_dir, FOLDER)], inputs=[in_path])
    with _removed_on_failure(out_dir, [*files.values()]):
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
def _removed_on_failure(out_dir: Path, outputs: list[Path]) -> Iterator[None]:
    """Create ``out_dir`` if missing; if the block fails, remove the ``outputs`` that were not
    there before it, and ``out_dir`` if it was created here and is left empty."""
    created = not out_dir.exists()
    out_dir.mkdir(exist_ok=True)
    existing = {path for path in outputs if os.path.lexists(path)}
    try:
        yield
    except BaseException:
        for path in outputs:
            if path in existing or not os.path.lexists(path):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise


@contextlib.contextmanager
def _reported(step: str, progress: Progress) -> Iterator[None]:
    """Log a step's wall time and the process's peak memory so far when it ends."""
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
            writer_for(out_path, temporary, n_cells=reader.n_cells, **reader.layout()) as writer,
        ):
            copy_blocks(reader, writer)
            writer.set_file_attrs(reader.file_attrs())
    progress.message(f"wrote {out_path}")
