"""Where a command writes: stdout for results, stderr for progress and summaries.

``Printer`` writes styled lines. On a terminal it draws them with rich, in
colour; anywhere else (a pipe, a file, a test) it writes plain text and rich is
not even imported, which keeps a scripted ``herd run`` quick to start.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO, cast

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Printer", "Segment", "as_printer", "make_console"]

# A piece of a line and its rich style ("" for none).
Segment = tuple[str, str]


def make_console(stream: TextIO | None = None, *, stderr: bool = False) -> Console:
    """A rich console on ``stream`` (default stdout or stderr); colour only on a terminal."""
    from rich.console import Console

    target = stream if stream is not None else (sys.stderr if stderr else sys.stdout)
    return Console(
        file=target,
        highlight=False,
        soft_wrap=True,
        no_color="NO_COLOR" in os.environ,
        emoji=False,
        markup=True,
    )


class Printer:
    """Writes whole styled lines, one write per line (lines of many hosts never interleave)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        stderr: bool = False,
        console: Console | None = None,
        terminal: bool | None = None,
    ) -> None:
        if console is not None:
            self._stream: TextIO = cast(TextIO, console.file)
            self._terminal = console.is_terminal
        else:
            self._stream = stream if stream is not None else (sys.stderr if stderr else sys.stdout)
            self._terminal = _isatty(self._stream) if terminal is None else terminal
        self._console = console
        self._pending: list[str] = []

    @property
    def is_terminal(self) -> bool:
        return self._terminal

    @property
    def console(self) -> Console:
        """The rich console on the same stream (created on first use)."""
        if self._console is None:
            self._console = make_console(self._stream)
            if self._terminal and not self._console.is_terminal:
                self._console = _forced(self._stream)
        return self._console

    def line(self, *segments: Segment | str, flush: bool = True) -> None:
        """Write one line; ``flush=False`` leaves flushing to a later ``flush()`` (bulk output)."""
        parts = [(s, "") if isinstance(s, str) else s for s in segments]
        if not self._terminal:
            self._pending.append("".join(text for text, _ in parts) + "\n")
            if flush:
                self.flush()
            return
        from rich.text import Text

        text = Text()
        for piece, style in parts:
            text.append(piece, style=style or None)
        self.console.print(text, soft_wrap=True, highlight=False, markup=False)

    def text(self, text: str) -> None:
        """Queue plain text made of whole lines (off a terminal only); written at ``flush``."""
        self._pending.append(text)

    def flush(self) -> None:
        """Write the lines held back, in one write (stdout may be unbuffered)."""
        if self._pending:
            self._stream.write("".join(self._pending))
            self._pending.clear()
        self._stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _forced(stream: TextIO) -> Console:
    from rich.console import Console

    return Console(file=stream, force_terminal=True, highlight=False, soft_wrap=True)


def as_printer(target: Printer | Console) -> Printer:
    """Accept either a Printer or a rich Console (as push and pull pass)."""
    return target if isinstance(target, Printer) else Printer(console=target)
