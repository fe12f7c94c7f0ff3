"""A trained DeepImpute model: what it holds, how it predicts, how it is saved and loaded.

A model directory holds two files:

``model.json``
    Gene lists of every sub-network (targets and predictors), the normalisation, every
    training parameter, training history, device, software versions, the SHA-256 of the
    weights and a SHA-256 of the JSON content itself.
``weights.npz``
    Plain float32 arrays, four per sub-network (``W1``, ``b1``, ``W2``, ``b2``), and two more
    (``W3``, ``b3``) for a detection head, read with ``allow_pickle=False``.

A gene may be the target of several sub-networks (training's ``ensemble`` option); its
prediction is then the mean of their normalised log predictions. Format version 2 allows
this; version 3 adds the detection head (every sub-network has one, or none does); version 4
the calibration set of the intervals (:mod:`deepimpute_tool.intervals`) in
``model.json``; version 5 each target gene's negative-binomial shape around the expected count
(``dispersion``, :mod:`deepimpute_tool.denoising`) and the calibration entries' library sizes.
Older models load and impute unchanged.

Loading (:mod:`deepimpute_tool.model_loading`) parses JSON and numeric arrays only, so a model
from a stranger (a Galaxy upload) is safe to load. Prediction is plain numpy, so imputation
needs no TensorFlow.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepimpute_tool import __version__
from deepimpute_tool.intervals import CalibrationSet

if TYPE_CHECKING:
    from anndata import AnnData

MODEL_FORMAT = "deepimpute-tool-model"
MODEL_FORMAT_VERSION = 5
READABLE_FORMAT_VERSIONS = (1, 2, 3, 4, 5)
VALUE_ARRAYS = ("W1", "b1", "W2", "b2")
DETECTION_ARRAYS = ("W3", "b3")
MODEL_JSON = "model.json"
WEIGHTS_FILE = "weights.npz"
NORMALISATIONS = ("log1p", "library")


@dataclass(frozen=True)
class Normalisation:
    """How counts become network inputs and outputs, and back.

    ``log1p``: log1p of raw counts, as the original DeepImpute. ``library``: counts are scaled
    to ``target_sum`` counts per cell (the library size being the cell's total over the
    model's genes), then log1p; predictions are scaled back by the same factor.
    """

    method: str = "log1p"
    target_sum: float = 10_000.0

    def size_factors(self, library_sizes: np.ndarray) -> np.ndarray:
        """Multipliers from counts to the normalised scale, one per cell."""
        if self.method == "log1p":
            return np.ones_like(library_sizes, dtype=np.float32)
        safe = np.where(library_sizes > 0, library_sizes, 1.0)
        return (self.target_sum / safe).astype(np.float32)

    def to_dict(self) -> dict:
        return {"method": self.method, "target_sum": self.target_sum}


@dataclass(frozen=True)
class SubNetwork:
    """One sub-network: predictor genes in, target genes out, two dense layers, and optionally a
    detection head (``W3``, ``b3``) on the same hidden layer."""

    targets: np.ndarray
    predictors: np.ndarray
    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray
    W3: np.ndarray | None = None
    b3: np.ndarray | None = None

    def predict_log(self, inputs: np.ndarray, *, dropout: Dropout | None = None) -> np.ndarray:
        """Normalised log values of the targets from those of the predictors (cells x genes, float32);
        with ``dropout``, one prediction with hidden units dropped as in training."""
        return self.predict(inputs, dropout=dropout)[0]

    def predict(
        self, inputs: np.ndarray, *, dropout: Dropout | None = None, detection: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict_log`, and with ``detection`` the probability that each target is
        detected (None without a detection head)."""
        # a forged model can overflow here; callers check that what comes out is finite
        with np.errstate(over="ignore", invalid="ignore"):
            hidden = np.maximum(inputs @ self.W1 + self.b1, 0.0)
            if dropout is not None:
                hidden *= dropout.mask(hidden.shape)
            values = _softplus(hidden @ self.W2 + self.b2)
            if not detection or self.W3 is None:
                return values, None
            return values, _sigmoid(hidden @ self.W3 + self.b3)


@dataclass(frozen=True)
class Dropout:
    """Hidden units dropped at ``rate`` (and the others scaled up), drawn from ``rng``: Monte Carlo dropout."""

    rate: float
    rng: np.random.Generator

    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        keep = 1.0 - self.rate
        return (self.rng.random(shape, dtype=np.float32) < keep).astype(np.float32) / np.float32(keep)


def _softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + exp(z)), overwriting ``z``: max(z, 0) + log1p(exp(-|z|)), exact to a few ulp and,
    in float32, several times faster than np.logaddexp, which numpy does not vectorise."""
    positive = np.maximum(z, 0.0)
    np.abs(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    np.log1p(z, out=z)
    z += positive
    return z


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), overwriting ``z``, without overflow warnings for large |z|."""
    with np.errstate(over="ignore"):
        np.negative(z, out=z)
        np.exp(z, out=z)
    z += 1.0
    np.reciprocal(z, out=z)
    return z


