"""The Galaxy surface of the options: the macros of galaxy/options.xml and a workflow's parameter inputs.

Called by :mod:`deepimpute_tool.surfaces`, which says which steps have tools and writes the files.
"""

from __future__ import annotations

import json
from xml.sax.saxutils import escape, quoteattr

from deepimpute_tool.errors import spell
from deepimpute_tool.options import Declared, declared, spellings


def _number(value) -> str:
    return str(value) if isinstance(value, int) else format(value, ".10g")


def _galaxy_param(item: Declared) -> str:
    spec = item.option
    attributes = {"argument": item.flag}
    children = []
    if item.type is bool:
        attributes.update(
            type="boolean", truevalue=item.flag, falsevalue=item.off_flag, checked=str(item.default).lower()
        )
    elif spec.choices:
        attributes["type"] = "select"
        labels = spec.choice_labels or spec.choices
        for value, label in zip(spec.choices, labels):
            selected = ' selected="true"' if value == item.default else ""
            label = escape(spell(label, spellings("galaxy")))
            children.append(f"<option value={quoteattr(value)}{selected}>{label}</option>")
    elif item.type is str:
        attributes.update(type="text", value=item.default or "")
        if spec.pattern:
            pattern = spec.pattern.replace("+$", "*$") if item.optional else spec.pattern
            children.append(f'<validator type="regex" message="Letters, digits, \'_\', \'.\' and \'-\' only">'
                            f"{escape(pattern)}</validator>")  # fmt: skip
    else:
        attributes["type"] = "integer" if item.type is int else "float"
        if item.default is not None:
            attributes["value"] = _number(item.default)
        for bound, value, is_open in (
            ("min", spec.minimum, spec.min_open),
            ("max", spec.maximum, spec.max_open),
        ):
            if value is not None and not is_open:
                attributes[bound] = _number(value)
        if spec.min_open or spec.max_open:
            limits = {"min": spec.minimum, "max": spec.maximum}
            validator = " ".join(f'{k}="{_number(v)}"' for k, v in limits.items() if v is not None)
            excluded = (
                f' exclude_min="{str(spec.min_open).lower()}" exclude_max="{str(spec.max_open).lower()}"'
            )
            children.append(f'<validator type="in_range" {validator}{excluded} message="Out of range"/>')
    if item.optional:
        attributes["optional"] = "true"
    help_text = spell(spec.help, spellings("galaxy"))
    attributes.update(
        label=spec.label,
        help=help_text + (f" Leave empty for {spec.default_text or 'none'}." if item.optional else ""),
    )
    head = "<param " + " ".join(f"{k}={quoteattr(v)}" for k, v in attributes.items())
    if not children:
        return head + "/>"
    return "\n".join([head + ">", *(f"    {c}" for c in children), "</param>"])


def _galaxy_argument(item: Declared) -> list[str]:
    variable = ("$advanced." if item.option.section == "advanced" else "$") + item.name
    if item.type is bool:
        return [variable]
    value = f"'{variable}'" if item.type is str and not item.option.choices else variable
    if item.optional:
        return [f"#if str({variable}):", f"    {item.flag} {value}", "#end if"]
    return [f"{item.flag} {value}"]


def _form_options(classes: type | tuple[type, ...]) -> list[Declared]:
    """The options of one class, or of several in one form, an option they share once."""
    found: dict[str, Declared] = {}
    for cls in classes if isinstance(classes, tuple) else (classes,):
        for item in declared(cls):
            if item.option.galaxy:
                found.setdefault(item.name, item)
    return list(found.values())


def macros(
    steps: dict[str, type | tuple[type, ...]], *, without_arguments: tuple[str, ...], generated: str
) -> str:
    """``galaxy/options.xml``: for each step of ``steps`` (a tool of one step, or of several in one
    form), a macro ``<step>_options`` with its form parameters and, unless in
    ``without_arguments``, a token ``@<STEP>_ARGS@`` with the command-line arguments they make."""
    lines = ["<macros>", f"    <!-- {generated} -->"]
    for step, classes in steps.items():
        items = _form_options(classes)
        lines.append(f'    <xml name="{step}_options">')
        for item in items:
            if item.option.section == "main":
                lines += [f"        {line}" for line in _galaxy_param(item).splitlines()]
        advanced = [item for item in items if item.option.section == "advanced"]
        if advanced:
            lines.append('        <section name="advanced" title="Advanced options" expanded="false">')
            for item in advanced:
                lines += [f"            {line}" for line in _galaxy_param(item).splitlines()]
            lines.append("        </section>")
        lines.append("    </xml>")
        if step not in without_arguments:
            lines.append(f'    <token name="@{step.upper()}_ARGS@"><![CDATA[')
            lines += [f"    {line}" for item in items for line in _galaxy_argument(item)]
            lines.append("    ]]></token>")
    return "\n".join([*lines, "</macros>", ""])


def workflow(text: str, steps: dict[str, type | tuple[type, ...]]) -> str:
    """A workflow (``.ga`` text) with each parameter input named after an option of ``steps`` given
    that option's default and help."""
    workflow = json.loads(text)
    options = {item.name: item for classes in steps.values() for item in _form_options(classes)}
    for step in workflow["steps"].values():
        item = options.get(step["label"]) if step["type"] == "parameter_input" else None
        if item is None:
            continue
        state = json.loads(step["tool_state"])
        state.pop("default", None)
        if item.default is not None:
            state["default"] = item.default
        step["tool_state"] = json.dumps(state)
        step["annotation"] = spell(item.option.help, spellings("galaxy"))
    return json.dumps(workflow, indent=4, ensure_ascii=False) + "\n"
