"""The ``deepimpute`` command line: one subcommand per step, each also a stand-alone executable.

It only parses, calls the step modules (:mod:`deepimpute_tool.steps`) and reports. Options come
from the parameter classes of the steps (:func:`deepimpute_tool.options.click_options`); every
error a step raises, and every bad option, is one line on standard error and exit code 2, with
options spelled as the surface that runs the command spells them (``DEEPIMPUTE_SURFACE``:
``cli`` by default; the Nextflow modules and the Galaxy tools set theirs).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
import warnings
from pathlib import Path

import click

from deepimpute_tool import __version__
from deepimpute_tool.chunking import SplitParameters
from deepimpute_tool.errors import EXIT_CODE, DeepImputeError
from deepimpute_tool.filtering import FilterParameters
from deepimpute_tool.imputation import ImputeParameters
from deepimpute_tool.masking import MaskParameters
from deepimpute_tool.options import SPELLINGS, click_options, from_options, spellings
from deepimpute_tool.progress import Progress
from deepimpute_tool.scoring import ScoreParameters, summary_table
from deepimpute_tool.steps.filter import filter_file
from deepimpute_tool.steps.impute import impute_file
from deepimpute_tool.steps.mask import mask_file
from deepimpute_tool.steps.merge import merge_files
from deepimpute_tool.steps.report import report_files
from deepimpute_tool.steps.run import OutputParameters, RunParameters, run_chain
from deepimpute_tool.steps.score import score_file
from deepimpute_tool.steps.split import split_file
from deepimpute_tool.steps.train import train_file
from deepimpute_tool.training import TrainingParameters

SURFACE_VARIABLE = "DEEPIMPUTE_SURFACE"


def _surface() -> str:
    surface = os.environ.get(SURFACE_VARIABLE, "cli")
    return surface if surface in SPELLINGS else "cli"


def _progress(quiet: bool) -> Progress:
    """The step's reporter; with ``quiet``, libraries' warnings and log messages are silenced too."""
    if quiet:
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
    return Progress(quiet=quiet, spelling=spellings(_surface()))


def _in_h5py_cleanup(error: BaseException | None, trace) -> bool:
    """A failed write fails again as h5py frees its objects; the step's error already said so."""
    frames = traceback.extract_tb(trace) if trace is not None else []
    return isinstance(error, (OSError, RuntimeError)) and any(
        "h5py" in frame.filename and "__dealloc__" in frame.name for frame in frames
    )


def _unraisable(report) -> None:
    if not _in_h5py_cleanup(report.exc_value, report.exc_traceback):
        sys.__unraisablehook__(report)


def _excepthook(kind, error, trace) -> None:
    if not _in_h5py_cleanup(error, trace):  # Cython prints its cleanup's errors this way too
        sys.__excepthook__(kind, error, trace)


quiet_option = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")


def _path(**kwargs) -> click.Path:
    return click.Path(path_type=Path, **kwargs)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="deepimpute")
def cli():
    """DeepImpute: impute dropout zeros in single-cell RNA-seq counts (Arisdakessian et al., 2019).

    Steps pass Loom files (genes as rows, cells as columns): filter -> train -> impute, or, to
    measure accuracy, filter -> mask -> train -> impute -> score. `deepimpute run` chains them.
    """


@cli.command("filter")
@click.argument("input_path", metavar="IN", type=_path())
@click.argument("output", metavar="OUT.loom|OUT.h5ad", type=_path())
@click_options(FilterParameters)
@click.option(
    "--qc-plot",
    type=_path(),
    help="Also draw what the thresholds cut, as a PNG: genes and counts per cell, cells per gene.",
)
@quiet_option
def filter_command(input_path, output, qc_plot, quiet, **options):
    """Quality control, and the entry point for your data.

    IN is a Loom, an .h5ad, a 10x folder (matrix.mtx[.gz], features.tsv[.gz] or
    genes.tsv[.gz], barcodes.tsv[.gz]), a 10x HDF5 file, or a CSV/TSV table with names in
    the first row and column. It must hold raw counts. OUT is a Loom (or an AnnData, for a
    name ending in .h5ad) of the cells and genes that pass; repeated gene names are made unique.
    """
    params = from_options(FilterParameters, options)
    filter_file(input_path, output, params=params, progress=_progress(quiet), qc_plot=qc_plot)


