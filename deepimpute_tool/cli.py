"""The ``deepimpute`` command line: one subcommand per step, each also a stand-alone executable."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import click

from deepimpute_tool.lean_imports import import_loompy

import_loompy()  # before the modules below import loompy

from deepimpute_tool import __version__
from deepimpute_tool.errors import InputError
from deepimpute_tool.imputation import POLICIES
from deepimpute_tool.model import NORMALISATIONS
from deepimpute_tool.progress import Progress
from deepimpute_tool.training import SUBSET_SPLITS, TrainingParameters

DEFAULTS = TrainingParameters()


class StepError(click.ClickException):
    """A one-line error about an input, exit code 2."""

    exit_code = 2


def reports_input_errors(command):
    """Turn InputError (and unreadable paths) into a one-line message and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except InputError as error:
            raise StepError(str(error)) from None
        except MemoryError:
            raise StepError("out of memory; try --cell-fraction or fewer genes (--max-genes)") from None

    return wrapper


def options(*decorators):
    """Apply several click options defined once and shared by several commands."""

    def apply(command):
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


quiet_option = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
seed_option = click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of every random draw."
)

filter_options = options(
    click.option(
        "--min-genes",
        type=click.IntRange(min=0),
        default=200,
        show_default=True,
        help="Keep cells with at least this many detected genes.",
    ),
    click.option(
        "--min-counts",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Keep cells with at least this many counts.",
    ),
    click.option(
        "--min-cells",
        type=click.IntRange(min=0),
        default=3,
        show_default=True,
        help="Keep genes detected in at least this many of the kept cells.",
    ),
    click.option(
        "--orientation",
        type=click.Choice(["auto", "genes-by-cells", "cells-by-genes"]),
        default="auto",
        show_default=True,
        help="For CSV/TSV input: which axis holds genes (auto: the longer one).",
    ),
)

