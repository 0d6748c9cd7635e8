"""Renderers for push and pull: a line per host, JSON with the files, a bytes progress bar.

They follow ``herd run``'s output modes (live lines, ``--gather``, ``--json``,
``-o``); what a transfer adds is the files: how many moved, how many bytes, and
how many were skipped because they were already in place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from herd.core.events import OperationFinished, OperationStarted
from herd.core.hostset import FoldReader, fold, sort_key
from herd.core.model import BatchResult, HostResult
from herd.ui.console import Printer
from herd.ui.render import BatchRenderer, Renderer

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = [
    "TransferGather",
    "TransferJsonLines",
    "TransferLines",
    "TransferOutDir",
    "TransferProgressBar",
    "batch_totals",
    "describe_files",
    "transfer_json",
]


def _size(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def describe_files(result: HostResult, verb: str) -> str:
    """``3 files sent (1.2 MB), 5 skipped`` for one host."""
    moved = len(result.files) - result.skipped
    text = f"{moved} file{'s' if moved != 1 else ''} {verb} ({_size(result.bytes_transferred)})"
    return f"{text}, {result.skipped} skipped" if result.skipped else text


def transfer_json(result: HostResult) -> dict[str, object]:
    """DESIGN.md's JSON object plus ``files``, ``bytes`` and ``skipped``."""
    data = result.json_fields()
    data["files"] = [
        {"path": f.path, "size": f.size, "sha256": f.sha256, "skipped": f.skipped}
        for f in result.files
    ]
    data["bytes"] = result.bytes_transferred
    data["skipped"] = result.skipped
    return data


class TransferLines(Renderer):
    """``web01 | 3 files sent (1.2 MB), 5 skipped`` as each host finishes."""

    def __init__(self, printer: Printer, verb: str) -> None:
        self._printer = printer
        self._verb = verb
        self._width = 0

    def started(self, event: OperationStarted) -> None:
        self._width = max((len(name) for name in event.hosts), default=0)

    def result(self, result: HostResult) -> None:
        name = (result.host.ljust(self._width), "cyan")
        if result.ok:
            self._printer.line(name, (" | ", "dim"), describe_files(result, self._verb))
            return
        reason = (f" ! {result.status.value}: {result.error}", "red")
        if result.files:
            self._printer.line(name, reason, f" ({describe_files(result, self._verb)} before)")
        else:
            self._printer.line(name, reason)


class TransferGather(BatchRenderer):
    """``--gather``: hosts with the same outcome and the same files under one folded header."""

    def __init__(self, printer: Printer, verb: str, reader: FoldReader) -> None:
        super().__init__()
        self._printer = printer
        self._verb = verb
        self._reader = reader

    def done(self, batch: BatchResult, elapsed: float) -> None:
        groups: dict[tuple[object, ...], list[HostResult]] = {}
        for result in batch.results:
            key = (result.status, result.error, result.files)
            groups.setdefault(key, []).append(result)
        ordered = sorted(groups.values(), key=lambda g: (-len(g), sort_key(g[0].host)))
        for results in ordered:
            first = results[0]
            names = sorted((r.host for r in results), key=sort_key)
            failure = "" if first.ok else f"  {first.status.value}: {first.error}"
            self._printer.line(
                ("──── ", "dim"),
                (f"{fold(names, self._reader)} ({len(names)})", "bold"),
                (failure, "red"),
                (" ────", "dim"),
            )
            self._printer.line(describe_files(first, self._verb))
            for f in first.files:
                mark = "=" if f.skipped else "+"
                self._printer.line(f"{mark} {f.path}  {_size(f.size)}  {f.sha256[:12]}")


class TransferJsonLines(Renderer):
    """``--json``: one object per host with ``files``, ``bytes`` and ``skipped``."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def result(self, result: HostResult) -> None:
        self._stream.write(json.dumps(transfer_json(result), ensure_ascii=False) + "\n")
        self._stream.flush()


class TransferOutDir(Renderer):
    """``-o DIR``: DIR/HOST.json (the JSON object) and DIR/HOST.exit (status and reason)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.errors: list[str] = []

    def result(self, result: HostResult) -> None:
        exit_line = result.status.value if result.ok else f"{result.status.value}: {result.error}"
        try:
            (self.directory / f"{result.host}.json").write_text(
                json.dumps(transfer_json(result), indent=1) + "\n"
            )
            (self.directory / f"{result.host}.exit").write_text(exit_line + "\n")
        except OSError as exc:
            self.errors.append(f"{self.directory}/{result.host}: {exc.strerror}")


def batch_totals(batch: BatchResult, verb: str) -> str:
    """The summary's note: files and bytes moved over all hosts, and how many were skipped."""
    moved = sum(len(r.files) - r.skipped for r in batch.results)
    nbytes = sum(r.bytes_transferred for r in batch.results)
    skipped = sum(r.skipped for r in batch.results)
    text = f"{moved} file{'s' if moved != 1 else ''} {verb} ({_size(nbytes)})"
    return f"{text}, {skipped} skipped (already in place)"


class TransferProgressBar(Renderer):
    """Bytes moved across all hosts with rate and ETA, and hosts done (stderr, terminal only).

    Off a terminal it only counts.
    """

    def __init__(self, printer: Printer, label: str) -> None:
        self._printer = printer
        self._label = label
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._hosts = 0
        self._done = 0
        self._failed = 0
        self._total = 0
        self._expected: dict[str, int] = {}
        self._moved: dict[str, int] = {}

    def started(self, event: OperationStarted) -> None:
        self._hosts = len(event.hosts)
        if not self._printer.is_terminal:
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[hosts]}"),
            console=self._printer.console,
            transient=True,
        )
        self._task = self._progress.add_task(self._label, total=None, hosts=self._hosts_text())
        self._progress.start()

    def _hosts_text(self) -> str:
        failed = f", [red]{self._failed} failed[/]" if self._failed else ""
        return f"hosts {self._done}/{self._hosts} done{failed}"

    def expected(self, host: str, nbytes: int) -> None:
        self._expected[host] = self._expected.get(host, 0) + nbytes
        self._total += nbytes
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=self._total)

    def moved(self, host: str, nbytes: int) -> None:
        self._moved[host] = self._moved.get(host, 0) + nbytes
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, nbytes)

    def result(self, result: HostResult) -> None:
        self._done += 1
        self._failed += 0 if result.ok else 1
        # a host that stopped early will not move the rest of its bytes: drop them from the total
        self._total -= max(0, self._expected.get(result.host, 0) - self._moved.get(result.host, 0))
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=self._total, hosts=self._hosts_text())

    def finished(self, event: OperationFinished) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
