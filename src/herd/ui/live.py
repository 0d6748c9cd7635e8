"""Live lines: ``host | text`` as output arrives, each host in its own colour.

Only whole lines are printed, one write per line, so the output of many
hosts never interleaves mid-line; a host's last unterminated line is printed
when it finishes. A host's stderr lines go to herd's stderr (when given one),
marked with ``!`` instead of ``|``, so a pipe gets the hosts' stdout only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from herd.core.events import OperationStarted
from herd.core.model import HostResult, Status
from herd.ui.console import Printer, as_printer
from herd.ui.render import Renderer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["LiveLines"]

_PALETTE = (
    "cyan",
    "green",
    "magenta",
    "blue",
    "yellow",
    "bright_cyan",
    "bright_green",
    "bright_magenta",
    "bright_blue",
    "bright_yellow",
)
_MAX_PARTIAL = 64 * 1024  # an unterminated line longer than this is printed in pieces


class LiveLines(Renderer):
    """Prints each host's output line by line as it arrives."""

    wants_output = True

    def __init__(self, target: Printer | Console, err: Printer | Console | None = None) -> None:
        self._printer = as_printer(target)
        self._err = self._printer if err is None else as_printer(err)
        self._partial: dict[tuple[str, str], bytearray] = {}
        self._colours: dict[str, str] = {}
        self._width = 0

    def started(self, event: OperationStarted) -> None:
        self._width = max((len(name) for name in event.hosts), default=0)
        for index, name in enumerate(event.hosts):
            self._colours[name] = _PALETTE[index % len(_PALETTE)]

    def _line(self, host: str, stream: str, raw: bytes) -> None:
        name = (host.ljust(self._width), self._colours.get(host, ""))
        text = raw.decode("utf-8", errors="replace")
        if stream == "stderr":
            self._err.line(name, (" ! ", "red"), (text, "red"), flush=False)
        else:
            self._printer.line(name, (" | ", "dim"), text, flush=False)

    def _lines(self, host: str, stream: str, block: bytes) -> None:
        """Print a block of whole lines (without its last newline)."""
        text = block.decode("utf-8", errors="replace").replace("\r\n", "\n")
        printer = self._err if stream == "stderr" else self._printer
        if printer.is_terminal:
            for line in text.split("\n"):
                self._line(host, stream, line.encode())
            return
        # off a terminal there are no colours: prefix the block in one go (a chatty host
        # printing millions of lines stays cheap)
        prefix = host.ljust(self._width) + (" ! " if stream == "stderr" else " | ")
        printer.text(prefix + ("\n" + prefix).join(text.split("\n")) + "\n")

    def output(self, host: str, stream: str, data: bytes) -> None:
        buffer = self._partial.setdefault((host, stream), bytearray())
        buffer += data
        if b"\n" not in data and len(buffer) < _MAX_PARTIAL:
            return
        whole, _, rest = bytes(buffer).rpartition(b"\n")
        if whole or b"\n" in data:
            self._lines(host, stream, whole)
        if len(rest) >= _MAX_PARTIAL:
            self._line(host, stream, rest)
            rest = b""
        self._partial[(host, stream)] = bytearray(rest)
        # once per chunk, not per line: a chatty host stays cheap
        (self._err if stream == "stderr" else self._printer).flush()

    def result(self, result: HostResult) -> None:
        for stream in ("stdout", "stderr"):
            rest = self._partial.pop((result.host, stream), None)
            if rest:
                self._line(result.host, stream, bytes(rest))
        if result.status not in (Status.OK, Status.FAILED):
            self._line(result.host, "stderr", f"{result.status.value}: {result.error}".encode())
        self._printer.flush()
        self._err.flush()
