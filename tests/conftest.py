"""Fixtures on real count matrices (tests/data: copies of ../shared/data files), markers by folder.

Session fixtures are read-only: their arrays cannot be written, so code under test that
changed its input in place would fail the test instead of every test after it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepimpute_tool.dataset import Dataset
from deepimpute_tool.loom import read_loom
from deepimpute_tool.model import Model
from deepimpute_tool.training import TrainingParameters, train
from tests.helpers import PBMC68K, PBMC_SMALL, QUICK

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
    pbmc68k_model.write_directory(directory)
    for path in directory.iterdir():
        path.chmod(0o444)
    return directory


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def scanpy_h5ad(tmp_path_factory):
    """pbmc_small as scanpy users hold it: log-normalised X, counts in a layer, every slot filled."""
    from tests.unit.test_api import anndata_of

    path = tmp_path_factory.mktemp("h5ad") / "pbmc_small.h5ad"
    anndata_of(read_loom(PBMC_SMALL)).write_h5ad(path)
    return path
