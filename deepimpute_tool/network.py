"""The sub-networks as one TensorFlow computation: typed state in, typed state out.

Every sub-network is Dense(hidden, ReLU) -> Dropout -> Dense(targets, softplus), trained with
Adam on the paper's loss sum(Y * (Y - Yhat)^2) over log values. With a detection head, a second
Dense(targets) on the same hidden units gives the logit of each target being detected (count > 0),
trained by binary cross-entropy on every entry, zeros included, in the same step; it does not
train the hidden units (sharing them cost 0.011-0.034 of masked Pearson on pbmc3k), so the
values are exactly the paper network's. All of them run as batched
matrix products over a sub-network axis, inputs and outputs padded with zeros to the widest,
on a genes x cells layout (gathering a sub-network's genes copies whole rows). Adam is
TensorFlow's fused kernel, called directly, so its learning rate is exactly the one asked for.

:class:`FusedNetworks` holds the variables of some of the sub-networks; :class:`NetworkState`
is what goes in and comes out of it, as plain arrays. The same forward pass in numpy is
:meth:`deepimpute_tool.model.SubNetwork.predict_log`; a test checks that the two agree.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from deepimpute_tool.errors import DeviceError
from deepimpute_tool.lean_imports import import_tensorflow

VALIDATION_BATCH = 1024
# the detection head's own Adam rate in every phase: a logistic regression on fixed features,
# it stays underfitted at the paper's 1e-4 in the epochs the values take (measured on pbmc3k's
# molecular cross-validation: mean scaled score 0.477 at the phase's rate, 0.487 at 3e-3, 0.490 at 1e-2)
DETECTION_LEARNING_RATE = 3e-3
ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON = 0.9, 0.999, 1e-7

# W1, b1, W2, b2 (and W3, b3 of the detection head), stacked over sub-networks
Arrays = tuple[np.ndarray, ...]
VALUE_VARIABLES = ("W1", "b1", "W2", "b2")


@dataclass(frozen=True)
class Layout:
    """Which genes (columns of the training matrix) each sub-network reads and predicts.

    ``input_index`` and ``output_index`` are nets x width, padded with ``n_columns`` (the
    index of an all-zero column appended to the data); ``n_in`` and ``n_out`` are the real
    widths. ``detection``: the sub-networks have a detection head.
    """

    input_index: np.ndarray
    output_index: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    hidden: int
    detection: bool = False

    @classmethod
    def of(
        cls,
        inputs: list[np.ndarray],
        outputs: list[np.ndarray],
        *,
        n_columns: int,
        hidden: int,
        detection: bool = False,
    ) -> Layout:
        n_in = np.array([ix.size for ix in inputs])
        n_out = np.array([ix.size for ix in outputs])
        input_index = np.full((len(inputs), int(n_in.max())), n_columns, dtype=np.int32)
        output_index = np.full((len(outputs), int(n_out.max())), n_columns, dtype=np.int32)
        for s, (ins, outs) in enumerate(zip(inputs, outputs)):
            input_index[s, : ins.size] = ins
            output_index[s, : outs.size] = outs
        return cls(input_index, output_index, n_in, n_out, hidden, detection)

    @property
    def n_nets(self) -> int:
        return self.n_in.size

    def initial_weights(self, rng: np.random.Generator) -> Arrays:
        """Glorot-uniform weights (as Keras' Dense) and zero biases, drawn sub-network by sub-network."""
        n_nets, hidden = self.n_nets, self.hidden
        W1 = np.zeros((n_nets, self.input_index.shape[1], hidden), np.float32)
        W2 = np.zeros((n_nets, hidden, self.output_index.shape[1]), np.float32)
        for s in range(n_nets):
            limit1 = np.sqrt(6.0 / (self.n_in[s] + hidden))
            W1[s, : self.n_in[s]] = rng.uniform(-limit1, limit1, (self.n_in[s], hidden))
            limit2 = np.sqrt(6.0 / (hidden + self.n_out[s]))
            W2[s, :, : self.n_out[s]] = rng.uniform(-limit2, limit2, (hidden, self.n_out[s]))
        b1 = np.zeros((n_nets, 1, hidden), np.float32)
        b2 = np.zeros((n_nets, 1, self.output_index.shape[1]), np.float32)
        if not self.detection:
            return W1, b1, W2, b2
        # the detection head is a logistic regression on the hidden units, convex in its own
        # weights: it starts from zero and draws nothing, so the value head trains as without it
        return W1, b1, W2, b2, np.zeros_like(W2), np.zeros_like(b2)

    def unpadded(self, arrays: Arrays) -> list[Arrays]:
        """Each sub-network's own (W1, b1, W2, b2[, W3, b3]), padding removed."""
        W1, b1, *heads = arrays
        return [
            (
                W1[s, : self.n_in[s]],
                b1[s, 0],
                *(
                    head[s, :, : self.n_out[s]] if i % 2 == 0 else head[s, 0, : self.n_out[s]]
                    for i, head in enumerate(heads)
                ),
            )
            for s in range(self.n_nets)
        ]


@dataclass(frozen=True)
class NetworkState:
    """The arrays of some sub-networks: current weights, best weights, and Adam's moments
    (None: Adam starts afresh)."""

    weights: Arrays
    best: Arrays
    first_moments: Arrays | None = None
    second_moments: Arrays | None = None


@dataclass(frozen=True)
class StepSettings:
    """How a training step runs."""

    dropout: float
    batch_size: int
    precision: str  # "float32" or "bfloat16" matrix products


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


def configure_tensorflow(*, cores: int, device: str, seed: int):
    """Import TensorFlow quietly, set its threads, pick the device; return (tf, device name)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _quiet_native_stderr():
        tf = import_tensorflow()
        # retracing notices when stopped sub-networks leave the computation are expected
        tf.get_logger().setLevel("ERROR")
        if cores > 0:
            cores = min(cores, len(os.sched_getaffinity(0)))  # more threads than CPUs only slow it
            try:
                tf.config.threading.set_intra_op_parallelism_threads(cores)
                tf.config.threading.set_inter_op_parallelism_threads(min(cores, 2))
            except RuntimeError:  # already initialised in this process; keep its setting
                pass
        gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise DeviceError("⟨device⟩ gpu", "TensorFlow sees no GPU; use ⟨device⟩ auto or cpu")
    name = "/GPU:0" if gpus and device in ("auto", "gpu") else "/CPU:0"
    tf.random.set_seed(seed)
    return tf, name


def dense_rows(tf, x, cells: np.ndarray, *, block_bytes: int = 64 * 2**20):
    """The rows ``cells`` of ``x`` (dense or sparse) as one dense float32 variable, filled one
    block of rows at a time so that no second full-size copy exists."""
    n_genes = x.shape[1]
    block = max(1, block_bytes // (4 * max(n_genes, 1)))
    data = tf.Variable(tf.zeros((cells.size, n_genes), tf.float32), trainable=False)
    for start in range(0, cells.size, block):
        rows = x[cells[start : start + block]]
        rows = rows.toarray() if sp.issparse(rows) else rows
        data[start : start + block].assign(np.asarray(rows, np.float32))
    return data


class FusedNetworks:
    """The sub-networks ``nets`` (positions in ``layout``) as one computation, padded to their widest.

    Parameters
    ----------
    tf
        The TensorFlow module.
    layout
        Inputs and outputs of every sub-network.
    nets
        Which sub-networks this computation trains.
    state
        Their arrays, padded to the widest of all sub-networks.
    settings
        Dropout, batch size and arithmetic.
    step, rate
        TensorFlow variables: Adam's step count and learning rate, shared across computations.
    generator
        TensorFlow's random generator for dropout.
    """

    def __init__(self, tf, *, layout: Layout, nets: np.ndarray, state: NetworkState, settings: StepSettings,
                 step, rate, generator) -> None:  # fmt: skip
        self.tf, self.nets, self.settings = tf, nets, settings
        self._step, self._rate, self._generator = step, rate, generator
        width_in, width_out = int(layout.n_in[nets].max()), int(layout.n_out[nets].max())
        self._widths = [(width_in, None), (None, None)] + [(None, width_out)] * (len(state.weights) - 2)
        self.variables = self._variables(state.weights)
        if state.first_moments is not None:
            self.first_moments = self._variables(state.first_moments)
            self.second_moments = self._variables(state.second_moments)
        else:  # Adam starts from zero moments
            self.first_moments = [tf.Variable(tf.zeros_like(v)) for v in self.variables]
            self.second_moments = [tf.Variable(tf.zeros_like(v)) for v in self.variables]
        self.best = self._variables(state.best)
        self._in_ix = tf.constant(layout.input_index[nets, :width_in])
        self._out_ix = tf.constant(layout.output_index[nets, :width_out])
        # padded outputs read the zero column; the detection loss must not count them
        self._real_outputs = tf.constant(
            (np.arange(width_out)[None, :] < layout.n_out[nets][:, None]).astype(np.float32)[:, :, None]
        )
        self._compute_dtype = tf.bfloat16 if settings.precision == "bfloat16" else tf.float32
        self.train_epoch = tf.function(self._train_epoch)
        self.validation_loss = tf.function(self._validation_loss)
        self.keep_best = tf.function(self._keep_best)
        self.predict_log = tf.function(self._predict_log)

    def _variables(self, arrays: Arrays) -> list:
        return [
            self.tf.Variable(a[:, : rows or a.shape[1], : columns or a.shape[2]])
            for a, (rows, columns) in zip(arrays, self._widths)
        ]

    def _matmul(self, a, b):
        """a^T b; in bfloat16 (AMX, tensor cores) when asked, on float32 weights that Adam updates."""
        tf = self.tf
        if self._compute_dtype == tf.float32:
            return tf.matmul(a, b, transpose_a=True)
        product = tf.matmul(
            tf.cast(a, self._compute_dtype), tf.cast(b, self._compute_dtype), transpose_a=True
        )
        return tf.cast(product, tf.float32)

    def _forward(self, genes_by_cells, training: bool):
        """Predicted normalised log values, nets x targets x cells, from a padded genes x cells block,
        and the detection logits of the same shape (None without a detection head)."""
        tf = self.tf
        W1, b1, W2, b2, *detection = self.variables
        net_in = tf.gather(genes_by_cells, self._in_ix)  # nets x inputs x cells
        hidden_values = tf.nn.relu(self._matmul(W1, net_in) + tf.transpose(b1, (0, 2, 1)))
        if training and self.settings.dropout > 0:
            keep = 1.0 - self.settings.dropout
            kept = self._generator.uniform(tf.shape(hidden_values)) < keep
            hidden_values = tf.where(kept, hidden_values / keep, 0.0)
        values = tf.nn.softplus(self._matmul(W2, hidden_values) + tf.transpose(b2, (0, 2, 1)))
        if not detection:
            return values, None
        W3, b3 = detection
        # the detection head learns from the hidden units but does not train them: the values
        # (the paper's network) are what they are without it
        features = tf.stop_gradient(hidden_values)
        return values, self._matmul(W3, features) + tf.transpose(b3, (0, 2, 1))

    def _losses(self, batch, training: bool):
        """The losses of each sub-network on a cells x genes batch, each summed over targets and
        averaged over cells: the paper's, and the detection head's binary cross-entropy (None
        without a detection head)."""
        tf = self.tf
        # the appended zero row is what padded inputs and outputs read
        genes_by_cells = tf.pad(tf.transpose(batch), [[0, 1], [0, 0]])
        prediction, logits = self._forward(genes_by_cells, training)
        truth = tf.gather(genes_by_cells, self._out_ix)  # nets x targets x cells
        losses = tf.reduce_mean(tf.reduce_sum(truth * tf.square(truth - prediction), axis=1), axis=1)
        if logits is None:
            return losses, None
        detected = tf.cast(truth > 0, tf.float32)
        entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=detected, logits=logits) * self._real_outputs
        return losses, tf.reduce_mean(tf.reduce_sum(entropy, axis=1), axis=1)

    def _predict_log(self, batch):
        """Normalised log values and detection logits (or None), nets x targets x cells."""
        tf = self.tf
        return self._forward(tf.pad(tf.transpose(batch), [[0, 1], [0, 0]]), False)

    def _train_epoch(self, data, permutation):
        tf, batch_size = self.tf, self.settings.batch_size
        n_batches = (tf.size(permutation) + batch_size - 1) // batch_size
        total = tf.zeros((self.nets.size,))
        for b in tf.range(n_batches):
            rows = permutation[b * batch_size : (b + 1) * batch_size]
            batch = tf.gather(data, rows)
            with tf.GradientTape() as tape:
                losses, detection_losses = self._losses(batch, training=True)
                objective = tf.reduce_sum(losses)
                if detection_losses is not None:
                    objective += tf.reduce_sum(detection_losses)
            gradients = tape.gradient(objective, self.variables)
            self._step.assign_add(1.0)
            for i, (v, m, u, g) in enumerate(
                zip(self.variables, self.first_moments, self.second_moments, gradients)
            ):
                # TensorFlow's fused Adam kernel: one pass over each tensor instead of a dozen
                # element-wise ops, at exactly this learning rate
                tf.raw_ops.ResourceApplyAdam(
                    var=v.handle,
                    m=m.handle,
                    v=u.handle,
                    beta1_power=ADAM_BETA1**self._step,
                    beta2_power=ADAM_BETA2**self._step,
                    lr=self._rate if i < len(VALUE_VARIABLES) else DETECTION_LEARNING_RATE,
                    beta1=ADAM_BETA1,
                    beta2=ADAM_BETA2,
                    epsilon=ADAM_EPSILON,
                    grad=g,
                )
            total += losses * tf.cast(tf.size(rows), tf.float32)
        return total / tf.cast(tf.size(permutation), tf.float32)

    def _validation_loss(self, data):
        tf = self.tf
        n_cells = tf.shape(data)[0]
        total = tf.zeros((self.nets.size,))
        for start in tf.range(0, n_cells, VALIDATION_BATCH):
            batch = data[start : start + VALIDATION_BATCH]
            # early stopping judges the paper's loss: the detection head keeps the weights of
            # the epoch the values were best at
            total += self._losses(batch, training=False)[0] * tf.cast(tf.shape(batch)[0], tf.float32)
        return total / tf.cast(n_cells, tf.float32)

    def _keep_best(self, improved):
        tf = self.tf
        for v, kept in zip(self.variables, self.best):
            kept.assign(tf.where(improved[:, None, None], v, kept))

    def state(self, keep: np.ndarray) -> NetworkState:
        """The arrays of the sub-networks at positions ``keep`` of :attr:`nets`."""

        def read(variables) -> Arrays:
            return tuple(v.sparse_read(keep).numpy() for v in variables)

        return NetworkState(
            weights=read(self.variables),
            best=read(self.best),
            first_moments=read(self.first_moments),
            second_moments=read(self.second_moments),
        )

    def store_best(self, best: Arrays) -> None:
        """Write the best weights of this computation's sub-networks into ``best`` (all of them)."""
        for target, variable in zip(best, self.best):
            values = variable.numpy()
            target[self.nets, : values.shape[1], : values.shape[2]] = values
