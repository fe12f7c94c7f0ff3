"""Hostile but fair inputs and careless paths, against the executables as a Galaxy server runs them.

Every case builds its input on the fly in a fresh folder beside a bystander file, runs one
executable under an address-space limit (so that a regression fails here instead of
exhausting the machine), and asserts the contract of the README's Safety section: exit code
2, a last line on standard error that starts with ``Error:`` and names the file, no
traceback, nothing new anywhere (the declared output included; the temporary folder too),
the input and every other file unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.helpers import BIN, PBMC68K, PBMC_SMALL, REPO, TINY_TRAINING, write_raw_loom

SECRET = "root:x:0:0:SECRET-LINE:/root:/bin/bash"
LIMIT_BYTES = {"train": 4 * 2**30, "run": 4 * 2**30}  # TensorFlow maps about 2 GB at start
DEFAULT_LIMIT = 2 * 2**30


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with the SHA-256 of its content ('dir' for folders)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = "link:" + os.readlink(path)
        elif path.is_dir():
            found[key] = "dir"
        elif not path.is_file():
            found[key] = "special"  # a pipe or a device: reading it would block or never end
        else:
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def run_limited(step: str, *args, cwd: Path, file_size: int | None = None) -> subprocess.CompletedProcess:
    limit = LIMIT_BYTES.get(step, DEFAULT_LIMIT)

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    temporary = cwd / "tmp"
    temporary.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(temporary), "MPLCONFIGDIR": str(temporary)}
    return subprocess.run(
        [sys.executable, str(BIN / f"deepimpute-{step}"), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        preexec_fn=limits,
        timeout=300,
    )


def assert_refused(result: subprocess.CompletedProcess, *, names: Path | str, says: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stderr}"
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: "), result.stderr
    assert str(names) in last, f"the error does not name {names}: {last}"
    assert says in last, f"expected {says!r} in: {last}"
    assert SECRET not in result.stderr + result.stdout


@dataclass
class Case:
    """A hostile run: ``make(folder)`` builds its files and returns the arguments, the named file and the words."""

    step: str
    make: Callable[[Path], tuple[list, Path | str, str]]


def check(case: Case, tmp_path: Path) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "bystander.txt").write_text("someone else's results\n")
    (folder / "secret.txt").write_text(SECRET + "\n")
    args, names, says = case.make(folder)
    before = snapshot(folder)
    result = run_limited(case.step, *args, cwd=folder)
    (folder / "tmp").rmdir()  # fails if anything was left in the temporary folder
    assert_refused(result, names=names, says=says)
    assert snapshot(folder) == before


# ------------------------------------------------------------------ builders


def counts_loom(folder: Path, name: str = "in.loom", **kwargs) -> Path:
    counts = np.random.default_rng(0).poisson(2, (50, 80)).astype(np.float32)
    return write_raw_loom(folder / name, counts, **kwargs)


def copy(source: Path, folder: Path, name: str) -> Path:
    shutil.copyfile(source, folder / name)
    return folder / name


def model_folder(folder: Path, name: str = "model") -> Path:
    return Path(shutil.copytree(trained_model(), folder / name))


_MODEL: dict[str, Path] = {}


def trained_model() -> Path:
    """One real model of pbmc_small for every case that needs one (trained once per session)."""
    if "path" not in _MODEL:
        import tempfile

        where = Path(tempfile.mkdtemp()) / "model"
        subprocess.run(
            [
                sys.executable,
                str(BIN / "deepimpute-train"),
                str(PBMC_SMALL),
                str(where),
                *TINY_TRAINING,
                "-q",
            ],
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        _MODEL["path"] = where
    return _MODEL["path"]


def rewrite_model(model: Path, edit: Callable[[dict, dict], None]) -> None:
    """Edit a model's JSON and arrays, then recompute its checksums as anyone editing it can."""
    with np.load(model / "weights.npz") as arrays:
        weights = dict(arrays)
    content = json.loads((model / "model.json").read_text())
    edit(content, weights)
    np.savez(model / "weights.npz", **weights)
    content["weights"]["sha256"] = hashlib.sha256((model / "weights.npz").read_bytes()).hexdigest()
    from deepimpute_tool.model import sha256_json

    content["content_sha256"] = sha256_json(content)
    (model / "model.json").write_text(json.dumps(content))


# ------------------------------------------- 1. existing folders are never deleted


