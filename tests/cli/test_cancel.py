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
    process = _impute_until_writing(mouse, tmp_path, ignored=())
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    assert stderr.strip() == says and stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_a_signal_ignored_at_start_stays_ignored(mouse, tmp_path):
    """nohup starts a job with SIGHUP ignored so that it outlives its terminal: it must."""
    process = _impute_until_writing(mouse, tmp_path, ignored=(signal.SIGHUP,))
    process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert [p.name for p in tmp_path.iterdir()] == ["imputed.loom"]


def _impute_until_writing(mouse, folder: Path, *, ignored: tuple) -> subprocess.Popen:
    """impute started in the foreground's state (SIGINT not ignored, as a shell's background job
    and CI have it) with ``ignored`` signals ignored; returned once its output's temporary exists."""

    def dispositions():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for signum in ignored:
            signal.signal(signum, signal.SIG_IGN)

    process = subprocess.Popen(
        [sys.executable, str(BIN / "deepimpute-impute"), str(mouse[0]), str(mouse[1]),
         str(folder / "imputed.loom"), "--chunk-cells", "10", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=dispositions,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(folder.glob(".imputed.loom.*.partial")):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return process
