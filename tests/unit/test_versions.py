"""One version everywhere: the package, the pipeline, its container tag and the Docker image."""

from __future__ import annotations

import re

from deepimpute_tool import __version__
from tests.helpers import REPO


def test_pipeline_and_image_carry_the_package_version():
    config = (REPO / "nextflow.config").read_text()
    assert re.search(r"^\s*version = '([^']+)'", config, flags=re.MULTILINE).group(1) == __version__
    assert re.search(r"container = 'deepimpute-tool:([^']+)'", config).group(1) == __version__
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG VERSION=(\S+)$", dockerfile, flags=re.MULTILINE).group(1) == __version__
    assert f"deepimpute-tool:{__version__}" in dockerfile
