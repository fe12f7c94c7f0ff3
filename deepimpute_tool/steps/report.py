"""``deepimpute report``: one sample's outputs as MultiQC custom content, for the pipeline's report.

Reads what the other steps wrote for the sample (the filtered counts, the model, and when it was
scored, the scores and figures) and writes into a new folder the files MultiQC reads:
``<sample>.deepimpute_<section>_mqc.json`` (:mod:`deepimpute_tool.multiqc`), each figure as
``<sample>.deepimpute_figure_<name>_mqc.json`` (the PNG inline).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from deepimpute_tool.errors import InputError
from deepimpute_tool.formats import open_blocks
from deepimpute_tool.hdf5 import require_file
from deepimpute_tool.limits import memory_guard
from deepimpute_tool.model_loading import load_model
from deepimpute_tool.multiqc import figure_content, sample_content
from deepimpute_tool.outputs import DIRECTORY, Output, atomic_directory, check_outputs
from deepimpute_tool.progress import Progress
from deepimpute_tool.steps.common import about

SAMPLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # as the pipeline's samplesheet allows
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SCORES_BYTES = 2**26  # a scores file lists every gene's and every cell's MSE
MAX_FIGURE_BYTES = 2**25


def is_report_folder(path: Path) -> bool:
    """A folder that ``report`` wrote (its MultiQC files alone), which a new report may replace."""
    return all(child.is_file() and child.name.endswith("_mqc.json") for child in path.iterdir())


def report_files(
    sample: str,
    out_dir: str | os.PathLike,
    *,
    counts: str | os.PathLike,
    model: str | os.PathLike,
    scores: str | os.PathLike | None = None,
    figures: tuple[str | os.PathLike, ...] = (),
    progress: Progress,
) -> list[Path]:
    """Write ``sample``'s MultiQC custom content into the new folder ``out_dir``; return its files.

    ``figures`` are PNG files, or folders of them (``score --plots``).
    """
    if not SAMPLE_NAME.match(sample) or len(sample) > 200:
        raise InputError(
            None, f"the sample name {sample!r} is refused: use letters, digits, '.', '_' and '-'"
        )
    out_dir = Path(out_dir)
    inputs = [counts, model, *([scores] if scores else []), *figures]
    output = Output(
        out_dir, DIRECTORY, replaceable=is_report_folder, what="a folder made by 'deepimpute report'"
    )
    check_outputs([output], inputs=inputs)
    with about(counts), memory_guard(), open_blocks(counts, layers=False) as reader:
        cells, genes = reader.n_cells, reader.n_genes
    training = load_model(model).training
    found = _scores(Path(scores)) if scores else None
    pngs = [png for figure in figures for png in _pngs(Path(figure))]
    content = sample_content(sample=sample, cells=cells, genes=genes, training=training, scores=found)
    names = []
    with atomic_directory(out_dir) as temporary:
        for section, data in content.items():
            names.append(f"{sample}.deepimpute_{section}_mqc.json")
            (temporary / names[-1]).write_text(json.dumps(data, indent=1, allow_nan=False))
        for png in pngs:
            name = re.sub(r"[^A-Za-z0-9_-]", "_", png.name.removesuffix(".png").removeprefix(f"{sample}."))
            names.append(f"{sample}.deepimpute_figure_{name}_mqc.json")
            if names.count(names[-1]) > 1:
                raise InputError(png, "is a second figure of that name")
            figure = figure_content(sample=sample, name=name, png=png.read_bytes())
            (temporary / names[-1]).write_text(json.dumps(figure))
    progress.message(f"wrote {len(names)} MultiQC files for {sample} to {out_dir}")
    return [out_dir / name for name in names]


def _scores(path: Path) -> dict:
    require_file(path)
    if path.stat().st_size > MAX_SCORES_BYTES:
        raise InputError(path, f"holds more than {MAX_SCORES_BYTES} bytes: is it a scores file?")
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(path, f"is not JSON ({error})") from None
    except RecursionError:
        raise InputError(path, "nests JSON deeper than a scores file does") from None
    if not isinstance(found, dict):
        raise InputError(path, "is not a scores file written by 'deepimpute score'")
    return found


def _pngs(path: Path) -> list[Path]:
    """A PNG file, or the PNG files of a folder, each checked to be one."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.name.endswith(".png"))
    else:
        require_file(path)
        found = [path]
    for png in found:
        if (png.is_symlink() and path.is_dir()) or not png.is_file():  # a link in a folder may lead anywhere
            raise InputError(png, "is not a regular file")
        with open(png, "rb") as handle:
            if handle.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                raise InputError(png, "is not a PNG image")
        if png.stat().st_size > MAX_FIGURE_BYTES:
            raise InputError(png, f"holds more than {MAX_FIGURE_BYTES} bytes, more than a figure of a report")
    return found
