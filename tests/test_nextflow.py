"""The Nextflow pipeline, checked with Nextflow's own language server and parser.

Nextflow itself cannot run here (no registry serves it), so: the language server must
report no error or warning; each process's `script:` block, taken from main.nf by the
parser and rendered by Groovy with inputs as Nextflow fills them, is run with bash in the
order the workflow wires the processes; and what the parser misses is checked directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import loompy
import numpy as np
import pytest
from conftest import DATA, REPO, assert_same_imputation, require
from nextflow_support import Pipeline, StagedFile, config_params, diagnostics

from deepimpute_tool import __version__


@pytest.fixture(scope="module", autouse=True)
def language_server_available():
    require(shutil.which("java") is not None, "Nextflow's language server needs java")


MAIN_NF, CONFIG, SCHEMA = REPO / "main.nf", REPO / "nextflow.config", REPO / "nextflow_schema.json"
PROFILES = ("test", "docker", "singularity", "gpu", "slurm", "awsbatch")


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(MAIN_NF)


def test_language_server_reports_no_error_or_warning():
    found = diagnostics([MAIN_NF, CONFIG], root=REPO)
    problems = [
        f"{path.name}:{d['range']['start']['line'] + 1}: {d['message']}"
        for path, items in found.items()
        for d in items
        if d.get("severity") in (1, 2)
    ]
    assert problems == []


def _emits(process) -> set[str]:
    return {m for line in process.outputs for m in re.findall(r"emit:\s*(\w+)", line)}


def _top_level_arguments(text: str) -> int:
    depth, count = 0, 1 if text.strip() else 0
    for char in text:
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        count += char == "," and depth == 0
    return count


def test_every_emit_used_exists(pipeline):
    used = re.findall(r"\b([A-Z]+)\.out\.(\w+)", pipeline.workflow)
    assert used
    for name, emit in used:
        assert emit in _emits(pipeline.processes[name]), f"{name}.out.{emit}"


def test_every_process_is_called_with_as_many_inputs_as_it_declares(pipeline):
    for name, process in pipeline.processes.items():
        calls = re.findall(rf"(?<![.\w]){name}\((.*)\)\s*$", pipeline.workflow, flags=re.MULTILINE)
        assert calls, f"{name} is never called"
        for arguments in calls:
            assert _top_level_arguments(arguments) == len(process.inputs), f"{name}({arguments})"


def test_processes_follow_nf_core_conventions(pipeline):
    for name, process in pipeline.processes.items():
        directives = " ".join(process.directives)
        assert "tag " in directives and "label " in directives, name
        assert process.inputs[0].startswith("tuple val(meta)"), name
        assert "versions" in _emits(process), name
        assert "publishDir" not in directives, f"{name}: publishDir belongs in nextflow.config"
        assert re.search(r"\bdeepimpute-\w+", process.script), f"{name} calls no bin/ executable"
    assert "stub:" in MAIN_NF.read_text() and MAIN_NF.read_text().count("stub:") == len(pipeline.processes)


def test_every_param_is_in_the_schema_and_the_reverse(pipeline):
    params = config_params(CONFIG)
    schema = json.loads(SCHEMA.read_text())
    described = {k: v for group in schema["$defs"].values() for k, v in group["properties"].items()}
    assert set(params) == set(described)
    for name, value in params.items():
        if value is not None:
            assert described[name].get("default") == value, name
    used = set(re.findall(r"params\.(\w+)", MAIN_NF.read_text()))
    assert used <= set(params), used - set(params)


def test_param_defaults_equal_the_command_line_defaults(pipeline):
    from deepimpute_tool.training import TrainingParameters

    params = config_params(CONFIG)
    for name, default in TrainingParameters().__dict__.items():
        if name in params and name != "cores":
            assert params[name] == default, name


def _profile(text: str, name: str) -> str:
    start = re.search(rf"^\s*{name}\s*\{{", text, flags=re.MULTILINE)
    assert start, f"profile {name} missing"
    depth = 0
    for end in range(start.end() - 1, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            return text[start.end() : end]
    raise AssertionError(name)


def test_profiles_exist_and_set_what_they_claim():
    text = CONFIG.read_text()
    profiles = {name: _profile(text[text.index("profiles {") :], name) for name in PROFILES}
    assert "docker.enabled = true" in profiles["docker"]
    assert "singularity.enabled = true" in profiles["singularity"]
    assert "--gpus all" in profiles["gpu"] and "--nv" in profiles["gpu"]
    assert re.search(r"withLabel:\s*process_gpu\s*\{\s*accelerator = 1", profiles["gpu"])
    assert "params.device = 'gpu'" in profiles["gpu"]
    assert "executor = 'slurm'" in profiles["slurm"]
    assert "executor = 'awsbatch'" in profiles["awsbatch"]
    test_input = re.search(r'params.input = "\$\{projectDir\}/(.+)"', profiles["test"]).group(1)
    assert (REPO / test_input).is_file()
    assert re.search(rf"container = 'deepimpute-tool:{re.escape(__version__)}'", text)


# ------------------------------------------- the workflow's scripts, run in order


class TaskRunner:
    """Runs a process's rendered script in its own work directory, with staged inputs."""

    def __init__(self, pipeline: Pipeline, params: dict, root: Path):
        self.pipeline, self.params, self.root = pipeline, params, root
        self.count = 0
        python_bin = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "PATH": f"{REPO / 'bin'}:{python_bin}:{os.environ['PATH']}",
            "PYTHONPATH": str(REPO),
        }

    def run(self, process: str, meta: dict, inputs: dict[str, Path | list[Path]], stage_as: str = "") -> Path:
        self.count += 1
        work = self.root / f"{self.count:02d}_{process}"
        (work / stage_as).mkdir(parents=True)
        variables = {
            "params": self.params,
            "meta": meta,
            "task": {"process": process, "cpus": 2, "attempt": 1, "ext": {}},
        }
        for name, value in inputs.items():
            staged = []
            for path in value if isinstance(value, list) else [value]:
                (work / stage_as / path.name).symlink_to(path.resolve())
                staged.append(StagedFile(str(Path(stage_as) / path.name) if stage_as else path.name))
            variables[name] = staged if isinstance(value, list) else staged[0]
        command = self.pipeline.command(process, variables)
        result = subprocess.run(
            ["bash", "-ue", "-c", command], cwd=work, env=self.env, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{process} failed:\n{command}\n{result.stderr[-3000:]}"
        versions = (work / "versions.yml").read_text()
        assert f'"{process}":' in versions and f"deepimpute: {__version__}" in versions, versions
        return work


@pytest.fixture(scope="module")
def pipeline_run(pipeline, tmp_path_factory):
    """FILTER, MASK, TRAIN, SPLIT, IMPUTE per chunk, MERGE, SCORE on mouse1m_10k in 4 chunks."""
    params = config_params(CONFIG)
    params.update(min_genes=0, min_cells=1, max_epochs=2, chunk_size=2500, evaluate=True)
    runner = TaskRunner(pipeline, params, tmp_path_factory.mktemp("nextflow"))
    meta = {"id": "mouse1m"}
    work = runner.run("FILTER", meta, {"counts": DATA / "mouse1m_10k.loom"})
    work = runner.run("MASK", meta, {"loom": work / "mouse1m.filtered.loom"})
    masked = work / "mouse1m.masked.loom"
    model = runner.run("TRAIN", meta, {"loom": masked}) / "mouse1m.model"
    chunks = sorted((runner.run("SPLIT", meta, {"loom": masked}) / "chunks").glob("*.loom"))
    imputed = []
    for chunk in reversed(chunks):  # Nextflow gives no order guarantee
        work = runner.run("IMPUTE", meta, {"chunk": chunk, "model": model})
        imputed.append(work / f"{chunk.name.removesuffix('.loom')}.imputed.loom")
    merged = runner.run("MERGE", meta, {"chunks": imputed}, stage_as="chunks") / "mouse1m.imputed.loom"
    scored = runner.run("SCORE", meta, {"loom": merged})
    return {
        "masked": masked,
        "model": model,
        "chunks": chunks,
        "merged": merged,
        "scored": scored,
        "root": runner.root,
    }


def test_split_makes_four_chunks(pipeline_run):
    assert len(pipeline_run["chunks"]) == 4


def test_merged_output_equals_single_process_impute(pipeline_run):
    single = pipeline_run["root"] / "single.loom"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "bin" / "deepimpute-impute"),
            str(pipeline_run["masked"]),
            str(pipeline_run["model"]),
            str(single),
            "--quiet",
        ],
        check=True,
    )
    with loompy.connect(str(single), "r") as a, loompy.connect(str(pipeline_run["merged"]), "r") as b:
        assert a.shape == b.shape == (a.shape[0], 10000)
        np.testing.assert_array_equal(a.ca.CellID, b.ca.CellID)
        np.testing.assert_array_equal(a.ra.Gene, b.ra.Gene)
        assert set(a.layers.keys()) == set(b.layers.keys()) == {"", "raw", "original"}
        for layer in ("raw", "original"):
            np.testing.assert_array_equal(a.layers[layer][:, :], b.layers[layer][:, :])
        assert_same_imputation(b[:, :], a[:, :], a.layers["raw"][:, :])


def test_score_writes_scores_and_plots(pipeline_run):
    scores = json.loads((pipeline_run["scored"] / "mouse1m.scores.json").read_text())
    assert scores["cells"] == 10000 and 0 < scores["pearson"] <= 1
    assert sorted(p.name for p in (pipeline_run["scored"] / "mouse1m.plots").iterdir()) == [
        "imputed_vs_true.png",
        "mse_distributions.png",
    ]
