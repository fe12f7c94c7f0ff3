"""One declaration per option: the command line, Nextflow and Galaxy are all made from it."""

from __future__ import annotations

import dataclasses
import json
import re

import click
import pytest
from click.testing import CliRunner

from deepimpute_tool import surfaces
from deepimpute_tool.cli import cli
from deepimpute_tool.errors import ParameterError
from deepimpute_tool.options import (
    PARAMETER_CLASSES,
    click_options,
    declared,
    option,
    parameters,
    shared_option,
    spellings,
    validate,
)
from deepimpute_tool.training import TrainingParameters
from tests.helpers import REPO


def test_generated_files_are_up_to_date():
    """Fails until `python -m deepimpute_tool.surfaces` is run after an option changes."""
    assert surfaces.stale() == []
    for name, make in surfaces.GENERATORS.items():  # every option named in them is spelled
        assert "\u27e8" not in make() and "\u27e9" not in make(), name


def test_every_command_has_exactly_the_declared_options():
    for name, classes in {
        "filter": surfaces.GALAXY_STEPS["filter"],
        "mask": surfaces.GALAXY_STEPS["mask"],
        "train": TrainingParameters,
        "impute": surfaces.GALAXY_STEPS["impute"],
    }.items():
        command = cli.commands[name]
        flags = {opt for p in command.params if isinstance(p, click.Option) for opt in p.opts}
        # paths of further outputs, like the arguments, are where results go: not parameters
        figures = {"--qc-plot", "--loss-plot"}
        assert flags - {"--quiet", "-q", "--help", "-h", *figures} == {
            item.flag for item in declared(classes)
        }, name


@dataclasses.dataclass(frozen=True)
class WithANewOption(TrainingParameters):
    warmup_epochs: int = option(
        0, minimum=0, section="advanced", label="Warm-up epochs", help="Epochs of rising learning rate."
    )


def test_a_new_option_reaches_every_surface_from_its_declaration(monkeypatch):
    monkeypatch.setattr(surfaces, "GALAXY_STEPS", {**surfaces.GALAXY_STEPS, "train": WithANewOption})
    groups = {**surfaces.SCHEMA_GROUPS}
    title, description, _ = groups["train_options"]
    groups["train_options"] = (title, description, (WithANewOption,))
    monkeypatch.setattr(surfaces, "SCHEMA_GROUPS", groups)
    monkeypatch.setattr(
        surfaces,
        "PROCESSES",
        {**surfaces.PROCESSES, "DEEPIMPUTE_TRAIN": ((WithANewOption,), surfaces.SAMPLE_FOLDER)},
    )

    schema = json.loads(surfaces.nextflow_schema())
    entry = schema["$defs"]["train_options"]["properties"]["warmup_epochs"]
    assert entry == {
        "type": "integer",
        "description": "Epochs of rising learning rate.",
        "default": 0,
        "minimum": 0,
    }
    assert "    warmup_epochs = 0\n" in surfaces.params_config()
    assert '"--warmup-epochs ${params.warmup_epochs}",' in surfaces.modules_config()
    macros = surfaces.galaxy_macros()
    assert re.search(
        r'<param argument="--warmup-epochs" type="integer" value="0" min="0" label="Warm-up epochs"', macros
    )
    assert "--warmup-epochs $advanced.warmup_epochs" in macros
    assert set(surfaces.stale()) == {
        "nextflow_schema.json",
        "conf/params.config",
        "conf/modules.config",
        "galaxy/options.xml",
    }

    @click.command()
    @click_options(WithANewOption)
    def command(**values):
        click.echo(values["warmup_epochs"])

    assert CliRunner().invoke(command, ["--warmup-epochs", "4"]).output == "4\n"
    assert CliRunner().invoke(command, ["--warmup-epochs", "-1"]).exit_code == 2


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dropout": 1.0}, "--dropout 1.0: must be below 1"),
        ({"learning_rate": 0.0}, "--learning-rate 0.0: must be above 0"),
        ({"subset_split": "halves"}, "--subset-split halves: expected one of equal, remainder"),
        ({"max_genes": 0}, "--max-genes 0: must be at least 1"),
        # NaN compares false with every bound, and infinity passes an open upper end
        ({"dropout": float("nan")}, "--dropout nan: must be a finite number"),
        ({"learning_rate": float("inf")}, "--learning-rate inf: must be a finite number"),
        ({"min_vmr": float("-inf")}, "--min-vmr -inf: must be a finite number"),
    ],
)
def test_values_are_checked_however_they_arrive_and_named_as_each_surface_names_them(values, message):
    with pytest.raises(ParameterError) as caught:
        TrainingParameters(**values)
    assert caught.value.spelled(spellings("cli")) == message
    flag, rest = message.split(" ", 1)
    name = flag.removeprefix("--").replace("-", "_")
    assert str(caught.value) == f"{name} {rest}"  # Python callers read the parameter's name
    assert caught.value.spelled(spellings("nextflow")) == f"--{name} {rest}"
    label = next(item.option.label for item in declared(TrainingParameters) if item.name == name)
    assert caught.value.spelled(spellings("galaxy")) == f"'{label}' {rest}"


def test_two_declarations_of_one_name_that_differ_are_refused():
    class SeedOfItsOwn:
        seed: int = option(1, label="Random seed", help="Another seed.")

    with pytest.raises(TypeError, match=r"SeedOfItsOwn\.seed differs from"):
        parameters(SeedOfItsOwn)

    class SharedSeed:
        seed: int = shared_option("seed")

    parameters(SharedSeed)
    helps = {item.option.help for cls in PARAMETER_CLASSES for item in declared(cls) if item.name == "seed"}
    assert len(helps) == 1


def test_no_module_below_the_edges_spells_an_option_as_a_flag():
    """Flags are the command line's spelling: compute modules name options with their marks."""
    flags = {item.flag for cls in PARAMETER_CLASSES for item in declared(cls)}
    edges = {"cli.py", "pp.py", "surfaces.py", "options.py", "errors.py"}  # the surfaces and their spellings
    found = []
    for path in sorted((REPO / "deepimpute_tool").rglob("*.py")):
        if path.name in edges:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for flag in re.findall(r"--[a-z][a-z0-9-]*", line):
                if flag in flags:
                    found.append(f"{path.relative_to(REPO)}:{number}: {flag}")
    assert not found, "\n".join(found)


def test_an_option_without_a_value_needs_one_unless_it_may_be_empty():
    @dataclasses.dataclass(frozen=True)
    class Needed:
        count: int = option(1, label="Count", help="How many.")

    with pytest.raises(ParameterError, match=r"^count: needs a value"):
        validate(Needed(count=None))


def test_defaults_the_documentation_states_are_the_declared_ones():
    """`--flag` (VALUE) in README.md and docs/ must be the flag's declared default."""
    defaults = {item.flag: item.default for cls in PARAMETER_CLASSES for item in declared(cls)}
    stated = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for flag, value in re.findall(r"`(--[a-z-]+)` \(([0-9][0-9.,e+-]*)[;)]", path.read_text()):
            stated.append((path.name, flag, value))
            assert flag in defaults, f"{path.name}: {flag} is no option"
            assert float(value.replace(",", "")) == defaults[flag], f"{path.name}: {flag} ({value})"
    assert len(stated) >= 5  # the training page states the paper's values
