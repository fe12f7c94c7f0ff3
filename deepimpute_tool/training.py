"""Training a DeepImpute model: the step that assembles a :class:`Model` (its options:
:mod:`deepimpute_tool.training_options`).

The parts: :mod:`deepimpute_tool.selection` chooses each sub-network's targets and
predictors (numpy), :mod:`deepimpute_tool.network` is the fused TensorFlow computation,
:mod:`deepimpute_tool.fitting` the loop with early stopping and phases; :func:`train` puts
them together on a count matrix and returns the model.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from deepimpute_tool import __version__
from deepimpute_tool.denoising import fit_dispersion
from deepimpute_tool.errors import InputError, spell
from deepimpute_tool.fitting import fit_subnetworks
from deepimpute_tool.intervals import calibration_set, choose_hidden
from deepimpute_tool.model import Model, Normalisation, SubNetwork
from deepimpute_tool.network import Layout, StepSettings
from deepimpute_tool.selection import (
    normalised_log,
    select_predictors,
    select_targets,
    split_subsets,
    variance_mean_ratio,
)
from deepimpute_tool.training_options import TrainingParameters

TRAINING_MATRIX_BYTES = 2**30  # the dense copy of the training cells that training holds


@dataclass(frozen=True)
class TrainingCells:
    """The cells of an input that training uses, and the random stream training goes on with.

    Attributes
    ----------
    chosen
        Indices of the chosen cells, sorted; None: every cell.
    n_cells
        Cells in the input.
    stream
        The state of the generator of ``seed`` after the draw of the cells: every later draw of
        training (sub-network targets, validation cells, batches) continues this one stream.
    reason
        Why fewer cells than the input's are used (an option, or memory).
    """

    chosen: np.ndarray | None
    n_cells: int
    stream: dict
    reason: str = ""

    @property
    def n_train(self) -> int:
        return self.n_cells if self.chosen is None else self.chosen.size

    def generator(self) -> np.random.Generator:
        """A new generator where the draw of the cells left the seed's (the same at every call)."""
        generator = np.random.default_rng()
        generator.bit_generator.state = self.stream
        return generator


