"""The end-of-batch summary: counts per status, and who failed how, one line per host.

Non-ok hosts are folded per status (``web[03,07]``) with a one-line reason
each; without ``-v`` at most ``shown`` reasons per status are listed. The
folded sets are patterns of the inventory at hand (the ``FoldReader``), so
``herd run 'web[03,07]'`` retries exactly the hosts listed.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from herd.core.hostset import FoldReader, fold, sort_key
from herd.core.model import BatchResult, HostResult, Status
from herd.ui.console import Printer, Segment, as_printer
from herd.ui.render import BatchRenderer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["STATUS_ORDER", "Summary", "render_summary"]

STATUS_ORDER = (
    Status.OK,
    Status.FAILED,
    Status.UNREACHABLE,
    Status.TIMEOUT,
    Status.AUTH_FAILED,
    Status.HOSTKEY_UNKNOWN,
    Status.HOSTKEY_MISMATCH,
    Status.ERROR,
    Status.SKIPPED,
)
_STYLE = {Status.OK: "green", Status.FAILED: "yellow", Status.SKIPPED: "yellow"}


def render_summary(
    target: Printer | Console,
    batch: BatchResult,
    *,
    reader: FoldReader,
    targeted: int,
    elapsed: float,
    verbose: bool = False,
    shown: int = 10,
    note: str = "",
) -> None:
    """Print the summary of ``batch`` (which targeted ``targeted`` hosts); ``reader`` folds."""
    printer = as_printer(target)
    groups = batch.by_status()
    head: list[Segment] = [(f"{targeted} host{'s' if targeted != 1 else ''}: ", "bold")]
    counts = [
        (f"{len(groups[s])} {s.value}", _STYLE.get(s, "red")) for s in STATUS_ORDER if s in groups
    ]
    for index, count in enumerate(counts):
        head.append(count)
        if index < len(counts) - 1:
            head.append((", ", ""))
    missing = targeted - len(batch)
    if missing > 0:
        head.append((f"{', ' if counts else ''}{missing} not finished", "red"))
    if not counts and missing <= 0:
        head.append(("nothing ran", ""))
    head.append((f" in {elapsed:.1f} s", ""))
    if batch.interrupted:
        head.append((f" ({_interruption(batch.stop_signal)})", "bold red"))
    printer.line(*head)
    for status in STATUS_ORDER:
        results = groups.get(status)
        if not results or (status is Status.OK and not verbose):
            continue
        _status_block(printer, status, results, reader, verbose=verbose, shown=shown)
    if note:
        printer.line((note, "dim"))


def _interruption(signum: int) -> str:
    """ "interrupted" for Ctrl-C, "interrupted by SIGTERM" for the others."""
    if signum == signal.SIGINT:
        return "interrupted"
    try:
        return f"interrupted by {signal.Signals(signum).name}"
    except ValueError:
        return f"interrupted by signal {signum}"


def _status_block(
    printer: Printer,
    status: Status,
    results: list[HostResult],
    reader: FoldReader,
    *,
    verbose: bool,
    shown: int,
) -> None:
    folded = fold((r.host for r in results), reader)
    printer.line((f"  {status.value} ({len(results)}): ", _STYLE.get(status, "red")), folded)
    if status is Status.OK:
        return
    ordered = sorted(results, key=lambda r: sort_key(r.host))
    limit = len(ordered) if verbose else shown
    width = max(len(r.host) for r in ordered[:limit])
    for result in ordered[:limit]:
        batch = f"batch {result.batch}: " if result.batch else ""
        printer.line(f"    {result.host.ljust(width)}  {batch}{result.error or status.value}")
    if len(ordered) > limit:
        printer.line((f"    ... and {len(ordered) - limit} more (-v for all)", "dim"))


class Summary(BatchRenderer):
    """Prints the summary when the batch ends, and where the operation was recorded.

    ``totals`` adds a transfer's files and bytes to the closing line.
    """

    def __init__(
        self,
        target: Printer | Console,
        *,
        reader: FoldReader,
        verbose: bool = False,
        totals: Callable[[BatchResult], str] | None = None,
    ) -> None:
        super().__init__()
        self._printer = as_printer(target)
        self._reader = reader
        self._verbose = verbose
        self._totals = totals

    def done(self, batch: BatchResult, elapsed: float) -> None:
        recorded = f"recorded as operation {self.op_id}: herd log show {self.op_id}"
        parts = [
            self._totals(batch) if self._totals else "",
            recorded if self.op_id is not None else "",
        ]
        render_summary(
            self._printer,
            batch,
            reader=self._reader,
            targeted=self.targeted,
            elapsed=elapsed,
            verbose=self._verbose,
            note="; ".join(p for p in parts if p),
        )
