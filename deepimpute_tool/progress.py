"""Progress of long steps: a live line on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import TextIO

from deepimpute_tool.errors import spell


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Reports messages and the advance of a counted task on standard error.

    On a terminal one line is redrawn in place with the count, the elapsed time and the
    time left; when the output is a file or a pipe (Nextflow, Galaxy, CI logs), a plain
    line is written at most every ``log_every`` seconds and at the end. ``quiet``
    silences everything. Options named in messages are spelled as ``spelling`` says (see
    :func:`deepimpute_tool.options.spellings`), by their parameter names by default.
    """

    def __init__(
        self,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        log_every: float = 10.0,
        spelling: Mapping[str, str] | None = None,
    ):
        self.quiet = quiet
        self.spelling = spelling or {}
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.log_every = log_every
        self._started = time.monotonic()
        self._task_started = self._started
        self._last_line = 0.0
        self._open_line = False

    def message(self, text: str) -> None:
        if self.quiet:
            return
        self._close_line()
        print(
            f"[deepimpute {_duration(time.monotonic() - self._started):>6}] {spell(text, self.spelling)}",
            file=self.stream,
            flush=True,
        )

    def start(self) -> None:
        """Mark the start of a counted task (for the estimate of time left)."""
        self._task_started = time.monotonic()
        self._last_line = 0.0

    def advance(
        self, label: str, done: int, total: int, detail: str = "", *, total_is_bound: bool = False
    ) -> None:
        """Report ``done`` of ``total``; with ``total_is_bound`` (early stopping) the time left is an upper bound."""
        if self.quiet:
            return
        now = time.monotonic()
        elapsed = now - self._task_started
        left = elapsed / done * (total - done) if done else float("nan")
        left_text = _duration(left) if done else "?"
        left_word = "left at most" if total_is_bound else "left"
        text = f"{label} {done}/{total}  elapsed {_duration(elapsed)}  {left_word} ~{left_text}"
        if detail:
            text += f"  {detail}"
        if self.interactive:
            print(f"\r{text}\x1b[K", end="", file=self.stream, flush=True)
            self._open_line = True
            if done >= total:
                self._close_line()
        elif done >= total or now - self._last_line >= self.log_every:
            self._last_line = now
            self.message(text)

    def _close_line(self) -> None:
        if self._open_line:
            print(file=self.stream, flush=True)
            self._open_line = False
