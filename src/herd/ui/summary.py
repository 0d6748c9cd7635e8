"""The end-of-batch summary: counts per status, and who failed how, one line per host.

Non-ok hosts are folded per status (``web[03,07]``) with a one-line reason
each; without ``-v`` at most ``shown`` reasons per status are listed.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from herd.core.hostset import fold, sort_key
from herd.core.results import BatchResult, HostResult, Status
from herd.inventory.model import Host

__all__ = ["STATUS_ORDER", "Summary", "render_summary"]

STATUS_ORDER = (
    Status.OK,
    Status.FAILED,
    Status.UNREACHABLE,
    Status.TIMEOUT,
    Status.AUTH_FAILED,
    Status.HOSTKEY_MISMATCH,
    Status.ERROR,
)
_STYLE = {Status.OK: "green", Status.FAILED: "yellow"}


def render_summary(
    console: Console,
    batch: BatchResult,
    *,
    targeted: int,
    elapsed: float,
    verbose: bool = False,
    shown: int = 10,
    note: str = "",
) -> None:
    """Print the summary of ``batch`` (which targeted ``targeted`` hosts)."""
    groups = batch.by_status()
    head = Text()
    head.append(f"{targeted} host{'s' if targeted != 1 else ''}: ", style="bold")
    counts = [
        (f"{len(groups[s])} {s.value}", _STYLE.get(s, "red")) for s in STATUS_ORDER if s in groups
    ]
    for index, (label, style) in enumerate(counts):
        head.append(label, style=style)
        if index < len(counts) - 1:
            head.append(", ")
    missing = targeted - len(batch)
    if missing > 0:
        head.append(f", {missing} not finished", style="red")
    if not counts and missing <= 0:
        head.append("nothing ran")
    head.append(f" in {elapsed:.1f} s")
    if batch.interrupted:
        head.append(" (interrupted)", style="bold red")
    console.print(head, soft_wrap=True, highlight=False)
    for status in STATUS_ORDER:
        results = groups.get(status)
        if not results or (status is Status.OK and not verbose):
            continue
        _status_block(console, status, results, verbose=verbose, shown=shown)
    if note:
        console.print(Text(note, style="dim"), soft_wrap=True, highlight=False)


def _status_block(
    console: Console, status: Status, results: list[HostResult], *, verbose: bool, shown: int
) -> None:
    names = [r.host for r in results]
    line = Text(f"  {status.value} ({len(results)}): ", style=_STYLE.get(status, "red"))
    line.append(fold(names))
    console.print(line, soft_wrap=True, highlight=False)
    if status is Status.OK:
        return
    ordered = sorted(results, key=lambda r: sort_key(r.host))
    limit = len(ordered) if verbose else shown
    width = max(len(r.host) for r in ordered[:limit])
    for result in ordered[:limit]:
        console.print(
            Text(f"    {result.host.ljust(width)}  {result.error or status.value}"),
            soft_wrap=True,
            highlight=False,
        )
    if len(ordered) > limit:
        console.print(
            Text(f"    ... and {len(ordered) - limit} more (-v for all)", style="dim"),
            soft_wrap=True,
            highlight=False,
        )


class Summary:
    """Prints the summary when the batch ends."""

    wants_output = False

    def __init__(self, console: Console, *, verbose: bool = False) -> None:
        self._console = console
        self._verbose = verbose
        self._targeted = 0
        self.note = ""

    def start(self, hosts: Sequence[Host]) -> None:
        self._targeted = len(hosts)

    def output(self, host: str, stream: str, data: bytes) -> None:
        pass

    def result(self, result: HostResult) -> None:
        pass

    def finish(self, batch: BatchResult, elapsed: float) -> None:
        render_summary(
            self._console,
            batch,
            targeted=self._targeted,
            elapsed=elapsed,
            verbose=self._verbose,
            note=self.note,
        )
