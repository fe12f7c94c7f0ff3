"""What an h5ad output keeps of an h5ad input: the slots it does not replace, copied as stored.

``impute`` of an h5ad into an h5ad replaces ``X`` and adds its layers, a gene column and its
provenance; everything else the input holds (obs and var as stored, categoricals included;
obsm, varm, obsp, varp, uns, raw, other layers) is copied object by object by HDF5, never read
into memory. The input is a stranger's file, so :func:`kept_slots` first walks what will be
copied and refuses what a copy would turn into something else: a soft link (it would point into
the output, at other data) and an object linked from several places (each link would be copied
in full: a few bytes of links could make an output of any size).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from deepimpute_tool.errors import InputError
from deepimpute_tool.h5ad import (
    COUNTS_LAYER,
    RAW_X,
    counts_location,
    text_attr,
    write_array,
    write_dictionary,
)

CELL_SLOTS = ("obs", "obsm", "obsp", "uns", "raw")
GENE_SLOTS = ("varm", "varp", "layers")


@dataclass(frozen=True)
class KeptSlots:
    """What an output keeps of an h5ad input of the same cells and genes: make with :func:`kept_slots`.

    Attributes
    ----------
    source
        The input, opened by :func:`deepimpute_tool.hdf5.open_hdf5` (nothing outside it).
    path
        Its path, for errors.
    var
        The data frame of its genes: ``var``, or ``raw/var`` when the counts were ``raw.X``;
        then only what is per cell, ``uns`` and ``raw`` are kept, since layers, varm and varp
        are of the other genes.
    gene_columns
        The columns of the writer's gene attributes to add to ``var`` (replacing any of that name).
    annotations_only
        Keep obs and var alone (``mask``: the other slots describe the counts it hides).
    """

    source: h5py.File
    path: Path
    var: str = "var"
    gene_columns: tuple[str, ...] = ()
    annotations_only: bool = False

    @property
    def keeps_genes(self) -> bool:
        return self.var == "var"

    def layer_names(self) -> list[str]:
        """The input's layers that the output keeps."""
        layers = self.source.get("layers")
        kept = self.keeps_genes and not self.annotations_only
        return sorted(layers.keys()) if kept and isinstance(layers, h5py.Group) else []

    def copy_into(self, handle: h5py.File, *, gene_attrs: dict[str, np.ndarray], uns: h5py.Group) -> None:
        """Copy the kept slots into the output ``handle``, whose ``uns`` and ``layers`` the writer
        filled (its members win); add :attr:`gene_columns` to ``var``."""
        try:
            self._copy(handle, gene_attrs=gene_attrs, uns=uns)
        except (KeyError, OSError, RuntimeError, ValueError) as error:
            raise InputError(
                self.path, f"a slot cannot be copied into the output (damaged?): {error}"
            ) from None

    def _copy(self, handle: h5py.File, *, gene_attrs: dict[str, np.ndarray], uns: h5py.Group) -> None:
        source = self.source
        handle.copy(source["obs"], "obs")
        handle.copy(source[self.var], "var")
        var = handle["var"]
        order = [_text(c) for c in np.atleast_1d(var.attrs.get("column-order", [])) if _text(c)]
        for name in self.gene_columns:
            if name in var:
                del var[name]
            write_array(var, name, gene_attrs[name])
            order = [*(c for c in order if c != name), name]
        var.attrs["column-order"] = np.array(order, dtype=object) if order else np.array([], dtype="float64")
        if self.annotations_only:
            for name in ("obsm", "obsp", "varm", "varp"):
                write_dictionary(handle, name)
            return
        _copy_missing(source.get("uns"), uns)
        if self.keeps_genes:
            _copy_missing(source.get("layers"), handle["layers"])
        for name in ("obsm", "obsp", "varm", "varp"):
            if name in source and (self.keeps_genes or name in CELL_SLOTS):
                handle.copy(source[name], name)
            else:
                write_dictionary(handle, name)
        if "raw" in source:
            handle.copy(source["raw"], "raw")


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _copy_missing(source: h5py.Group | None, target: h5py.Group) -> None:
    """Every member of ``source`` that ``target`` lacks, copied with its attributes."""
    for name in source.keys() if isinstance(source, h5py.Group) else ():
        if name not in target:
            source.copy(source[name], target, name=name)


def kept_slots(
    handle: h5py.File,
    path: str | os.PathLike,
    *,
    layer: str | None,
    gene_columns: tuple[str, ...] = (),
    annotations_only: bool = False,
) -> KeptSlots:
    """What an h5ad output keeps of the open h5ad input ``handle`` whose counts ``layer`` says where
    to read; refuses, naming the object, what would not copy faithfully."""
    path = Path(path)
    _, var = counts_location(handle, path, layer)
    keep = KeptSlots(handle, path, var=var, gene_columns=gene_columns, annotations_only=annotations_only)
    if annotations_only:
        for name in ("obs", var):
            _refuse_links(handle, name, path)
        return keep
    index = text_attr(handle[var], "_index", "_index")
    if index in gene_columns:
        raise InputError(
            path, f"names its genes by '{var}/{index}', a column impute writes: rename the index"
        )
    if keep.keeps_genes and layer != COUNTS_LAYER and f"layers/{COUNTS_LAYER}" in handle:
        read = "X" if layer is None else ("raw.X" if layer == RAW_X else f"layer '{layer}'")
        raise InputError(
            path,
            f"has a layer '{COUNTS_LAYER}' besides the counts read ({read}), and the output's layer "
            f"'{COUNTS_LAYER}' holds the counts read: give ⟨layer⟩ {COUNTS_LAYER} if it holds the raw "
            "counts, or rename it",
        )
    for name in (var, *CELL_SLOTS, *(GENE_SLOTS if keep.keeps_genes else ())):
        if name in handle:
            _refuse_links(handle, name, path)
    return keep


def _refuse_links(handle: h5py.File, name: str, path: Path) -> None:
    """Refuse a soft link, or an object linked from more than one place, at or below ``name``."""
    pending = [name]
    while pending:
        current = pending.pop()
        parent, _, last = current.rpartition("/")
        link = (handle[parent] if parent else handle).get(last, getlink=True)
        if isinstance(link, h5py.SoftLink):
            raise InputError(
                path, f"'/{current}' is a soft link, which an h5ad output cannot copy faithfully"
            )
        item = handle[current]
        if h5py.h5o.get_info(item.id).rc > 1:
            raise InputError(
                path, f"'/{current}' is linked from several places, which an h5ad output does not copy"
            )
        if isinstance(item, h5py.Group):
            pending.extend(f"{current}/{child}" for child in item.keys())
