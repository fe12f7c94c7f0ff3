"""Splitting a Loom into chunks of cells and merging them back, for imputing on many machines.

Each chunk records its place as the global attribute ``deepimpute_chunk`` (``"3/8"``), and
where it comes from as ``deepimpute_chunk_source`` (:class:`ChunkSource`: which split of which
input, which cells). ``impute`` carries global attributes over, so ``merge`` can put imputed
chunks back in the original cell order whatever order they arrive in, and refuse a set that
is incomplete, mixes splits, holds other cells than the split put in it, or was processed
differently chunk by chunk (another model, other options).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepimpute_tool.errors import InputError
from deepimpute_tool.options import option, parameters, shared_option

CHUNK_ATTR = "deepimpute_chunk"
CHUNK_SOURCE_ATTR = "deepimpute_chunk_source"
# where a file was, and how much memory a machine gave a step: they differ between machines and
# change no value
MACHINE_PARAMETERS = ("model", "input", "chunk_cells", "cores")
CHUNK_FILE = re.compile(r".+\.chunk\d{4,}\.loom")


@parameters
class SplitParameters:
    """Every option of splitting."""

    chunk_size: int = option(
        10_000, minimum=1, galaxy=False, label="Cells per chunk", help="Cells per chunk."
    )
    layer: str | None = shared_option("layer")


def chunk_name(stem: str, number: int) -> str:
    """The file name of chunk ``number`` (from 1) of a Loom named ``stem``.loom."""
    return f"{stem}.chunk{number:04d}.loom"


def is_chunk_folder(path: Path) -> bool:
    """Whether ``path`` is empty or holds only files named as :func:`chunk_name` names them."""
    return all(entry.is_file() and not entry.is_symlink() and CHUNK_FILE.fullmatch(entry.name)
               for entry in Path(path).iterdir())  # fmt: skip


def chunk_place(path: Path, attrs: dict[str, str]) -> tuple[int, int]:
    """(number, total) that ``split`` recorded in a chunk."""
    try:
        number, total = (int(part) for part in str(attrs[CHUNK_ATTR]).split("/"))
    except (KeyError, ValueError):
        raise InputError(
            path, f"is not a chunk made by 'deepimpute split' (no '{CHUNK_ATTR}' attribute)"
        ) from None
    if not 1 <= number <= total:
        raise InputError(path, f"has an impossible chunk place {number}/{total}")
    return number, total


def in_order(places: dict[Path, tuple[int, int]]) -> list[Path]:
    """The chunks in their original order; :class:`InputError` unless they are one complete set."""
    totals = {total for _, total in places.values()}
    numbers = sorted(number for number, _ in places.values())
    if len(totals) != 1 or numbers != list(range(1, next(iter(totals)) + 1)):
        got = ", ".join(f"{n}/{t}" for n, t in sorted(places.values()))
        raise InputError(next(iter(places)), f"the chunks do not form one complete set (got {got})")
    return sorted(places, key=lambda path: places[path][0])


@dataclass(frozen=True)
class ChunkSource:
    """Where a chunk comes from: the split (a random identifier of one run of ``split``), the
    input's name, and which cells: ``cells`` from ``first_cell`` of ``of_cells``, whose IDs
    have the checksum ``cell_ids_sha256``."""

    split: str
    input: str
    first_cell: int
    cells: int
    of_cells: int
    cell_ids_sha256: str

    def attrs(self) -> dict[str, str]:
        return {CHUNK_SOURCE_ATTR: json.dumps(dataclasses.asdict(self))}


def cell_ids_sha256(cells: np.ndarray) -> str:
    """A checksum of cell IDs in their order (names hold no NUL: readers refuse control characters)."""
    digest = hashlib.sha256()
    for name in cells:
        digest.update(str(name).encode("utf-8") + b"\0")
    return digest.hexdigest()


def chunk_source(path: Path, attrs: dict[str, str]) -> ChunkSource:
    """The :class:`ChunkSource` that ``split`` recorded in a chunk."""
    text = attrs.get(CHUNK_SOURCE_ATTR)
    if text is None:
        raise InputError(
            path,
            "has no record of the split it comes from (an older 'deepimpute split'?); split the input again",
        )
    try:
        return ChunkSource(**json.loads(text))
    except (ValueError, TypeError, RecursionError):
        raise InputError(path, f"has a damaged '{CHUNK_SOURCE_ATTR}' attribute") from None


def check_chunk_cells(
    ordered: list[Path], sources: dict[Path, ChunkSource], cells: dict[Path, np.ndarray]
) -> None:
    """:class:`InputError` unless the chunks come from one split and hold, in order, every cell it
    put in them, each once."""
    first = sources[ordered[0]]
    next_cell = 0
    for path in ordered:
        source = sources[path]
        if source.split != first.split:
            raise InputError(
                path,
                f"comes from another split than {ordered[0].name} (of {source.input!r}, not of {first.input!r}, "
                "or split again)",
            )
        if source.first_cell != next_cell or source.of_cells != first.of_cells:
            raise InputError(path, f"holds cells {source.first_cell}.. where cell {next_cell} was expected")
        if cells[path].size != source.cells or cell_ids_sha256(cells[path]) != source.cell_ids_sha256:
            raise InputError(
                path, f"holds other cells ({cells[path].size}) than the {source.cells} its split put in it"
            )
        next_cell += source.cells
    if next_cell != first.of_cells:
        raise InputError(ordered[-1], f"the chunks hold {next_cell} of the input's {first.of_cells} cells")


def _processing(attrs: dict[str, str]) -> dict[str, object]:
    """The steps a chunk went through and their parameters, without dates or paths."""
    found = {}
    for key, text in attrs.items():
        if not key.startswith("deepimpute_") or key in (CHUNK_ATTR, CHUNK_SOURCE_ATTR):
            continue
        try:
            record = json.loads(text)
            parameters = {k: v for k, v in record["parameters"].items() if k not in MACHINE_PARAMETERS}
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            parameters = text
        found[key.removeprefix("deepimpute_")] = parameters
    return found


def check_same_processing(ordered: list[Path], attrs: dict[Path, dict[str, str]]) -> None:
    """:class:`InputError` unless every chunk went through the same steps with the same options
    and model as the first (an imputed chunk beside one that was not, or one of another model)."""
    first = _processing(attrs[ordered[0]])
    for path in ordered[1:]:
        found = _processing(attrs[path])
        for step in sorted(set(first) | set(found)):
            if step not in found or step not in first:
                done, missing = (
                    (ordered[0].name, path.name) if step in first else (path.name, ordered[0].name)
                )
                raise InputError(path, f"went through '{step}' in {done} but not in {missing}")
            if found[step] != first[step]:
                mine, theirs = found[step], first[step]
                if isinstance(mine, dict) and isinstance(theirs, dict):
                    if mine.get("model_sha256") != theirs.get("model_sha256"):
                        raise InputError(path, f"was imputed with another model than {ordered[0].name}")
                    differing = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
                    raise InputError(
                        path,
                        f"went through '{step}' with other options than {ordered[0].name}: {', '.join(differing)}",
                    )
                raise InputError(path, f"went through '{step}' otherwise than {ordered[0].name}")
