"""The errors a step reports as one line and exit code 2, never as a traceback.

Each names what it is about (a file, or an option) and the problem::

    Error: counts.loom: the matrix holds negative values (-1); ...
    Error: results/model: exists and is not a model written by 'deepimpute train'; ...
    Error: --device gpu: TensorFlow sees no GPU

The kinds tell who can fix it: :class:`InputError` (a file given to read),
:class:`ModelError` (a model given to read), :class:`OutputError` (where a result is to be
written), :class:`ParameterError` (option values that cannot work together or with the data)
and :class:`DeviceError` (the hardware asked for).

Code below the edges names an option by its parameter name, marked with :func:`option_name`;
each surface spells the marks its own way (``--max-cells`` on the command line, ``max_cells``
in Python) with :meth:`DeepImputeError.spelled`, from the one mapping that
:func:`deepimpute_tool.options.spellings` makes of the declarations.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

EXIT_CODE = 2
_OPTION_MARK = re.compile(r"\u27e8([a-z][a-z0-9_]*)\u27e9")


def option_name(name: str) -> str:
    """The option ``name`` (its parameter name) marked, for each surface to spell its own way."""
    return f"\u27e8{name}\u27e9"


def spell(text: str, spelling: Mapping[str, str]) -> str:
    """``text`` with each marked option spelled as ``spelling`` says (else by its parameter name)."""
    return _OPTION_MARK.sub(lambda match: spelling.get(match[1], match[1]), text)


class DeepImputeError(Exception):
    """A problem reported as ``WHAT: problem`` with exit code 2.

    Parameters
    ----------
    what
        The file (a path) or the option (``--flag value``) the problem is about; None when
        the problem is about no one thing.
    problem
        What is wrong, and where it helps, what to do instead.
    """

    def __init__(self, what: str | os.PathLike | None, problem: str) -> None:
        self.what = None if what is None else os.fspath(what)
        self.problem = problem
        super().__init__(self.spelled({}))

    def spelled(self, spelling: Mapping[str, str]) -> str:
        """``WHAT: problem``, each option named in it spelled as ``spelling`` says."""
        problem = spell(self.problem, spelling)
        if self.what is None:
            return problem
        # a path is never respelled: only an option (ParameterError, DeviceError) is marked
        what = self.what if isinstance(self, InputError | OutputError) else spell(self.what, spelling)
        return f"{what}: {problem}"

    @property
    def path(self) -> str | None:
        return self.what


class InputError(DeepImputeError):
    """A file given to read cannot be used: missing, unreadable, not counts, hostile."""


class ModelError(InputError):
    """A model directory or zip cannot be used: incomplete, damaged, incompatible, malformed."""


class OutputError(DeepImputeError):
    """A result cannot be written where it was asked for, or would overwrite something else."""


class ParameterError(DeepImputeError):
    """Option values that cannot work, named by their flags."""


class DeviceError(DeepImputeError):
    """The device asked for is not there."""
