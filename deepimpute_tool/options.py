"""Every option of every step, declared once as a dataclass field, and the command line made from it.

A step's parameters are a frozen dataclass beside the code that uses them; each field that
users may set is made with :func:`option`, whose metadata holds what every surface needs:
the flag, the help, the range or choices, the Galaxy label and section. The click options
(:func:`click_options`) are made from those fields here; the Nextflow schema, parameters and
process arguments and the Galaxy macros are generated from them by :mod:`deepimpute_tool.surfaces`.

Adding an option is adding a field (and using it)::

    patience: int = option(5, minimum=1, label="Early stopping patience (epochs)",
                           help="Stop a sub-network after this many epochs without improving.")

An option of several steps (the seed) is declared once, in :data:`SHARED`, and used with
:func:`shared_option`; two different declarations of one name are refused when the second
class is made. Messages below the edges name options with
:func:`deepimpute_tool.errors.option_name`; :func:`spellings` says how each surface spells them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click
import numpy as np

from deepimpute_tool.errors import ParameterError, option_name, spell

METADATA_KEY = "deepimpute_option"
SECTIONS = ("main", "advanced")


@dataclass(frozen=True)
class Option:
    """What every surface needs to know of one option besides its name, type and default.

    Attributes
    ----------
    help
        One or two sentences for ``--help``, the Nextflow schema and the Galaxy form.
    label
        A short title for the Galaxy form.
    minimum, maximum
        Bounds of a number; ``min_open``/``max_open`` exclude them.
    choices
        The allowed values of a text option, with ``choice_labels`` for the Galaxy form.
    pattern
        A regular expression that free text must match in full (Nextflow schema, Galaxy).
    section
        ``main`` or ``advanced``: where the option sits on the Galaxy form.
    galaxy, nextflow
        Whether the option appears on that surface at all (``--cores`` comes from the
        scheduler's slots there, not from a parameter).
    default_text
        What ``--help`` says for a default of None.
    """

    help: str
    label: str
    minimum: float | None = None
    maximum: float | None = None
    min_open: bool = False
    max_open: bool = False
    choices: tuple[str, ...] = ()
    choice_labels: tuple[str, ...] = ()
    pattern: str | None = None
    section: str = "main"
    galaxy: bool = True
    nextflow: bool = True
    default_text: str | None = None

    def __post_init__(self) -> None:
        if self.section not in SECTIONS:
            raise ValueError(f"section must be one of {SECTIONS}")
        if self.choice_labels and len(self.choice_labels) != len(self.choices):
            raise ValueError("one label per choice")


def option(default: Any, **declaration: Any) -> Any:
    """A dataclass field that users may set; ``declaration`` holds the :class:`Option` attributes."""
    return dataclasses.field(default=default, metadata={METADATA_KEY: Option(**declaration)})


# options of several steps: name -> (default, declaration)
SHARED: dict[str, tuple[Any, Option]] = {
    "seed": (
        0,
        Option(
            minimum=0,
            maximum=2**32 - 1,  # numpy's seeds are non-negative; TensorFlow's fit in 64 bits
            section="advanced",
            label="Random seed",
            help="Seed of every random draw of the step (masking, training cells and weights, "
            "dropout samples, clustering); the same seed gives the same result.",
        ),
    ),
    "layer": (
        None,
        Option(
            pattern=r"^[A-Za-z0-9_.-]+$",
            label="Layer of the raw counts (h5ad)",
            help="Where an h5ad input holds the raw counts: the name of a layer (e.g. counts), or raw "
            "for .raw.X.",
            default_text="X",
        ),
    ),
}


def shared_option(name: str) -> Any:
    """The field of the option ``name`` of :data:`SHARED`, for every step that has it."""
    default, declaration = SHARED[name]
    return dataclasses.field(default=default, metadata={METADATA_KEY: declaration})


@dataclass(frozen=True)
class Declared:
    """One option of a parameter class: its field with the type and declaration resolved."""

    name: str
    type: type
    optional: bool
    default: Any
    option: Option

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def off_flag(self) -> str:
        """The flag that turns off a boolean option that is on by default ('' for the others)."""
        return "--no-" + self.name.replace("_", "-") if self.type is bool and self.default else ""


@functools.cache
def declared(cls: type) -> tuple[Declared, ...]:
    """The options of a parameter dataclass, in field order."""
    hints = typing.get_type_hints(cls)
    found = []
    for item in dataclasses.fields(cls):
        if METADATA_KEY not in item.metadata:
            continue
        kind, optional = _plain_type(hints[item.name])
        found.append(Declared(item.name, kind, optional, item.default, item.metadata[METADATA_KEY]))
    return tuple(found)


def _plain_type(hint: Any) -> tuple[type, bool]:
    """``int`` -> (int, False); ``int | None`` -> (int, True)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(members) != 1:
            raise TypeError(f"an option is one type or None, not {hint}")
        return members[0], True
    return hint, False


def from_options(cls: type, values: Mapping[str, Any]):
    """An instance of ``cls`` from parsed options; names that are not its fields are ignored."""
    names = {item.name for item in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in values.items() if name in names})


