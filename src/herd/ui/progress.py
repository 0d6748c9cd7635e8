"""A progress bar on stderr while results are gathered and not streamed (terminal only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from herd.core.events import OperationFinished, OperationStarted
from herd.core.model import HostResult
from herd.ui.console import Printer, as_printer
from herd.ui.render import Renderer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

__all__ = ["ProgressBar"]


class ProgressBar(Renderer):
    """done / failed / running, elapsed and ETA; draws nothing when stderr is not a terminal."""

    def __init__(self, target: Printer | Console, label: str = "run") -> None:
        self._printer = as_printer(target)
        self._label = label
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._total = 0
        self._done = 0
        self._failed = 0

    def started(self, event: OperationStarted) -> None:
        self._total = len(event.hosts)
        if not self._printer.is_terminal:
            return  # nothing to draw: not even rich.progress is imported
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._printer.console,
            transient=True,
        )
        self._task = self._progress.add_task(self._label, total=self._total, detail=self._detail())
        self._progress.start()

    def _detail(self) -> str:
        running = self._total - self._done
        return f"[red]{self._failed} failed[/] {running} running"

    def result(self, result: HostResult) -> None:
        self._done += 1
        if not result.ok:
            self._failed += 1
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=self._done, detail=self._detail())

    def finished(self, event: OperationFinished) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
