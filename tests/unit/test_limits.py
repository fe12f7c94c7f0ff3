"""The memory guard caps a step's address space, and imputing runs without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import PBMC_SMALL, REPO


def python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_memory_guard_caps_the_address_space_and_restores_it():
    out = json.loads(
        python(
            "import json, resource\n"
            "from deepimpute_tool.limits import available_memory, memory_guard\n"
            "def mapped():\n"
            "    line = next(l for l in open('/proc/self/status') if l.startswith('VmSize:'))\n"
            "    return int(line.split()[1]) * 1024\n"
            "before = resource.getrlimit(resource.RLIMIT_AS)[0]\n"
            "with memory_guard():\n"
            "    inside = resource.getrlimit(resource.RLIMIT_AS)[0]\n"
            "    bound = mapped() + available_memory()\n"
            "after = resource.getrlimit(resource.RLIMIT_AS)[0]\n"
            "print(json.dumps(dict(before=before, inside=inside, after=after, infinity=resource.RLIM_INFINITY,\n"
            "                      bound=bound)))\n"
        )
    )
    assert out["inside"] != out["infinity"]
    # what the process maps plus the memory available, give or take what moved meanwhile
    assert abs(out["inside"] - out["bound"]) < 2**30
    assert out["after"] == out["before"]


def test_imputing_with_a_saved_model_never_imports_tensorflow(tmp_path):
    out = python(
        "import sys\n"
        "from deepimpute_tool.imputation import ImputeParameters\n"
        "from deepimpute_tool.progress import Progress\n"
        "from deepimpute_tool.steps.impute import impute_file\n"
        f"impute_file({str(PBMC_SMALL)!r}, {str(REPO / 'tests/data/pbmc_small.model.format1.zip')!r},\n"
        f"            {str(tmp_path / 'imputed.loom')!r}, params=ImputeParameters(uncertainty=2),\n"
        "            progress=Progress(quiet=True))\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    assert out == "[]"
    assert (tmp_path / "imputed.loom").is_file()
