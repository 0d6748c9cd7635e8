"""The two consoles of a command: stdout for results, stderr for progress and summaries."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich.console import Console

__all__ = ["make_console"]


def make_console(stream: TextIO | None = None, *, stderr: bool = False) -> Console:
    """A console on ``stream`` (default stdout or stderr); colour only on a terminal."""
    target = stream if stream is not None else (sys.stderr if stderr else sys.stdout)
    return Console(
        file=target,
        highlight=False,
        soft_wrap=True,
        no_color="NO_COLOR" in os.environ,
        emoji=False,
        markup=True,
    )
