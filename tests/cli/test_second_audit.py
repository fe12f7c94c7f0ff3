"""The classes of the second hostile audit: silent changes, unbounded text, unclear errors, outputs.

Refusals run through :func:`tests.cli.test_hostile.check` (exit 2, one ``Error:`` line naming
the file or option, nothing created, changed or left behind); inputs that are well formed but
unusual are run to the end and their names and counts compared with what the file holds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.cli.test_hostile import (
    Case,
    _without_permission_override,
    check,
    copy,
    counts_loom,
    model_folder,
    run_limited,
    snapshot,
)
from tests.helpers import BIN, PBMC68K, PBMC_SMALL, REPO, TINY_TRAINING, run

IMPUTED = REPO / "galaxy" / "test-data" / "pbmc_small.imputed.loom"


def _anndata(folder: Path, name: str = "in.h5ad", *, obs=None, var=None, dtype=np.float32) -> Path:
    import anndata
    import pandas as pd

    counts = np.random.default_rng(0).poisson(2, (80, 50)).astype(dtype)
    obs = obs if obs is not None else pd.DataFrame(index=[f"C{i}" for i in range(80)])
    var = var if var is not None else pd.DataFrame(index=[f"G{i}" for i in range(50)])
    anndata.AnnData(counts, obs=obs, var=var).write_h5ad(folder / name)
    return folder / name


def _cell_ranger_2(path: Path, genomes: dict[str, list[str]]) -> Path:
    """A Cell Ranger 2 HDF5: one group per genome, each with its barcodes, genes and CSC matrix."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for number, (genome, barcodes) in enumerate(genomes.items()):
            genes = [f"{genome}_G{i}" for i in range(30)]
            matrix = rng.poisson(2, (30, len(barcodes))).astype(np.int32)
            group = f.create_group(genome)
            group["barcodes"] = np.array(barcodes, dtype="S")
            group["genes"] = np.array([f"ENS{number}{i:05d}" for i in range(30)], dtype="S")
            group["gene_names"] = np.array(genes, dtype="S")
            group["shape"] = np.array(matrix.shape, dtype=np.int32)
            columns = [np.flatnonzero(matrix[:, j]) for j in range(matrix.shape[1])]
            group["indices"] = np.concatenate(columns).astype(np.int64)
            group["data"] = np.concatenate([matrix[rows, j] for j, rows in enumerate(columns)])
            group["indptr"] = np.cumsum([0, *map(len, columns)]).astype(np.int64)
    return path


def _split(folder: Path, source: Path, name: str, *extra) -> list[Path]:
    run("deepimpute-split", source, folder / name, "--chunk-size", "40", "-q", *extra, cwd=folder)
    return sorted((folder / name).iterdir())


# ------------------------------------------------------------- refusals


def _h5ad_without_x(folder: Path):
    path = _anndata(folder)
    with h5py.File(path, "a") as f:
        del f["X"]
    return [path, "out.loom"], path, "without X"


def _h5ad_column_of_unknown_encoding(folder: Path):
    path = _anndata(folder)
    with h5py.File(path, "a") as f:
        group = f["obs"].create_group("clusters")
        group.attrs["encoding-type"] = "awkward-array"
        f["obs"].attrs["column-order"] = np.array(["clusters"], dtype=object)
    return [path, "out.loom"], path, "'/obs/clusters' is stored as 'awkward-array'"


def _h5ad_compressed_text(folder: Path):
    """80 values of a megabyte each: 80 MB of text in a file of kilobytes."""
    path = _anndata(folder)
    with h5py.File(path, "a") as f:
        f["obs"].create_dataset("note", data=np.full(80, b"x" * 2**20, dtype="S1048576"), compression="gzip")
        f["obs/note"].attrs["encoding-type"] = "string-array"
        f["obs"].attrs["column-order"] = np.array(["note"], dtype=object)
    assert path.stat().st_size < 2**20
    return [path, "out.loom"], path, "holds text of 1048576 bytes"


