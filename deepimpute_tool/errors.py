"""The one exception type the command line turns into a one-line error."""

from __future__ import annotations


class InputError(Exception):
    """A problem with a file the user gave: reported as ``PATH: problem``, exit code 2."""

    def __init__(self, path: str | None, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)
