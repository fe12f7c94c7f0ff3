"""What publishing needs, kept in step with pyproject.toml: the bioconda recipe, CITATION.cff, CHANGELOG.md."""

from __future__ import annotations

import re

import tomllib
import yaml
from packaging.requirements import Requirement

from deepimpute_tool import __version__
from tests.helpers import REPO

RECIPE = REPO / "recipes" / "bioconda" / "meta.yaml"
CONDA_NAMES = {"matplotlib": "matplotlib-base", "igraph": "python-igraph"}  # conda-forge's names


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _recipe() -> dict:
    """meta.yaml with its Jinja variables and functions filled in, as conda-build renders it."""
    text = RECIPE.read_text()
    variables = dict(re.findall(r'{%\s*set (\w+) = "([^"]*)"\s*%}', text))
    text = re.sub(r"{%.*?%}", "", text)
    text = re.sub(r"{{\s*pin_subpackage\([^)]*\)\s*}}", "pinned", text)
    text = re.sub(r"{{\s*PYTHON\s*}}", "python", text)
    text = re.sub(r"{{\s*(\w+)\s*}}", lambda match: variables[match[1]], text)
    return yaml.safe_load(text)


def test_the_recipe_installs_what_pyproject_requires():
    recipe, project = _recipe(), _pyproject()
    assert recipe["package"] == {"name": project["name"], "version": __version__}
    assert recipe["source"]["url"].endswith(f"/deepimpute_tool-{__version__}.tar.gz")
    assert recipe["build"]["noarch"] == "python"
    wanted = [f"python {project['requires-python']}"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        wanted.append(f"{CONDA_NAMES.get(requirement.name, requirement.name)} {requirement.specifier}")
    assert recipe["requirements"]["run"] == wanted
    scripts = [f"{name} = {target}" for name, target in project["scripts"].items()]
    assert recipe["build"]["entry_points"] == scripts
    assert recipe["about"]["license"] == project["license"]
    assert "doi:10.1186/s13059-019-1837-6" in recipe["extra"]["identifiers"]


def test_the_recipe_notices_a_dependency_it_lacks():
    """The comparison can fail: a requirement added to pyproject and not to the recipe."""
    recipe = _recipe()
    run = [entry for entry in recipe["requirements"]["run"] if not entry.startswith("pandas")]
    assert run != recipe["requirements"]["run"]


def test_citation_and_changelog_name_this_version_and_the_paper():
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["version"] == __version__
    assert citation["preferred-citation"]["doi"] == "10.1186/s13059-019-1837-6"
    assert citation["preferred-citation"]["authors"][0]["family-names"] == "Arisdakessian"
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## [{__version__}]" in changelog and "## [Unreleased]" in changelog


def test_the_readme_links_work_on_a_package_index_page():
    """PyPI shows the README without the repository: every link is absolute, and each into this
    repository names a file that exists."""
    readme = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert targets and all(target.startswith(("https://", "#")) for target in targets), [
        target for target in targets if not target.startswith(("https://", "#"))
    ]
    ours = r"https://(?:github\.com/deepimpute-tool/deepimpute-tool/blob|raw\.githubusercontent\.com/deepimpute-tool/deepimpute-tool)/main/(.+)"
    inside = [match[1] for target in targets if (match := re.fullmatch(ours, target))]
    assert inside and all((REPO / path).exists() for path in inside), [
        p for p in inside if not (REPO / p).exists()
    ]
