"""The training loop: epochs, early stopping per sub-network, phases, and shrinking the computation.

Each sub-network stops on its own once it has gone a phase's patience epochs without a
better validation loss, keeping its best weights. Training runs in phases (by default a
coarse one at a higher learning rate, then the paper's): a phase ends when every sub-network
has stopped, and the next starts from each one's best weights with a fresh Adam. Once enough
sub-networks have stopped, the others carry on alone in a smaller computation.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deepimpute_tool.network import (
    Arrays,
    FusedNetworks,
    Layout,
    NetworkState,
    StepSettings,
    configure_tensorflow,
    dense_rows,
)

# train the sub-networks still improving on their own once they are this fraction or fewer
SHRINK_WHEN = 0.6


@dataclass(frozen=True)
class Phase:
    """A learning rate, and the epochs without improvement that stop a sub-network at it."""

    learning_rate: float
    patience: int


class EarlyStopping:
    """Per sub-network: its best validation loss, the epoch of it, and the epochs waited since."""

    def __init__(self, n_nets: int) -> None:
        self.best_loss = np.full(n_nets, np.inf)
        self.best_epoch = np.zeros(n_nets, dtype=int)
        self.waiting = np.zeros(n_nets, dtype=int)

    def update(self, nets: np.ndarray, losses: np.ndarray, epoch: int) -> np.ndarray:
        """Record the validation ``losses`` of sub-networks ``nets``; return which improved."""
        improved = losses < self.best_loss[nets]
        self.best_loss[nets] = np.where(improved, losses, self.best_loss[nets])
        self.best_epoch[nets] = np.where(improved, epoch, self.best_epoch[nets])
        self.waiting[nets] = np.where(improved, 0, self.waiting[nets] + 1)
        return improved

    def improving(self, patience: int) -> np.ndarray:
        """The sub-networks that have waited fewer than ``patience`` epochs."""
        return np.flatnonzero(self.waiting < patience)

    def reported_loss(self, nets: np.ndarray, losses: np.ndarray) -> float:
        """The summed validation loss: stopped sub-networks at their best, the others at ``losses``."""
        reported = self.best_loss.copy()
        reported[nets] = losses
        return float(reported.sum())


@dataclass(frozen=True)
class FitResult:
    """Each sub-network's best (W1, b1, W2, b2) and the training history."""

    weights: list[Arrays]
    history: dict


def fit_subnetworks(
    x,
    layout: Layout,
    *,
    phases: list[Phase],
    settings: StepSettings,
    max_epochs: int,
    validation_fraction: float,
    seed: int,
    cores: int,
    device: str,
    rng: np.random.Generator,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> FitResult:
    """Train all sub-networks at once on the normalised log matrix ``x`` (cells x genes, dense or sparse).

    5% (``validation_fraction``) of the cells are held out; each sub-network keeps its weights
    of lowest validation loss.
    """
    tf, device_name = configure_tensorflow(cores=cores, device=device, seed=seed)
    n_cells = x.shape[0]
    n_validation = max(1, round(validation_fraction * n_cells))
    order = rng.permutation(n_cells)
    validation_cells, train_cells = np.sort(order[:n_validation]), np.sort(order[n_validation:])
    initial = layout.initial_weights(rng)
    best = tuple(w.copy() for w in initial)
    all_nets = np.arange(layout.n_nets)

    with tf.device(device_name):
        # one dense copy of the training cells, made from the sparse matrix one block at a time
        data_train, data_validation = (dense_rows(tf, x, cells) for cells in (train_cells, validation_cells))
        step = tf.Variable(0.0)
        rate = tf.Variable(phases[0].learning_rate)
        generator = tf.random.Generator.from_seed(seed)

        def fused(state: NetworkState, nets: np.ndarray) -> FusedNetworks:
            return FusedNetworks(
                tf,
                layout=layout,
                nets=nets,
                state=state,
                settings=settings,
                step=step,
                rate=rate,
                generator=generator,
            )

        networks = fused(NetworkState(weights=initial, best=best), all_nets)
        del initial
        stopping = EarlyStopping(layout.n_nets)
        last_train_loss = np.zeros(layout.n_nets)
        # per sub-network and epoch, for the loss curves (None once it left the computation)
        history: dict = {"train_loss": [], "validation_loss": [], "subnetwork_validation_loss": []}
        phase, phase_epochs, epoch = 0, [], 0
        started = time.perf_counter()
        for epoch in range(1, max_epochs + 1):
            nets = networks.nets
            permutation = tf.constant(rng.permutation(train_cells.size), tf.int32)
            last_train_loss[nets] = networks.train_epoch(data_train, permutation).numpy()
            losses = networks.validation_loss(data_validation).numpy()
            networks.keep_best(tf.constant(stopping.update(nets, losses, epoch)))
            history["train_loss"].append(float(last_train_loss.sum()))
            history["validation_loss"].append(stopping.reported_loss(nets, losses))
            per_net: list[float | None] = [None] * layout.n_nets
            for net, loss in zip(nets.tolist(), losses.tolist()):
                per_net[net] = float(f"{loss:.5g}")
            history["subnetwork_validation_loss"].append(per_net)
            improving = stopping.improving(phases[phase].patience)
            if on_epoch is not None:
                on_epoch(
                    epoch,
                    {
                        "train_loss": history["train_loss"][-1],
                        "validation_loss": history["validation_loss"][-1],
                        "active": int(improving.size),
                    },
                )
            if improving.size == 0 and phase + 1 < len(phases):
                # the next phase: every sub-network from its best weights, Adam afresh
                phase += 1
                phase_epochs.append(epoch)
                networks.store_best(best)
                del networks
                gc.collect()
                networks = fused(NetworkState(weights=tuple(b.copy() for b in best), best=best), all_nets)
                step.assign(0.0)
                rate.assign(phases[phase].learning_rate)
                stopping.waiting[:] = 0
                continue
            if improving.size == 0:
                break
            # Stopped sub-networks only cost time: once enough have stopped, carry on
            # with the others alone (a smaller computation, traced anew).
            if improving.size <= SHRINK_WHEN * nets.size:
                networks.store_best(best)
                state = networks.state(np.searchsorted(nets, improving))
                # free the larger computation before building the smaller one
                del networks
                gc.collect()
                networks = fused(state, improving)
                del state
        seconds = time.perf_counter() - started
        networks.store_best(best)

    history.update(
        epochs=epoch,
        phase_epochs=[*phase_epochs, epoch],
        best_epoch=stopping.best_epoch.tolist(),
        best_validation_loss=stopping.best_loss.tolist(),
        train_cells=int(train_cells.size),
        validation_cells=int(validation_cells.size),
        seconds=round(seconds, 3),
        seconds_per_epoch=round(seconds / max(epoch, 1), 4),
        device=device_name,
    )
    return FitResult(weights=layout.unpadded(best), history=history)
