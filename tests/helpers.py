"""What tests share besides fixtures: paths to the real data, running the executables, comparing results."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
BIN = REPO / "bin"
PBMC_SMALL = DATA / "pbmc_small.loom"  # 230 genes x 80 cells, CellType labels
PBMC68K = DATA / "pbmc68k_reduced.loom"  # 765 genes x 700 cells, CellType labels
MOUSE1M = DATA / "mouse1m_10k.loom"  # 1,000 genes x 10,000 cells
QUICK = {"max_epochs": 3, "seed": 0, "cores": 2}
TINY_TRAINING = ["--max-epochs", "2", "--cores", "2"]


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dense(matrix) -> np.ndarray:
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


def run(executable: str, *args, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run ``bin/EXECUTABLE ARGS`` (the checkout's own executables) and capture its output.

    ``env`` replaces the environment (``PYTHONPATH`` is always the checkout)."""
    result = subprocess.run(
        [sys.executable, str(BIN / executable), *map(str, args)],
        capture_output=True,
        text=True,
        env={**kwargs.pop("env", os.environ), "PYTHONPATH": str(REPO)},
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{executable} {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def write_raw_loom(path: Path, counts: np.ndarray, *, cells=None, genes=None, dtype=np.float32) -> Path:
    """A Loom written with h5py alone (genes x cells), as other tools write them, NaN or empty included."""
    genes = genes if genes is not None else np.array([f"G{i}" for i in range(counts.shape[0])])
    cells = cells if cells is not None else np.array([f"C{i}" for i in range(counts.shape[1])])
    text = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        f.create_dataset("matrix", data=np.asarray(counts, dtype=dtype), maxshape=(None, None), chunks=True)
        f.create_dataset("row_attrs/Gene", data=np.asarray(genes, dtype=object), dtype=text)
        f.create_dataset("col_attrs/CellID", data=np.asarray(cells, dtype=object), dtype=text)
        for group in ("layers", "row_graphs", "col_graphs", "attrs"):
            f.create_group(group)
        f.attrs["LOOM_SPEC_VERSION"] = "3.0.0"
    return path


def read_matrix(path: Path, layer: str = "") -> np.ndarray:
    """A Loom's matrix (or layer), genes x cells, read with h5py."""
    with h5py.File(path, "r") as f:
        return f["matrix" if not layer else f"layers/{layer}"][()]


def assert_same_imputation(actual: np.ndarray, expected: np.ndarray, raw: np.ndarray) -> None:
    """Imputed matrices that keep observed counts (the paper's imputation, ``--policy restore``) and
    must agree: observed counts bit for bit, predictions to float32 rounding.

    BLAS sums a matrix product in an order that can depend on how many rows it is given (seen
    with OpenBLAS on AMD EPYC, not on Intel Xeon), so imputing cells in other blocks may change
    a prediction in its last bits.
    """
    observed = raw > 0
    np.testing.assert_array_equal(actual[observed], expected[observed])
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=0)


def require(config: pytest.Config, condition: bool, what: str) -> None:
    """Skip a test whose outside tool is missing; with ``--require-tools`` (CI) fail it instead."""
    if condition:
        return
    if config.getoption("--require-tools"):
        pytest.fail(f"{what} (tests/run_all.sh installs it)", pytrace=False)
    pytest.skip(f"{what}; tests/run_all.sh installs it")
