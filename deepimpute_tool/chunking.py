"""Splitting a Loom into blocks of cells and merging them back, for imputing on many machines.

Each chunk records its place as the global attribute ``deepimpute_chunk`` (``"3/8"``);
``impute`` carries global attributes over, so ``merge`` can put imputed chunks back in the
original cell order whatever order they arrive in, and refuse an incomplete set.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import loompy
import numpy as np

from deepimpute_tool.errors import InputError
from deepimpute_tool.io import (
    atomic_path,
    loom_file_attrs,
    loom_names,
    loom_row_attrs,
    new_loom,
    open_loom,
)

CHUNK_ATTR = "deepimpute_chunk"


def split_loom(
    in_path: str | os.PathLike, out_dir: str | os.PathLike, *, chunk_size: int, file_attrs: dict[str, str]
) -> list[Path]:
    """Write blocks of ``chunk_size`` cells of ``in_path`` as ``out_dir/<stem>.chunkNNNN.loom``."""
    in_path = Path(in_path)
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    written = []
    with open_loom(in_path) as source:
        loom_names(source, path=in_path)
        n_cells = source.shape[1]
        if n_cells == 0:
            raise InputError(str(in_path), "the matrix is empty")
        starts = range(0, n_cells, chunk_size)
        row_attrs = loom_row_attrs(source)
        attrs = loom_file_attrs(source)
        stem = in_path.name.removesuffix(".loom")
        with atomic_path(out_dir, directory=True) as temporary:
            for number, start in enumerate(starts, start=1):
                cols = slice(start, min(start + chunk_size, n_cells))
                layers = {name: source.layers[name][:, cols] for name in source.layers.keys()}
                col_attrs = {k: np.asarray(source.ca[k][cols]) for k in source.ca.keys()}
                place = {CHUNK_ATTR: f"{number}/{len(starts)}"}
                name = f"{stem}.chunk{number:04d}.loom"
                loompy.create(
                    str(temporary / name),
                    layers,
                    row_attrs,
                    col_attrs,
                    file_attrs={**attrs, **file_attrs, **place},
                )
                written.append(Path(out_dir) / name)
    return written


def _chunk_place(path: str, attrs) -> tuple[int, int]:
    try:
        number, total = (int(part) for part in str(attrs[CHUNK_ATTR]).split("/"))
    except (KeyError, ValueError):
        raise InputError(
            path, f"is not a chunk made by 'deepimpute split' (no '{CHUNK_ATTR}' attribute)"
        ) from None
    return number, total


def merge_looms(
    chunk_paths: list[str | os.PathLike], out_path: str | os.PathLike, *, file_attrs: dict[str, str]
) -> int:
    """Concatenate chunks (in their original cell order) into one Loom; return the number of cells."""
    if not chunk_paths:
        raise InputError(None, "no chunks to merge")
    places = {}
    for path in map(str, chunk_paths):
        with open_loom(path) as ds:
            places[path] = _chunk_place(path, ds.attrs)
    totals = {total for _, total in places.values()}
    numbers = sorted(number for number, _ in places.values())
    if len(totals) != 1 or numbers != list(range(1, totals.pop() + 1)):
        got = ", ".join(f"{n}/{t}" for n, t in sorted(places.values()))
        raise InputError(str(chunk_paths[0]), f"the chunks do not form one complete set (got {got})")
    ordered = sorted(places, key=lambda path: places[path][0])
    n_cells = 0
    with atomic_path(out_path) as temporary, new_loom(temporary) as out:
        genes = None
        for path in ordered:
            with open_loom(path) as ds:
                chunk_genes, _ = loom_names(ds, path=path)
                if genes is None:
                    genes = chunk_genes
                    layer_names = set(ds.layers.keys())
                    attrs = loom_file_attrs(ds, exclude=(CHUNK_ATTR,))
                elif not np.array_equal(chunk_genes, genes) or set(ds.layers.keys()) != layer_names:
                    raise InputError(path, "has other genes or layers than the first chunk")
                layers = {name: ds.layers[name][:, :] for name in layer_names}
                col_attrs = {k: np.asarray(ds.ca[k]) for k in ds.ca.keys()}
                row_attrs = loom_row_attrs(ds)
                out.add_columns(layers, col_attrs, row_attrs=row_attrs)
                n_cells += ds.shape[1]
        for key, value in {
            **attrs,
            **file_attrs,
            "deepimpute_merged_chunks": json.dumps(len(ordered)),
        }.items():
            out.attrs[key] = value
    return n_cells
