"""Loading a model that may come from a stranger: bounded, checked, and nothing in it executed.

Loading parses JSON and numeric arrays only, with ``allow_pickle`` never involved: nothing in
a model is executed or unpickled. Before anything is allocated for it, every file's size is
bounded (a zip member's before it is inflated, and by how much it inflates), the JSON's
structure and every array's declared shape are checked against the gene lists, and weights
must be finite. The SHA-256 values catch a model damaged in transfer or storage (a truncated
upload, a flipped bit); they do not prove who wrote it, since whoever edits a model can
recompute them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deepimpute_tool import __version__
from deepimpute_tool.denoising import MAX_SHAPE, MIN_SHAPE
from deepimpute_tool.errors import DeepImputeError, ModelError
from deepimpute_tool.intervals import CalibrationSet
from deepimpute_tool.limits import (
    MAX_MODEL_JSON_BYTES,
    MAX_NAME_CHARACTERS,
    MAX_WEIGHTS_BYTES,
    require_memory,
)
from deepimpute_tool.model import (
    DETECTION_ARRAYS,
    MODEL_FORMAT,
    MODEL_JSON,
    NORMALISATIONS,
    READABLE_FORMAT_VERSIONS,
    VALUE_ARRAYS,
    WEIGHTS_FILE,
    Model,
    Normalisation,
    SubNetwork,
    sha256_json,
)

MAX_INFLATION = 100  # a model's JSON compresses a few times, its float weights hardly at all


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
    """The ``limit`` bytes a file or zip member declares; more is an error (it grew, or its header lies)."""
    data = read(limit + 1)
    if len(data) > limit:
        raise ModelError(where, f"{name} holds more than the {limit} bytes it may have")
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
                size = member.stat().st_size
                require_memory(size, path=path, what=f"reading {name}")
                with open(member, "rb") as handle:
                    found[name] = _bounded_read(handle.read, size, where=path, name=name)
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
                if info.file_size > MAX_INFLATION * max(info.compress_size, 2**16):
                    ratio = info.file_size // max(info.compress_size, 1)
                    raise ModelError(path, f"{name} inflates {ratio} times: not a model's file")
                require_memory(info.file_size, path=path, what=f"reading {name}")
                with archive.open(info) as handle:
                    found[name] = _bounded_read(handle.read, info.file_size, where=path, name=name)
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
    architecture = content.get("architecture", {})
    head = architecture.get("detection_activation") if isinstance(architecture, dict) else "malformed"
    if head not in (None, "sigmoid"):
        raise ModelError(where, f"{MODEL_JSON} has an unknown architecture {str(architecture)[:200]}")
    if head is not None and content["format_version"] < 3:
        raise ModelError(
            where, f"{MODEL_JSON} has a detection head, which format {content['format_version']} cannot hold"
        )
    if content.get("calibration") is not None and content["format_version"] < 4:
        raise ModelError(
            where, f"{MODEL_JSON} has a calibration, which format {content['format_version']} cannot hold"
        )
    if content.get("dispersion") is not None and (content["format_version"] < 5 or head is None):
        raise ModelError(
            where,
            f"{MODEL_JSON} has a dispersion, which "
            + ("a model without a detection head" if head is None else f"format {content['format_version']}")
            + " cannot hold",
        )
    return content


def _dispersion(values: object, n_targets: int, where: Path) -> np.ndarray:
    """A model's theta per target gene, checked: one number per target gene, within the bounds
    training gives it."""
    if not (
        isinstance(values, list)
        and len(values) == n_targets
        and all(
            isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**64)
            for v in values
        )
    ):
        raise ModelError(
            where, f"{MODEL_JSON}'s dispersion is not a list of {n_targets} numbers, one per target gene"
        )
    theta = np.asarray(values, dtype=np.float64).astype(np.float32)  # as training kept it
    if not (np.isfinite(theta) & (theta >= np.float32(MIN_SHAPE)) & (theta <= np.float32(MAX_SHAPE))).all():
        raise ModelError(
            where, f"{MODEL_JSON}'s dispersion holds values outside [{MIN_SHAPE:g}, {MAX_SHAPE:g}]"
        )
    return theta


def _positive_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_weights(weights_bytes: bytes, content: dict, where: Path) -> list[tuple[np.ndarray, ...]]:
    """Each sub-network's (W1, b1, W2, b2[, W3, b3]), every array's header checked before it is read."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(weights_bytes))
    except zipfile.BadZipFile as error:
        raise ModelError(where, f"{WEIGHTS_FILE} cannot be read: {error}") from None
    members = {info.filename: info for info in archive.infolist()}
    detection = content.get("architecture", {}).get("detection_activation") == "sigmoid"  # checked above
    names = VALUE_ARRAYS + (DETECTION_ARRAYS if detection else ())
    arrays = []
    with archive:
        for i, entry in enumerate(content["subnetworks"]):
            n_in, n_out = len(entry["predictors"]), len(entry["targets"])
            found = {}
            for name in names:
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
            if detection and (found["W3"].shape, found["b3"].shape) != ((hidden, n_out), (n_out,)):
                raise ModelError(where, f"sub-network {i}: detection weights do not match its gene lists")
            if not all(np.isfinite(a).all() for a in found.values()):
                raise ModelError(where, f"sub-network {i}: weights hold NaN or infinite values")
            arrays.append(tuple(found[name] for name in names))
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
        if content.get("content_sha256") != sha256_json(content):
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
    calibration = None
    if content.get("calibration") is not None:
        calibration = CalibrationSet.from_json(
            content["calibration"],
            where=where,
            detection=content.get("architecture", {}).get("detection_activation") == "sigmoid",
            library=normalisation["method"] != "log1p",
            dispersion=content.get("dispersion") is not None,
        )
    model = Model(
        subnetworks=subnetworks,
        normalisation=Normalisation(
            method=normalisation["method"], target_sum=float(normalisation.get("target_sum", 1e4))
        ),
        parameters=content["parameters"],
        training=content["training"],
        versions=content["versions"],
        identity=content["content_sha256"],
        calibration=calibration,
    )
    if content.get("dispersion") is None:
        return model
    return dataclasses.replace(
        model, dispersion=_dispersion(content["dispersion"], model.target_genes.size, where)
    )