def _h5ad_compressed_categories(folder: Path):
    path = _anndata(folder)
    with h5py.File(path, "a") as f:
        group = f["obs"].create_group("kind")
        group.attrs.update({"encoding-type": "categorical", "encoding-version": "0.2.0", "ordered": False})
        group.create_dataset("codes", data=np.zeros(80, np.int8))
        group.create_dataset(
            "categories", data=np.array([b"y" * 2**22], dtype="S4194304"), compression="gzip"
        )
        f["obs"].attrs["column-order"] = np.array(["kind"], dtype=object)
    return [path, "out.loom"], path, "holds text of 4194304 bytes"


def _two_genomes_of_other_cells(folder: Path):
    path = _cell_ranger_2(
        folder / "in.h5", {"hg19": [f"A{i}" for i in range(40)], "mm10": [f"B{i}" for i in range(40)]}
    )
    return [path, "out.loom"], path, "2 genomes (hg19, mm10) that do not name the same cells"


def _table(folder: Path, text: bytes):
    path = folder / "in.csv"
    path.write_bytes(text)
    return path


def _csv_with_nul(folder: Path):
    path = _table(folder, b"gene,C1,C2\nG\x001,1,2\nG2,3,4\n")
    return [path, "out.loom"], path, "NUL byte"


def _csv_with_a_bell(folder: Path):
    path = _table(folder, b"gene,C1,C2\nG1,1,2\nG\x072,3,4\n")
    return [path, "out.loom"], path, "control character"


def _labels(values):
    def make(folder: Path):
        path = copy(IMPUTED, folder, "imputed.loom")
        with h5py.File(path, "a") as f:
            n = f["matrix"].shape[1]
            f.create_dataset("col_attrs/Batch", data=np.asarray(values(n)))
        return [path, "--labels", "Batch", "--output", "scores.json"], path, "'Batch'"

    return make


def _output_named(name: str):
    def make(folder: Path):
        return [copy(PBMC_SMALL, folder, "in.loom"), name], name[:40], "has a name of"

    return make


def _model_at_a_dangling_link(folder: Path):
    (folder / "model").symlink_to(folder / "gone")
    return [copy(PBMC_SMALL, folder, "in.loom"), "model", *TINY_TRAINING], "model", "which does not exist"


def _score_into_a_pipe(folder: Path):
    os.mkfifo(folder / "pipe.json")
    path = copy(IMPUTED, folder, "imputed.loom")
    return [path, "--output", "pipe.json"], "pipe.json", "is not a regular file"


def _run_that_fails_into(folder: Path):
    path = counts_loom(folder)
    with h5py.File(path, "a") as f:
        f["matrix"][0, 0] = np.nan
    return [path, "results"], path, "NaN"


def _merge_of(kind: str):
    """Chunks that each pass alone but do not belong together."""

    def make(folder: Path):
        source = copy(PBMC_SMALL, folder, "in.loom")
        first = _split(folder, source, "chunks")
        if kind == "two splits":
            again = _split(folder, source, "again")
            return ["out.loom", first[0], again[1]], again[1].name, "comes from another split"
        if kind == "two samples":
            other = copy(PBMC_SMALL, folder, "other.loom")
            theirs = _split(folder, other, "theirs")
            return ["out.loom", first[0], theirs[1]], theirs[1].name, "of 'other.loom', not of 'in.loom'"
        if kind == "other cells":
            with h5py.File(first[1], "a") as f:
                names = f["col_attrs/CellID"][()]
                f["col_attrs/CellID"][0] = names[1]
                f["col_attrs/CellID"][1] = names[0]
            return ["out.loom", *first], first[1].name, "holds other cells"
        models = [model_folder(folder, "model0")]
        models.append(_second_model(folder, "model1") if kind == "two models" else models[0])
        imputed = []
        for number, chunk in enumerate(first):
            if kind == "imputed and not" and number == 1:
                imputed.append(chunk)
                continue
            out = folder / f"imputed{number}.loom"
            options = ["--fill", "detected"] if kind == "other options" and number == 1 else []
            run("deepimpute-impute", chunk, models[number], out, "-q", *options, cwd=folder)
            imputed.append(out)
        says = {
            "two models": "was imputed with another model",
            "imputed and not": "went through 'impute'",
            "other options": "with other options than imputed0.loom: detected_layer, fill",
        }[kind]
        return ["out.loom", *imputed], imputed[1].name, says

    return make