@dataclass(frozen=True)
class Prediction:
    """What a model predicts for the target genes of some cells (cells x targets, float32).

    ``log_detected``: the normalised log value a gene has where it is detected; ``factors``:
    each cell's multiplier from counts to the normalised scale (cells x 1; None: log1p of raw
    counts); ``probability``: the probability that the gene is detected (None: the model has
    no detection head).
    """

    log_detected: np.ndarray
    factors: np.ndarray | None = None
    probability: np.ndarray | None = None

    def counts(self, log_values: np.ndarray) -> np.ndarray:
        """Normalised log values back to counts on the input's scale (overwriting ``log_values``)."""
        with np.errstate(over="ignore"):  # the caller checks that every prediction is finite
            values = np.expm1(log_values, out=log_values)
            if self.factors is not None:
                values /= self.factors
        return values

    @functools.cached_property
    def detected(self) -> np.ndarray:
        """The count a gene has where it is detected, on the scale of the input."""
        return self.counts(self.log_detected.copy())


@dataclass(frozen=True)
class Model:
    """All sub-networks with the metadata needed to impute any Loom that has their genes."""

    subnetworks: list[SubNetwork]
    normalisation: Normalisation
    parameters: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    identity: str = ""  # the content checksum of the model file it was loaded from
    calibration: CalibrationSet | None = None  # hidden entries of cells it did not train on
    dispersion: np.ndarray | None = None  # theta of each of target_genes (denoising.fit_dispersion)

    @functools.cached_property
    def target_genes(self) -> np.ndarray:
        """Every imputed gene once, in the order the sub-networks first name them."""
        named = np.concatenate([net.targets for net in self.subnetworks])
        _, first = np.unique(named, return_index=True)
        return named[np.sort(first)]

    @functools.cached_property
    def _target_columns(self) -> list[np.ndarray | slice]:
        """For each sub-network, the columns of :attr:`target_genes` it predicts."""
        column = {gene: i for i, gene in enumerate(self.target_genes)}
        columns = [np.array([column[g] for g in net.targets]) for net in self.subnetworks]
        # a run of consecutive columns is written through a view, not gathered and scattered
        return [
            slice(c[0], c[-1] + 1) if np.array_equal(c, np.arange(c[0], c[0] + c.size)) else c
            for c in columns
        ]

    @functools.cached_property
    def _input_columns(self) -> list[np.ndarray]:
        """For each sub-network, the columns of :attr:`genes` it reads."""
        return [np.searchsorted(self.genes, net.predictors) for net in self.subnetworks]

    @functools.cached_property
    def _times_predicted(self) -> np.ndarray | None:
        """How many sub-networks predict each of :attr:`target_genes`; None when each has one."""
        times = np.zeros(self.target_genes.size, np.float32)
        for columns in self._target_columns:
            times[columns] += 1
        return times if times.max() > 1 else None

    @property
    def has_detection(self) -> bool:
        """Whether the sub-networks predict the probability of detection too."""
        return self.subnetworks[0].W3 is not None

    @functools.cached_property
    def genes(self) -> np.ndarray:
        """Every gene the model reads: targets and predictors, sorted."""
        return np.unique(
            np.concatenate([g for net in self.subnetworks for g in (net.targets, net.predictors)])
        )

    def predict_counts(
        self, counts: np.ndarray, gene_names: np.ndarray, *, dropout: Dropout | None = None
    ) -> np.ndarray:
        """Predicted counts of the target genes where detected: :meth:`predict` without the probability."""
        return self.predict(counts, gene_names, dropout=dropout).detected

    def predict(
        self,
        counts: np.ndarray,
        gene_names: np.ndarray,
        *,
        dropout: Dropout | None = None,
        detection: bool = False,
    ) -> Prediction:
        """Predicted counts of the target genes where detected, on the scale of ``counts``, and
        with ``detection`` (for a model with a detection head) the probability of detection.

        Parameters
        ----------
        counts
            Cells x genes raw counts; ``gene_names`` names its columns and must include
            every gene of :attr:`genes`.
        dropout
            Sample a prediction with hidden units dropped (Monte Carlo dropout) instead of
            the deterministic one.
        detection
            Also predict the probability of detection (ignored without a detection head).

        Returns
        -------
        Cells x targets arrays, columns in the order of :attr:`target_genes`. A gene predicted
        by several sub-networks gets the mean of their normalised log predictions, and the
        mean of their probabilities.
        """
        position = {name: i for i, name in enumerate(gene_names)}
        # the normalised log values of every gene the model reads, once; each sub-network gathers its own
        log_values = np.asarray(counts[:, [position[g] for g in self.genes]], dtype=np.float32)
        factors = None  # log1p of raw counts: no scaling
        if self.normalisation.method != "log1p":
            factors = self.normalisation.size_factors(log_values.sum(axis=1))[:, None]
            log_values *= factors
        np.log1p(log_values, out=log_values)
        shape = (counts.shape[0], self.target_genes.size)
        log_predictions = np.zeros(shape, np.float32)
        detection = detection and self.has_detection
        probability = np.zeros(shape, np.float32) if detection else None
        for net, inputs, columns in zip(self.subnetworks, self._input_columns, self._target_columns):
            values, detected = net.predict(log_values[:, inputs], dropout=dropout, detection=detection)
            log_predictions[:, columns] += values
            if detection:
                probability[:, columns] += detected
        if self._times_predicted is not None:
            log_predictions /= self._times_predicted
            if detection:
                probability /= self._times_predicted
        return Prediction(log_predictions, factors, probability)

    # ------------------------------------------------------------ save / load

    def impute(self, adata: AnnData, **arguments: Any) -> AnnData | None:
        """Impute the raw counts of an AnnData with this model; see :func:`deepimpute_tool.pp.impute`,
        whose arguments (``layer``, ``key_added``, ``copy`` and the imputation options) it takes."""
        from deepimpute_tool.api import impute

        return impute(self, adata, **arguments)

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to ``path``: a zip file when the name ends in .zip, else a folder.

        As ``deepimpute train`` writes it: checked first (an existing file or folder that is not a
        model is never replaced), written under a temporary name and moved into place when complete.
        """
        from deepimpute_tool.steps.common import write_model

        write_model(self, path)

    def write_directory(self, directory: str | os.PathLike) -> None:
        """Write ``model.json`` and ``weights.npz`` into an existing empty directory."""
        directory = Path(directory)
        arrays = {}
        names = VALUE_ARRAYS + (DETECTION_ARRAYS if self.has_detection else ())
        for i, net in enumerate(self.subnetworks):
            for name in names:
                arrays[f"subnet{i:04d}/{name}"] = np.asarray(getattr(net, name), dtype=np.float32)
        weights_path = directory / WEIGHTS_FILE
        np.savez(weights_path, **arrays)
        content = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "tool_version": __version__,
            "architecture": {
                "hidden_activation": "relu",
                "output_activation": "softplus",
                "detection_activation": "sigmoid" if self.has_detection else None,
            },
            "normalisation": self.normalisation.to_dict(),
            "parameters": self.parameters,
            "training": self.training,
            "versions": self.versions,
            "subnetworks": [
                {"targets": net.targets.tolist(), "predictors": net.predictors.tolist()}
                for net in self.subnetworks
            ],
            "weights": {"file": WEIGHTS_FILE, "sha256": _sha256_file(weights_path)},
            "calibration": None if self.calibration is None else self.calibration.to_json(),
            "dispersion": None if self.dispersion is None else self.dispersion.astype(float).tolist(),
        }
        content["content_sha256"] = sha256_json(content)
        (directory / MODEL_JSON).write_text(json.dumps(content, indent=1, default=_plain))

    def write_zip(self, path: str | os.PathLike) -> None:
        """Write the model as a zip file holding ``model.json`` and ``weights.npz``."""
        with tempfile.TemporaryDirectory() as directory:
            self.write_directory(directory)
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for name in (MODEL_JSON, WEIGHTS_FILE):
                    archive.write(Path(directory) / name, name)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in model.json")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(content: dict) -> str:
    body = {k: v for k, v in content.items() if k != "content_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=_plain).encode()).hexdigest()
