"""Example data shipped with the package: nothing to download."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from deepimpute_tool.loom import read_loom

if TYPE_CHECKING:
    from anndata import AnnData

PBMC3K = "pbmc3k_genes10.loom"


def pbmc3k_path() -> str:
    """The path of the shipped Loom of :func:`pbmc3k` (for the command line)."""
    return str(resources.files("deepimpute_tool") / "data" / PBMC3K)


def pbmc3k() -> AnnData:
    """10x Genomics' 2,700 PBMCs, raw UMI counts of the 11,139 genes detected in at least 10 cells.

    Returns
    -------
    A new AnnData: the counts (sparse, float32) in ``X`` and in ``layers["counts"]``, cell IDs
    and gene names as ``obs_names`` and ``var_names``. Its source and licence:
    ``deepimpute_tool/data/README.md``.
    """
    import anndata
    import pandas as pd

    data = read_loom(pbmc3k_path())
    return anndata.AnnData(
        X=data.counts,
        obs=pd.DataFrame(data.cell_attrs, index=pd.Index(data.cells, name=None)),
        var=pd.DataFrame(data.gene_attrs, index=pd.Index(data.genes, name=None)),
        layers={"counts": data.counts.copy()},
    )
