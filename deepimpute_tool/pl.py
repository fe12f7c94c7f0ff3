"""Plotting in scanpy's form: the figures the command line draws, as matplotlib figures."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from deepimpute_tool.api import counts_of, split_options
from deepimpute_tool.filtering import FilterParameters, quality_filter_blocks
from deepimpute_tool.plots import loss_figure, qc_figure

if TYPE_CHECKING:
    from anndata import AnnData
    from matplotlib.figure import Figure

    from deepimpute_tool.model import Model


def loss_curves(model: Model) -> Figure:
    """The loss curves of a model's training (``deepimpute train --loss-plot``).

    Parameters
    ----------
    model
        A model from :func:`deepimpute_tool.train` or :func:`deepimpute_tool.load_model`.

    Returns
    -------
    Two panels: the training and validation losses per epoch (summed over the sub-networks),
    with the end of the coarse phase; each sub-network's validation loss relative to its first
    epoch, with the epoch whose weights it kept. ``figure.savefig(path)`` writes it.
    """
    return loss_figure(model.training)


def qc(adata: AnnData, *, layer: str | None = "counts", **options: Any) -> Figure:
    """What ``deepimpute filter`` would keep of ``adata`` (``deepimpute filter --qc-plot``).

    Parameters
    ----------
    adata
        Cells x genes; nothing of it is changed.
    layer
        Where the raw counts are: a layer's name, ``None`` for ``X``, ``"raw"`` for ``raw.X``.
    **options
        ``min_genes``, ``min_counts``, ``min_cells``: the thresholds, with filter's defaults.

    Returns
    -------
    Histograms of genes and counts per cell and of the cells each gene is detected in (among
    the cells kept), with the thresholds drawn and what they keep in the titles.
    """
    (values,) = split_options(options, FilterParameters)
    params = FilterParameters(**values, layer=layer)
    counts = counts_of(adata, layer)
    result = quality_filter_blocks(
        (np.asarray(block) for _, block in counts.blocks()),
        n_genes=len(counts.genes),
        min_genes=params.min_genes,
        min_counts=params.min_counts,
        min_cells=params.min_cells,
    )
    return qc_figure(
        result, min_genes=params.min_genes, min_counts=params.min_counts, min_cells=params.min_cells
    )
