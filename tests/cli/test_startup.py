"""Start-up of each step: the heavy packages a step never calls stay out of its process."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import PBMC_SMALL, REPO

HEAVY = ("tensorflow", "keras", "loompy", "pandas", "sklearn", "matplotlib", "anndata", "numba")


def python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_reading_a_loom_through_the_command_line_imports_none_of_the_heavy_packages(tmp_path):
    out = python(
        "import sys\n"
        "from deepimpute_tool.cli import main\n"
        "from deepimpute_tool.loom import read_loom\n"
        f"read_loom({str(PBMC_SMALL)!r})\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    assert out == "[]"


def test_training_imports_tensorflow_without_keras_and_keras_still_works():
    out = python(
        "import sys\n"
        "from deepimpute_tool.network import configure_tensorflow\n"
        "tf, device = configure_tensorflow(cores=1, device='cpu', seed=0)\n"
        "print('keras' in sys.modules, device)\n"
        "print(type(tf.keras.layers.Dense(2)).__name__)\n"
    )
    assert out.splitlines() == ["False /CPU:0", "Dense"]
