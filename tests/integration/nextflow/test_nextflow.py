"""The Nextflow pipeline, checked with Nextflow's own language server and parser.

Nextflow itself cannot run here (no registry serves it), so: the language server must report
no error or warning on any script or config; each module's `script:` block, taken by the
parser and rendered by Groovy with inputs filled in and `task.ext.args` evaluated from
conf/modules.config as Nextflow does, runs with bash in the order the workflow wires the
processes, on real data; and what the parser misses (emit names, call arities, profiles, the
schemas' rules, the nf-test files) is checked directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepimpute_tool import __version__
from tests.helpers import MOUSE1M, REPO, assert_same_imputation, read_matrix, require
from tests.integration.nextflow.nextflow_support import (
    Pipeline,
    StagedFile,
    config_params,
    diagnostics,
    ext_settings,
)

MAIN_NF, CONFIG = REPO / "main.nf", REPO / "nextflow.config"
PARAMS, MODULES_CONFIG, SCHEMA = (
    REPO / "conf" / "params.config",
    REPO / "conf" / "modules.config",
    REPO / "nextflow_schema.json",
)
SAMPLESHEET_SCHEMA = REPO / "assets" / "schema_input.json"
MODULES = sorted((REPO / "modules" / "local" / "deepimpute").glob("*/main.nf"))
MULTIQC_MODULE = REPO / "modules" / "local" / "multiqc" / "main.nf"
SCRIPTS = [MAIN_NF, REPO / "workflows" / "deepimpute.nf", *MODULES, MULTIQC_MODULE]
CONFIGS = [CONFIG, *sorted((REPO / "conf").glob("*.config"))]
PROFILES = (
    "test", "test_full", "docker", "singularity", "apptainer", "podman", "conda", "gpu", "slurm", "awsbatch"
)  # fmt: skip
BIOCONTAINER = f"deepimpute-tool:{__version__}--pyhdfd78af_0"  # bioconda's build of a noarch: python recipe
# the MultiQC the pipeline's module pins, which tests/run_all.sh installs in a virtualenv of its own
MQC_VENV = REPO / os.environ.get("MQC_VENV", ".venv-multiqc")
MULTIQC_VERSION = re.search(
    r"bioconda::multiqc=([\d.]+)", (REPO / "modules" / "local" / "multiqc" / "environment.yml").read_text()
).group(1)


@pytest.fixture(scope="module", autouse=True)
def language_server_available(request):
    require(request.config, shutil.which("java") is not None, "Nextflow's language server needs java")


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(SCRIPTS)


def _problems(found: dict[Path, list[dict]], root: Path) -> list[str]:
    return [
        f"{path.relative_to(root)}:{d['range']['start']['line'] + 1}: {d['message']}"
        for path, items in found.items()
        for d in items
        if d.get("severity") in (1, 2)
    ]


def test_language_server_reports_no_error_or_warning():
    found = diagnostics([*SCRIPTS, *CONFIGS], root=REPO)
    missing = sorted(str(path.relative_to(REPO)) for path in {*SCRIPTS, *CONFIGS} - set(found))
    assert missing == [], "the language server sent no report on these files"
    assert _problems(found, REPO) == []


def test_a_missing_language_server_is_no_report_at_all(tmp_path):
    """Without a server nothing is reported, so the check above fails instead of passing empty."""
    found = diagnostics([MAIN_NF], root=REPO, timeout=15, jar=str(tmp_path / "no-such-server.jar"))
    assert found == {}


def test_the_language_server_reports_an_error_in_a_broken_main_nf(tmp_path):
    for path in (MAIN_NF, *SCRIPTS[1:]):
        target = tmp_path / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    broken = tmp_path / "main.nf"
    broken.write_text(broken.read_text().replace("workflow {", "workflow {\n    def x = (", 1))
    found = diagnostics([broken], root=tmp_path)
    assert list(found) == [broken]
    assert any(": " in problem for problem in _problems(found, tmp_path))


def _emits(process) -> set[str]:
    return {m for line in process.outputs for m in re.findall(r"emit:\s*(\w+)", line)}


def _top_level_arguments(text: str) -> int:
    depth, count = 0, 1 if text.strip() else 0
    for char in text:
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        count += char == "," and depth == 0
    return count


def test_every_emit_used_exists(pipeline):
    used = re.findall(r"\b([A-Z_]+)\.out\.(\w+)", pipeline.workflow)
    assert used
    for name, emit in used:
        if name in pipeline.processes:
            assert emit in _emits(pipeline.processes[name]), f"{name}.out.{emit}"
        else:  # the DEEPIMPUTE workflow's own emits
            assert re.search(rf"^\s*{emit}\s*=", pipeline.workflow, flags=re.MULTILINE), f"{name}.out.{emit}"


def _calls(text: str, name: str) -> list[str]:
    """The argument lists of every call of ``name`` in ``text``, over as many lines as they take."""
    found = []
    for match in re.finditer(rf"(?<![.\w]){name}\(", text):
        depth = 0
        for end in range(match.end() - 1, len(text)):
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            if depth == 0:
                found.append(text[match.end() : end].strip().rstrip(","))
                break
    return found


def test_every_process_is_called_with_as_many_inputs_as_it_declares(pipeline):
    for name, process in pipeline.processes.items():
        calls = _calls(pipeline.workflow, name)
        assert calls, f"{name} is never called"
        for arguments in calls:
            assert _top_level_arguments(arguments) == len(process.inputs), f"{name}({arguments})"


def test_modules_follow_nf_core_conventions(pipeline):
    assert {path.parent.name for path in MODULES} == {
        "filter",
        "mask",
        "train",
        "split",
        "impute",
        "merge",
        "score",
        "report",
    }
    for name, process in pipeline.processes.items():
        directives = " ".join(process.directives)
        if name == "MULTIQC":  # a report of every sample: no meta, no deepimpute executable
            versions = _versions_output(process)
            assert "emit: versions_multiqc" in versions and "conda " in directives
            # it collects the topic 'versions': giving into it too, it would wait for itself forever
            assert "topic:" not in versions and "channel.topic('versions')" in MAIN_NF.read_text()
            continue
        module = pipeline.process_files[name].parent
        assert name == f"DEEPIMPUTE_{module.name.upper()}"
        assert "tag " in directives and "label 'process_" in directives, name
        assert process.inputs[0].startswith("tuple val(meta)"), name
        versions = _versions_output(process)
        assert "emit: versions_deepimpute" in versions and "val('deepimpute')" in versions, name
        assert versions.endswith("topic: versions"), name
        assert "publishDir" not in directives, f"{name}: that belongs in config"
        assert 'conda "${moduleDir}/environment.yml"' in directives, name
        assert "task.ext.args" in process.script and "task.ext.prefix" in process.stub, name
        assert re.search(r"\bdeepimpute-\w+", process.script), f"{name} calls no bin/ executable"
        assert "params." not in process.script + process.stub, (
            f"{name} reads params: give them through ext.args"
        )
        text = pipeline.process_files[name].read_text()
        assert "when:\n    task.ext.when == null || task.ext.when" in text and process.stub
        meta = (module / "meta.yml").read_text()
        assert f"name: deepimpute_{module.name}" in meta and "10.1186/s13059-019-1837-6" in meta
        for emit in _emits(process):
            assert re.search(rf"^  {emit}:", meta, flags=re.MULTILINE), f"{module.name}/meta.yml lacks {emit}"


def _versions_output(process) -> str:
    """The output that gives the process's tool and version (``eval``), as nf-core's template."""
    found = [output for output in process.outputs if "eval(" in output]
    assert len(found) == 1, process.name
    return found[0]


def _container(pipeline: Pipeline, process, *, engine: str, accelerator: int | None = None) -> str:
    directive = next(d for d in process.directives if d.startswith("container "))
    return str(pipeline.evaluate(
        {"task": {"accelerator": accelerator, "ext": {}}, "workflow": {"containerEngine": engine}},
        directive.removeprefix("container "),
    ))  # fmt: skip


def test_every_module_names_its_biocontainer_and_train_the_gpu_image(pipeline):
    for name, process in pipeline.processes.items():
        image = f"multiqc:{MULTIQC_VERSION}--pyhdfd78af_0" if name == "MULTIQC" else BIOCONTAINER
        for engine in ("docker", "podman"):
            assert _container(pipeline, process, engine=engine) == f"biocontainers/{image}", name
        for engine in ("singularity", "apptainer"):
            expected = f"https://depot.galaxyproject.org/singularity/{image}"
            assert _container(pipeline, process, engine=engine) == expected, name
        gpu = _container(pipeline, process, engine="docker", accelerator=1)
        expected = (
            f"deepimpute-tool:{__version__}-gpu" if name == "DEEPIMPUTE_TRAIN" else f"biocontainers/{image}"
        )
        assert gpu == expected, name
    assert not re.search(r"^\s*(process\.)?container\s*=", CONFIG.read_text(), flags=re.MULTILINE), (
        "each module names its container"
    )


def test_every_param_is_in_the_schema_with_its_default_and_the_reverse():
    params = config_params(PARAMS)
    schema = json.loads(SCHEMA.read_text())
    described = {k: v for group in schema["$defs"].values() for k, v in group["properties"].items()}
    assert set(params) == set(described)
    for name, value in params.items():
        if value is not None:
            assert described[name].get("default") == value, name
    used = set(re.findall(r"(?<![/\w])params\.(\w+)", "".join(p.read_text() for p in [*SCRIPTS, *CONFIGS])))
    assert used <= set(params), used - set(params)
    assert "includeConfig 'conf/params.config'" in CONFIG.read_text()


def test_param_defaults_equal_the_command_line_defaults():
    from deepimpute_tool.training import TrainingParameters

    params = config_params(PARAMS)
    for name, default in TrainingParameters().__dict__.items():
        if name in params:
            assert params[name] == default, name
    assert "cores" not in params  # each task's cpus


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
    assert "docker.enabled = true" in profiles["docker"] and "-u $(id -u):$(id -g)" in profiles["docker"]
    assert "singularity.enabled = true" in profiles["singularity"]
    assert "--gpus all" in profiles["gpu"] and "--nv" in profiles["gpu"]
    assert (
        "apptainer.enabled = true" in profiles["apptainer"] and "podman.enabled = true" in profiles["podman"]
    )
    assert "conda.enabled = true" in profiles["conda"]
    gpu_label = re.search(r"withLabel:\s*process_gpu\s*\{([^}]*)\}", profiles["gpu"]).group(1)
    assert "accelerator = 1" in gpu_label
    assert "params.device = 'gpu'" in profiles["gpu"]
    assert "executor = 'slurm'" in profiles["slurm"]
    assert "executor = 'awsbatch'" in profiles["awsbatch"]
    for test in ("test", "test_full"):
        assert f"includeConfig 'conf/{test}.config'" in profiles[test]
        test_input = re.search(
            r'input = "\$\{projectDir\}/(.+)"', (REPO / "conf" / f"{test}.config").read_text()
        ).group(1)
        assert (REPO / test_input).is_file(), test
    # every label a module uses has resources in base.config, as nf-core's template sets them
    base = (REPO / "conf" / "base.config").read_text()
    for label in {m for path in MODULES for m in re.findall(r"label '(process_\w+)'", path.read_text())} - {
        "process_gpu"
    }:
        assert f"withLabel: {label} {{" in base, label
    assert re.search(r"withLabel: process_medium \{\s*cpus = \{ 6 \* task.attempt \}", base)


def test_reports_never_block_a_second_run():
    text = CONFIG.read_text()
    for kind in ("timeline", "report", "trace", "dag"):
        block = _profile(text, kind)
        assert "enabled = true" in block and "new Date().format(" in block, kind


# ------------------------------------------------------------ schemas' rules

HOSTILE_NAMES = ["s1'; touch PWNED; echo '", "a b", "$(id)", "../up", "-rf", "", ".hidden", "x\ny"]
GOOD_NAMES = ["s1", "PBMC_3k", "donor-2.rep1"]


def test_samplesheet_schema_refuses_names_that_could_reach_a_shell():
    import jsonschema

    schema = json.loads(SAMPLESHEET_SCHEMA.read_text())
    path = str(MOUSE1M)
    for name in GOOD_NAMES:
        jsonschema.validate([{"sample": name, "path": path}], schema)
    for name in HOSTILE_NAMES:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate([{"sample": name, "path": path}], schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([{"sample": "s1"}], schema)  # a missing column


def test_main_refuses_hostile_sample_names_itself(pipeline):
    """For globs (no samplesheet) and as a second guard: main.nf's own pattern, evaluated by Groovy."""
    pattern = re.search(r"meta\.id ==~ (/[^/]+/)", MAIN_NF.read_text()).group(1)
    for name, expected in [*((n, True) for n in GOOD_NAMES), *((n, False) for n in HOSTILE_NAMES)]:
        assert bool(pipeline.evaluate({"name": name}, f"name ==~ {pattern}")) is expected, name