def _train_into_folder(folder: Path):
    results = folder / "results"
    results.mkdir()
    (results / "notes.txt").write_text("keep me")
    return [copy(PBMC_SMALL, folder, "in.loom"), results, *TINY_TRAINING], results, "is not a model"


def _train_into_working_folder(folder: Path):
    return [copy(PBMC_SMALL, folder, "in.loom"), ".", *TINY_TRAINING], ".", "is, or is inside, the input"


def _split_into_folder(folder: Path):
    (folder / "chunks").mkdir()
    (folder / "chunks" / "mine.loom").write_text("not a chunk")
    return (
        [copy(PBMC_SMALL, folder, "in.loom"), folder / "chunks"],
        folder / "chunks",
        "not a folder of chunks",
    )


def _train_into_a_file(folder: Path):
    return [copy(PBMC_SMALL, folder, "in.loom"), folder / "bystander.txt"], "bystander.txt", "is not a folder"


def _filter_into_a_link_to_a_folder(folder: Path):
    (folder / "results").mkdir()
    (folder / "out.loom").symlink_to(folder / "results")
    return [copy(PBMC_SMALL, folder, "in.loom"), "out.loom"], "out.loom", "is a folder"


# --------------------------------------------- 2. an output is never an input


def _same_file(step: str):
    def make(folder: Path):
        path = copy(PBMC_SMALL, folder, "in.loom")
        return [path, path], path, "is, or is inside, the input"

    return make


def _impute_onto_input(folder: Path):
    path = copy(PBMC_SMALL, folder, "in.loom")
    return [path, model_folder(folder), path], path, "is, or is inside, the input"


def _impute_into_model(folder: Path):
    model = model_folder(folder)
    target = model / "weights.npz"
    return [copy(PBMC_SMALL, folder, "in.loom"), model, target], target, "is, or is inside, the input"


def _filter_onto_hard_link(folder: Path):
    path = copy(PBMC_SMALL, folder, "in.loom")
    os.link(path, folder / "linked.loom")
    return [path, folder / "linked.loom"], folder / "linked.loom", "is, or is inside, the input"


def _filter_onto_symlink(folder: Path):
    path = copy(PBMC_SMALL, folder, "in.loom")
    (folder / "alias.loom").symlink_to(path)
    return [path, folder / "alias.loom"], folder / "alias.loom", "is, or is inside, the input"


def _split_around_input(folder: Path):
    inner = folder / "data"
    inner.mkdir()
    path = copy(PBMC_SMALL, inner, "in.loom")
    return [path, inner], inner, "is, or is inside, the input"


