"""Live lines: ``host | text`` as output arrives, each host in its own colour.

Only whole lines are printed, one write per line, so the output of many
hosts never interleaves mid-line; a host's last unterminated line is printed
when it finishes. stderr lines are marked with ``!`` instead of ``|``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from herd.core.results import BatchResult, HostResult, Status
from herd.inventory.model import Host
from herd.ui.console import Printer, as_printer

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


class LiveLines:
    """Prints each host's output line by line as it arrives."""

    wants_output = True

    def __init__(self, target: Printer | Console) -> None:
        self._printer = as_printer(target)
        self._partial: dict[tuple[str, str], bytearray] = {}
        self._colours: dict[str, str] = {}
        self._width = 0

    def start(self, hosts: Sequence[Host]) -> None:
        self._width = max((len(h.name) for h in hosts), default=0)
        for index, host in enumerate(hosts):
            self._colours[host.name] = _PALETTE[index % len(_PALETTE)]

    def _line(self, host: str, stream: str, raw: bytes) -> None:
        name = (host.ljust(self._width), self._colours.get(host, ""))
        text = raw.decode("utf-8", errors="replace")
        if stream == "stderr":
            self._printer.line(name, (" ! ", "red"), (text, "red"))
        else:
            self._printer.line(name, (" | ", "dim"), text)

    def output(self, host: str, stream: str, data: bytes) -> None:
        buffer = self._partial.setdefault((host, stream), bytearray())
        buffer += data
        if b"\n" not in data and len(buffer) < _MAX_PARTIAL:
            return
        *lines, rest = bytes(buffer).split(b"\n")
        for line in lines:
            self._line(host, stream, line.rstrip(b"\r"))
        if len(rest) >= _MAX_PARTIAL:
            self._line(host, stream, rest)
            rest = b""
        self._partial[(host, stream)] = bytearray(rest)

    def result(self, result: HostResult) -> None:
        for stream in ("stdout", "stderr"):
            rest = self._partial.pop((result.host, stream), None)
            if rest:
                self._line(result.host, stream, bytes(rest))
        if result.status not in (Status.OK, Status.FAILED):
            self._line(result.host, "stderr", f"{result.status.value}: {result.error}".encode())

    def finish(self, batch: BatchResult, elapsed: float) -> None:
        pass
