"""Fixtures on real count matrices (tests/data: copies of ../shared/data files), markers by folder.

Session fixtures are read-only: their arrays cannot be written, so code under test that
changed its input in place would fail the test instead of every test after it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from deepimpute_tool.dataset import Dataset
from deepimpute_tool.loom import read_loom
from deepimpute_tool.model import Model
from deepimpute_tool.training import TrainingParameters, train
from tests.helpers import PBMC68K, PBMC_SMALL, QUICK

EXIT_STATUS = pytest.StashKey[int]()
KINDS = {"unit": "unit", "cli": "cli", "integration": "integration"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-tools",
        action="store_true",
        help="fail, instead of skipping, the tests whose outside tools (java, Galaxy, buildah) are missing",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test gets the marker of its folder: unit, cli, integration (and nextflow, galaxy, docker)."""
    tests = Path(__file__).parent
    for item in items:
        parts = Path(item.fspath).relative_to(tests).parts
        item.add_marker(getattr(pytest.mark, KINDS[parts[0]]))
        if parts[0] == "integration":
            item.add_marker(getattr(pytest.mark, parts[1]))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without the interpreter's teardown, once every report is written.

    After a session that trained with TensorFlow in this process and ran the integration tier,
    CI's Python died of a segmentation fault with no fault-handler traceback, which pytest prints
    for a crash inside a test: the crash came after pytest had finished, in the teardown of the
    interpreter, and it lost the buffered summary and turned the run's status into 139.
    Nothing is left to do at that point but flush and exit with pytest's own status.
    """
    if EXIT_STATUS in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[EXIT_STATUS])


def _frozen(dataset: Dataset) -> Dataset:
    arrays = [
        dataset.counts.data,
        dataset.counts.indices,
        dataset.counts.indptr,
        dataset.genes,
        dataset.cells,
    ]
    arrays += [*dataset.gene_attrs.values(), *dataset.cell_attrs.values()]
    for layer in dataset.layers.values():
        arrays += [layer.data, layer.indices, layer.indptr]
    for array in arrays:
        array.setflags(write=False)
    return dataset


@pytest.fixture(scope="session")
def pbmc_small() -> Dataset:
    return _frozen(read_loom(PBMC_SMALL))


@pytest.fixture(scope="session")
def pbmc68k() -> Dataset:
    return _frozen(read_loom(PBMC68K))


@pytest.fixture(scope="session")
def pbmc68k_model(pbmc68k) -> Model:
    """A real model, trained for a few epochs on pbmc68k_reduced (two sub-networks)."""
    return train(pbmc68k.counts, pbmc68k.genes, params=TrainingParameters(subset_size=400, **QUICK))


@pytest.fixture(scope="session")
def pbmc68k_model_dir(pbmc68k_model, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("model")
    pbmc68k_model.save(directory)
    for path in directory.iterdir():
        path.chmod(0o444)
    return directory


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
