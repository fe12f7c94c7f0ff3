"""The package as a registry would take it: an sdist and a wheel that build, and install into a fresh virtualenv."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from deepimpute_tool import __version__
from tests.helpers import PBMC_SMALL, REPO


@pytest.fixture(scope="module")
def distributions(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_the_wheel_carries_the_package_its_licence_and_complete_metadata(distributions):
    wheel = next(distributions.glob(f"deepimpute_tool-{__version__}-py3-none-any.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = Parser().parsestr(
            archive.read(f"deepimpute_tool-{__version__}.dist-info/METADATA").decode()
        )
        entry_points = archive.read(f"deepimpute_tool-{__version__}.dist-info/entry_points.txt").decode()
    assert "deepimpute_tool/cli.py" in names and not any(name.startswith("tests/") for name in names)
    assert "deepimpute_tool/data/pbmc3k_genes10.loom" in names  # deepimpute_tool.datasets.pbmc3k
    assert any(name.endswith("licenses/LICENSE") for name in names)
    assert metadata["Version"] == __version__ and metadata["License-Expression"] == "MIT"
    assert any(url.startswith("Source, https://") for url in metadata.get_all("Project-URL"))
    assert 'tensorflow[and-cuda]>=2.16; extra == "gpu"' in metadata.get_all("Requires-Dist")
    for step in ("filter", "mask", "train", "impute", "score", "split", "merge", "run"):
        assert f"deepimpute-{step} = deepimpute_tool.cli:main" in entry_points
    sdist = next(distributions.glob(f"deepimpute_tool-{__version__}.tar.gz"))
    with tarfile.open(sdist) as archive:
        members = {Path(name).name for name in archive.getnames()}
    assert {"LICENSE", "pyproject.toml", "README.md", "cli.py"} <= members


def test_the_wheel_installs_into_a_fresh_virtualenv_and_runs(distributions, tmp_path):
    """Its dependencies come from the registry (pip's cache makes it quick after the first time)."""
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    wheel = next(distributions.glob("*.whl"))
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr[-3000:]
    version = subprocess.run(
        [str(environment / "bin" / "deepimpute"), "--version"], capture_output=True, text=True
    )
    assert version.stdout.strip() == f"deepimpute, version {__version__}"
    result = subprocess.run(
        [
            str(environment / "bin" / "deepimpute-filter"),
            str(PBMC_SMALL),
            str(tmp_path / "out.loom"),
            "--min-genes",
            "10",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.loom").is_file()


def test_the_tutorial_runs_as_a_new_user_would_run_it(distributions, tmp_path):
    """pip install the wheel and scanpy into a fresh virtualenv, then every code block of
    docs/tutorial.md, in order, in a fresh Python outside the checkout."""
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    wheel = next(distributions.glob("*.whl"))
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel), "scanpy"], capture_output=True, text=True
    )
    assert install.returncode == 0, install.stderr[-3000:]
    tutorial = (REPO / "docs" / "tutorial.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", tutorial, re.S)
    assert len(blocks) >= 4
    work = tmp_path / "work"
    work.mkdir()
    (work / "tutorial.py").write_text("\n\n".join(blocks))
    result = subprocess.run(
        [str(python), "tutorial.py"],
        capture_output=True,
        text=True,
        cwd=work,
        env={**os.environ, "MPLBACKEND": "Agg"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    imputed = re.search(r"^(\d+) genes imputed$", result.stdout, re.M)
    assert imputed and 0 < int(imputed[1]) <= 11139
    assert re.search(r"^\d+ clusters of the raw counts, \d+ of the imputed$", result.stdout, re.M)
    for figure in ("tutorial.png", "loss.png"):
        assert (work / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert zipfile.is_zipfile(work / "pbmc3k-model.zip")
