"""A line on stderr as each rollout batch starts: which batch, of how many, and its hosts."""

from __future__ import annotations

from herd.core.events import BatchStarted
from herd.core.hostset import FoldReader, fold
from herd.ui.console import Printer
from herd.ui.render import Renderer

__all__ = ["BatchLines"]


class BatchLines(Renderer):
    """``batch 2 of 5: web0[3-4] (2)`` as the batch starts (folded so it pastes back)."""

    def __init__(self, printer: Printer, reader: FoldReader) -> None:
        self._printer = printer
        self._reader = reader

    def batch_started(self, event: BatchStarted) -> None:
        hosts = fold(event.hosts, self._reader)
        self._printer.line(
            (f"batch {event.index} of {event.count}: ", "bold"), f"{hosts} ({len(event.hosts)})"
        )
