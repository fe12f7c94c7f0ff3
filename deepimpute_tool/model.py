"""A trained DeepImpute model: what it holds, how it predicts, how it is saved and loaded.

A model directory holds two files:

``model.json``
    Gene lists of every sub-network (targets and predictors), the normalisation, every
    training parameter, training history, device, software versions, the SHA-256 of the
    weights and a SHA-256 of the JSON content itself.
``weights.npz``
    Plain float32 arrays, four per sub-network (``W1``, ``b1``, ``W2``, ``b2``), read with
    ``allow_pickle=False``.

A gene may be the target of several sub-networks (``deepimpute train --ensemble``); its
prediction is then the mean of their normalised log predictions. Format version 2 allows
this; version 1 models, whose genes each have one sub-network, load unchanged.

Loading parses JSON and numeric arrays only: nothing in a model directory is executed or
unpickled, so a model from a stranger (a Galaxy upload) is safe to load. Before anything is
allocated for it, every file's size is bounded (a zip member's before it is inflated), the
JSON's structure and every array's declared shape are checked against the gene lists, and
weights must be finite. The SHA-256 values catch a model damaged in transfer or storage (a
truncated upload, a flipped bit); they do not prove who wrote it, since whoever edits a model
can recompute them. Prediction is plain numpy, so imputation needs no TensorFlow.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepimpute_tool import __version__
from deepimpute_tool.errors import DeepImputeError, ModelError
from deepimpute_tool.limits import MAX_MODEL_JSON_BYTES, MAX_NAME_CHARACTERS, MAX_WEIGHTS_BYTES

MODEL_FORMAT = "deepimpute-tool-model"
MODEL_FORMAT_VERSION = 2
READABLE_FORMAT_VERSIONS = (1, 2)
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
    """One sub-network: predictor genes in, target genes out, two dense layers."""

    targets: np.ndarray
    predictors: np.ndarray
    W1: np.ndarray
    b1: np.ndarray
    W2: np.ndarray
    b2: np.ndarray

    def predict_log(self, inputs: np.ndarray) -> np.ndarray:
        """Normalised log values of the targets from those of the predictors (cells x genes, float32)."""
        hidden = np.maximum(inputs @ self.W1 + self.b1, 0.0)
        return _softplus(hidden @ self.W2 + self.b2)


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


@dataclass(frozen=True)
class Model:
    """All sub-networks with the metadata needed to impute any Loom that has their genes."""

    subnetworks: list[SubNetwork]
    normalisation: Normalisation
    parameters: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)

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
    def _times_predicted(self) -> np.ndarray | None:
        """How many sub-networks predict each of :attr:`target_genes`; None when each has one."""
        times = np.zeros(self.target_genes.size, np.float32)
        for columns in self._target_columns:
            times[columns] += 1
        return times if times.max() > 1 else None

    @functools.cached_property
    def genes(self) -> np.ndarray:
        """Every gene the model reads: targets and predictors, sorted."""
        return np.unique(
            np.concatenate([g for net in self.subnetworks for g in (net.targets, net.predictors)])
        )

    def predict_counts(self, counts: np.ndarray, gene_names: np.ndarray) -> np.ndarray:
        """Predicted counts of the target genes, on the scale of ``counts``.

        Parameters
        ----------
        counts
            Cells x genes raw counts; ``gene_names`` names its columns and must include
            every gene of :attr:`genes`.

        Returns
        -------
        Cells x targets array, columns in the order of :attr:`target_genes`. A gene predicted
        by several sub-networks gets the mean of their normalised log predictions.
        """
        position = {name: i for i, name in enumerate(gene_names)}
        factors = None  # log1p of raw counts: no scaling
        if self.normalisation.method != "log1p":
            library_sizes = counts[:, [position[g] for g in self.genes]].sum(axis=1)
            factors = self.normalisation.size_factors(library_sizes)[:, None]
        log_predictions = np.zeros((counts.shape[0], self.target_genes.size), np.float32)
        for net, columns in zip(self.subnetworks, self._target_columns):
            inputs = np.asarray(counts[:, [position[g] for g in net.predictors]], dtype=np.float32)
            if factors is not None:
                inputs *= factors
            log_predictions[:, columns] += net.predict_log(np.log1p(inputs, out=inputs))
        if self._times_predicted is not None:
            log_predictions /= self._times_predicted
        predictions = np.expm1(log_predictions, out=log_predictions)
        if factors is not None:
            predictions /= factors
        return predictions

    # ------------------------------------------------------------ save / load

    def save(self, directory: str | os.PathLike) -> None:
        """Write ``model.json`` and ``weights.npz`` into an existing empty directory."""
        directory = Path(directory)
        arrays = {}
        for i, net in enumerate(self.subnetworks):
            for name in ("W1", "b1", "W2", "b2"):
                arrays[f"subnet{i:04d}/{name}"] = np.asarray(getattr(net, name), dtype=np.float32)
        weights_path = directory / WEIGHTS_FILE
        np.savez(weights_path, **arrays)
        content = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "tool_version": __version__,
            "architecture": {"hidden_activation": "relu", "output_activation": "softplus"},
            "normalisation": self.normalisation.to_dict(),
            "parameters": self.parameters,
            "training": self.training,
            "versions": self.versions,
            "subnetworks": [
                {"targets": net.targets.tolist(), "predictors": net.predictors.tolist()}
                for net in self.subnetworks
            ],
            "weights": {"file": WEIGHTS_FILE, "sha256": _sha256_file(weights_path)},
        }
        content["content_sha256"] = _sha256_json(content)
        (directory / MODEL_JSON).write_text(json.dumps(content, indent=1, default=_plain))

    def save_zip(self, path: str | os.PathLike) -> None:
        """Write the model as a zip file holding ``model.json`` and ``weights.npz``."""
        with tempfile.TemporaryDirectory() as directory:
            self.save(directory)
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


def _sha256_json(content: dict) -> str:
    body = {k: v for k, v in content.items() if k != "content_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=_plain).encode()).hexdigest()


def is_model_directory(path: Path) -> bool:
    """Whether ``path`` is an empty folder or one holding only a model written by this tool."""
    entries = {entry.name for entry in Path(path).iterdir()}
    if not entries:
        return True
    if not entries <= {MODEL_JSON, WEIGHTS_FILE} or MODEL_JSON not in entries:
        return False
    json_path = Path(path) / MODEL_JSON
    if json_path.is_symlink() or json_path.stat().st_size > MAX_MODEL_JSON_BYTES:
        return False
    try:
        content = json.loads(json_path.read_bytes())
    except (ValueError, RecursionError, OSError):
        return False
    return isinstance(content, dict) and content.get("format") == MODEL_FORMAT


def _bounded_read(read: Callable[[int], bytes], limit: int, *, where: Path, name: str) -> bytes:
    data = read(limit + 1)
    if len(data) > limit:
        raise ModelError(where, f"{name} is larger than {limit // 2**20} MiB, more than any model needs")
    return data


def _model_files(path: Path) -> tuple[bytes, bytes]:
    """The bytes of model.json and weights.npz, from a model directory or a zip of one, size-bounded."""
    limits = {MODEL_JSON: MAX_MODEL_JSON_BYTES, WEIGHTS_FILE: MAX_WEIGHTS_BYTES}
    if not path.exists():
        raise ModelError(path, "no such model directory or zip file")
    found: dict[str, bytes] = {}
    if path.is_dir():
        for name, limit in limits.items():
            member = path / name
            if member.is_symlink():
                raise ModelError(path, f"{name} is a symbolic link; a model's files are refused as links")
            if member.is_file():
                if member.stat().st_size > limit:
                    raise ModelError(
                        path, f"{name} is larger than {limit // 2**20} MiB, more than any model needs"
                    )
                with open(member, "rb") as handle:
                    found[name] = _bounded_read(handle.read, limit, where=path, name=name)
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members: dict[str, zipfile.ZipInfo] = {}
            for info in archive.infolist():
                name = Path(info.filename).name
                if name in limits:
                    if name in members:
                        raise ModelError(path, f"the zip holds {name} twice")
                    members[name] = info
            for name, info in members.items():
                if info.flag_bits & 0x1:
                    raise ModelError(path, f"{name} is encrypted in the zip; give an unencrypted model")
                if info.file_size > limits[name]:
                    raise ModelError(
                        path, f"{name} declares {info.file_size} bytes, more than any model needs"
                    )
                with archive.open(info) as handle:
                    found[name] = _bounded_read(handle.read, limits[name], where=path, name=name)
    else:
        raise ModelError(
            path, "is not a model: give the directory (or zip file) written by 'deepimpute train'"
        )
    for required in limits:
        if required not in found:
            raise ModelError(path, f"incomplete model: {required} is missing")
    return found[MODEL_JSON], found[WEIGHTS_FILE]


def _check_content(content: object, where: Path) -> dict:
    """The parsed model.json, its structure checked: every field a model needs, of the right kind."""
    if not isinstance(content, dict) or content.get("format") != MODEL_FORMAT:
        raise ModelError(where, f"{MODEL_JSON} is not a deepimpute-tool model")
    if content.get("format_version") not in READABLE_FORMAT_VERSIONS:
        raise ModelError(
            where,
            f"model format version {content.get('format_version')} (written by deepimpute-tool "
            f"{content.get('tool_version')}) is not supported by this version "
            f"({__version__}, formats {', '.join(map(str, READABLE_FORMAT_VERSIONS))})",
        )
    expected = {"normalisation": dict, "parameters": dict, "training": dict, "versions": dict,
                "subnetworks": list, "weights": dict}  # fmt: skip
    for key, kind in expected.items():
        if not isinstance(content.get(key), kind):
            raise ModelError(where, f"{MODEL_JSON} is malformed: '{key}' is missing or not a {kind.__name__}")
    if not content["subnetworks"]:
        raise ModelError(where, f"{MODEL_JSON} is malformed: it has no sub-networks")
    for i, entry in enumerate(content["subnetworks"]):
        lists = [entry.get(key) if isinstance(entry, dict) else None for key in ("targets", "predictors")]
        if not all(
            isinstance(names, list)
            and names
            and all(isinstance(n, str) and len(n) <= MAX_NAME_CHARACTERS for n in names)
            for names in lists
        ):
            raise ModelError(where, f"{MODEL_JSON} is malformed: sub-network {i} needs lists of gene names")
    norm = content["normalisation"]
    if norm.get("method") not in NORMALISATIONS or not _positive_number(norm.get("target_sum", 1.0)):
        raise ModelError(where, f"{MODEL_JSON} has an unknown normalisation {norm}")
    if not isinstance(content["weights"].get("sha256"), str):
        raise ModelError(where, f"{MODEL_JSON} is malformed: no checksum of the weights")
    return content


def _positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_weights(weights_bytes: bytes, content: dict, where: Path) -> list[tuple[np.ndarray, ...]]:
    """Each sub-network's (W1, b1, W2, b2), every array's header checked before it is read."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(weights_bytes))
    except zipfile.BadZipFile as error:
        raise ModelError(where, f"{WEIGHTS_FILE} cannot be read: {error}") from None
    members = {info.filename: info for info in archive.infolist()}
    arrays = []
    with archive:
        for i, entry in enumerate(content["subnetworks"]):
            n_in, n_out = len(entry["predictors"]), len(entry["targets"])
            found = {}
            for name in ("W1", "b1", "W2", "b2"):
                info = members.get(f"subnet{i:04d}/{name}.npy")
                if info is None:
                    raise ModelError(where, f"{WEIGHTS_FILE} lacks {name} of sub-network {i}")
                with archive.open(info) as handle:
                    header = _HEADER_READERS.get(np.lib.format.read_magic(handle))
                    if header is None:
                        raise ModelError(where, f"sub-network {i}: {name} is not a plain numpy array")
                    shape, fortran, dtype = header(handle)
                    if dtype != np.float32 or len(shape) not in (1, 2) or fortran:
                        raise ModelError(where, f"sub-network {i}: {name} is not a float32 matrix")
                    nbytes = int(np.prod(shape)) * 4
                    if nbytes > info.file_size:
                        raise ModelError(where, f"sub-network {i}: {name} declares more values than it holds")
                    found[name] = np.frombuffer(handle.read(nbytes), dtype=np.float32).reshape(shape)
            hidden = found["W1"].shape[-1]
            if (found["W1"].shape, found["b1"].shape, found["W2"].shape, found["b2"].shape) != (
                (n_in, hidden),
                (hidden,),
                (hidden, n_out),
                (n_out,),
            ):
                raise ModelError(where, f"sub-network {i}: weights do not match its gene lists")
            if not all(np.isfinite(a).all() for a in found.values()):
                raise ModelError(where, f"sub-network {i}: weights hold NaN or infinite values")
            arrays.append(tuple(found[name] for name in ("W1", "b1", "W2", "b2")))
    return arrays


