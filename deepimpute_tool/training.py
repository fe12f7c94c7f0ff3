"""Training a DeepImpute model: every option, and the step that assembles a :class:`Model`.

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
from deepimpute_tool.errors import InputError, spell
from deepimpute_tool.fitting import Phase, fit_subnetworks
from deepimpute_tool.intervals import calibration_set, choose_hidden
from deepimpute_tool.model import NORMALISATIONS, Model, Normalisation, SubNetwork
from deepimpute_tool.network import Layout, StepSettings
from deepimpute_tool.options import option, parameters, shared_option
from deepimpute_tool.selection import (
    SUBSET_SPLITS,
    normalised_log,
    select_predictors,
    select_targets,
    split_subsets,
    variance_mean_ratio,
)

DEVICES = ("auto", "cpu", "gpu")
TRAINING_MATRIX_BYTES = 2**30  # the dense copy of the training cells that training holds
PRECISIONS = ("float32", "bfloat16")
MAX_CORES = 1024  # TensorFlow aborts (a C++ stack dump) on thread pools far beyond any machine


@parameters
class TrainingParameters:
    """Every option of training, with the paper's defaults but for three.

    First, training starts with a coarse phase at ``coarse_learning_rate`` (3e-3) until every
    sub-network has gone ``coarse_patience`` epochs without improving, then goes on from the best
    weights at ``learning_rate`` (the paper's) with ``patience`` 2 (the paper's is 5). On the
    project's benchmarks this takes about half the epochs of the paper's single phase at the
    same or better masked accuracy. ``coarse_learning_rate=0, patience=5`` trains as the paper.

    Third, training draws at most ``max_cells`` cells (100,000), so that its time stops growing
    with atlas-sized data; imputation covers every cell.

    Second, the targets are split into as many subsets as the paper's (``ceil(targets /
    subset_size)``) but of equal sizes, where the paper leaves the remainder in a last, smaller
    subset (``subset_split="remainder"``). A sub-network's predictors come from the genes
    outside its own targets; when nearly every gene is a target, a full subset beside a small
    remainder reads from that remainder alone (mouse1m_10k: 512 targets choosing among 203
    genes). Equal subsets gave lower masked MSE and higher Pearson there at the same cost.
    """

    min_vmr: float = option(
        0.5,
        label="Minimum variance/mean ratio of target genes",
        help="Impute genes whose variance/mean ratio of counts exceeds this.",
    )
    max_genes: int | None = option(
        None,
        minimum=1,
        label="Maximum number of genes to impute",
        help="Impute at most this many genes, highest variance/mean ratio first.",
        default_text="no cap",
    )
    cell_fraction: float = option(
        1.0,
        minimum=0,
        min_open=True,
        label="Fraction of cells to train on",
        help="Train on this fraction of the cells (a value above 1 is a number of cells); "
        "imputation always covers every cell.",
    )
    max_cells: int = option(
        100_000,
        minimum=0,
        label="Most cells to train on",
        help="Train on at most this many cells, drawn at random; imputation always covers every cell. "
        "Beyond it, training time stops growing with the data. Masked accuracy still rose from 5,000 "
        "to 10,000 training cells on the largest dataset measured, and 100,000 train in minutes. "
        "0: every cell.",
    )
    subset_size: int = option(
        512,
        minimum=1,
        section="advanced",
        label="Most target genes per sub-network",
        help="The targets are split into ceil(targets / subset size) sub-networks.",
    )
    subset_split: str = option(
        "equal",
        choices=SUBSET_SPLITS,
        choice_labels=(
            "equal: as many sub-networks as the paper, of equal sizes",
            "remainder: full sub-networks and a last, smaller one (the paper)",
        ),
        section="advanced",
        label="Sizes of the sub-networks",
        help="equal: sub-networks of equal sizes; remainder: full ones and the remainder in a last, "
        "smaller one, as the paper. Equal gave lower masked MSE and higher Pearson on the "
        "project's benchmarks when nearly every gene is a target (each sub-network's predictors "
        "are the genes outside it).",
    )
    ensemble: int = option(
        1,
        minimum=1,
        section="advanced",
        label="Independent partitions of the target genes",
        help="Split the targets into this many independent random partitions, each with its own "
        "sub-networks, and average each gene's log predictions over them. 2: lower masked MSE and "
        "higher Pearson on the project's benchmarks, at twice the training time.",
    )
    ntop: int = option(
        5,
        minimum=1,
        section="advanced",
        label="Predictor genes per target",
        help="Predictors per target: its most correlated genes outside its sub-network.",
    )
    hidden: int = option(
        256, minimum=1, section="advanced", label="Neurons of the hidden layer",
        help="Neurons of the hidden (ReLU) layer of each sub-network.",
    )  # fmt: skip
    dropout: float = option(
        0.2, minimum=0, maximum=1, max_open=True, section="advanced", label="Dropout rate",
        help="Dropout rate after the hidden layer.",
    )  # fmt: skip
    detection: bool = option(
        True,
        label="Learn the probability of detection",
        help="Give each sub-network a second output: the probability that each target is detected "
        "(count > 0) in a cell, learnt from every entry, zeros included (the paper's loss ignores "
        "zeros, so the count alone cannot tell a dropout from a gene that is off). Imputation's "
        "default, a denoised matrix (⟨fill⟩ expected_log), needs it. Off: the paper's network alone.",
    )
    learning_rate: float = option(
        1e-4,
        minimum=0,
        min_open=True,
        section="advanced",
        label="Adam learning rate (the paper's)",
        help="Adam learning rate of the final phase, the paper's (exactly this one is used).",
    )
    coarse_learning_rate: float = option(
        3e-3,
        minimum=0,
        section="advanced",
        label="Adam learning rate of a first, coarse phase",
        help="Adam learning rate of a first, coarse phase that ends when every sub-network has "
        "gone ⟨coarse_patience⟩ epochs without improving; training then goes on from the best "
        "weights at ⟨learning_rate⟩. With ⟨patience⟩ 2, about half the epochs of the paper's single "
        "phase at the same masked accuracy on the project's benchmarks. 0: no coarse phase, as the paper.",
    )
    coarse_patience: int = option(
        2, minimum=1, section="advanced", label="Coarse phase patience (epochs)",
        help="Epochs without a better validation loss that end a sub-network's coarse phase.",
    )  # fmt: skip
    batch_size: int = option(
        64, minimum=1, section="advanced", label="Batch size", help="Cells per gradient step."
    )
    max_epochs: int = option(
        500, minimum=1, section="advanced", label="Maximum number of epochs",
        help="Stop after this many passes over the training cells.",
    )  # fmt: skip
    patience: int = option(
        2, minimum=1, section="advanced", label="Early stopping patience (epochs)",
        help="Stop a sub-network after this many epochs without a better validation loss; its best "
        "weights are kept. The paper's is 5; after the coarse phase, 2 was as accurate on the "
        "project's benchmarks in less time.",
    )  # fmt: skip
    validation_fraction: float = option(
        0.05, minimum=0, maximum=0.5, min_open=True, section="advanced",
        label="Fraction of cells held out for early stopping",
        help="Cells held out to judge early stopping, the paper's 5%.",
    )  # fmt: skip
    normalisation: str = option(
        "log1p",
        choices=NORMALISATIONS,
        choice_labels=(
            "log1p of raw counts (as the original DeepImpute; measured best)",
            "library size to ⟨target_sum⟩ counts, then log1p",
        ),
        section="advanced",
        label="Normalisation",
        help="log1p: log1p of raw counts, as the original DeepImpute (the more accurate on the "
        "benchmarks); library: scale each cell to ⟨target_sum⟩ counts, then log1p.",
    )
    target_sum: float = option(
        10_000.0, minimum=0, min_open=True, section="advanced", label="Counts per cell with library normalisation",
        help="Counts per cell with ⟨normalisation⟩ library.",
    )  # fmt: skip
    calibration: bool = option(
        False,
        label="Hide counts to calibrate intervals",
        help="Hide a few counts from training (as the paper's masking would choose them; at most "
        "2% of the counts, 20,000) and keep what the model predicts of them, so that impute can "
        "write calibrated intervals (⟨interval⟩). Off by default: it changes the trained model a "
        "little (masked Pearson -0.010 to +0.003 on the benchmarks).",
    )
    seed: int = shared_option("seed")
    layer: str | None = shared_option("layer")
    cores: int = option(
        0, minimum=0, maximum=MAX_CORES, galaxy=False, nextflow=False, label="CPU threads",
        help="CPU threads for training (0: all; never more than the CPUs this process may use).",
    )  # fmt: skip
    device: str = option(
        "auto",
        choices=DEVICES,
        choice_labels=("auto: a GPU when one is visible", "cpu", "gpu: fail if none is visible"),
        section="advanced",
        label="Device",
        help="auto: a GPU when TensorFlow sees one; gpu: fail if none is visible.",
    )
    precision: str = option(
        "float32",
        choices=PRECISIONS,
        section="advanced",
        label="Arithmetic of the matrix products",
        help="Arithmetic of the matrix products in training; weights and Adam stay float32. "
        "bfloat16 uses AMX units or tensor cores where the hardware has them.",
    )

    @property
    def phases(self) -> list[Phase]:
        """(learning rate, patience) of each phase: the coarse one, if any, then the paper's."""
        final = Phase(self.learning_rate, self.patience)
        if self.coarse_learning_rate > 0:
            return [Phase(self.coarse_learning_rate, self.coarse_patience), final]
        return [final]


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