def _second_model(folder: Path, name: str) -> Path:
    run("deepimpute-train", PBMC_SMALL, folder / name, *TINY_TRAINING, "--seed", "7", "-q", cwd=folder)
    return folder / name


def _h5ad_malformed(edit):
    def make(folder: Path):
        import scipy.sparse as sp

        path = _anndata(folder)
        import anndata

        adata = anndata.read_h5ad(path)
        adata.X = sp.csr_matrix(adata.X)
        adata.write_h5ad(path)
        with h5py.File(path, "a") as f:
            edit(f)
        return [path, "out.loom"], path, "cannot be read as h5ad"

    return make


def _h5ad_column_with_a_slash(folder: Path):
    import pandas as pd

    obs = pd.DataFrame({"a/b": np.arange(80)}, index=[f"C{i}" for i in range(80)])
    return [_anndata(folder, obs=obs), "out.loom"], "in.h5ad", "column 'a/b' has a '/' in its name"


def _merge_with_nested_json(folder: Path):
    chunks = _split(folder, copy(PBMC_SMALL, folder, "in.loom"), "chunks")
    with h5py.File(chunks[1], "a") as f:
        del f["attrs/deepimpute_chunk_source"]
        f["attrs/deepimpute_chunk_source"] = "[" * 5000 + "]" * 5000
    return ["out.loom", *chunks], chunks[1].name, "damaged 'deepimpute_chunk_source'"


