"""MultiQC custom content of one sample: what filter kept, how training went, what score measured.

MultiQC reads files named ``*_mqc.json`` as custom content and merges those of the same ``id``
across samples, so each sample's report gives one file per section: a General Statistics row,
the loss per epoch as a line graph and, when the sample was scored, a table of its scores; and
each figure as a section of its own, titled by the sample and the figure. Every value comes
from the tool's own outputs.
"""

from __future__ import annotations

import base64
import html
import math

import numpy as np

from deepimpute_tool.plots import loss_history

STATS_COLUMNS = {
    "cells": {
        "title": "Cells",
        "description": "Cells after filtering",
        "format": "{:,.0f}",
        "scale": "Blues",
    },
    "genes": {
        "title": "Genes",
        "description": "Genes after filtering",
        "format": "{:,.0f}",
        "scale": "Greens",
    },
    "imputed_genes": {
        "title": "Imputed genes",
        "description": "Genes the model imputes",
        "format": "{:,.0f}",
    },
    "epochs": {"title": "Epochs", "description": "Training epochs run", "format": "{:,.0f}"},
    "pearson": {
        "title": "Masked Pearson",
        "description": "Pearson of log1p counts at the masked entries",
        "min": 0,
        "max": 1,
        "scale": "RdYlGn",
    },
    "mcv_score": {
        "title": "MCV score",
        "description": "Molecular cross-validation, mean scaled score "
        "(0: no better than the counts; 1: perfect)",
        "max": 1,
        "scale": "RdYlGn",
    },
}
SCORE_COLUMNS = {
    "masked_entries": ("Masked entries", "{:,.0f}"),
    "mse": ("MSE (log1p)", "{:.4f}"),
    "pearson": ("Pearson (log1p)", "{:.4f}"),
    "mse_count_ge2": ("MSE, true count >= 2", "{:.4f}"),
    "mse_without_imputation": ("MSE without imputation", "{:.4f}"),
    "mcv_mse_scaled": ("MCV MSE, scaled", "{:.3f}"),
    "mcv_poisson_scaled": ("MCV Poisson, scaled", "{:.3f}"),
    "mcv_score": ("MCV mean scaled score", "{:.3f}"),
    "kmeans_ari": ("k-means ARI", "{:.3f}"),
    "kmeans_ari_without_imputation": ("k-means ARI without imputation", "{:.3f}"),
}


# the figures the steps draw, by the name they give them, and what a report calls them
FIGURE_TITLES = {
    "qc": "quality control",
    "loss": "loss curves",
    "imputed_vs_true": "imputed against true values at the masked entries",
    "mse_distributions": "MSE per gene and per cell at the masked entries",
}


def figure_content(*, sample: str, name: str, png: bytes) -> dict:
    """A figure as a MultiQC section of its own, the PNG inline, titled by sample and figure."""
    title = FIGURE_TITLES.get(name, name.replace("_", " "))
    image = base64.b64encode(png).decode("ascii")
    return {
        "id": f"deepimpute_figure_{sample}_{name}",
        "section_name": f"DeepImpute: {sample}, {title}",
        "plot_type": "html",
        "data": f'<img src="data:image/png;base64,{image}" alt="{html.escape(sample)}: {html.escape(title)}" '
        'style="max-width: 100%;"/>',
    }


def _number(value) -> float | None:
    """A finite number from a JSON value (a score file is checked, not trusted), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)  # an integer of 400 digits is no float
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _headline_scores(scores: dict) -> dict[str, float]:
    found = {key: _number(scores.get(key)) for key in SCORE_COLUMNS}
    clustering = scores.get("clustering")
    if isinstance(clustering, dict):
        for key, which in (
            ("kmeans_ari", "imputed"),
            ("kmeans_ari_without_imputation", "without_imputation"),
        ):
            part = clustering.get(which)
            found[key] = _number(part.get("ari")) if isinstance(part, dict) else None
    return {key: value for key, value in found.items() if value is not None}


def sample_content(
    *, sample: str, cells: int, genes: int, training: dict, scores: dict | None = None
) -> dict[str, dict]:
    """MultiQC custom content of ``sample``, by section: ``stats``, ``loss`` and (with
    ``scores``, the JSON that ``score`` wrote) ``scores``.

    Parameters
    ----------
    sample
        The sample's name, as MultiQC will show it.
    cells, genes
        The size of the filtered counts.
    training
        ``Model.training``: the loss history and the training summary.
    scores
        The scores of the sample, when it was masked and scored.
    """
    history = loss_history(training)
    stats = {"cells": cells, "genes": genes}
    for key in ("target_genes", "epochs"):
        value = _number(training.get(key))
        if value is not None:
            stats["imputed_genes" if key == "target_genes" else key] = value
    headline = _headline_scores(scores or {})
    stats.update({key: headline[key] for key in ("pearson", "mcv_score") if key in headline})
    content = {
        "stats": {
            "id": "deepimpute_stats",
            "plot_type": "generalstats",
            "pconfig": [{key: STATS_COLUMNS[key]} for key in STATS_COLUMNS if key in stats],
            "data": {sample: stats},
        },
        "loss": {
            "id": "deepimpute_loss",
            "section_name": "DeepImpute: training loss",
            "description": "The loss summed over the sub-networks per epoch, on the training cells and on "
            "the cells held out for early stopping; each sub-network keeps the weights of its best epoch.",
            "plot_type": "linegraph",
            "pconfig": {
                "id": "deepimpute_loss_plot",
                "title": "DeepImpute: loss per epoch",
                "xlab": "Epoch",
                "ylab": "Loss",
                "logswitch": True,
            },
            "data": {
                f"{sample} ({label})": {
                    str(epoch): float(value) for epoch, value in enumerate(values, 1) if np.isfinite(value)
                }
                for label, values in (
                    ("training", history.get("train_loss", [])),
                    ("validation", history.get("validation_loss", [])),
                )
            },
        },
    }
    if scores is not None:
        content["scores"] = {
            "id": "deepimpute_scores",
            "section_name": "DeepImpute: scores",
            "description": "What 'deepimpute score' measured: at the entries the paper's masking hid, or on "
            "the molecules molecular cross-validation held out, and the clustering scores with labels.",
            "plot_type": "table",
            "pconfig": {"id": "deepimpute_scores_table", "title": "DeepImpute: scores"},
            "headers": {
                key: {"title": title, "format": form}
                for key, (title, form) in SCORE_COLUMNS.items()
                if key in headline
            },
            "data": {sample: headline},
        }
    return content