def choose_training_cells(*, n_cells: int, n_genes: int, params: TrainingParameters) -> TrainingCells:
    """``cell_fraction`` of the cells, at most ``max_cells``, and no more than a dense copy of
    TRAINING_MATRIX_BYTES holds, drawn at random in one draw (no draw when every cell is used).

    The one place where training cells are chosen, whatever the input's format: a step reads
    only the chosen cells and hands them to :func:`train` with this.
    """
    rng = np.random.default_rng(params.seed)
    fraction = params.cell_fraction
    limits = {"cell_fraction": min(round(fraction * n_cells) if fraction <= 1 else int(fraction), n_cells)}
    if params.max_cells > 0:
        limits["max_cells"] = params.max_cells
    limits["memory"] = max(TRAINING_MATRIX_BYTES // (4 * max(n_genes, 1)), 1)
    reason = min(limits, key=limits.get)
    n_train = min(n_cells, limits[reason])
    minimum_cells = int(np.ceil(2 / params.validation_fraction))
    if n_train < minimum_cells:
        raise InputError(
            None,
            f"too few cells to train: {n_train}, and at least {minimum_cells} are needed so that "
            f"{params.validation_fraction:.0%} of them ({params.validation_fraction * minimum_cells:.0f}) "
            "can be held out for early stopping",
        )
    if n_train == n_cells:
        return TrainingCells(None, n_cells, rng.bit_generator.state)
    why = {
        "cell_fraction": "⟨cell_fraction⟩",
        "max_cells": f"⟨max_cells⟩ {params.max_cells}",
        "memory": f"a dense copy of {n_genes} genes within {TRAINING_MATRIX_BYTES // 2**20} MiB",
    }[reason]
    chosen = np.sort(rng.choice(n_cells, n_train, replace=False))
    return TrainingCells(chosen, n_cells, rng.bit_generator.state, why)


def train(
    counts: sp.csr_matrix,
    genes: np.ndarray,
    *,
    params: TrainingParameters,
    cells: TrainingCells | None = None,
    log: Callable[[str], None] = lambda message: None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> Model:
    """Train a DeepImpute model on a cells x genes count matrix.

    Parameters
    ----------
    counts
        Raw counts of the training cells, cells x genes: the rows ``cells`` chose, in order.
    genes
        Gene names (unique), one per column.
    params
        Every training option.
    cells
        What :func:`choose_training_cells` chose, for the input the rows of ``counts`` come from;
        None: ``counts`` holds every training cell, which ``params`` must not subsample.
    log
        Receives progress messages; options in them are marked, for
        :func:`deepimpute_tool.errors.spell` to spell as the caller's surface does.
    on_epoch
        Called after each epoch with its number and losses.
    """
    if cells is None:
        cells = choose_training_cells(n_cells=counts.shape[0], n_genes=counts.shape[1], params=params)
        if cells.chosen is not None:
            raise ValueError(
                f"params train on {cells.n_train} of the {cells.n_cells} cells given ({spell(cells.reason, {})}): "
                "pass cells=choose_training_cells(...) and the counts of the cells it chose"
            )
    if counts.shape[0] != cells.n_train:
        raise ValueError(f"counts has {counts.shape[0]} cells; {cells.n_train} were chosen")
    rng = cells.generator()
    counts = sp.csr_matrix(counts, dtype=np.float32)
    if cells.chosen is not None:
        log(f"training on {cells.n_train} of {cells.n_cells} cells, drawn at random ({cells.reason}); "
            "imputation covers all")  # fmt: skip
    n_cells = cells.n_cells

    vmr = variance_mean_ratio(counts)
    targets = select_targets(counts, min_vmr=params.min_vmr, max_genes=params.max_genes, vmr=vmr)
    if targets.size == 0:
        raise InputError(None, f"no gene has a variance/mean ratio above ⟨min_vmr⟩ {params.min_vmr}")
    # A sub-network never reads its own targets: when nearly every varying gene is a
    # target, one sub-network would have nothing to read, so two predict each other.
    varying_others = int((vmr > 0).sum()) - targets.size
    min_subsets = 2 if varying_others < params.ntop and targets.size >= 2 else 1
    partitions = [
        split_subsets(
            targets,
            subset_size=params.subset_size,
            split=params.subset_split,
            min_subsets=min_subsets,
            rng=rng,
        )
        for _ in range(params.ensemble)
    ]
    subsets = [subset for partition in partitions for subset in partition]
    log(
        f"{targets.size} target genes in {len(subsets)} sub-networks"
        + (f" ({params.ensemble} partitions of {len(partitions[0])})" if params.ensemble > 1 else "")
    )

    normalisation = Normalisation(method=params.normalisation, target_sum=params.target_sum)
    library_sizes = np.asarray(counts.sum(axis=1)).ravel()
    log_values = normalised_log(counts, normalisation.size_factors(library_sizes))
    # a sub-network never reads its own targets: the other partitions' sub-networks do not count
    predictors = [
        chosen
        for per_partition in select_predictors(log_values, partitions, ntop=params.ntop)
        for chosen in per_partition
    ]
    if any(p.size == 0 for p in predictors):
        raise InputError(None, "no gene outside the targets varies: nothing to predict them from")

    # The library size is taken over the genes the model reads, so that imputing any
    # Loom that has those genes normalises cells exactly as in training.
    used = np.unique(np.concatenate([*subsets, *predictors]))
    # entries hidden as masking would hide them: zeros to the model, to calibrate its intervals on
    hidden = choose_hidden(counts, targets, seed=params.seed) if params.calibration else None
    if hidden is not None:
        counts = hidden.hide(counts)
    used_counts = counts[:, used]
    factors = normalisation.size_factors(np.asarray(used_counts.sum(axis=1)).ravel())
    del log_values
    x = normalised_log(used_counts, factors)
    layout = Layout.of(
        [np.searchsorted(used, p) for p in predictors],
        [np.searchsorted(used, t) for t in subsets],
        n_columns=x.shape[1],
        hidden=params.hidden,
        detection=params.detection,
    )
    log(
        f"inputs per sub-network: {layout.n_in.min()}-{layout.n_in.max()}; "
        f"{x.shape[0]} cells x {x.shape[1]} genes in the training matrix"
    )
    fit = fit_subnetworks(
        x,
        layout,
        phases=params.phases,
        settings=StepSettings(
            dropout=params.dropout, batch_size=params.batch_size, precision=params.precision
        ),
        max_epochs=params.max_epochs,
        validation_fraction=params.validation_fraction,
        seed=params.seed,
        cores=params.cores,
        device=params.device,
        rng=rng,
        on_epoch=on_epoch,
    )
    history = fit.history
    _log_phases(history, params, log)
    genes = np.asarray(genes, dtype=object).astype(str)
    subnetworks = [SubNetwork(genes[t], genes[p], *w) for t, p, w in zip(subsets, predictors, fit.weights)]
    from deepimpute_tool.lean_imports import import_tensorflow

    model = Model(
        subnetworks=subnetworks,
        normalisation=normalisation,
        parameters=asdict(params),
        training={
            **history,
            "cells": counts.shape[0],
            "cells_in_input": n_cells,
            "target_genes": int(targets.size),
        },
        versions={
            "deepimpute_tool": __version__,
            "tensorflow": import_tensorflow().__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    )
    if params.detection:
        left_out = None if hidden is None else hidden.positions(counts.shape)
        model = dataclasses.replace(model, dispersion=fit_dispersion(model, counts, genes, left_out=left_out))
        log(f"dispersion around the expected counts: median theta {np.median(model.dispersion):.3g}")
    if hidden is None:
        if params.calibration:
            log("too few counts to hide for calibrating intervals: this model gives none (⟨interval⟩)")
        return model
    log(f"calibration of intervals: {hidden.truth.size} counts hidden from training")
    return dataclasses.replace(model, calibration=calibration_set(model, counts, genes, hidden))


def _log_phases(history: dict, params: TrainingParameters, log: Callable[[str], None]) -> None:
    log(
        f"stopped after {history['epochs']} epochs ({history['seconds']:.1f} s on {history['device']}); "
        f"best epochs {min(history['best_epoch'])}-{max(history['best_epoch'])}"
    )
    if params.coarse_learning_rate <= 0:
        return
    coarse_end = history["phase_epochs"][0]
    if coarse_end == history["epochs"]:
        log(f"⟨max_epochs⟩ {params.max_epochs} ended training in the coarse phase, before ⟨learning_rate⟩")
    else:
        log(
            f"coarse phase at {params.coarse_learning_rate:g}: epochs 1-{coarse_end}; "
            f"at ⟨learning_rate⟩ {params.learning_rate:g}: epochs {coarse_end + 1}-{history['epochs']}"
        )
