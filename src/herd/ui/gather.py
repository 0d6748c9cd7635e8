"""``--gather``: hosts with identical results in one block headed by their folded names.

Like ``clush -b`` and ``dshbak -c``: ``web[01-08,10] (9)`` instead of nine
copies of the same lines. ``gather`` is the reusable part (``herd log show
--gather`` calls it); ``GatherRenderer`` prints the blocks at the end of a run.
Headers are folded by a ``FoldReader``, so a header pasted as a pattern
selects exactly the hosts of its block.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from herd.core.hostset import FoldReader, fold, sort_key
from herd.core.model import BatchResult, HostResult, Status
from herd.ui.console import Printer, Segment, as_printer
from herd.ui.render import BatchRenderer

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["GatherRenderer", "gather", "render_gathered"]


def _same_key(result: HostResult) -> tuple[object, ...]:
    return (
        result.status,
        result.exit_status,
        result.stdout.sha256,
        result.stdout.total,
        result.stderr.sha256,
        result.stderr.total,
        "" if result.status in (Status.OK, Status.FAILED) else result.error,
    )


def gather(results: Iterable[HostResult]) -> list[tuple[list[str], HostResult]]:
    """Group results that are the same (status, exit status, stdout, stderr, reason).

    Returns ``(sorted host names, one representative result)`` pairs, the
    largest group first, then in host order.
    """
    groups: dict[tuple[object, ...], tuple[list[str], HostResult]] = {}
    for result in results:
        key = _same_key(result)
        if key in groups:
            groups[key][0].append(result.host)
        else:
            groups[key] = ([result.host], result)
    pairs = [(sorted(names, key=sort_key), first) for names, first in groups.values()]
    pairs.sort(key=lambda pair: (-len(pair[0]), sort_key(pair[0][0])))
    return pairs


def _header(names: Sequence[str], result: HostResult, reader: FoldReader) -> list[Segment]:
    header: list[Segment] = [("──── ", "dim"), (f"{fold(names, reader)} ({len(names)})", "bold")]
    if result.status is Status.FAILED:
        header.append((f"  exit {result.exit_status}", "yellow"))
    elif result.status is not Status.OK:
        header.append((f"  {result.status.value}: {result.error}", "red"))
    header.append((" ────", "dim"))
    return header


def _lines(result: HostResult) -> list[str]:
    """A result's output as one gathered block shows it: stdout, then stderr marked ``!``."""
    return [
        *result.stdout.text.splitlines(),
        *(f"! {line}" for line in result.stderr.text.splitlines()),
    ]


def render_gathered(
    target: Printer | Console,
    results: Iterable[HostResult],
    reader: FoldReader,
    *,
    diff: bool = False,
) -> None:
    """Print one block per group of identical results, headed by their hosts folded.

    With ``diff`` (clush's ``--diff``), the largest group is printed whole and each
    other group as a unified diff against it, so the odd host out stands out.
    """
    printer = as_printer(target)
    groups = gather(results)
    largest = groups[0] if groups else None
    for names, result in groups:
        printer.line(*_header(names, result, reader))
        if diff and largest is not None and result is not largest[1]:
            reference = f"{fold(largest[0], reader)} ({len(largest[0])})"
            here = f"{fold(names, reader)} ({len(names)})"
            lines = difflib.unified_diff(
                _lines(largest[1]), _lines(result), reference, here, lineterm=""
            )
            for line in lines:
                style = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1], "")
                printer.line((line, style))
        else:
            for line in _lines(result):
                printer.line((line, "red") if line.startswith("! ") else line)
        for stream in (result.stdout, result.stderr):
            if stream.truncated:
                dropped = stream.total - len(stream.data)
                printer.line((f"[{dropped} more bytes not kept; sha256 {stream.sha256}]", "dim"))


class GatherRenderer(BatchRenderer):
    """Collects results and prints the gathered blocks when the batch ends."""

    def __init__(
        self, target: Printer | Console, reader: FoldReader, *, diff: bool = False
    ) -> None:
        super().__init__()
        self._printer = as_printer(target)
        self._reader = reader
        self._diff = diff

    def done(self, batch: BatchResult, elapsed: float) -> None:
        render_gathered(self._printer, batch.results, self._reader, diff=self._diff)