def load_model(path: str | os.PathLike) -> Model:
    """Load a model directory (or a zip of one), checking it is complete, compatible and undamaged.

    Every problem is a :class:`~deepimpute_tool.errors.ModelError` naming ``path``.
    """
    where = Path(path)
    try:
        json_bytes, weights_bytes = _model_files(where)
        try:
            content = json.loads(json_bytes.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise ModelError(where, f"{MODEL_JSON} is not valid JSON: {error}") from None
        except RecursionError:
            raise ModelError(where, f"{MODEL_JSON} is nested too deeply to be a model") from None
        content = _check_content(content, where)
        if content.get("content_sha256") != _sha256_json(content):
            raise ModelError(where, f"{MODEL_JSON} does not match its checksum: damaged, or edited by hand")
        if content["weights"]["sha256"] != hashlib.sha256(weights_bytes).hexdigest():
            raise ModelError(
                where, f"{WEIGHTS_FILE} does not match its checksum in {MODEL_JSON}: damaged, or edited"
            )
        weights = _read_weights(weights_bytes, content, where)
    except DeepImputeError:
        raise
    except (
        OSError,
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        NotImplementedError,
        RuntimeError,
        ValueError,
    ) as error:
        raise ModelError(where, f"cannot be read as a model: {error}") from None
    subnetworks = [
        SubNetwork(
            np.array(entry["targets"], dtype=object), np.array(entry["predictors"], dtype=object), *arrays
        )
        for entry, arrays in zip(content["subnetworks"], weights)
    ]
    normalisation = content["normalisation"]
    return Model(
        subnetworks=subnetworks,
        normalisation=Normalisation(
            method=normalisation["method"], target_sum=float(normalisation.get("target_sum", 1e4))
        ),
        parameters=content["parameters"],
        training=content["training"],
        versions=content["versions"],
    )
