"""Shared fixtures: real count matrices shipped in tests/data (copies of ../shared/data files)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from deepimpute_tool.io import read_loom
from deepimpute_tool.model import Model
from deepimpute_tool.training import TrainingParameters, train

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parent.parent
PBMC_SMALL = DATA / "pbmc_small.loom"  # 230 genes x 80 cells, CellType labels
PBMC68K = DATA / "pbmc68k_reduced.loom"  # 765 genes x 700 cells, CellType labels
QUICK = {"max_epochs": 3, "seed": 0, "cores": 2}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def pbmc_small():
    return read_loom(PBMC_SMALL)


@pytest.fixture(scope="session")
def pbmc68k():
    return read_loom(PBMC68K)


@pytest.fixture(scope="session")
def pbmc68k_model(pbmc68k) -> Model:
    """A real model, trained for a few epochs on pbmc68k_reduced (two sub-networks)."""
    params = TrainingParameters(subset_size=400, **QUICK)
    return train(pbmc68k.counts, pbmc68k.genes, params=params)


@pytest.fixture(scope="session")
def pbmc68k_model_dir(pbmc68k_model, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    pbmc68k_model.save(directory)
    return directory


def dense(matrix) -> np.ndarray:
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


def assert_same_imputation(actual: np.ndarray, expected: np.ndarray, raw: np.ndarray) -> None:
    """Imputed matrices that must agree: observed counts bit for bit, predictions to float32 rounding.

    BLAS sums a matrix product in an order that can depend on how many rows it is given (seen
    with OpenBLAS on AMD EPYC, not on Intel Xeon), so imputing cells in other blocks may change
    a prediction in its last bits.
    """
    observed = raw > 0
    np.testing.assert_array_equal(actual[observed], expected[observed])
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=0)


def require(condition: bool, what: str) -> None:
    """Skip a test whose outside tool is missing, except in the full run (tests/run_all.sh, CI): fail there."""
    if condition:
        return
    if os.environ.get("DEEPIMPUTE_FULL_TESTS") or os.environ.get("CI"):
        pytest.fail(f"{what} (tests/run_all.sh installs it)", pytrace=False)
    pytest.skip(f"{what}; tests/run_all.sh installs it")
