"""Training DeepImpute: target genes, sub-networks, predictors, and the fitting itself.

The paper's design is kept: targets are genes whose variance/mean ratio exceeds
``min_vmr``; they are split at random into ``ceil(targets / subset_size)`` sub-networks (never
padded with duplicate genes; of equal sizes by default, see :class:`TrainingParameters`); the
inputs of a sub-network are the ``ntop`` genes most correlated with each of its targets, never
one of its own targets; each sub-network is Dense(hidden, ReLU) -> Dropout -> Dense(targets,
softplus), trained with Adam on sum(Y * (Y - Yhat)^2) over log values, with 5% of the
cells held out for early stopping.

How it runs differs from the original: all sub-networks are trained as one computation
(batched matrix products over a sub-network axis, inputs padded with zeros to the largest
sub-network), correlations are computed for a chunk of genes against a block of targets at
a time, keeping a running top ``ntop`` per target (no genes x genes matrix), early stopping
is judged per sub-network, keeps each one's best weights and drops stopped sub-networks from
the computation, and Adam is TensorFlow's fused kernel called directly, so its learning rate
is exactly the one asked for. By default a coarse phase at a ten times higher rate comes
first (see :class:`TrainingParameters`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp

from deepimpute_tool import __version__
from deepimpute_tool.lean_imports import import_tensorflow
from deepimpute_tool.model import Model, Normalisation, SubNetwork

CORRELATION_BLOCK = 512
CORRELATION_CHUNK_BYTES = 256 * 2**20
# train the sub-networks still improving on their own once they are this fraction or fewer
SHRINK_WHEN = 0.6
VALIDATION_BATCH = 1024
SUBSET_SPLITS = ("equal", "remainder")


@dataclass(frozen=True)
class TrainingParameters:
    """Every option of training, with the paper's defaults but for two.

    First, training starts with a coarse phase at ``coarse_learning_rate`` (the rate the
    original code effectively ran at) until every sub-network has gone ``coarse_patience``
    epochs without improving, then goes on from the best weights at ``learning_rate`` (the
    paper's) with ``patience``. On the project's benchmarks this takes about half the epochs of
    the paper's single phase at the same or better masked accuracy. ``coarse_learning_rate=0``
    trains as the paper.

    Second, the targets are split into as many subsets as the paper's (``ceil(targets /
    subset_size)``) but of equal sizes, where the paper leaves the remainder in a last, smaller
    subset (``subset_split="remainder"``). A sub-network's predictors come from the genes
    outside its own targets; when nearly every gene is a target, a full subset beside a small
    remainder reads from that remainder alone (mouse1m_10k: 512 targets choosing among 203
    genes). Equal subsets gave lower masked MSE and higher Pearson there at the same cost
    (README, Accuracy).

    ``ensemble`` greater than 1 splits the targets into that many independent random
    partitions, each with its own sub-networks (trained together), and averages each gene's
    log predictions over them: more accurate, at that many times the computation.
    """

    min_vmr: float = 0.5
    max_genes: int | None = None
    subset_size: int = 512
    subset_split: str = "equal"
    ensemble: int = 1
    ntop: int = 5
    hidden: int = 256
    dropout: float = 0.2
    learning_rate: float = 1e-4
    coarse_learning_rate: float = 1e-3
    coarse_patience: int = 2
    batch_size: int = 64
    max_epochs: int = 500
    patience: int = 5
    validation_fraction: float = 0.05
    cell_fraction: float = 1.0
    normalisation: str = "log1p"
    target_sum: float = 10_000.0
    seed: int = 0
    cores: int = 0
    device: str = "auto"
    precision: str = "float32"


class TrainingError(ValueError):
    """The data cannot be trained on as asked (too few cells, no target genes...)."""


# ------------------------------------------------------------ gene selection


def variance_mean_ratio(counts: sp.csr_matrix) -> np.ndarray:
    """Variance / mean of each gene's counts (0 for genes never detected)."""
    counts = sp.csr_matrix(counts)
    n = counts.shape[0]
    mean = np.asarray(counts.sum(axis=0)).ravel() / n
    mean_sq = np.asarray(counts.multiply(counts).sum(axis=0)).ravel() / n
    variance = (mean_sq - mean**2) * n / max(n - 1, 1)
    return np.divide(variance, mean, out=np.zeros_like(mean), where=mean > 0)


