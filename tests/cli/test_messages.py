"""An error deep in a step names the option as the surface that ran the command spells it."""

from __future__ import annotations

import os

import pytest

from tests.helpers import PBMC_SMALL, run


@pytest.mark.parametrize(
    ("surface", "named"),
    [
        (None, "--min-vmr 1000.0"),
        ("cli", "--min-vmr 1000.0"),
        ("nextflow", "--min_vmr 1000.0"),
        ("galaxy", "'Minimum variance/mean ratio of target genes' 1000.0"),
    ],
)
def test_an_error_of_training_names_the_option_as_its_surface_does(surface, named, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "DEEPIMPUTE_SURFACE"}
    if surface:
        env["DEEPIMPUTE_SURFACE"] = surface
    result = run(
        "deepimpute-train", PBMC_SMALL, tmp_path / "model", "--min-vmr", "1000", "-q", check=False, env=env
    )
    assert result.returncode == 2
    assert result.stderr == (f"Error: {PBMC_SMALL}: no gene has a variance/mean ratio above {named}\n")
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nan", "--learning-rate nan: must be a finite number"),
        ("inf", "--learning-rate inf: must be a finite number"),
        ("-inf", "Invalid value for '--learning-rate': -inf is not in the range x>0."),  # click's own
    ],
)
def test_a_float_option_that_is_not_a_finite_number_is_refused_before_any_work(value, message, tmp_path):
    """Before: NaN slipped past every bound and trained an untrained network (exit 0)."""
    result = run("deepimpute-train", PBMC_SMALL, tmp_path / "model", "--learning-rate", value, check=False)
    assert result.returncode == 2
    assert result.stderr == f"Error: {message}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("step", ["mask", "train"])
def test_a_negative_seed_is_refused_with_one_line(step, tmp_path):
    """Before: numpy's traceback ('expected non-negative integer')."""
    result = run(f"deepimpute-{step}", PBMC_SMALL, tmp_path / "out", "--seed", "-1", check=False)
    assert result.returncode == 2
    assert result.stderr == "Error: Invalid value for '--seed': -1 is not in the range 0<=x<=4294967295.\n"
    assert list(tmp_path.iterdir()) == []