def test_default_params_are_valid_and_wrong_ones_are_not():
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    params = {k: v for k, v in config_params(PARAMS).items() if v is not None}
    jsonschema.validate({**params, "input": "samples.csv"}, schema)
    for wrong in ({"max_epochs": 0}, {"subset_split": "halves"}, {"dropout": 1.0}, {"labels": "Cell'Type"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**params, "input": "samples.csv", **wrong}, schema)


# -------------------------------------------------------------- nf-test files


def test_every_module_has_an_nf_test_that_the_parser_reads(pipeline):
    import jpype

    for module in [*MODULES, MULTIQC_MODULE]:
        name = "MULTIQC" if module == MULTIQC_MODULE else f"DEEPIMPUTE_{module.parent.name.upper()}"
        test = module.parent / "tests" / "main.nf.test"
        text = test.read_text()
        jpype.JClass("groovy.lang.GroovyShell")().parse(text)  # a syntax error raises
        assert f'process "{name}"' in text and 'script "../main.nf"' in text
        inputs = {int(n) for n in re.findall(r"input\[(\d+)\]", text)}
        assert inputs == set(range(len(pipeline.processes[name].inputs))), test
        for emit in re.findall(r"process\.out\.(\w+)", text):
            assert emit in _emits(pipeline.processes[name]), f"{test}: {emit}"
        assert 'options "-stub"' in text, f"{test} has no stub test"