def select_targets(
    counts: sp.csr_matrix,
    *,
    min_vmr: float = 0.5,
    max_genes: int | None = None,
    vmr: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of target genes: variance/mean above ``min_vmr``, highest first, at most ``max_genes``.

    ``vmr``, when the caller already has :func:`variance_mean_ratio` of ``counts``, is used as is.
    """
    vmr = variance_mean_ratio(counts) if vmr is None else vmr
    order = np.argsort(-vmr, kind="stable")
    chosen = order[vmr[order] > min_vmr]
    return chosen if max_genes is None else chosen[:max_genes]


def split_subsets(
    targets: np.ndarray,
    *,
    subset_size: int = 512,
    split: str = "equal",
    min_subsets: int = 1,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Shuffle targets into ``ceil(targets / subset_size)`` subsets, at least ``min_subsets``.

    ``split="equal"``: the subsets' sizes differ by one at most. ``split="remainder"`` (the
    paper's): full subsets of ``subset_size`` and the remainder in a last, smaller one, unless
    that gives fewer than ``min_subsets`` subsets, which are then of equal sizes.
    """
    if split not in SUBSET_SPLITS:
        raise TrainingError(f"unknown subset split {split!r}: expected one of {', '.join(SUBSET_SPLITS)}")
    shuffled = rng.permutation(targets)
    n_subsets = -(-shuffled.size // subset_size)
    if split == "equal" or n_subsets < min_subsets:
        return [np.sort(part) for part in np.array_split(shuffled, max(n_subsets, min_subsets))]
    return [np.sort(shuffled[i : i + subset_size]) for i in range(0, shuffled.size, subset_size)]


def select_predictors(
    log_values: sp.csr_matrix,
    partitions: Sequence[Sequence[np.ndarray]],
    *,
    ntop: int = 5,
    chunk_bytes: int = CORRELATION_CHUNK_BYTES,
) -> list[list[np.ndarray]]:
    """Predictors of each subset of each partition: the union of its targets' ``ntop`` most correlated genes.

    Correlation is Pearson's, in absolute value, on the normalised log values. Genes of the
    subset itself and genes that do not vary are never chosen. Every partition holds the same
    targets (an ensemble's members), so the correlations are computed once for all of them.

    The standardised values of a chunk of genes (at most ``chunk_bytes`` as dense float32) are
    multiplied with those of ``CORRELATION_BLOCK`` targets at a time, and each target keeps a
    running top ``ntop``: memory grows with cells x chunk and chunk x block, never genes x genes.
    Targets come first in the gene order and a block of targets is multiplied only with the
    genes from its own first one onwards: a product of two targets serves both, so the
    target x target part, most of the work, is computed once instead of twice.
    """
    X = sp.csc_matrix(log_values, dtype=np.float32)
    n_cells, n_genes = X.shape
    mean = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
    mean_sq = np.asarray(X.multiply(X).mean(axis=0), dtype=np.float64).ravel()
    sd = np.sqrt(np.maximum(mean_sq - mean**2, 0.0))
    excluded = sd <= 1e-6 * np.maximum(mean, 1.0)
    scale = np.divide(1.0, sd * np.sqrt(n_cells), out=np.zeros_like(sd), where=sd > 0)
    owners = np.full((len(partitions), n_genes), -1)
    for owner, partition in zip(owners, partitions):
        for i, subset in enumerate(partition):
            owner[subset] = i
    targets = np.sort(np.concatenate(partitions[0]))
    is_target = np.zeros(n_genes, bool)
    is_target[targets] = True
    order = np.concatenate([targets, np.flatnonzero(~is_target & ~excluded)])
    n_targets = targets.size

    def standardised(columns: np.ndarray) -> np.ndarray:
        dense = X[:, columns].toarray()
        dense -= mean[columns].astype(np.float32)
        dense *= scale[columns].astype(np.float32)
        return dense

    best_corr = np.full((len(partitions), n_targets, ntop), -1.0, np.float32)
    best_gene = np.full((len(partitions), n_targets, ntop), -1)

    def offer(rows: slice, genes: np.ndarray, corr: np.ndarray) -> None:
        """Merge ``genes`` (the columns of ``corr``) into the running top of ``targets[rows]``."""
        k = min(ntop, genes.size)
        row_genes, not_varying = targets[rows], excluded[genes][None, :]
        for p, owner in enumerate(owners):
            refused = (owner[row_genes][:, None] == owner[genes][None, :]) | not_varying
            candidate_corr = np.array(corr, order="C")
            np.copyto(candidate_corr, -1.0, where=refused)
            top = np.argpartition(candidate_corr, -k, axis=1)[:, -k:]
            candidates = np.hstack([best_corr[p, rows], np.take_along_axis(candidate_corr, top, axis=1)])
            candidate_genes = np.hstack([best_gene[p, rows], genes[top]])
            keep = np.argpartition(-candidates, ntop - 1, axis=1)[:, :ntop]
            best_corr[p, rows] = np.take_along_axis(candidates, keep, axis=1)
            best_gene[p, rows] = np.take_along_axis(candidate_genes, keep, axis=1)

    chunk = max(CORRELATION_BLOCK, chunk_bytes // (4 * max(n_cells, 1)))
    for chunk_start in range(0, order.size, chunk):
        chunk_stop = min(chunk_start + chunk, order.size)
        chunk_values = standardised(order[chunk_start:chunk_stop])
        for start in range(0, min(n_targets, chunk_stop), CORRELATION_BLOCK):
            stop = min(start + CORRELATION_BLOCK, n_targets)
            first = max(start, chunk_start)
            if start >= chunk_start and stop <= chunk_stop:  # targets come first in the order
                block_values = chunk_values[:, start - chunk_start : stop - chunk_start]
            else:
                block_values = standardised(targets[start:stop])
            corr = block_values.T @ chunk_values[:, first - chunk_start :]
            np.abs(corr, out=corr)
            offer(slice(start, stop), order[first:chunk_stop], corr)
            # targets past this block's own square get the same products, transposed
            transposed_start, transposed_stop = max(first, stop), min(chunk_stop, n_targets)
            if transposed_start < transposed_stop:
                columns = slice(transposed_start - first, transposed_stop - first)
                offer(slice(transposed_start, transposed_stop), targets[start:stop], corr[:, columns].T)
    predictors = []
    for p, partition in enumerate(partitions):
        target_owner = owners[p][targets]
        chosen = best_corr[p] >= 0
        predictors.append(
            [
                np.unique(best_gene[p][target_owner == i][chosen[target_owner == i]])
                for i in range(len(partition))
            ]
        )
    return predictors


def normalised_log(counts: sp.csr_matrix, factors: np.ndarray) -> sp.csr_matrix:
    """log1p(counts * factor of each cell), staying sparse."""
    scaled = sp.csr_matrix(sp.diags(factors) @ counts, dtype=np.float32)
    scaled.data = np.log1p(scaled.data)
    return scaled


# ------------------------------------------------------------------ fitting


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence what TensorFlow's C++ start-up writes straight to file descriptor 2.

    Its absl log lines (oneDNN notices, a missing CUDA driver) ignore TF_CPP_MIN_LOG_LEVEL.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _configure_tensorflow(*, cores: int, device: str, seed: int):
    """Import TensorFlow quietly, set its threads, pick the device; return (tf, device name)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _quiet_native_stderr():
        tf = import_tensorflow()

        # retracing notices when stopped sub-networks leave the computation are expected
        tf.get_logger().setLevel("ERROR")
        if cores > 0:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(cores)
                tf.config.threading.set_inter_op_parallelism_threads(min(cores, 2))
            except RuntimeError:  # already initialised in this process; keep its setting
                pass
        gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise TrainingError("--device gpu was asked for but TensorFlow sees no GPU")
    name = "/GPU:0" if gpus and device in ("auto", "gpu") else "/CPU:0"
    tf.random.set_seed(seed)
    return tf, name


class _FusedTrainer:
    """The sub-networks ``nets`` as one TensorFlow computation, padded to their widest."""

    def __init__(
        self, tf, params, values, nets, input_index, output_index, n_in, n_out, step, rate, generator
    ):
        """``values`` maps weights, best and, after the first epochs, Adam's first_moments and
        second_moments to the four arrays (W1, b1, W2, b2) of the sub-networks ``nets``;
        ``step`` counts Adam's steps and ``rate`` is its learning rate (both TF variables)."""
        self.nets = nets
        width_in, width_out = int(n_in[nets].max()), int(n_out[nets].max())
        widths = [(width_in, None), (None, None), (None, width_out), (None, width_out)]

        def variables_of(arrays):
            return [
                tf.Variable(a[:, : rows or a.shape[1], : columns or a.shape[2]])
                for a, (rows, columns) in zip(arrays, widths)
            ]

        variables = self.variables = variables_of(values["weights"])
        if "first_moments" in values:
            first_moments = self.first_moments = variables_of(values["first_moments"])
            second_moments = self.second_moments = variables_of(values["second_moments"])
        else:  # Adam starts from zero moments
            first_moments = self.first_moments = [tf.Variable(tf.zeros_like(v)) for v in variables]
            second_moments = self.second_moments = [tf.Variable(tf.zeros_like(v)) for v in variables]
        best = self.best = variables_of(values["best"])
        in_ix = tf.constant(input_index[nets, :width_in])
        out_ix = tf.constant(output_index[nets, :width_out])
        beta1, beta2, epsilon = 0.9, 0.999, 1e-7
        keep = 1.0 - params.dropout
        compute_dtype = tf.bfloat16 if params.precision == "bfloat16" else tf.float32
        n_nets = nets.size

        def matmul(a, b):
            # a^T b; in bfloat16 (AMX, tensor cores) on float32 weights when asked, and
            # Adam always updates the float32 weights
            if compute_dtype == tf.float32:
                return tf.matmul(a, b, transpose_a=True)
            product = tf.matmul(tf.cast(a, compute_dtype), tf.cast(b, compute_dtype), transpose_a=True)
            return tf.cast(product, tf.float32)

        def forward(batch, training):
            # genes x cells layout: gathering a sub-network's genes copies whole rows; the
            # appended zero row is what padded inputs and outputs read
            genes_by_cells = tf.pad(tf.transpose(batch), [[0, 1], [0, 0]])
            net_in = tf.gather(genes_by_cells, in_ix)  # nets x inputs x cells
            hidden_values = tf.nn.relu(matmul(variables[0], net_in) + tf.transpose(variables[1], (0, 2, 1)))
            if training and params.dropout > 0:
                kept = generator.uniform(tf.shape(hidden_values)) < keep
                hidden_values = tf.where(kept, hidden_values / keep, 0.0)
            prediction = tf.nn.softplus(
                matmul(variables[2], hidden_values) + tf.transpose(variables[3], (0, 2, 1))
            )
            truth = tf.gather(genes_by_cells, out_ix)  # nets x targets x cells
            # the paper's loss per sub-network: sum over targets, mean over cells
            return tf.reduce_mean(tf.reduce_sum(truth * tf.square(truth - prediction), axis=1), axis=1)

        @tf.function
        def train_epoch(data, permutation):
            n_batches = (tf.size(permutation) + params.batch_size - 1) // params.batch_size
            total = tf.zeros((n_nets,))
            for b in tf.range(n_batches):
                rows = permutation[b * params.batch_size : (b + 1) * params.batch_size]
                batch = tf.gather(data, rows)
                with tf.GradientTape() as tape:
                    losses = forward(batch, training=True)
                    objective = tf.reduce_sum(losses)
                gradients = tape.gradient(objective, variables)
                step.assign_add(1.0)
                for v, m, u, g in zip(variables, first_moments, second_moments, gradients):
                    # TensorFlow's fused Adam kernel: one pass over each tensor instead of
                    # a dozen element-wise ops, at exactly this learning rate
                    tf.raw_ops.ResourceApplyAdam(
                        var=v.handle,
                        m=m.handle,
                        v=u.handle,
                        beta1_power=beta1**step,
                        beta2_power=beta2**step,
                        lr=rate,
                        beta1=beta1,
                        beta2=beta2,
                        epsilon=epsilon,
                        grad=g,
                    )
                total += losses * tf.cast(tf.size(rows), tf.float32)
            return total / tf.cast(tf.size(permutation), tf.float32)

        @tf.function
        def validation_loss(data):
            n_cells = tf.shape(data)[0]
            total = tf.zeros((n_nets,))
            for start in tf.range(0, n_cells, VALIDATION_BATCH):
                batch = data[start : start + VALIDATION_BATCH]
                total += forward(batch, training=False) * tf.cast(tf.shape(batch)[0], tf.float32)
            return total / tf.cast(n_cells, tf.float32)

        @tf.function
        def keep_best(improved):
            for v, kept in zip(variables, best):
                kept.assign(tf.where(improved[:, None, None], v, kept))

        self.train_epoch, self.validation_loss, self.keep_best = train_epoch, validation_loss, keep_best

    def values(self, keep: np.ndarray) -> dict[str, list[np.ndarray]]:
        """The current arrays of the sub-networks at positions ``keep`` of ``self.nets``."""
        return {
            key: [v.sparse_read(keep).numpy() for v in variables]
            for key, variables in (
                ("weights", self.variables),
                ("first_moments", self.first_moments),
                ("second_moments", self.second_moments),
                ("best", self.best),
            )
        }

    def store_best(self, best: list[np.ndarray]) -> None:
        """Write the best weights of this computation's sub-networks into ``best`` (all of them)."""
        for target, variable in zip(best, self.best):
            values = variable.numpy()
            target[self.nets, : values.shape[1], : values.shape[2]] = values


def _dense_rows(tf, x, cells: np.ndarray, *, block_bytes: int = 64 * 2**20):
    """The rows ``cells`` of ``x`` (dense or sparse) as one dense float32 tensor, filled one block
    of rows at a time so that no second full-size copy exists."""
    n_genes = x.shape[1]
    block = max(1, block_bytes // (4 * max(n_genes, 1)))
    data = tf.Variable(tf.zeros((cells.size, n_genes), tf.float32), trainable=False)
    for start in range(0, cells.size, block):
        rows = x[cells[start : start + block]]
        rows = rows.toarray() if sp.issparse(rows) else rows
        data[start : start + block].assign(np.asarray(rows, np.float32))
    return data


def fit_subnetworks(
    x: np.ndarray,
    inputs: list[np.ndarray],
    outputs: list[np.ndarray],
    *,
    params: TrainingParameters,
    rng: np.random.Generator,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> tuple[list[tuple[np.ndarray, ...]], dict]:
    """Train all sub-networks at once on the normalised log matrix ``x`` (cells x genes, dense or sparse).

    ``inputs[s]`` and ``outputs[s]`` are column indices of ``x``. Returns each sub-network's
    best (W1, b1, W2, b2) by its own validation loss, and the training history.
    """
    tf, device = _configure_tensorflow(cores=params.cores, device=params.device, seed=params.seed)
    n_cells = x.shape[0]
    n_validation = max(1, round(params.validation_fraction * n_cells))
    order = rng.permutation(n_cells)
    validation_cells, train_cells = np.sort(order[:n_validation]), np.sort(order[n_validation:])

    n_nets = len(inputs)
    n_in = np.array([ix.size for ix in inputs])
    n_out = np.array([ix.size for ix in outputs])
    width_in, width_out, hidden = int(n_in.max()), int(n_out.max()), params.hidden
    padding_column = x.shape[1]  # an all-zero column appended to x
    input_index = np.full((n_nets, width_in), padding_column, dtype=np.int32)
    output_index = np.full((n_nets, width_out), padding_column, dtype=np.int32)
    W1 = np.zeros((n_nets, width_in, hidden), np.float32)
    W2 = np.zeros((n_nets, hidden, width_out), np.float32)
    for s in range(n_nets):
        input_index[s, : n_in[s]] = inputs[s]
        output_index[s, : n_out[s]] = outputs[s]
        limit1 = np.sqrt(6.0 / (n_in[s] + hidden))  # Glorot uniform, as Keras' Dense
        W1[s, : n_in[s]] = rng.uniform(-limit1, limit1, (n_in[s], hidden))
        limit2 = np.sqrt(6.0 / (hidden + n_out[s]))
        W2[s, :, : n_out[s]] = rng.uniform(-limit2, limit2, (hidden, n_out[s]))
    initial = [
        W1,
        np.zeros((n_nets, 1, hidden), np.float32),
        W2,
        np.zeros((n_nets, 1, width_out), np.float32),
    ]
    best = [w.copy() for w in initial]
    values = {"weights": initial, "best": best}

    with tf.device(device):
        # one dense copy of the training cells, made from the sparse matrix one block at a time
        data_train, data_validation = (_dense_rows(tf, x, cells) for cells in (train_cells, validation_cells))
        # (learning rate, patience) of each phase
        phases = [(params.learning_rate, params.patience)]
        if params.coarse_learning_rate > 0:
            phases.insert(0, (params.coarse_learning_rate, params.coarse_patience))
        phase = 0
        step = tf.Variable(0.0)
        rate = tf.Variable(phases[0][0])
        generator = tf.random.Generator.from_seed(params.seed)

        def fused(values: dict, nets: np.ndarray) -> _FusedTrainer:
            return _FusedTrainer(
                tf, params, values, nets, input_index, output_index, n_in, n_out, step, rate, generator
            )

        trainer = fused(values, np.arange(n_nets))
        del values, initial, W1, W2

        best_loss = np.full(n_nets, np.inf)
        best_epoch = np.zeros(n_nets, dtype=int)
        waiting = np.zeros(n_nets, dtype=int)
        last_train_loss = np.zeros(n_nets)
        history = {"train_loss": [], "validation_loss": []}
        started = time.perf_counter()
        epoch = 0
        phase_epochs = []  # the epoch that ended each phase
        for epoch in range(1, params.max_epochs + 1):
            nets = trainer.nets
            permutation = tf.constant(rng.permutation(train_cells.size), tf.int32)
            last_train_loss[nets] = trainer.train_epoch(data_train, permutation).numpy()
            val_loss = trainer.validation_loss(data_validation).numpy()
            improved = val_loss < best_loss[nets]
            best_loss[nets] = np.where(improved, val_loss, best_loss[nets])
            best_epoch[nets] = np.where(improved, epoch, best_epoch[nets])
            waiting[nets] = np.where(improved, 0, waiting[nets] + 1)
            trainer.keep_best(tf.constant(improved))
            history["train_loss"].append(float(last_train_loss.sum()))
            # stopped sub-networks count with their best loss, the others with this epoch's
            reported = best_loss.copy()
            reported[nets] = val_loss
            history["validation_loss"].append(float(reported.sum()))
            still_training = np.flatnonzero(waiting < phases[phase][1])
            if on_epoch is not None:
                on_epoch(
                    epoch,
                    {
                        "train_loss": history["train_loss"][-1],
                        "validation_loss": history["validation_loss"][-1],
                        "active": int(still_training.size),
                    },
                )
            if still_training.size == 0 and phase + 1 < len(phases):
                # the next phase: every sub-network from its best weights, Adam afresh
                phase += 1
                phase_epochs.append(epoch)
                trainer.store_best(best)
                del trainer
                gc.collect()
                trainer = fused({"weights": [b.copy() for b in best], "best": best}, np.arange(n_nets))
                step.assign(0.0)
                rate.assign(phases[phase][0])
                waiting[:] = 0
                continue
            if still_training.size == 0:
                break
            # Stopped sub-networks only cost time: once enough have stopped, carry on
            # with the others alone (a smaller computation, traced anew).
            if still_training.size <= SHRINK_WHEN * nets.size:
                trainer.store_best(best)
                values = trainer.values(np.searchsorted(nets, still_training))
                # free the larger computation before building the smaller one
                del trainer
                gc.collect()
                trainer = fused(values, still_training)
                del values
        seconds = time.perf_counter() - started
        trainer.store_best(best)

    best_values = best
    weights = [
        (
            best_values[0][s, : n_in[s]],
            best_values[1][s, 0],
            best_values[2][s, :, : n_out[s]],
            best_values[3][s, 0, : n_out[s]],
        )
        for s in range(n_nets)
    ]
    history.update(
        epochs=epoch,
        phase_epochs=[*phase_epochs, epoch],
        best_epoch=best_epoch.tolist(),
        best_validation_loss=best_loss.tolist(),
        train_cells=int(train_cells.size),
        validation_cells=int(validation_cells.size),
        seconds=round(seconds, 3),
        seconds_per_epoch=round(seconds / max(epoch, 1), 4),
        device=device,
    )
    return weights, history


# -------------------------------------------------------------- the whole step


def train(
    counts: sp.csr_matrix,
    genes: np.ndarray,
    *,
    params: TrainingParameters = TrainingParameters(),
    log: Callable[[str], None] = lambda message: None,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> Model:
    """Train a DeepImpute model on a cells x genes count matrix.

    Parameters
    ----------
    counts
        Raw counts, cells x genes.
    genes
        Gene names (unique), one per column.
    params
        Every training option; the defaults are the paper's.
    log
        Receives progress messages.
    on_epoch
        Called after each epoch with its number and losses.
    """
    rng = np.random.default_rng(params.seed)
    counts = sp.csr_matrix(counts, dtype=np.float32)
    n_cells = counts.shape[0]
    if params.cell_fraction <= 0:
        raise TrainingError("--cell-fraction must be positive")
    if params.ensemble < 1:
        raise TrainingError("--ensemble must be at least 1")
    n_train = (
        round(params.cell_fraction * n_cells) if params.cell_fraction <= 1 else int(params.cell_fraction)
    )
    n_train = min(n_train, n_cells)
    if n_train < n_cells:
        counts = counts[np.sort(rng.choice(n_cells, n_train, replace=False))]
        log(f"training on {n_train} of {n_cells} cells")
    minimum_cells = int(np.ceil(2 / params.validation_fraction))
    if n_train < minimum_cells:
        raise TrainingError(
            f"too few cells to train: {n_train}, and at least {minimum_cells} are needed so that "
            f"{params.validation_fraction:.0%} of them ({params.validation_fraction * minimum_cells:.0f}) "
            "can be held out for early stopping"
        )

    vmr = variance_mean_ratio(counts)
    targets = select_targets(counts, min_vmr=params.min_vmr, max_genes=params.max_genes, vmr=vmr)
    if targets.size == 0:
        raise TrainingError(f"no gene has a variance/mean ratio above --min-vmr {params.min_vmr}")
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
    empty = [i for i, p in enumerate(predictors) if p.size == 0]
    if empty:
        raise TrainingError("no gene outside the targets varies: nothing to predict them from")

    # The library size is taken over the genes the model reads, so that imputing any
    # Loom that has those genes normalises cells exactly as in training.
    used = np.unique(np.concatenate([*subsets, *predictors]))
    used_counts = counts[:, used]
    factors = normalisation.size_factors(np.asarray(used_counts.sum(axis=1)).ravel())
    del log_values
    x = normalised_log(used_counts, factors)
    inputs = [np.searchsorted(used, p) for p in predictors]
    outputs = [np.searchsorted(used, t) for t in subsets]
    log(
        f"inputs per sub-network: {min(p.size for p in predictors)}-{max(p.size for p in predictors)}; "
        f"{x.shape[0]} cells x {x.shape[1]} genes in the training matrix"
    )
    weights, history = fit_subnetworks(x, inputs, outputs, params=params, rng=rng, on_epoch=on_epoch)
    log(
        f"stopped after {history['epochs']} epochs ({history['seconds']:.1f} s on {history['device']}); "
        f"best epochs {min(history['best_epoch'])}-{max(history['best_epoch'])}"
    )
    if params.coarse_learning_rate > 0:
        coarse_end = history["phase_epochs"][0]
        if coarse_end == history["epochs"]:
            log(
                f"--max-epochs {params.max_epochs} ended training in the coarse phase, before --learning-rate"
            )
        else:
            log(
                f"coarse phase at {params.coarse_learning_rate:g}: epochs 1-{coarse_end}; "
                f"at --learning-rate {params.learning_rate:g}: epochs {coarse_end + 1}-{history['epochs']}"
            )
    genes = np.asarray(genes).astype(str)
    subnetworks = [
        SubNetwork(targets=genes[t], predictors=genes[p], W1=w[0], b1=w[1], W2=w[2], b2=w[3])
        for t, p, w in zip(subsets, predictors, weights)
    ]
    tf = import_tensorflow()
    return Model(
        subnetworks=subnetworks,
        normalisation=normalisation,
        parameters=asdict(params),
        training={**history, "cells": n_train, "cells_in_input": n_cells, "target_genes": int(targets.size)},
        versions={
            "deepimpute_tool": __version__,
            "tensorflow": tf.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
    )