def _merge_onto_chunk(folder: Path):
    chunks = folder / "chunks"
    subprocess.run(
        [
            sys.executable,
            str(BIN / "deepimpute-split"),
            str(PBMC_SMALL),
            str(chunks),
            "--chunk-size",
            "40",
            "-q",
        ],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    first, second = sorted(chunks.iterdir())
    return [first, first, second], first, "is, or is inside, the input"


def _score_onto_input(folder: Path):
    path = copy(REPO / "galaxy" / "test-data" / "pbmc_small.imputed.loom", folder, "imputed.loom")
    return [path, "--output", path], path, "is, or is inside, the input"


def _run_into_input(folder: Path):
    path = copy(PBMC_SMALL, folder, "in.loom")
    return [path, path], path, "is, or is inside, the input"


# ------------------------------------------- 3. HDF5 that reaches outside the file


def _secret_hdf5(folder: Path) -> Path:
    with h5py.File(folder / "other.h5", "w") as f:
        f.create_dataset("names", data=np.array([SECRET] * 80, dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("values", data=np.ones((50, 80), np.float32))
    return folder / "other.h5"


def _external_link(folder: Path):
    _secret_hdf5(folder)
    path = counts_loom(folder)
    with h5py.File(path, "a") as f:
        del f["col_attrs/CellID"]
        f["col_attrs/CellID"] = h5py.ExternalLink("other.h5", "/names")
    return [path], path, "external link"


def _external_storage(folder: Path):
    raw = folder / "secret.txt"
    path = folder / "in.loom"
    size = raw.stat().st_size
    with h5py.File(path, "w") as f:
        f.create_dataset("matrix", shape=(1, size), dtype=np.uint8, external=[(str(raw), 0, size)])
        f.create_dataset("row_attrs/Gene", data=np.array(["G"], dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("col_attrs/CellID", data=np.array([f"C{i}" for i in range(size)], dtype=object),
                         dtype=h5py.string_dtype())  # fmt: skip
    return [path], path, "stores its data in external files"


def _virtual_dataset(folder: Path):
    _secret_hdf5(folder)
    path = counts_loom(folder)
    layout = h5py.VirtualLayout(shape=(50, 80), dtype=np.float32)
    layout[:] = h5py.VirtualSource("other.h5", "values", shape=(50, 80))
    with h5py.File(path, "a") as f:
        f.create_virtual_dataset("layers/spliced", layout)
    return [path], path, "virtual dataset"


def _external_h5ad(folder: Path):
    import anndata

    _secret_hdf5(folder)
    path = folder / "in.h5ad"
    anndata.AnnData(np.ones((80, 50), np.float32)).write_h5ad(path)
    with h5py.File(path, "a") as f:
        del f["obs/_index"]
        f["obs/_index"] = h5py.ExternalLink("other.h5", "/names")
    return [path], path, "external link"


def _external_10x(folder: Path):
    _secret_hdf5(folder)
    path = folder / "in.h5"
    with h5py.File(path, "w") as f:
        f["matrix/barcodes"] = h5py.ExternalLink("other.h5", "/names")
        f["matrix/shape"] = np.array([1, 80])
    return [path], path, "external link"


# ------------------------------------------------ 4. declared sizes, not file sizes


def _declares_a_hundred_million_genes(folder: Path):
    path = folder / "in.loom"
    with h5py.File(path, "w") as f:
        f.create_dataset("matrix", shape=(100_000_000, 2), dtype=np.float32, chunks=(1_000_000, 2))
        f.create_dataset(
            "row_attrs/Gene", shape=(100_000_000,), dtype=h5py.string_dtype(), chunks=(1_000_000,)
        )
        f.create_dataset(
            "col_attrs/CellID", data=np.array(["a", "b"], dtype=object), dtype=h5py.string_dtype()
        )
    return [path], path, "stores only 0 of its 100 chunks"


def _a_name_of_a_million_characters(folder: Path):
    genes = np.array([f"G{i}" for i in range(50)], dtype=object)
    genes[7] = "G" * 1_000_000
    path = folder / "in.loom"
    with h5py.File(path, "w") as f:
        f.create_dataset("matrix", data=np.ones((50, 80), np.float32))
        f.create_dataset("row_attrs/Gene", data=genes.astype("S"), compression="gzip")
        f.create_dataset("col_attrs/CellID", data=np.array([f"C{i}" for i in range(80)], dtype="S"))
    return [path], path, "holds text of 1000000 bytes"


def _a_zip_bomb_model(folder: Path):
    path = folder / "model.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.json", "{}")
        with archive.open("weights.npz", "w", force_zip64=True) as member:
            block = bytes(2**24)
            for _ in range(16):  # 256 MiB of zeros, about 250 KB deflated
                member.write(block)
    return [copy(PBMC_SMALL, folder, "in.loom"), path, "out.loom"], path, "inflates"


def _a_huge_model_json(folder: Path):
    model = model_folder(folder)
    with open(model / "model.json", "r+b") as handle:
        handle.truncate(300 * 2**20)  # a sparse file: no disk used
    return [copy(PBMC_SMALL, folder, "in.loom"), model, "out.loom"], model, "larger than 256 MiB"


# ----------------------------------------------- 5. names and values kept exactly


def _csv_with_a_repeated_cell(folder: Path):
    path = folder / "in.csv"
    lines = ["gene,C1,C2,C1"] + [f"G{i},1,2,3" for i in range(5)]
    path.write_text("\n".join(lines) + "\n")
    return [path, "out.loom", "--orientation", "genes-by-cells"], path, "duplicate cell IDs (e.g. C1)"


def _control_characters_in_names(folder: Path):
    genes = np.array([f"G{i}" for i in range(50)], dtype=object)
    genes[3] = "G\x07bell"
    return [counts_loom(folder, genes=genes), "out.loom"], "in.loom", "control character"


# --------------------------------------------- 6. no traceback, whatever the damage


def _damaged_chunk(folder: Path):
    """pbmc_small (the trained model's genes) with the bytes of one compressed chunk overwritten."""
    path = copy(PBMC_SMALL, folder, "in.loom")
    with h5py.File(path, "a") as f:
        counts = f["matrix"][()]
        del f["matrix"]
        f.create_dataset("matrix", data=counts, chunks=(64, 64), compression="gzip")
    with h5py.File(path, "r") as f:
        chunk = f["matrix"].id.get_chunk_info(5)
    with open(path, "r+b") as handle:
        handle.seek(chunk.byte_offset)
        handle.write(b"\xff" * chunk.size)
    return [path], path, "cannot be read"


def _matrix_of_dimensions(n: int):
    def make(folder: Path):
        path = folder / "in.loom"
        with h5py.File(path, "w") as f:
            f.create_dataset("matrix", data=np.ones((50, 80, 2)[:n], np.float32))
            f.create_dataset("row_attrs/Gene", data=np.array([f"G{i}" for i in range(50)], dtype="S"))
            f.create_dataset("col_attrs/CellID", data=np.array([f"C{i}" for i in range(80)], dtype="S"))
        return [path], path, f"has {n} dimensions"

    return make


def _names_one_too_many(folder: Path):
    path = counts_loom(folder, genes=np.array([f"G{i}" for i in range(51)]))
    return [path], path, "has shape (51,) for 50 genes"


def _compound_matrix(folder: Path):
    path = folder / "in.loom"
    with h5py.File(path, "w") as f:
        f.create_dataset("matrix", data=np.zeros((50, 80), dtype=[("a", "f4"), ("b", "i4")]))
        f.create_dataset("row_attrs/Gene", data=np.array([f"G{i}" for i in range(50)], dtype="S"))
        f.create_dataset("col_attrs/CellID", data=np.array([f"C{i}" for i in range(80)], dtype="S"))
    return [path], path, "not numbers"


def _layer_of_another_shape(folder: Path):
    path = counts_loom(folder)
    with h5py.File(path, "a") as f:
        f.create_dataset("layers/spliced", data=np.ones((50, 79), np.float32))
    return [path], path, "layer 'spliced'"


def _all_zeros(folder: Path):
    path = write_raw_loom(folder / "in.loom", np.zeros((50, 80), np.float32))
    return [path, "out.loom"], path, "positive counts to mask"


def _huge_counts(folder: Path):
    path = copy(PBMC_SMALL, folder, "in.loom")
    with h5py.File(path, "a") as f:
        f["matrix"][:, :] = f["matrix"][:, :] * 1e30
    return [path, model_folder(folder), "out.loom"], path, "counts above 2^53"


def _encrypted_model(folder: Path):
    path = folder / "model.zip"
    shutil.copyfile(REPO / "galaxy" / "test-data" / "pbmc_small.model.zip", path)
    with open(path, "r+b") as handle:  # the general-purpose flag's encryption bit of every entry
        data = bytearray(handle.read())
        for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            start = 0
            while (start := data.find(signature, start)) >= 0:
                data[start + offset] |= 1
                start += 4
        handle.seek(0)
        handle.write(data)
    return [copy(PBMC_SMALL, folder, "in.loom"), path, "out.loom"], path, "encrypted"


def _corrupt_model_zip(folder: Path):
    path = folder / "model.zip"
    data = (REPO / "galaxy" / "test-data" / "pbmc_small.model.zip").read_bytes()
    path.write_bytes(data[:200] + b"\x00" * 5000 + data[5200:])
    return [copy(PBMC_SMALL, folder, "in.loom"), path, "out.loom"], path, "model"


def _model_arrays_that_do_not_fit(folder: Path):
    model = model_folder(folder)

    def edit(content, weights):
        weights["subnet0000/W1"] = weights["subnet0000/W1"][:-1]

    rewrite_model(model, edit)
    return [copy(PBMC_SMALL, folder, "in.loom"), model, "out.loom"], model, "do not match its gene lists"


def _model_json_nested_deeply(folder: Path):
    model = model_folder(folder)
    (model / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    return [copy(PBMC_SMALL, folder, "in.loom"), model, "out.loom"], model, "nested too deeply"


def _model_with_nan_weights(folder: Path):
    model = model_folder(folder)

    def edit(content, weights):
        weights["subnet0001/b2"] = weights["subnet0001/b2"] * np.nan

    rewrite_model(model, edit)
    return [copy(PBMC_SMALL, folder, "in.loom"), model, "out.loom"], model, "NaN or infinite"


def _merge_a_non_chunk(folder: Path):
    return ["out.loom", copy(PBMC_SMALL, folder, "in.loom")], "in.loom", "is not a chunk"


def _missing_output_folder(step: str):
    def make(folder: Path):
        target = folder / "absent" / ("model" if step == "train" else "out.loom")
        return [copy(PBMC_SMALL, folder, "in.loom"), target], target, "does not exist"

    return make


HOSTILE = {
    # 1. existing folders are never deleted
    "train into a folder of results": Case("train", _train_into_folder),
    "train into the working folder": Case("train", _train_into_working_folder),
    "split into a folder that is not chunks": Case("split", _split_into_folder),
    "train over a file": Case("train", _train_into_a_file),
    "filter into a link to a folder": Case("filter", _filter_into_a_link_to_a_folder),
    "train into a missing folder": Case("train", _missing_output_folder("train")),
    "impute into a missing folder": Case("impute", lambda f: _impute_missing(f)),
    # 2. an output is never an input
    "filter X X": Case("filter", _same_file("filter")),
    "mask X X": Case("mask", _same_file("mask")),
    "train X X": Case("train", _same_file("train")),
    "impute X MODEL X": Case("impute", _impute_onto_input),
    "impute X MODEL MODEL/weights.npz": Case("impute", _impute_into_model),
    "filter onto a hard link of the input": Case("filter", _filter_onto_hard_link),
    "filter onto a symbolic link to the input": Case("filter", _filter_onto_symlink),
    "split into the input's folder": Case("split", _split_around_input),
    "merge A A B": Case("merge", _merge_onto_chunk),
    "score --output X": Case("score", _score_onto_input),
    "run X X": Case("run", _run_into_input),
    # 4. declared sizes
    "a hundred million genes in 7 KB": Case(
        "filter", lambda f: _with_output(_declares_a_hundred_million_genes(f))
    ),
    "a gene name of a million characters": Case(
        "filter", lambda f: _with_output(_a_name_of_a_million_characters(f))
    ),
    "a model zip of 256 MiB of zeros": Case("impute", _a_zip_bomb_model),
    "a model.json of 300 MiB": Case("impute", _a_huge_model_json),
    # 5. names and values
    "a CSV with a repeated cell ID": Case("filter", _csv_with_a_repeated_cell),
    "a name with a control character": Case("filter", _control_characters_in_names),
    # 6. damage of every kind
    "a matrix of all zeros to mask": Case("mask", _all_zeros),
    "counts beyond what any float holds exactly": Case("impute", _huge_counts),
    "an encrypted model zip": Case("impute", _encrypted_model),
    "a corrupt model zip": Case("impute", _corrupt_model_zip),
    "model arrays that do not fit the gene lists": Case("impute", _model_arrays_that_do_not_fit),
    "a model.json nested 100,000 deep": Case("impute", _model_json_nested_deeply),
    "model weights with NaN": Case("impute", _model_with_nan_weights),
    "merge of a Loom that is not a chunk": Case("merge", _merge_a_non_chunk),
}


def _with_output(made):
    args, names, says = made
    return [*args, "out.loom"], names, says


def _impute_missing(folder: Path):
    target = folder / "absent" / "out.loom"
    return [copy(PBMC_SMALL, folder, "in.loom"), model_folder(folder), target], target, "does not exist"


READERS = {  # a hostile file, refused by every step that reads it
    "external link": _external_link,
    "external storage": _external_storage,
    "virtual dataset": _virtual_dataset,
    "damaged chunk": _damaged_chunk,
    "1-D matrix": _matrix_of_dimensions(1),
    "3-D matrix": _matrix_of_dimensions(3),
    "names one too many": _names_one_too_many,
    "compound matrix": _compound_matrix,
    "layer of another shape": _layer_of_another_shape,
}


def _reader_case(step: str, make) -> Case:
    def made(folder: Path):
        args, names, says = make(folder)
        path = args[0]
        extra = {
            "filter": ["out.loom"],
            "mask": ["out.loom"],
            "train": ["model", *TINY_TRAINING],
            "impute": [model_folder(folder), "out.loom"],
            "split": ["chunks"],
            "score": [],
            "merge": [],
        }[step]
        if step == "merge":
            return ["out.loom", path], names, says
        return [path, *extra], names, says

    return Case(step, made)


for kind, make in READERS.items():
    for step in ("filter", "mask", "train", "impute", "split", "score", "merge"):
        if kind == "damaged chunk" and step in ("score", "merge"):
            continue  # they refuse it before reading the matrix: no 'original' layer, no chunk place
        HOSTILE[f"{step}: {kind}"] = _reader_case(step, make)
for kind, make in {
    "h5ad with an external link": _external_h5ad,
    "10x HDF5 with an external link": _external_10x,
}.items():
    for step in ("filter", "train"):
        HOSTILE[f"{step}: {kind}"] = _reader_case(step, make)


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_input_is_refused_cleanly(name, tmp_path):
    check(HOSTILE[name], tmp_path)


# ------------------------------------------------ what must work, and the limits that fail safely


def test_a_model_folder_is_replaced_by_a_new_model_and_nothing_else_is_touched(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "bystander.txt").write_text("keep")
    model = model_folder(folder)
    old = (model / "model.json").read_text()
    result = run_limited("train", PBMC_SMALL, model, *TINY_TRAINING, "--seed", "1", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in model.iterdir()) == ["model.json", "weights.npz"]
    assert (model / "model.json").read_text() != old
    assert sorted(p.name for p in folder.iterdir()) == ["bystander.txt", "model", "tmp"]
    assert not list((folder / "tmp").iterdir())


def test_a_full_disk_is_an_error_and_leaves_nothing(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    model = model_folder(folder)
    before = snapshot(folder)
    result = run_limited("impute", PBMC_SMALL, model, "out.loom", cwd=folder, file_size=20_000)
    (folder / "tmp").rmdir()
    assert_refused(result, names="out.loom", says="cannot be written")
    assert snapshot(folder) == before


def _without_permission_override() -> None:
    """In the child, before exec: root loses the capabilities that let it write read-only folders."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if os.geteuid() == 0 and libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl")


def test_an_output_in_a_read_only_folder_is_refused_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    result = subprocess.run(
        [
            sys.executable,
            str(BIN / "deepimpute-train"),
            str(PBMC_SMALL),
            str(locked / "model"),
            *TINY_TRAINING,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=_without_permission_override,
        timeout=300,
    )
    assert_refused(result, names=locked / "model", says="is not writable")
    assert "epoch" not in result.stderr and list(locked.iterdir()) == []


def test_non_ascii_names_and_huge_counts_survive_every_step_exactly(tmp_path):
    """Any UTF-8 name round-trips, and observed counts above float32's 2^24 keep every digit."""
    rng = np.random.default_rng(0)
    counts = rng.poisson(3, (120, 90)).astype(np.int64)
    counts[5, 7] = 2**40 + 3  # not a float32
    genes = np.array([f"Gène-{i}-Δ" if i % 3 else f"G{i}&amp;é" for i in range(120)], dtype=object)
    cells = np.array([f"cellule-{i}-ç✓" for i in range(90)], dtype=object)
    source = write_raw_loom(tmp_path / "in.loom", counts, genes=genes, cells=cells, dtype=np.int64)
    for step, args in [
        ("filter", [source, tmp_path / "f.loom", "--min-genes", "0", "--min-cells", "0"]),
        ("train", [tmp_path / "f.loom", tmp_path / "model", *TINY_TRAINING, "--min-vmr", "0"]),
        ("impute", [tmp_path / "f.loom", tmp_path / "model", tmp_path / "i.loom"]),
    ]:
        result = run_limited(step, *args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    import loompy

    from deepimpute_tool.loom import LoomReader

    for path in (tmp_path / "f.loom", tmp_path / "i.loom"):
        with LoomReader.open(path) as reader:
            assert reader.genes.tolist() == genes.tolist() and reader.cells.tolist() == cells.tolist()
        with loompy.connect(str(path), "r") as ds:  # loompy reads the same names
            assert list(ds.ra.Gene) == genes.tolist() and list(ds.ca.CellID) == cells.tolist()
    with h5py.File(tmp_path / "i.loom", "r") as f:
        for layer in ("layers/detected_fill", "layers/raw"):  # the main matrix is denoised
            assert f[layer].dtype == np.float64
            assert int(f[layer][5, 7]) == 2**40 + 3
            observed = counts > 0
            np.testing.assert_array_equal(f[layer][()][observed], counts[observed])
        assert f["matrix"].dtype == np.float64 and np.isfinite(f["matrix"][()]).all()


@pytest.mark.parametrize("step", ["filter", "impute"])
def test_a_bounded_step_stays_within_its_memory_on_real_data(step, tmp_path):
    """The limit the hostile cases run under is not what makes them fail: real work fits in it."""
    args = {
        "filter": [PBMC68K, "out.loom", "--min-genes", "10"],
        "impute": [PBMC_SMALL, trained_model(), "out.loom"],
    }[step]
    result = run_limited(step, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
