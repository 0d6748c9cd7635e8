"""What every renderer of a batch (run, push, pull) listens to, and a fan-out to several.

The engine emits three kinds of events: output bytes as they arrive, one
result per host as it finishes, and the end of the batch. Renderers are the
sinks; the operation log is another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from herd.core.model import BatchResult, Host, HostResult

__all__ = ["Renderer", "Renderers"]


class Renderer(Protocol):
    """A sink for a batch's events; every method must be cheap (it runs on the event loop)."""

    def start(self, hosts: Sequence[Host]) -> None: ...

    def output(self, host: str, stream: str, data: bytes) -> None: ...

    def result(self, result: HostResult) -> None: ...

    def finish(self, batch: BatchResult, elapsed: float) -> None: ...


class Renderers:
    """Several renderers behaving as one, called in order."""

    def __init__(self, renderers: Sequence[Renderer]) -> None:
        self._renderers = list(renderers)
        self.wants_output = any(getattr(r, "wants_output", True) for r in self._renderers)

    def start(self, hosts: Sequence[Host]) -> None:
        for renderer in self._renderers:
            renderer.start(hosts)

    def output(self, host: str, stream: str, data: bytes) -> None:
        for renderer in self._renderers:
            renderer.output(host, stream, data)

    def result(self, result: HostResult) -> None:
        for renderer in self._renderers:
            renderer.result(result)

    def finish(self, batch: BatchResult, elapsed: float) -> None:
        for renderer in self._renderers:
            renderer.finish(batch, elapsed)
