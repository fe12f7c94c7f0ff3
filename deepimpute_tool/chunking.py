"""Splitting a Loom into chunks of cells and merging them back, for imputing on many machines.

Each chunk records its place as the global attribute ``deepimpute_chunk`` (``"3/8"``);
``impute`` carries global attributes over, so ``merge`` can put imputed chunks back in the
original cell order whatever order they arrive in, and refuse an incomplete set.
"""

from __future__ import annotations

import re
from pathlib import Path

from deepimpute_tool.errors import InputError
from deepimpute_tool.options import option, parameters

CHUNK_ATTR = "deepimpute_chunk"
CHUNK_FILE = re.compile(r".+\.chunk\d{4,}\.loom")


@parameters
class SplitParameters:
    """Every option of splitting."""

    chunk_size: int = option(
        10_000, minimum=1, galaxy=False, label="Cells per chunk", help="Cells per chunk."
    )


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
