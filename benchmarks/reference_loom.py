"""Loom in and out for the reference tools' runners (original_deepimpute.py, magic_impute.py).

They run in the reference tools' own environments, without this package, so this module
needs only loompy and numpy. The output has the layout of `deepimpute impute` (main matrix
imputed, layer 'raw' the input counts, other layers such as 'original' carried over, the
input's provenance and an imputation record naming the tool), so `deepimpute score` scores
every tool with the same code.
"""

import argparse
import importlib.metadata
import json
import sys
from datetime import datetime, timezone

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
            "attrs": {k: ds.attrs[k] for k in ds.attrs.keys() if k.startswith("deepimpute_")},
        }


def installed(distribution: str) -> str:
    """The distribution's name and installed version, as the output's imputation record names it."""
    return f"{distribution} {importlib.metadata.version(distribution)}"


def write(path: str, data: dict, imputed: np.ndarray, *, method: str) -> None:
    """``imputed`` (cells x genes) by ``method`` as the main matrix, the input counts as layer 'raw'."""
    layers = {"": np.asarray(imputed, np.float32).T, "raw": data["counts"].T, **data["layers"]}
    loompy.create(path, layers, data["row_attrs"], data["col_attrs"])
    record = {
        "tool": method,
        "step": "impute",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with loompy.connect(path, "r+", validate=False) as ds:
        for key, value in {**data["attrs"], "deepimpute_impute": json.dumps(record)}.items():
            ds.attrs[key] = value


def report_times(train: float, impute: float, epochs: int) -> None:
    """The line measure.parse_times reads."""
    print(f"TIMES train={train:.3f} impute={impute:.3f} epochs={epochs}", file=sys.stderr)