train_options = options(
    click.option(
        "--min-vmr",
        type=float,
        default=DEFAULTS.min_vmr,
        show_default=True,
        help="Impute genes whose variance/mean ratio of counts exceeds this.",
    ),
    click.option(
        "--max-genes",
        type=click.IntRange(min=1),
        default=None,
        help="Impute at most this many genes (highest variance/mean first). [default: no cap]",
    ),
    click.option(
        "--subset-size",
        type=click.IntRange(min=1),
        default=DEFAULTS.subset_size,
        show_default=True,
        help="Most target genes per sub-network: the targets are split into ceil(targets / "
        "--subset-size) sub-networks.",
    ),
    click.option(
        "--subset-split",
        type=click.Choice(SUBSET_SPLITS),
        default=DEFAULTS.subset_split,
        show_default=True,
        help="equal: sub-networks of equal sizes; remainder: full ones and the remainder in a last, "
        "smaller one, as the paper. Equal gave lower masked MSE and higher Pearson on the "
        "project's benchmarks when nearly every gene is a target (each sub-network's predictors "
        "are the genes outside it).",
    ),
    click.option(
        "--ensemble",
        type=click.IntRange(min=1),
        default=DEFAULTS.ensemble,
        show_default=True,
        help="Split the targets into this many independent random partitions, each with its own "
        "sub-networks, and average each gene's log predictions over them. 2: lower masked MSE and "
        "higher Pearson on the project's benchmarks, at twice the training time.",
    ),
    click.option(
        "--ntop",
        type=click.IntRange(min=1),
        default=DEFAULTS.ntop,
        show_default=True,
        help="Predictors per target: its most correlated genes outside its sub-network.",
    ),
    click.option(
        "--hidden",
        type=click.IntRange(min=1),
        default=DEFAULTS.hidden,
        show_default=True,
        help="Neurons of the hidden (ReLU) layer of each sub-network.",
    ),
    click.option(
        "--dropout",
        type=click.FloatRange(0, 1, max_open=True),
        default=DEFAULTS.dropout,
        show_default=True,
        help="Dropout rate after the hidden layer.",
    ),
    click.option(
        "--learning-rate",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULTS.learning_rate,
        show_default=True,
        help="Adam learning rate of the final phase, the paper's (exactly this one is used).",
    ),
    click.option(
        "--coarse-learning-rate",
        type=click.FloatRange(min=0),
        default=DEFAULTS.coarse_learning_rate,
        show_default=True,
        help="Adam learning rate of a first, coarse phase that ends when every sub-network has "
        "gone --coarse-patience epochs without improving; training then goes on from the best "
        "weights at --learning-rate. About half the epochs at the same masked accuracy on the "
        "project's benchmarks. 0: no coarse phase, as the paper.",
    ),
    click.option(
        "--coarse-patience",
        type=click.IntRange(min=1),
        default=DEFAULTS.coarse_patience,
        show_default=True,
        help="Epochs without a better validation loss that end a sub-network's coarse phase.",
    ),
    click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=DEFAULTS.batch_size,
        show_default=True,
        help="Cells per gradient step.",
    ),
    click.option(
        "--max-epochs",
        type=click.IntRange(min=1),
        default=DEFAULTS.max_epochs,
        show_default=True,
        help="Stop after this many passes over the training cells.",
    ),
    click.option(
        "--patience",
        type=click.IntRange(min=1),
        default=DEFAULTS.patience,
        show_default=True,
        help="Stop a sub-network after this many epochs without a better validation loss; "
        "its best weights are kept.",
    ),
    click.option(
        "--cell-fraction",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULTS.cell_fraction,
        show_default=True,
        help="Train on this fraction of the cells (a value above 1 is a number of cells).",
    ),
    click.option(
        "--normalisation",
        type=click.Choice(NORMALISATIONS),
        default=DEFAULTS.normalisation,
        show_default=True,
        help="log1p: log1p of raw counts, as the original DeepImpute (the more accurate on the "
        "benchmarks); library: scale each cell to --target-sum counts, then log1p.",
    ),
    click.option(
        "--target-sum",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULTS.target_sum,
        show_default=True,
        help="Counts per cell with --normalisation library.",
    ),
    click.option(
        "--cores",
        type=click.IntRange(min=0),
        default=DEFAULTS.cores,
        show_default=True,
        help="CPU threads for training (0: all).",
    ),
    click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "gpu"]),
        default=DEFAULTS.device,
        show_default=True,
        help="auto: a GPU when TensorFlow sees one; gpu: fail if none is visible.",
    ),
    click.option(
        "--precision",
        type=click.Choice(["float32", "bfloat16"]),
        default=DEFAULTS.precision,
        show_default=True,
        help="Arithmetic of the matrix products in training; weights and Adam stay float32. "
        "bfloat16 uses AMX units or tensor cores where the hardware has them.",
    ),
    seed_option,
)

impute_options = options(
    click.option(
        "--policy",
        type=click.Choice(POLICIES),
        default="restore",
        show_default=True,
        help="restore: fill only zeros, keep observed counts exactly; max: the larger of observed "
        "and predicted; all: the prediction everywhere.",
    ),
    click.option(
        "--chunk-cells",
        type=click.IntRange(min=1),
        default=None,
        help="Cells read and written at a time. [default: about 64 MiB of counts]",
    ),
)


def _training_parameters(kwargs: dict) -> TrainingParameters:
    names = TrainingParameters.__dataclass_fields__
    return TrainingParameters(**{k: v for k, v in kwargs.items() if k in names})


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="deepimpute")
def cli():
    """DeepImpute: impute dropout zeros in single-cell RNA-seq counts (Arisdakessian et al., 2019).

    Steps pass Loom files (genes as rows, cells as columns): filter -> train -> impute, or, to
    measure accuracy, filter -> mask -> train -> impute -> score. `deepimpute run` chains them.
    """


