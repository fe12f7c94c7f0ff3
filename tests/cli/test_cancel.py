"""A job cancelled by its scheduler or its user leaves nothing behind and says so in one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import BIN, MOUSE1M, REPO, TINY_TRAINING


@pytest.fixture(scope="module")
def mouse(tmp_path_factory) -> tuple[Path, Path]:
    """mouse1m_10k (10,000 cells) filtered, and a model of it: imputing it takes seconds."""
    work = tmp_path_factory.mktemp("mouse")
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    for step, args in (
        ("filter", [MOUSE1M, work / "filtered.loom", "--min-genes", "0", "--min-cells", "1"]),
        ("train", [work / "filtered.loom", work / "model", *TINY_TRAINING]),
    ):
        subprocess.run(
            [sys.executable, str(BIN / f"deepimpute-{step}"), *map(str, args), "-q"],
            check=True,
            env=environment,
        )
    return work / "filtered.loom", work / "model"


@pytest.mark.parametrize(
    "signum, says",
    [
        (signal.SIGTERM, "Cancelled (SIGTERM)."),
        (signal.SIGHUP, "Cancelled (SIGHUP)."),
        (signal.SIGINT, "Aborted."),
    ],
)
def test_a_signal_while_writing_removes_the_temporary_and_exits_with_128_plus_its_number(
    mouse, tmp_path, signum, says
):
    """SIGTERM is what Galaxy, SLURM and Nextflow send to cancel or time out a job: once the
    output's temporary exists, the signal must remove it and exit with 128 + the signal's number."""
    out = tmp_path / "imputed.loom"
    process = subprocess.Popen(
        [sys.executable, str(BIN / "deepimpute-impute"), str(mouse[0]), str(mouse[1]), str(out),
         "--chunk-cells", "10", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".imputed.loom.*.partial")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert stderr.strip() == says and stdout == ""
    assert list(tmp_path.iterdir()) == []