def test_the_pipeline_level_nf_test_matches_the_test_profile(pipeline, tmp_path):
    """tests/default.nf.test runs main.nf with -profile test: its expectations must be those the
    test profile and the pipeline give (the sample's name, the number of tasks, what is published)."""
    import jpype

    text = (REPO / "tests" / "default.nf.test").read_text()
    jpype.JClass("groovy.lang.GroovyShell")().parse(text)
    assert 'script "../main.nf"' in text and 'profile "test"' in text
    config = tmp_path / "test.config"
    config.write_text((REPO / "conf" / "test.config").read_text().replace("${projectDir}", str(REPO)))
    test = config_params(config)
    sample = Path(test["input"]).name.split(".")[0]
    assert f"def sample = '{sample}'" in text
    cells = read_matrix(Path(test["input"])).shape[1]
    chunks = -(-cells // test["chunk_size"])
    steps = ["DEEPIMPUTE_FILTER", "DEEPIMPUTE_MASK", "DEEPIMPUTE_TRAIN", "DEEPIMPUTE_SPLIT", "DEEPIMPUTE_MERGE",
             "DEEPIMPUTE_SCORE", "DEEPIMPUTE_REPORT", "MULTIQC"]  # fmt: skip
    assert set(pipeline.processes) == {*steps, "DEEPIMPUTE_IMPUTE"} and test["evaluate"] is True
    assert f"workflow.trace.succeeded().size() == {len(steps) + chunks}" in text
    assert f"max_epochs == {test['max_epochs']}" in text and f"scores.cells == {cells}" in text
    assert f"scores.clustering.labels == '{test['labels']}'" in text


# ------------------------------------------- the workflow's scripts, run in order


class TaskRunner:
    """Runs a process's rendered script in its own work directory, with staged inputs."""

    def __init__(self, pipeline: Pipeline, params: dict, root: Path):
        self.pipeline, self.params, self.root = pipeline, params, root
        self.count = 0
        python_bin = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            # MultiQC from its own virtualenv, after everything else (its python must not shadow ours)
            "PATH": f"{REPO / 'bin'}:{python_bin}:{os.environ['PATH']}:{MQC_VENV / 'bin'}",
            "PYTHONPATH": str(REPO),
        }

    def run(
        self, process: str, meta: dict, inputs: dict, stage_as: str | dict = "", stub: bool = False
    ) -> Path:
        """Run ``process`` with ``inputs`` (paths or lists of paths by name) staged in its work
        directory, or in its folder ``stage_as`` (one for every input, or by input name)."""
        self.count += 1
        work = self.root / f"{self.count:02d}_{process}"
        work.mkdir(parents=True)
        ext = ext_settings(MODULES_CONFIG, process, self.params, self.pipeline)
        variables = {"meta": meta, "task": {"process": process, "cpus": 2, "attempt": 1, "ext": ext}}
        for name, value in inputs.items():
            folder = stage_as.get(name, "") if isinstance(stage_as, dict) else stage_as
            (work / folder).mkdir(parents=True, exist_ok=True)
            staged = []
            for path in value if isinstance(value, list) else [value]:
                (work / folder / path.name).symlink_to(path.resolve())
                staged.append(StagedFile(str(Path(folder) / path.name) if folder else path.name))
            variables[name] = staged if isinstance(value, list) else staged[0]
        command = self.pipeline.command(process, variables, stub=stub)
        result = subprocess.run(
            ["bash", "-ue", "-c", command], cwd=work, env=self.env, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{process} failed:\n{command}\n{result.stderr[-3000:]}"
        # what Nextflow's eval() output runs in the task's directory after the script
        version = re.search(r"eval\('(.+)'\)", _versions_output(self.pipeline.processes[process])).group(1)
        found = subprocess.run(
            ["bash", "-c", version], cwd=work, env=self.env, capture_output=True, text=True
        )
        expected = MULTIQC_VERSION if process == "MULTIQC" else __version__
        assert found.stdout.strip() == expected, (version, found.stdout, found.stderr)
        return work


@pytest.fixture(scope="module")
def pipeline_run(pipeline, tmp_path_factory):
    """FILTER, MASK, TRAIN, SPLIT, IMPUTE per chunk, MERGE, SCORE on mouse1m_10k in 4 chunks."""
    params = config_params(PARAMS)
    params.update(min_genes=0, min_cells=1, max_epochs=2, chunk_size=2500, evaluate=True, labels=None)
    runner = TaskRunner(pipeline, params, tmp_path_factory.mktemp("nextflow"))
    meta = {"id": "mouse1m"}
    filtered = runner.run("DEEPIMPUTE_FILTER", meta, {"counts": MOUSE1M})
    work = runner.run("DEEPIMPUTE_MASK", meta, {"loom": filtered / "mouse1m.filtered.loom"})
    masked = work / "mouse1m.masked.loom"
    model = runner.run("DEEPIMPUTE_TRAIN", meta, {"loom": masked}) / "mouse1m.model"
    chunks = sorted((runner.run("DEEPIMPUTE_SPLIT", meta, {"loom": masked}) / "chunks").glob("*.loom"))
    imputed = []
    for chunk in reversed(chunks):  # Nextflow gives no order guarantee
        work = runner.run("DEEPIMPUTE_IMPUTE", meta, {"chunk": chunk, "model": model})
        imputed.append(work / f"{chunk.name.removesuffix('.loom')}.imputed.loom")
    merged = (
        runner.run("DEEPIMPUTE_MERGE", meta, {"chunks": imputed}, stage_as="chunks") / "mouse1m.imputed.loom"
    )
    scored = runner.run("DEEPIMPUTE_SCORE", meta, {"loom": merged})
    figures = [filtered / "mouse1m.qc.png", model.parent / "mouse1m.loss.png", scored / "mouse1m.plots"]
    report = runner.run(
        "DEEPIMPUTE_REPORT",
        meta,
        {"counts": filtered / "mouse1m.filtered.loom", "model": model, "scores": scored / "mouse1m.scores.json",
         "figures": figures},
        stage_as={"figures": "figures"},
    )  # fmt: skip
    return {
        "report": report / "mouse1m.multiqc",
        "filtered": filtered,
        "masked": masked,
        "model": model,
        "chunks": chunks,
        "merged": merged,
        "scored": scored,
        "runner": runner,
    }


def test_a_counts_layer_is_read_by_filter_alone(pipeline, tmp_path):
    """⟨layer⟩ chooses the counts of the h5ad the pipeline is given; the later steps read filter's
    Loom, which has no layers to choose from (passing it on made train refuse the Loom)."""
    params = config_params(PARAMS)
    params.update(min_genes=0, min_cells=1, max_epochs=1, layer="counts")
    runner = TaskRunner(pipeline, params, tmp_path)
    meta = {"id": "pbmc"}
    filtered = runner.run("DEEPIMPUTE_FILTER", meta, {"counts": REPO / "galaxy/test-data/pbmc_small.h5ad"})
    model = runner.run("DEEPIMPUTE_TRAIN", meta, {"loom": filtered / "pbmc.filtered.loom"}) / "pbmc.model"
    chunk = next(
        (runner.run("DEEPIMPUTE_SPLIT", meta, {"loom": filtered / "pbmc.filtered.loom"}) / "chunks").glob(
            "*.loom"
        )
    )
    work = runner.run("DEEPIMPUTE_IMPUTE", meta, {"chunk": chunk, "model": model})
    imputed = read_matrix(work / f"{chunk.name.removesuffix('.loom')}.imputed.loom")
    assert imputed.shape[1] == 80 and np.isfinite(imputed).all()


def test_filter_and_train_draw_their_figures(pipeline_run):
    png = b"\x89PNG\r\n\x1a\n"
    assert (pipeline_run["filtered"] / "mouse1m.qc.png").read_bytes().startswith(png)
    assert (pipeline_run["model"].parent / "mouse1m.loss.png").read_bytes().startswith(png)


def test_train_receives_the_params_through_ext_args(pipeline_run):
    model = json.loads((pipeline_run["model"] / "model.json").read_text())
    assert model["parameters"]["max_epochs"] == 2 and model["parameters"]["cores"] == 2
    assert model["parameters"]["learning_rate"] == config_params(PARAMS)["learning_rate"]


def test_split_makes_four_chunks(pipeline_run):
    assert len(pipeline_run["chunks"]) == 4


def test_merged_output_equals_single_process_impute(pipeline_run):
    import loompy

    single = pipeline_run["runner"].root / "single.loom"
    command = [
        sys.executable,
        str(REPO / "bin" / "deepimpute-impute"),
        pipeline_run["masked"],
        pipeline_run["model"],
    ]
    subprocess.run([*map(str, command), str(single), "--quiet"], check=True)
    with loompy.connect(str(single), "r") as a, loompy.connect(str(pipeline_run["merged"]), "r") as b:
        assert a.shape == b.shape == (a.shape[0], 10000)
        np.testing.assert_array_equal(a.ca.CellID, b.ca.CellID)
        np.testing.assert_array_equal(a.ra.Gene, b.ra.Gene)
        assert set(a.layers.keys()) == set(b.layers.keys()) == {"", "raw", "original", "detected_fill"}
        np.testing.assert_array_equal(a.ra.deepimpute_imputed, b.ra.deepimpute_imputed)
    for layer in ("raw", "original"):
        np.testing.assert_array_equal(read_matrix(single, layer), read_matrix(pipeline_run["merged"], layer))
    for layer in ("", "detected_fill"):
        assert_same_imputation(
            read_matrix(pipeline_run["merged"], layer), read_matrix(single, layer), read_matrix(single, "raw")
        )


def test_score_writes_scores_and_plots(pipeline_run):
    scores = json.loads((pipeline_run["scored"] / "mouse1m.scores.json").read_text())
    assert scores["cells"] == 10000 and 0 < scores["pearson"] <= 1
    assert sorted(p.name for p in (pipeline_run["scored"] / "mouse1m.plots").iterdir()) == [
        "imputed_vs_true.png",
        "mse_distributions.png",
    ]


def test_report_gives_multiqc_every_steps_results(pipeline_run):
    files = sorted(path.name for path in pipeline_run["report"].iterdir())
    assert files == [
        "mouse1m.deepimpute_figure_imputed_vs_true_mqc.json",
        "mouse1m.deepimpute_figure_loss_mqc.json",
        "mouse1m.deepimpute_figure_mse_distributions_mqc.json",
        "mouse1m.deepimpute_figure_qc_mqc.json",
        "mouse1m.deepimpute_loss_mqc.json",
        "mouse1m.deepimpute_scores_mqc.json",
        "mouse1m.deepimpute_stats_mqc.json",
    ]
    stats = json.loads((pipeline_run["report"] / "mouse1m.deepimpute_stats_mqc.json").read_text())["data"][
        "mouse1m"
    ]
    scores = json.loads((pipeline_run["scored"] / "mouse1m.scores.json").read_text())
    assert stats["cells"] == 10000 and stats["epochs"] == 2 and stats["pearson"] == scores["pearson"]


def _main_nf_groovy(pipeline: Pipeline, call: str, **values):
    """``call`` evaluated by Groovy after main.nf's own functions and closures it names."""
    text = MAIN_NF.read_text()
    function = re.search(
        r"^def escapeHtml\(.*?^def parametersSummary\(.*?^\}$", text, flags=re.MULTILINE | re.DOTALL
    ).group(0)
    versions = re.search(r"\.map (\{ process, tool, version -> .*\})$", text, flags=re.MULTILINE).group(1)
    return str(pipeline.evaluate(values, f"{function}\ndef versionLine = {versions}\n{call}"))


@pytest.fixture(scope="module")
def multiqc_report(pipeline, pipeline_run, tmp_path_factory, request):
    """MULTIQC's script on the report's files, the versions and the parameters as main.nf writes them."""
    require(request.config, (MQC_VENV / "bin" / "multiqc").exists(), "MultiQC's virtualenv (MQC_VENV)")
    inputs = tmp_path_factory.mktemp("multiqc_inputs")
    processes = ["DEEPIMPUTE_FILTER", "DEEPIMPUTE_TRAIN", "DEEPIMPUTE_SCORE"]
    lines = [_main_nf_groovy(pipeline, f"versionLine('DEEPIMPUTE:{name}', 'deepimpute', '{__version__}')")
             for name in processes]  # fmt: skip
    (inputs / "deepimpute_software_mqc_versions.yml").write_text("\n".join(lines) + "\n")
    summary = {"Input/output options": {"input": "mouse1m_10k.loom", "outdir": "results"},
               "Training options": {"max_epochs": 2}}  # fmt: skip
    (inputs / "deepimpute_parameters_mqc.yaml").write_text(
        _main_nf_groovy(pipeline, "parametersSummary(summary)", summary=summary)
    )
    runner = pipeline_run["runner"]
    files = [*sorted(pipeline_run["report"].iterdir()), *sorted(inputs.iterdir())]
    config = REPO / "assets" / "multiqc_config.yml"
    return runner.run(
        "MULTIQC", {}, {"multiqc_files": files, "multiqc_config": config}, stage_as={"multiqc_files": "1"}
    )


def test_multiqc_report_holds_every_section(multiqc_report):
    html = (multiqc_report / "multiqc_report.html").read_text()
    for text in ("DeepImpute: training loss", "DeepImpute: scores", "deepimpute-tool: parameters",
                 "max_epochs", "Software Versions", "DEEPIMPUTE_TRAIN"):  # fmt: skip
        assert text in html, text
    for figure in (
        "qc",
        "loss",
        "imputed_vs_true",
        "mse_distributions",
    ):  # each image is a section of its own
        assert f'id="deepimpute_figure_mouse1m_{figure}-section"' in html, figure
    general = (multiqc_report / "multiqc_data" / "multiqc_general_stats.txt").read_text().splitlines()
    header, row = general[0].split("\t"), general[1].split("\t")
    assert row[0] == "mouse1m" and row[header.index("custom_content_deepimpute_stats-cells")] == "10000"


def test_multiqc_report_opens_in_a_browser(multiqc_report, tmp_path, request):
    """The report as a reader sees it: rendered by chromium, its scripts run (the plots are drawn by them)."""
    require(request.config, shutil.which("chromium") is not None, "chromium")
    screenshot = tmp_path / "multiqc_report.png"
    chrome = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
              "--disable-background-networking", "--window-size=1400,1600", "--virtual-time-budget=20000",
              f"--user-data-dir={tmp_path / 'chrome'}"]  # fmt: skip
    page = (multiqc_report / "multiqc_report.html").as_uri()
    subprocess.run([*chrome, f"--screenshot={screenshot}", page], capture_output=True, timeout=180)
    dom = subprocess.run([*chrome, "--dump-dom", page], capture_output=True, text=True, timeout=180).stdout
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 50_000
    # plotly drew the loss curves into the page (an SVG of the plot exists only once scripts ran)
    assert 'id="deepimpute_loss_plot"' in dom and "main-svg" in dom
    if os.environ.get("MULTIQC_SCREENSHOT"):
        shutil.copyfile(screenshot, os.environ["MULTIQC_SCREENSHOT"])


