"""Start-up of each step (lean_imports): the heavy packages nothing calls stay out, and stay importable after."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_command_line_imports_loompy_without_numba_and_numba_still_works():
    out = python(
        "import sys\n"
        "import deepimpute_tool.cli\n"
        "import loompy, numpy_groupies\n"
        "print('numba' in sys.modules, numpy_groupies.aggregate_numba is None)\n"
        "import numba\n"
        "print(numba.njit(lambda x: x + 1)(1))\n"
    )
    assert out.splitlines() == ["False True", "2"]


def test_command_line_imports_loompy_without_scipy_stats_and_cell_calling_still_works():
    out = python(
        "import sys\n"
        "import numpy as np, scipy.sparse\n"
        "import deepimpute_tool.cli\n"
        "import loompy\n"
        "print('scipy.stats' in sys.modules)\n"
        "# barcodes of 2 counts each: loompy finds no ambient ones and calls every barcode a cell\n"
        "_, calls = loompy.call_cells(scipy.sparse.csr_matrix(np.ones((2, 10))), expected_n_cells=2)\n"
        "print(calls.tolist() == [1.0] * 10, sys.modules['loompy.cell_calling'].__file__.endswith('cell_calling.py'))\n"
    )
    assert out.splitlines() == ["False", "True True"]


def test_training_imports_tensorflow_without_keras_and_keras_still_works():
    out = python(
        "import sys\n"
        "from deepimpute_tool.training import _configure_tensorflow\n"
        "tf, device = _configure_tensorflow(cores=1, device='cpu', seed=0)\n"
        "print('keras' in sys.modules, device)\n"
        "print(type(tf.keras.layers.Dense(2)).__name__)\n"
    )
    assert out.splitlines() == ["False /CPU:0", "Dense"]
