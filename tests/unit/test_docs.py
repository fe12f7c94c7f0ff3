"""The documentation names only tests that exist."""

from __future__ import annotations

import fnmatch
import re

from tests.helpers import REPO


def test_every_test_that_docs_claims_names_exists():
    text = (REPO / "docs" / "claims.md").read_text()
    named = 0
    for row in text.splitlines():
        current = None
        for file_part, test_part in re.findall(r"`(?:([a-z0-9_/]+\.py))?(?:::(test_[\w*]+))?`", row):
            if file_part:
                current = (
                    REPO / file_part if file_part.startswith("benchmarks/") else REPO / "tests" / file_part
                )
                assert current.is_file(), f"{file_part} does not exist"
            if test_part:
                assert current is not None, f"{test_part} names no file"
                tests = re.findall(r"^def (test_\w+)", current.read_text(), flags=re.MULTILINE)
                assert fnmatch.filter(tests, test_part), f"{current.relative_to(REPO)} has no {test_part}"
                named += 1
    assert named >= 30