@cli.command("mask")
@click.argument("input_path", metavar="IN", type=_path())
@click.argument("output", metavar="OUT.loom|OUT.h5ad", type=_path())
@click_options(MaskParameters)
@quiet_option
def mask_command(input_path, output, quiet, **options):
    """Hide real counts to measure imputation accuracy.

    --protocol paper (the DeepImpute paper's): a logistic curve of each gene's zero fraction
    against the log mean of its positive counts is fitted; in each gene, --cells-per-gene
    positive entries are drawn with probabilities from that curve and set to zero, the true
    counts kept in the layer 'original'. --protocol mcv (molecular cross-validation): a
    fraction of every count's molecules is held out into the layer 'heldout'. IN is a Loom or
    an h5ad (its counts from --layer); OUT holds the masked counts as its main matrix (X), that
    layer and the annotations, nothing else; `score` uses them after `impute`.
    """
    mask_file(input_path, output, params=from_options(MaskParameters, options), progress=_progress(quiet))


@cli.command("train")
@click.argument("input_path", metavar="IN", type=_path())
@click.argument("model", metavar="MODEL", type=_path())
@click_options(TrainingParameters)
@click.option(
    "--loss-plot",
    type=_path(),
    help="Also draw the loss curves as a PNG: per epoch, and per sub-network with the epoch it kept.",
)
@quiet_option
def train_command(input_path, model, loss_plot, quiet, **options):
    """Train a DeepImpute model on raw counts; write it to the folder MODEL (a zip file if MODEL ends in .zip).

    MODEL holds everything needed to impute later, in another process, any Loom that
    has its genes: weights (plain arrays), gene lists, normalisation, parameters, training
    history and versions. Loading it executes nothing from it. An existing MODEL is replaced
    only if it is a model (or an empty folder).
    """
    params = from_options(TrainingParameters, options)
    train_file(input_path, model, params=params, progress=_progress(quiet), loss_plot=loss_plot)


@cli.command("impute")
@click.argument("input_path", metavar="IN", type=_path())
@click.argument("model", metavar="MODEL", type=_path())
@click.argument("output", metavar="OUT.loom|OUT.h5ad", type=_path())
@click_options(ImputeParameters)
@quiet_option
def impute_command(input_path, model, output, quiet, **options):
    """Impute IN with MODEL: by default, denoise every entry of the genes it imputes.

    OUT has IN's genes and cells in the same order, with their attributes. Its main matrix
    holds imputed counts on IN's count scale (with a model of this version, every entry of an
    imputed gene denoised; with --policy restore, or an older model, only zeros filled); IN's
    counts go to the layer 'raw' and IN's other layers are kept. Genes the model does not impute are copied unchanged. An OUT
    ending in .h5ad is AnnData: imputed counts in X, IN's counts in layers['counts'].
    """
    params = from_options(ImputeParameters, options)
    impute_file(input_path, model, output, params=params, progress=_progress(quiet))


@cli.command("score")
@click.argument("input_path", metavar="IN", type=_path())
@click.option(
    "--output", "-o", type=_path(dir_okay=False), help="JSON file of all scores. [default: IN.scores.json]"
)
@click.option(
    "--plots", type=_path(), help="Folder for PNG figures: imputed vs true values, per-gene and per-cell MSE."
)
@click_options(ScoreParameters)
@quiet_option
def score_command(input_path, output, plots, quiet, **options):
    """Score a masked-then-imputed Loom or h5ad against what mask hid.

    After the paper's masking: MSE and Pearson correlation on log1p counts at the masked entries
    (the paper's metrics), MSE where the true count is at least 2, per-gene and per-cell MSE.
    After molecular cross-validation: Open Problems' MSE and Poisson scores on the held-out
    molecules. With --labels, the clustering scores.
    """
    params = from_options(ScoreParameters, options)
    metrics = score_file(input_path, output, params=params, plots=plots, progress=_progress(quiet))
    if not quiet:
        click.echo(summary_table(metrics))


@cli.command("report")
@click.argument("sample", metavar="SAMPLE")
@click.argument("outdir", metavar="OUTDIR", type=_path())
@click.option("--counts", required=True, type=_path(), help="The sample's counts as filter wrote them.")
@click.option("--model", required=True, type=_path(), help="The model that imputed the sample.")
@click.option("--scores", type=_path(dir_okay=False), help="The scores that score wrote, if it was scored.")
@click.option(
    "--figure", "figures", multiple=True, type=_path(), help="A PNG figure, or a folder of them (repeatable)."
)
@quiet_option
def report_command(sample, outdir, counts, model, scores, figures, quiet):
    """A sample's results as MultiQC custom content in OUTDIR, for the pipeline's report.

    A General Statistics row (cells, genes, imputed genes, epochs, and the headline score), the
    loss per epoch, the scores as a table, and the figures as images.
    """
    report_files(
        sample, outdir, counts=counts, model=model, scores=scores, figures=figures, progress=_progress(quiet)
    )