@cli.command("filter")
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("output", metavar="OUT.loom", type=click.Path(dir_okay=False, path_type=Path))
@filter_options
@quiet_option
@reports_input_errors
def filter_command(input_path, output, min_genes, min_counts, min_cells, orientation, quiet):
    """Quality control, and the entry point for your data.

    IN is a Loom, an .h5ad, a 10x directory (matrix.mtx[.gz], features.tsv[.gz] or
    genes.tsv[.gz], barcodes.tsv[.gz]), a 10x HDF5 file, or a CSV/TSV table with names in
    the first row and column. It must hold raw counts. OUT is a Loom of the cells and genes
    that pass; repeated gene names are made unique.
    """
    from deepimpute_tool.steps import filter_file

    filter_file(
        input_path,
        output,
        min_genes=min_genes,
        min_counts=min_counts,
        min_cells=min_cells,
        orientation=orientation,
        progress=Progress(quiet=quiet),
    )


@cli.command("mask")
@click.argument("input_path", metavar="IN.loom", type=click.Path(path_type=Path))
@click.argument("output", metavar="OUT.loom", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--cells-per-gene",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Positive entries hidden in each gene (genes with fewer than twice as many are left alone).",
)
@seed_option
@quiet_option
@reports_input_errors
def mask_command(input_path, output, cells_per_gene, seed, quiet):
    """Hide real counts to measure imputation accuracy (the paper's protocol).

    A logistic curve of each gene's zero fraction against the log mean of its positive
    counts is fitted; in each gene, --cells-per-gene positive entries are drawn with
    probabilities from that curve and set to zero. OUT's main matrix holds the masked
    counts and its layer 'original' the true ones, which `score` uses after `impute`.
    """
    from deepimpute_tool.steps import mask_file

    mask_file(input_path, output, cells_per_gene=cells_per_gene, seed=seed, progress=Progress(quiet=quiet))


@cli.command("train")
@click.argument("input_path", metavar="IN.loom", type=click.Path(path_type=Path))
@click.argument("model", metavar="MODEL", type=click.Path(path_type=Path))
@train_options
@quiet_option
@reports_input_errors
def train_command(input_path, model, quiet, **kwargs):
    """Train a DeepImpute model on raw counts; write it to the directory MODEL (a zip file if MODEL ends in .zip).

    MODEL holds everything needed to impute later, in another process, any Loom that
    has its genes: weights (plain arrays), gene lists, normalisation, parameters, training
    history and versions. Loading it executes nothing from it.
    """
    from deepimpute_tool.steps import train_file

    train_file(input_path, model, params=_training_parameters(kwargs), progress=Progress(quiet=quiet))


@cli.command("impute")
@click.argument("input_path", metavar="IN.loom", type=click.Path(path_type=Path))
@click.argument("model", metavar="MODEL", type=click.Path(path_type=Path))
@click.argument("output", metavar="OUT.loom", type=click.Path(dir_okay=False, path_type=Path))
@impute_options
@quiet_option
@reports_input_errors
def impute_command(input_path, model, output, policy, chunk_cells, quiet):
    """Fill the zeros of IN with MODEL's predictions.

    OUT has IN's genes and cells in the same order, with their attributes. Its main matrix
    holds imputed counts on IN's count scale; IN's counts go to the layer 'raw' and IN's
    other layers are kept. Genes the model does not impute are copied unchanged.
    """
    from deepimpute_tool.steps import impute_file

    impute_file(
        input_path, model, output, policy=policy, chunk_cells=chunk_cells, progress=Progress(quiet=quiet)
    )


@cli.command("score")
@click.argument("input_path", metavar="IN.loom", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON file of all scores. [default: IN with .scores.json]",
)
@click.option(
    "--labels",
    default=None,
    help="Cell attribute with known cell types (e.g. CellType): adds ARI, AMI, FMI and silhouette.",
)
@click.option(
    "--plots",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for PNG figures: imputed vs true values, per-gene and per-cell MSE.",
)
@seed_option
@quiet_option
@reports_input_errors
def score_command(input_path, output, labels, plots, seed, quiet):
    """Score a masked-then-imputed Loom at the masked entries.

    MSE and Pearson correlation on log1p counts (the paper's metrics), MSE where the true
    count is at least 2, per-gene and per-cell MSE, and with --labels the clustering scores.
    """
    from deepimpute_tool.scoring import summary_table
    from deepimpute_tool.steps import score_file

    output = output or input_path.with_name(input_path.name.removesuffix(".loom") + ".scores.json")
    metrics = score_file(
        input_path, output, labels=labels, plots=plots, seed=seed, progress=Progress(quiet=quiet)
    )
    if not quiet:
        click.echo(summary_table(metrics))


