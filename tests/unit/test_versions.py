"""One version everywhere: the package, the pipeline, its modules' containers and the Docker image."""

from __future__ import annotations

import re

from deepimpute_tool import __version__
from tests.helpers import REPO


def test_pipeline_and_image_carry_the_package_version():
    config = (REPO / "nextflow.config").read_text()
    assert re.search(r"^\s*version = '([^']+)'", config, flags=re.MULTILINE).group(1) == __version__
    for module in sorted((REPO / "modules" / "local" / "deepimpute").glob("*/main.nf")):
        tags = re.findall(r"deepimpute-tool:(\d[^'-]*)", module.read_text())
        assert tags and set(tags) == {__version__}, module
    assert (
        re.search(r"^  version: (\S+)$", (REPO / ".nf-core.yml").read_text(), flags=re.MULTILINE).group(1)
        == __version__
    )
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG VERSION=(\S+)$", dockerfile, flags=re.MULTILINE).group(1) == __version__
    assert f"deepimpute-tool:{__version__}" in dockerfile
