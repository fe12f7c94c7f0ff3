"""The Nextflow modules' metadata as nf-core validates it: meta.yml and environment.yml against
nf-core/modules' own schemas (../shared/recipes/nf-core), offline, and in step with main.nf."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from deepimpute_tool import __version__
from tests.helpers import REPO

NF_CORE = REPO.parent / "shared" / "recipes" / "nf-core"
MODULES = [
    *sorted((REPO / "modules" / "local" / "deepimpute").iterdir()),
    REPO / "modules" / "local" / "multiqc",
]


def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((NF_CORE / name).read_text())
    return jsonschema.validators.validator_for(schema)(schema)


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.name)
def test_meta_yml_is_valid_against_nf_cores_meta_schema(module):
    meta = yaml.safe_load((module / "meta.yml").read_text())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _validator("meta-schema.json").iter_errors(meta)
    ]
    assert not errors, "\n".join(errors)
    # the outputs it documents are the ones main.nf emits, in the same order
    emits = re.findall(r"emit: (\w+)", (module / "main.nf").read_text())
    assert list(meta["output"]) == emits
    assert len(meta["input"]) == len(re.findall(r"^    (?:tuple|path|val)\b", _inputs(module), flags=re.M))


def _inputs(module: Path) -> str:
    text = (module / "main.nf").read_text()
    return text.split("input:", 1)[1].split("output:", 1)[0]


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.name)
def test_environment_yml_is_valid_and_pins_this_version(module):
    environment = yaml.safe_load((module / "environment.yml").read_text())
    errors = [e.message for e in _validator("environment-schema.json").iter_errors(environment)]
    assert not errors, "\n".join(errors)
    if module.name == "multiqc":  # the version its containers name
        version = re.search(r"multiqc:([\d.]+)--", (module / "main.nf").read_text()).group(1)
        assert environment["dependencies"] == [f"bioconda::multiqc={version}"]
    else:
        assert environment["dependencies"] == [f"bioconda::deepimpute-tool={__version__}"]


def test_a_meta_yml_in_the_old_list_form_is_refused():
    """The check can fail: the form these files had before is what nf-core's schema rejects."""
    meta = yaml.safe_load((MODULES[0] / "meta.yml").read_text())
    meta["output"] = [{name: elements} for name, elements in meta["output"].items()]
    assert list(_validator("meta-schema.json").iter_errors(meta))
