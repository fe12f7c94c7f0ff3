"""The Dockerfile: linted, its pip step resolved, and built and run with buildah on a local base.

No Docker engine runs here and Docker Hub is out of reach, so the official TensorFlow GPU
base image is never pulled: the build test gives the Dockerfile a local base made from
Debian packages with Python and tensorflow-cpu (through BASE_IMAGE), builds it with
buildah, and runs the executables inside it as the image's non-root user.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from deepimpute_tool import __version__
from tests.helpers import REPO, require

DOCKERFILE = REPO / "Dockerfile"
TENSORFLOW = "2.21.0"


@pytest.fixture(scope="module")
def dockerfile() -> DockerfileParser:
    parser = DockerfileParser(str(DOCKERFILE))
    return parser


def test_hadolint_is_clean_at_warning_level():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_is_the_tensorflow_image_of_the_tested_version_and_the_gpu_one_a_build_arg_away(dockerfile):
    args = {
        i["value"].split("=")[0]: i["value"].split("=", 1)[1]
        for i in dockerfile.structure
        if i["instruction"] == "ARG" and "=" in i["value"]
    }
    assert args["BASE_IMAGE"] == f"tensorflow/tensorflow:{TENSORFLOW}"
    assert f"--build-arg BASE_IMAGE=tensorflow/tensorflow:{TENSORFLOW}-gpu" in DOCKERFILE.read_text()
    assert args["VERSION"] == __version__
    assert (
        dockerfile.structure[[i["instruction"] for i in dockerfile.structure].index("FROM")]["value"]
        == "${BASE_IMAGE}"
    )


def test_labels_user_and_no_git_clone(dockerfile):
    labels = dockerfile.labels
    for key in ("source", "version", "licenses", "created", "revision", "documentation"):
        assert f"org.opencontainers.image.{key}" in labels
    assert labels["org.opencontainers.image.source"].startswith("https://github.com/")
    assert "doi.org" not in labels["org.opencontainers.image.source"]
    assert 'docker run -u "$(id -u):$(id -g)"' in DOCKERFILE.read_text()
    users = [i["value"] for i in dockerfile.structure if i["instruction"] == "USER"]
    assert users and not users[-1].startswith(("root", "0"))
    text = DOCKERFILE.read_text()
    assert "git clone" not in text and "--no-cache-dir" in text


def test_the_build_context_holds_exactly_what_the_image_copies(dockerfile):
    """.dockerignore leaves out everything, then lets in the Dockerfile and what COPY takes."""
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    let_in = {line[1:].rstrip("/") for line in patterns if line.startswith("!")}
    copied = {
        source.rstrip("/")
        for item in dockerfile.structure
        if item["instruction"] == "COPY"
        for source in item["value"].split()[:-1]
        if not source.startswith("--")
    }
    assert let_in - {"Dockerfile"} == copied


def test_requirements_are_pinned_and_resolve_with_the_base_tensorflow(tmp_path):
    requirements = REPO / "docker" / "requirements.txt"
    lines = [line for line in requirements.read_text().splitlines() if line and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][\w.]*", line) for line in lines), lines
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--prefer-binary",
            "--report",
            str(report),
            f"tensorflow=={TENSORFLOW}",
            "-r",
            str(requirements),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    resolved = {
        item["metadata"]["name"].lower(): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert resolved["tensorflow"] == TENSORFLOW
    for line in lines:
        name, version = line.split("==")
        assert resolved[name.lower()] == version


def test_image_builds_and_runs_every_executable_as_non_root(tmp_path_factory, request):
    """Build with buildah on a Debian + tensorflow-cpu base; run --version and a tiny `run` inside."""
    require(
        request.config,
        os.geteuid() == 0 and all(shutil.which(tool) for tool in ("buildah", "podman", "debootstrap")),
        "the image build needs root, buildah, podman and debootstrap",
    )
    result = subprocess.run(
        ["bash", str(Path(__file__).parent / "docker_build.sh"), str(tmp_path_factory.mktemp("buildah"))],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    out = result.stdout
    assert f"deepimpute, version {__version__}" in out
    assert "deepimpute-train, usage ok" in out
    assert re.search(r"uid=10001\(deepimpute\)", out)
    assert "run outputs: filtered.loom imputed.loom model " in out
    # as `docker run -u "$(id -u):$(id -g)" -v "$PWD:/data"`: another uid writes into its own mounted folder
    assert "as uid 12345 into a mounted folder: filtered.loom imputed.loom model owned by 12345" in out
