"""Every option of training (:class:`TrainingParameters`), declared once for every surface."""

from __future__ import annotations

from deepimpute_tool.fitting import Phase
from deepimpute_tool.model import NORMALISATIONS
from deepimpute_tool.options import option, parameters, shared_option
from deepimpute_tool.selection import SUBSET_SPLITS

DEVICES = ("auto", "cpu", "gpu")
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
        "zeros, so the count alone cannot tell a dropout from a gene that is off); training then fits "
        "each target gene's negative-binomial dispersion around the expected count. Imputation's "
        "default, a denoised matrix (⟨fill⟩ denoised), needs both. Off: the paper's network alone.",
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
