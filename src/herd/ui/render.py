"""The renderers are sinks of an operation's events, each event to a method of its kind.

As ClusterShell's ``EventHandler`` does (``ev_start``, ``ev_read``, ``ev_hup``,
``ev_close``), ``Renderer.handle`` hands each event to the method for it;
a renderer overrides the ones it draws. ``BatchRenderer`` also keeps the
batch as it finishes, for those that draw at the end (the summary, ``-b``).
Every method must be cheap: it runs on the event loop.
"""

from __future__ import annotations

from herd.core.events import (
    BatchStarted,
    BytesExpected,
    BytesMoved,
    Event,
    HostFinished,
    HostOutput,
    HostStarted,
    OperationFinished,
    OperationStarted,
)
from herd.core.model import BatchResult, HostResult

__all__ = ["BatchRenderer", "Renderer"]


class Renderer:
    """A sink that draws; the default for every kind of event is to draw nothing."""

    wants_output = False

    def handle(self, event: Event) -> None:
        match event:
            case HostOutput(host, stream, data):
                self.output(host, stream, data)
            case BytesMoved(host, nbytes):
                self.moved(host, nbytes)
            case BytesExpected(host, nbytes):
                self.expected(host, nbytes)
            case HostFinished(result):
                self.result(result)
            case HostStarted(host):
                self.host_started(host)
            case BatchStarted():
                self.batch_started(event)
            case OperationStarted():
                self.started(event)
            case OperationFinished():
                self.finished(event)

    def started(self, event: OperationStarted) -> None:
        """The operation begins: its hosts, in order, and its number in the log."""

    def host_started(self, host: str) -> None:
        """A host's work begins."""

    def output(self, host: str, stream: str, data: bytes) -> None:
        """A host's command wrote ``data`` (only when ``wants_output``)."""

    def expected(self, host: str, nbytes: int) -> None:
        """A host's transfer will move ``nbytes`` more."""

    def moved(self, host: str, nbytes: int) -> None:
        """A host's transfer moved ``nbytes``."""

    def result(self, result: HostResult) -> None:
        """A host is done."""

    def batch_started(self, event: BatchStarted) -> None:
        """A rollout batch begins."""

    def finished(self, event: OperationFinished) -> None:
        """The operation is over."""


class BatchRenderer(Renderer):
    """A renderer that draws at the end, from the whole batch: ``done`` is called then."""

    def __init__(self) -> None:
        self.batch = BatchResult()
        self.targeted = 0
        self.op_id: int | None = None

    def started(self, event: OperationStarted) -> None:
        self.targeted = len(event.hosts)
        self.op_id = event.op_id

    def result(self, result: HostResult) -> None:
        self.batch.add(result)

    def finished(self, event: OperationFinished) -> None:
        if event.interrupted:
            self.batch.interrupt(event.stop_signal)
        self.done(self.batch, event.elapsed)

    def done(self, batch: BatchResult, elapsed: float) -> None:
        """Draw the batch, ``elapsed`` seconds after it started."""
