"""Loom in and out for the reference tools' runners (original_deepimpute.py, magic_impute.py).

They run in the reference tools' own environments, without this package, so this module
needs only loompy and numpy. The output has the layout of `deepimpute impute` (main matrix
imputed, layer 'raw' the input counts, other layers such as 'original' carried over), so
`deepimpute score` scores every tool with the same code.
"""

import argparse
import sys

import loompy
import numpy as np


def arguments(description: str, extra=lambda parser: None) -> argparse.Namespace:
    """IN.loom OUT.loom --cores --seed, and whatever ``extra`` adds."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--cores", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=0)
    extra(parser)
    return parser.parse_args()


def read(path: str) -> dict:
    """Counts (cells x genes), gene and cell names, other layers and all attributes."""
    with loompy.connect(path, "r", validate=False) as ds:
        return {
            "counts": ds[:, :].T,
            "genes": np.asarray(ds.ra["Gene"]).astype(str),
            "cells": np.asarray(ds.ca["CellID"]).astype(str),
            "layers": {name: ds.layers[name][:, :] for name in ds.layers.keys() if name != ""},
            "row_attrs": {k: ds.ra[k] for k in ds.ra.keys()},
            "col_attrs": {k: ds.ca[k] for k in ds.ca.keys()},
        }


def write(path: str, data: dict, imputed: np.ndarray) -> None:
    """``imputed`` (cells x genes) as the main matrix, the input counts as layer 'raw'."""
    layers = {"": np.asarray(imputed, np.float32).T, "raw": data["counts"].T, **data["layers"]}
    loompy.create(path, layers, data["row_attrs"], data["col_attrs"])


def report_times(train: float, impute: float, epochs: int) -> None:
    """The line measure.parse_times reads."""
    print(f"TIMES train={train:.3f} impute={impute:.3f} epochs={epochs}", file=sys.stderr)
