"""``--gather``: hosts with identical results in one block headed by their folded names.

Like ``clush -b`` and ``dshbak -c``: ``web[01-08,10] (9)`` instead of nine
copies of the same lines. ``gather`` is the reusable part (``herd log show
--gather`` calls it); ``GatherRenderer`` prints the blocks at the end of a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.text import Text

from herd.core.hostset import fold, sort_key
from herd.core.results import BatchResult, HostResult, Status
from herd.inventory.model import Host

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


def _header(names: Sequence[str], result: HostResult) -> Text:
    header = Text()
    header.append("──── ", style="dim")
    header.append(f"{fold(names)} ({len(names)})", style="bold")
    if result.status is Status.OK:
        pass
    elif result.status is Status.FAILED:
        header.append(f"  exit {result.exit_status}", style="yellow")
    else:
        header.append(f"  {result.status.value}: {result.error}", style="red")
    header.append(" ────", style="dim")
    return header


def render_gathered(console: Console, results: Iterable[HostResult]) -> None:
    """Print one block per group of identical results."""
    for names, result in gather(results):
        console.print(_header(names, result), soft_wrap=True, highlight=False)
        for line in result.stdout.text.splitlines():
            console.print(Text(line), soft_wrap=True, highlight=False)
        for line in result.stderr.text.splitlines():
            console.print(Text(f"! {line}", style="red"), soft_wrap=True, highlight=False)
        for stream in (result.stdout, result.stderr):
            if stream.truncated:
                dropped = stream.total - len(stream.data)
                note = f"[{dropped} more bytes not kept; sha256 {stream.sha256}]"
                console.print(Text(note, style="dim"), soft_wrap=True, highlight=False)


class GatherRenderer:
    """Collects results and prints the gathered blocks when the batch ends."""

    wants_output = False

    def __init__(self, console: Console) -> None:
        self._console = console

    def start(self, hosts: Sequence[Host]) -> None:
        pass

    def output(self, host: str, stream: str, data: bytes) -> None:
        pass

    def result(self, result: HostResult) -> None:
        pass

    def finish(self, batch: BatchResult, elapsed: float) -> None:
        render_gathered(self._console, batch.results)