@cli.command("split")
@click.argument("input_path", metavar="IN", type=_path())
@click.argument("outdir", metavar="OUTDIR", type=_path())
@click_options(SplitParameters)
@quiet_option
def split_command(input_path, outdir, quiet, **options):
    """Split IN into Looms of --chunk-size cells (OUTDIR/<name>.chunkNNNN.loom) to impute in parallel.

    Each chunk records its place, so `merge` restores the cell order whatever order the
    imputed chunks come back in. An existing OUTDIR is replaced only if it holds chunks alone.
    """
    split_file(input_path, outdir, params=from_options(SplitParameters, options), progress=_progress(quiet))


@cli.command("merge")
@click.argument("output", metavar="OUT.loom", type=_path())
@click.argument("chunks", metavar="CHUNK.loom...", nargs=-1, required=True, type=_path())
@quiet_option
def merge_command(output, chunks, quiet):
    """Merge the chunks made by `split` (after `impute`) back into one Loom, in the original cell order."""

    merge_files(list(chunks), output, progress=_progress(quiet))


@cli.command("run")
@click.argument("input_path", metavar="IN", type=_path())
@click.argument("outdir", metavar="OUTDIR", type=_path())
@click_options(
    RunParameters,
    OutputParameters,
    FilterParameters,
    MaskParameters,
    TrainingParameters,
    ImputeParameters,
    ScoreParameters,
)
@quiet_option
def run_command(input_path, outdir, quiet, **options):
    """The whole chain in one process: filter, train, impute (with --evaluate: mask and score too).

    OUTDIR receives filtered.loom, model/, imputed.loom (or imputed.h5ad) and, with --evaluate,
    masked.loom, scores.json and plots/ (the score is of imputed.loom, which is kept). Mask and
    score options apply with --evaluate.
    """
    metrics = run_chain(
        input_path,
        outdir,
        filtering=from_options(FilterParameters, options),
        masking=from_options(MaskParameters, options) if options["evaluate"] else None,
        training=from_options(TrainingParameters, options),
        imputing=from_options(ImputeParameters, options),
        scoring=from_options(ScoreParameters, options),
        output_format=options["output_format"],
        progress=_progress(quiet),
    )
    if metrics is not None and not quiet:
        click.echo(summary_table(metrics))


def _fail(message: str) -> None:
    """One line on standard error, then exit 2 at once.

    Every output was already removed or never begun; exiting without Python's teardown also
    keeps HDF5 from crashing on the handles of a file whose write failed (a full disk).
    """
    click.echo(f"Error: {' '.join(message.split())}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_CODE)


class Cancelled(BaseException):
    """A signal that cancels a job arrived: unwinding removes every temporary output on the way."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _cancel(signum: int, frame) -> None:
    raise Cancelled(signum)


# what schedulers send to cancel or time out a job (Galaxy, SLURM, Nextflow: SIGTERM), and a
# closed terminal (SIGHUP); SIGINT is Python's KeyboardInterrupt
CANCELLING_SIGNALS = ("SIGTERM", "SIGHUP")


def main(argv: list[str] | None = None) -> None:
    """``deepimpute STEP ...``, or ``deepimpute-STEP ...`` when called under a step's name."""
    # past a file-size limit, writes fail (and are reported) instead of the process being killed
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for name in CANCELLING_SIGNALS:
        signum = getattr(signal, name, None)
        # a signal ignored when we start stays ignored: nohup's SIGHUP, a background job's
        if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _cancel)
    sys.unraisablehook, sys.excepthook = _unraisable, _excepthook
    name = Path(sys.argv[0]).name
    step = name.removeprefix("deepimpute-")
    command, prog_name = cli, "deepimpute"
    if name.startswith("deepimpute-") and step in cli.commands:
        command, prog_name = cli.commands[step], name
    try:
        command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except DeepImputeError as error:
        _fail(error.spelled(spellings(_surface())))
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as error:
        _fail(error.format_message())
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("Aborted.", err=True)
        sys.exit(128 + signal.SIGINT)
    except Cancelled as cancelled:
        # the outputs' temporaries were removed as the exception unwound the writing steps
        click.echo(f"Cancelled ({signal.Signals(cancelled.signum).name}).", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + cancelled.signum)