# every parameter class made by parameters(), in the order they were made
PARAMETER_CLASSES: list[type] = []


def parameters(cls: type) -> type:
    """A step's parameters: a frozen dataclass whose values are checked by :func:`validate` when made.

    Raises TypeError when an option has the name of an option of an earlier class but another
    type, default or declaration: one name means one option on every surface.
    """
    cls.__post_init__ = validate
    made = dataclasses.dataclass(frozen=True)(cls)
    known = {item.name: (owner, item) for owner in PARAMETER_CLASSES for item in declared(owner)}
    for item in declared(made):
        owner, earlier = known.get(item.name, (None, item))
        if earlier != item:
            raise TypeError(
                f"{made.__name__}.{item.name} differs from {owner.__name__}.{item.name}: "
                "declare it once (options.SHARED) and use shared_option()"
            )
    PARAMETER_CLASSES.append(made)
    return made


SPELLINGS = ("cli", "python", "nextflow", "galaxy")


def spellings(surface: str = "cli") -> dict[str, str]:
    """How ``surface`` names each option: ``--max-cells`` (cli), ``max_cells`` (python),
    ``--max_cells`` (nextflow), or its form label in quotes (galaxy)."""
    if surface not in SPELLINGS:
        raise ValueError(f"surface must be one of {SPELLINGS}")
    spelled = {}
    for cls in PARAMETER_CLASSES:
        for item in declared(cls):
            spelled[item.name] = {
                "cli": item.flag,
                "python": item.name,
                "nextflow": f"--{item.name}",
                "galaxy": f"'{item.option.label}'",
            }[surface]
    return spelled


# what a value of each option type may be: (accepted, refused among them, in words); a bool is
# an int to Python, and 1.5 epochs or a "no" that is true must not pass from the Python API
_TYPES = {
    bool: ((bool, np.bool_), (), "True or False"),
    int: ((int, np.integer), (bool, np.bool_), "a whole number"),
    float: ((int, float, np.integer, np.floating), (bool, np.bool_), "a number"),
    str: ((str,), (), "text"),
}


def validate(instance: Any) -> None:
    """Raise :class:`ParameterError`, naming the option, for a value outside its declared range or choices.

    :func:`parameters` makes it every parameter class's ``__post_init__``, so a value is checked
    however it arrives (command line, Python, a pipeline's parameters).
    """
    for item in declared(type(instance)):
        value = getattr(instance, item.name)
        named = f"{option_name(item.name)} {value}"
        if value is None:
            if not item.optional:
                raise ParameterError(option_name(item.name), "needs a value")
            continue
        spec = item.option
        expected = _TYPES.get(item.type)
        if expected and (not isinstance(value, expected[0]) or isinstance(value, expected[1])):
            raise ParameterError(named, f"must be {expected[2]}, not {type(value).__name__}")
        if item.type is float and not math.isfinite(value):
            raise ParameterError(named, "must be a finite number")
        if spec.choices and value not in spec.choices:
            raise ParameterError(named, f"expected one of {', '.join(spec.choices)}")
        if spec.minimum is not None and (value < spec.minimum or (spec.min_open and value == spec.minimum)):
            raise ParameterError(
                named, f"must be {'above' if spec.min_open else 'at least'} {spec.minimum:g}"
            )
        if spec.maximum is not None and (value > spec.maximum or (spec.max_open and value == spec.maximum)):
            raise ParameterError(named, f"must be {'below' if spec.max_open else 'at most'} {spec.maximum:g}")


# --------------------------------------------------------------- command line


def _click_type(item: Declared) -> Any:
    spec = item.option
    if spec.choices:
        return click.Choice(spec.choices)
    bounded = spec.minimum is not None or spec.maximum is not None
    if item.type is int:
        if not bounded:
            return int
        return click.IntRange(spec.minimum, spec.maximum, min_open=spec.min_open, max_open=spec.max_open)
    if item.type is float:
        if not bounded:
            return float
        return click.FloatRange(spec.minimum, spec.maximum, min_open=spec.min_open, max_open=spec.max_open)
    return item.type


def click_option(item: Declared) -> Callable:
    """The click decorator of one declared option."""
    spec = item.option
    help_text = spell(spec.help, spellings("cli"))
    if item.type is bool:
        flags = f"{item.flag}/{item.off_flag}" if item.off_flag else item.flag
        return click.option(flags, item.name, is_flag=True, default=item.default, help=help_text)
    if item.default is None and spec.default_text:
        help_text += f"  [default: {spec.default_text}]"
    return click.option(
        item.flag,
        item.name,
        type=_click_type(item),
        default=item.default,
        show_default=item.default is not None,
        help=help_text,
    )


def click_options(*classes: type) -> Callable:
    """Decorate a click command with the options of ``classes``; an option in several counts once."""

    def apply(command: Callable) -> Callable:
        seen: set[str] = set()
        ordered = []
        for cls in classes:
            for item in declared(cls):
                if item.name not in seen:
                    seen.add(item.name)
                    ordered.append(item)
        for item in reversed(ordered):
            command = click_option(item)(command)
        return command

    return apply