def test_every_stub_makes_what_its_process_declares(pipeline, pipeline_run, request):
    require(request.config, (MQC_VENV / "bin" / "multiqc").exists(), "MultiQC's virtualenv (MQC_VENV)")
    runner, meta = pipeline_run["runner"], {"id": "stubbed"}
    inputs = {
        "DEEPIMPUTE_FILTER": {"counts": MOUSE1M},
        "DEEPIMPUTE_MASK": {"loom": MOUSE1M},
        "DEEPIMPUTE_TRAIN": {"loom": MOUSE1M},
        "DEEPIMPUTE_SPLIT": {"loom": MOUSE1M},
        "DEEPIMPUTE_IMPUTE": {"chunk": pipeline_run["chunks"][0], "model": pipeline_run["model"]},
        "DEEPIMPUTE_MERGE": {"chunks": pipeline_run["chunks"]},
        "DEEPIMPUTE_SCORE": {"loom": MOUSE1M},
        "DEEPIMPUTE_REPORT": {"counts": MOUSE1M, "model": pipeline_run["model"], "scores": [], "figures": []},
        "MULTIQC": {"multiqc_files": [MOUSE1M], "multiqc_config": REPO / "assets" / "multiqc_config.yml"},
    }
    assert set(inputs) == set(pipeline.processes)
    for name, staged in inputs.items():
        stage_as = {"DEEPIMPUTE_MERGE": "chunks", "MULTIQC": {"multiqc_files": "1"}}.get(name, "")
        work = runner.run(name, meta, staged, stage_as=stage_as, stub=True)
        for output in pipeline.processes[name].outputs:
            for pattern in re.findall(r'path[( ]"([^"]+)"', output):
                head, _, rest = pattern.partition("{")
                choices, _, tail = rest.partition("}")
                patterns = [head + choice + tail for choice in choices.split(",")] if rest else [pattern]
                assert any(list(work.glob(p)) for p in patterns), (
                    f"{name} stub makes nothing matching {pattern}"
                )


def test_merge_writes_anndata_when_asked_unless_a_score_needs_loom(pipeline):
    params = config_params(PARAMS)
    for evaluate, output_format, suffix in [
        (False, "h5ad", "h5ad"),
        (True, "h5ad", "loom"),
        (False, "loom", "loom"),
    ]:
        settings = ext_settings(MODULES_CONFIG, "DEEPIMPUTE_MERGE", {**params, "evaluate": evaluate,
                                "output_format": output_format}, pipeline)  # fmt: skip
        variables = {"meta": {"id": "s"}, "task": {"process": "DEEPIMPUTE_MERGE", "ext": settings},
                     "chunks": [StagedFile("chunks/a.loom")]}  # fmt: skip
        assert f"'s.imputed.{suffix}'" in pipeline.command("DEEPIMPUTE_MERGE", variables)
