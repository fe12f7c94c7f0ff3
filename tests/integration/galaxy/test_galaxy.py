"""The Galaxy tools: planemo lint, and their tests and the workflow's on a real Galaxy server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deepimpute_tool import __version__
from tests.helpers import REPO, require

GALAXY = REPO / "galaxy"
TOOLS = sorted(GALAXY.glob("deepimpute_*.xml"))
WORKFLOWS = [GALAXY / "workflows" / name for name in ("deepimpute-evaluate.ga", "deepimpute-impute.ga")]


def _galaxy_venv() -> Path | None:
    venv = os.environ.get("GX_VENV")
    return Path(venv) if venv and (Path(venv) / "bin" / "galaxy-web").exists() else None


@pytest.fixture(scope="module")
def gx_venv(request) -> Path:
    venv = _galaxy_venv()
    require(
        request.config, venv is not None, "a Galaxy virtualenv (GX_VENV) with galaxy and planemo is needed"
    )
    return venv


@pytest.mark.parametrize("tool", TOOLS, ids=[t.stem for t in TOOLS])
def test_planemo_lint_is_clean(gx_venv, tool):
    result = subprocess.run(
        [str(gx_venv / "bin" / "planemo"), "lint", "--fail_level", "warn", str(tool)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.stem)
def test_workflow_lint_is_clean(gx_venv, workflow):
    result = subprocess.run(
        [str(gx_venv / "bin" / "planemo"), "workflow_lint", "--fail_level", "warn", str(workflow)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_suite_is_ready_for_a_tool_shed(gx_venv, tmp_path):
    """planemo shed_lint on .shed.yml and every tool; its version check asks the ToolShed, so it is skipped.

    shed_lint wants the checkout's path to end as remote_repository_url ends (.../tree/main/galaxy,
    where 'main' is the branch), so the suite is linted from a copy at .../main/galaxy.
    """
    copy = tmp_path / "main" / "galaxy"
    shutil.copytree(GALAXY, copy)
    result = subprocess.run(
        [str(gx_venv / "bin" / "planemo"), "shed_lint", "--tools", "--ensure_metadata", "--fail_level", "warn",
         "--skip", "version_bumped", str(copy)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert all(f"Linting tool {copy / tool.name}" in result.stdout for tool in TOOLS)


def test_every_tool_requires_the_package_and_names_its_creator():
    for tool in TOOLS:
        text = tool.read_text()
        assert '<expand macro="creator"/>' in text and 'macro="requirements"' in text.replace("gpu_", ""), (
            tool
        )
    macros = (GALAXY / "macros.xml").read_text()
    assert '<requirement type="package" version="@TOOL_VERSION@">deepimpute-tool</requirement>' in macros


def test_macros_carry_the_package_version():
    macros = (GALAXY / "macros.xml").read_text()
    assert re.search(r'<token name="@TOOL_VERSION@">([^<]+)</token>', macros).group(1) == __version__
    assert "deepimpute-tool:@TOOL_VERSION@" in macros


@pytest.fixture(scope="module")
def galaxy_run(gx_venv, tmp_path_factory, request) -> Path:
    """Start Galaxy once; run every tool test, the workflow test and the form screenshot."""
    require(request.config, shutil.which("chromium") is not None, "the form screenshot needs chromium")
    out = tmp_path_factory.mktemp("galaxy")
    environment = {
        **os.environ,
        "GX_VENV": str(gx_venv),
        "TOOL_PATH": os.environ.get("TOOL_PATH", str(Path(sys.executable).parent)),
    }
    result = subprocess.run(
        ["bash", str(Path(__file__).parent / "galaxy_server.sh"), str(out)],
        env=environment,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def test_every_tool_test_passes_on_galaxy(galaxy_run):
    results = json.loads((galaxy_run / "tools.json").read_text())["tests"]
    by_tool: dict[str, list[str]] = {}
    for test in results:
        by_tool.setdefault(test["data"]["tool_id"], []).append(test["data"]["status"])
    assert set(by_tool) == {t.stem for t in TOOLS}, by_tool
    failed = {tool: statuses for tool, statuses in by_tool.items() if set(statuses) != {"success"}}
    assert not failed, (failed, (galaxy_run / "tools.log").read_text()[-4000:])


def test_workflow_test_passes_on_galaxy(galaxy_run):
    report = json.loads((galaxy_run / "workflow.json").read_text())
    assert report["summary"]["num_tests"] == len(WORKFLOWS)  # each workflow's one test
    assert report["summary"]["num_failures"] == 0 and report["summary"]["num_errors"] == 0, (
        galaxy_run / "workflow.log"
    ).read_text()[-4000:]


def test_impute_form_shows_the_tool_and_its_parameters(galaxy_run):
    page = (galaxy_run / "impute_form.html").read_text()
    for text in (
        "DeepImpute impute",
        "Loom or AnnData to impute",
        "Model",
        "What to write for the imputed genes",
    ):
        assert text in page, text
    png = (galaxy_run / "impute_form.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    committed = GALAXY / "screenshots" / "impute_form.png"
    assert committed.exists()