REFUSED = {
    "an h5ad without X": Case("filter", _h5ad_without_x),
    "an h5ad column of an encoding no reader knows": Case("filter", _h5ad_column_of_unknown_encoding),
    "80 MB of text compressed in an h5ad column": Case("filter", _h5ad_compressed_text),
    "4 MB of text compressed in an h5ad category": Case("filter", _h5ad_compressed_categories),
    "two genomes of different cells": Case("filter", _two_genomes_of_other_cells),
    "a CSV with a NUL in a name": Case("filter", _csv_with_nul),
    "a CSV with a control character in a name": Case("filter", _csv_with_a_bell),
    "labels of one value": Case("score", _labels(lambda n: np.array(["T"] * n, dtype="S"))),
    "labels of two dimensions": Case("score", _labels(lambda n: np.zeros((n, 2), np.int32))),
    "an output name too long for its temporary": Case("filter", _output_named("o" * 245 + ".loom")),
    "a model at a dangling link": Case("train", _model_at_a_dangling_link),
    "scores into a named pipe": Case("score", _score_into_a_pipe),
    "a run that fails leaves no folder": Case("run", _run_that_fails_into),
    "merge of two splits of one input": Case("merge", _merge_of("two splits")),
    "merge of two samples' chunks": Case("merge", _merge_of("two samples")),
    "merge of a chunk whose cells were reordered": Case("merge", _merge_of("other cells")),
    "merge of chunks imputed with two models": Case("merge", _merge_of("two models")),
    "merge of an imputed chunk and one that was not": Case("merge", _merge_of("imputed and not")),
    "merge of chunks imputed with other options": Case("merge", _merge_of("other options")),
    "merge of a chunk source nested 5,000 deep": Case("merge", _merge_with_nested_json),
    "an h5ad column whose name Loom cannot hold": Case("filter", _h5ad_column_with_a_slash),
    "an h5ad whose X declares a shape of text": Case(
        "filter", _h5ad_malformed(lambda f: f["X"].attrs.__setitem__("shape", "abc"))
    ),
    "an h5ad whose X declares a 2-D shape": Case(
        "filter", _h5ad_malformed(lambda f: f["X"].attrs.__setitem__("shape", np.array([[80, 50]])))
    ),
    "an h5ad whose index attribute is not UTF-8": Case(
        "filter", _h5ad_malformed(lambda f: f["obs"].attrs.__setitem__("_index", np.bytes_(b"\xff")))
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_second_audit_input_is_refused_cleanly(name, tmp_path):
    check(REFUSED[name], tmp_path)


def test_too_many_cores_is_refused_before_tensorflow_starts(tmp_path):
    result = run_limited("train", PBMC_SMALL, tmp_path / "model", "--cores", "10000", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "--cores" in result.stderr and "1024" in result.stderr
    assert not (tmp_path / "model").exists()


# ------------------------------------------------------- names kept from where the format keeps them


def _read_loom(path: Path) -> dict:
    from deepimpute_tool.loom import LoomReader

    with LoomReader.open(path) as reader:
        return {"genes": reader.genes.tolist(), "cells": reader.cells.tolist(),
                "gene_attrs": reader.gene_attrs(), "cell_attrs": reader.cell_attrs()}  # fmt: skip


def test_an_h5ad_names_cells_and_genes_by_its_index_not_by_like_named_columns(tmp_path):
    """anndata writes obs['CellID'] when it read a Loom: the index stays the cells' names, a
    column that repeats it is dropped, another is kept under a name of its own."""
    import pandas as pd

    obs = pd.DataFrame({"CellID": ["same"] * 80, "kind": pd.Categorical(["a", "b"] * 40)},
                       index=[f"C{i}" for i in range(80)])  # fmt: skip
    var = pd.DataFrame({"Gene": [f"G{i}" for i in range(50)]}, index=[f"G{i}" for i in range(50)])
    path = _anndata(tmp_path, obs=obs, var=var)
    result = run_limited(
        "filter", path, "out.loom", "--min-genes", "0", "--min-cells", "0", "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    found = _read_loom(tmp_path / "out.loom")
    assert found["cells"] == [f"C{i}" for i in range(80)]
    assert found["genes"] == [f"G{i}" for i in range(50)]
    assert found["cell_attrs"]["obs_CellID"].tolist() == ["same"] * 80
    assert found["cell_attrs"]["kind"].tolist() == ["a", "b"] * 40
    assert "var_Gene" not in found["gene_attrs"]  # it only repeated the index


def test_an_h5ad_keeps_its_text_and_columns_exactly_and_loompy_opens_the_result(tmp_path):
    """Text as anndata stores it (no character references unescaped), a taken name not
    overwritten, booleans as 0/1 (loompy refuses boolean attributes)."""
    import loompy
    import pandas as pd

    obs = pd.DataFrame({"CellID": [f"x{i}" for i in range(80)], "obs_CellID": [f"y{i}" for i in range(80)],
                        "company": ["AT&amp;T", "x&lt3"] * 40, "flag": [True, False] * 40},
                       index=[f"C{i}" for i in range(80)])  # fmt: skip
    path = _anndata(tmp_path, obs=obs)
    result = run_limited(
        "filter", path, "out.loom", "--min-genes", "0", "--min-cells", "0", "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    attrs = _read_loom(tmp_path / "out.loom")["cell_attrs"]
    assert attrs["company"].tolist() == ["AT&amp;T", "x&lt3"] * 40
    assert attrs["obs_CellID"].tolist() == [f"y{i}" for i in range(80)]
    assert attrs["obs_CellID_2"].tolist() == [f"x{i}" for i in range(80)]
    with loompy.connect(str(tmp_path / "out.loom"), "r") as ds:
        assert ds.ca.flag.tolist() == [1, 0] * 40


def test_chunks_imputed_in_blocks_of_other_sizes_still_merge(tmp_path):
    """--chunk-cells is a machine's memory setting and changes no value: it does not split a set."""
    chunks = _split(tmp_path, PBMC_SMALL, "chunks")
    model = model_folder(tmp_path)
    for number, (chunk, size) in enumerate(zip(chunks, ("7", "64"))):
        run("deepimpute-impute", chunk, model, tmp_path / f"i{number}.loom", "--chunk-cells", size, "-q")
    result = run_limited("merge", "out.loom", tmp_path / "i0.loom", tmp_path / "i1.loom", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_half_precision_h5ad_is_read_exactly(tmp_path):
    path = _anndata(tmp_path, dtype=np.float16)
    result = run_limited(
        "filter", path, "out.loom", "--min-genes", "0", "--min-cells", "0", "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    import anndata

    with h5py.File(tmp_path / "out.loom", "r") as f:
        np.testing.assert_array_equal(f["matrix"][()], anndata.read_h5ad(path).X.T.astype(np.float32))


def test_every_genome_of_a_cell_ranger_2_file_is_kept(tmp_path):
    barcodes = [f"AAAC{i}-1" for i in range(40)]
    path = _cell_ranger_2(tmp_path / "in.h5", {"mm10": barcodes, "hg19": barcodes})
    result = run_limited(
        "filter", path, "out.loom", "--min-genes", "0", "--min-cells", "0", "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    found = _read_loom(tmp_path / "out.loom")
    assert found["cells"] == barcodes
    assert found["genes"] == [f"hg19_G{i}" for i in range(30)] + [f"mm10_G{i}" for i in range(30)]
    assert found["gene_attrs"]["Genome"].tolist() == ["hg19"] * 30 + ["mm10"] * 30


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b"\xef\xbb\xbfC1,C2,C3\nG1,1,2,0\nG2,3,4,1\nG3,0,1,5\nG4,2,2,2\n")
    result = run_limited(
        "filter", path, "out.loom", "--min-genes", "0", "--min-cells", "0", "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert _read_loom(tmp_path / "out.loom")["cells"] == ["C1", "C2", "C3"]


def test_an_empty_name_in_a_table_stays_empty(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("gene,C1,C2,C3\n,1,2,0\nG2,3,4,1\nG3,0,1,5\n")
    result = run_limited("filter", path, "out.loom", "--min-genes", "0", "--min-cells", "0",
                         "--orientation", "genes-by-cells", "-q", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _read_loom(tmp_path / "out.loom")["genes"] == ["", "G2", "G3"]


def test_merge_puts_together_what_split_took_apart(tmp_path):
    chunks = _split(tmp_path, PBMC_SMALL, "chunks")
    result = run_limited("merge", "out.loom", *reversed(chunks), "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with h5py.File(PBMC_SMALL, "r") as a, h5py.File(tmp_path / "out.loom", "r") as b:
        np.testing.assert_array_equal(a["matrix"][()], b["matrix"][()])
        assert a["col_attrs/CellID"][()].tolist() == b["col_attrs/CellID"][()].tolist()
        assert "deepimpute_chunk_source" not in b.attrs and "deepimpute_chunk_source" not in b.get(
            "attrs", {}
        )


# ------------------------------------------------------- quiet means quiet


def test_quiet_prints_nothing_with_a_read_only_home_nor_on_a_full_disk(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    env = {
        k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")
    }
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    score = subprocess.run(
        [sys.executable, str(BIN / "deepimpute-score"), str(IMPUTED), "-o", str(tmp_path / "s.json"),
         "--plots", str(tmp_path / "plots"), "-q"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        preexec_fn=_without_permission_override,  # root could write the read-only home
    )  # fmt: skip
    assert score.returncode == 0, score.stderr
    assert score.stdout == "" and score.stderr == ""
    assert list((tmp_path / "plots").glob("*.png"))
    before = snapshot(tmp_path)
    full = run_limited("filter", PBMC68K, tmp_path / "out.loom", "--min-genes", "10", "-q", cwd=tmp_path,
                       file_size=200 * 1024)  # fmt: skip
    (tmp_path / "tmp").rmdir()
    assert full.returncode == 2
    assert full.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'out.loom'}: cannot be written: File too large"
    ]
    assert snapshot(tmp_path) == before


def test_only_what_is_written_under_a_temporary_name_is_held_to_its_length(tmp_path):
    from deepimpute_tool.errors import OutputError
    from deepimpute_tool.outputs import DIRECTORY, FILE, FOLDER, Output, check_outputs

    long = tmp_path / ("d" * 240)
    check_outputs([Output(long, FOLDER)], inputs=[])  # run's folder and score's plots: written into
    for kind in (FILE, DIRECTORY):
        with pytest.raises(OutputError, match="has a name of 240 bytes"):
            check_outputs([Output(long, kind, replaceable=lambda path: True)], inputs=[])