@cli.command("split")
@click.argument("input_path", metavar="IN.loom", type=click.Path(path_type=Path))
@click.argument("outdir", metavar="OUTDIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--chunk-size", type=click.IntRange(min=1), default=10_000, show_default=True, help="Cells per chunk."
)
@quiet_option
@reports_input_errors
def split_command(input_path, outdir, chunk_size, quiet):
    """Split IN into Looms of --chunk-size cells (OUTDIR/<name>.chunkNNNN.loom) to impute in parallel.

    Each chunk records its place, so `merge` restores the cell order whatever order the
    imputed chunks come back in.
    """
    from deepimpute_tool.steps import split_file

    split_file(input_path, outdir, chunk_size=chunk_size, progress=Progress(quiet=quiet))


@cli.command("merge")
@click.argument("output", metavar="OUT.loom", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("chunks", metavar="CHUNK.loom...", nargs=-1, required=True, type=click.Path(path_type=Path))
@quiet_option
@reports_input_errors
def merge_command(output, chunks, quiet):
    """Merge the chunks made by `split` (after `impute`) back into one Loom, in the original cell order."""
    from deepimpute_tool.steps import merge_files

    merge_files(list(chunks), output, progress=Progress(quiet=quiet))


@cli.command("run")
@click.argument("input_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("outdir", metavar="OUTDIR", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--evaluate", is_flag=True, help="Also measure accuracy: mask before training, score after imputing."
)
@click.option("--labels", default=None, help="With --evaluate: cell attribute for clustering scores.")
@click.option(
    "--cells-per-gene",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="With --evaluate: entries masked per gene.",
)
@filter_options
@train_options
@impute_options
@quiet_option
@reports_input_errors
def run_command(
    input_path,
    outdir,
    evaluate,
    labels,
    cells_per_gene,
    min_genes,
    min_counts,
    min_cells,
    orientation,
    policy,
    chunk_cells,
    quiet,
    **kwargs,
):
    """The whole chain in one process: filter, train, impute (with --evaluate: mask and score too).

    OUTDIR receives filtered.loom, model/, imputed.loom and, with --evaluate, masked.loom,
    scores.json and plots/.
    """
    from deepimpute_tool import steps
    from deepimpute_tool.scoring import summary_table

    progress = Progress(quiet=quiet)
    outdir.mkdir(parents=True, exist_ok=True)
    params = _training_parameters(kwargs)
    filtered = outdir / "filtered.loom"
    steps.filter_file(
        input_path,
        filtered,
        min_genes=min_genes,
        min_counts=min_counts,
        min_cells=min_cells,
        orientation=orientation,
        progress=progress,
    )
    training_input = filtered
    if evaluate:
        training_input = outdir / "masked.loom"
        steps.mask_file(
            filtered, training_input, cells_per_gene=cells_per_gene, seed=params.seed, progress=progress
        )
    steps.train_file(training_input, outdir / "model", params=params, progress=progress)
    steps.impute_file(
        training_input,
        outdir / "model",
        outdir / "imputed.loom",
        policy=policy,
        chunk_cells=chunk_cells,
        progress=progress,
    )
    if evaluate:
        metrics = steps.score_file(
            outdir / "imputed.loom",
            outdir / "scores.json",
            labels=labels,
            plots=outdir / "plots",
            seed=params.seed,
            progress=progress,
        )
        if not quiet:
            click.echo(summary_table(metrics))
    progress.message(f"done: results in {outdir}")


def main() -> None:
    """``deepimpute STEP ...``, or ``deepimpute-STEP ...`` when called under a step's name."""
    name = Path(sys.argv[0]).name
    step = name.removeprefix("deepimpute-")
    if name.startswith("deepimpute-") and step in cli.commands:
        cli.commands[step](prog_name=name)
    else:
        cli(prog_name="deepimpute")
