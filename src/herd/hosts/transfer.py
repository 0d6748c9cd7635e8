"""Push and pull as per-host jobs for the fan-out: connect, transfer, and one result per host.

The connection comes from the same ``Connector`` as ``herd run`` (same host key
policy, keys and timeouts); a host that cannot be reached gets the same status
and reason it would get from a run. The transfer itself is ``push_host`` or
``pull_host``. A ``PushJob`` or ``PullJob`` is the whole of one operation as
plain data: herd runs it in its own process or hands it to transfer workers
(``herd.hosts.workers``), which build the same per-host work from it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import ClassVar

from herd.core.events import BytesExpected, BytesMoved, Event
from herd.core.model import Host, HostResult, Status
from herd.hosts.connect import Connector, HostFailure
from herd.hosts.pull import pull_host
from herd.hosts.push import push_host
from herd.hosts.transfer_plan import PushPlan, TransferOptions
from herd.hosts.transfer_stream import BlockSource
from herd.operation.driver import HostWork

__all__ = ["EventProgress", "HostJob", "PullJob", "PushJob", "TransferJob"]

HostJob = Callable[[Host, HostWork], Awaitable[HostResult]]
# push_host or pull_host with their job bound: (conn, host, *, progress) -> result
Transfer = Callable[..., Awaitable[HostResult]]


class EventProgress:
    """A transfer's bytes as events: ``BytesExpected`` and ``BytesMoved`` for its host."""

    def __init__(self, emit: Callable[[Event], None]) -> None:
        self._emit = emit

    def expect(self, host: str, nbytes: int) -> None:
        self._emit(BytesExpected(host, nbytes))

    def advance(self, host: str, nbytes: int) -> None:
        self._emit(BytesMoved(host, nbytes))


def _job(connector: Connector, verb: str, transfer: Transfer) -> HostJob:
    """Connect to each host with ``connector`` and run ``transfer`` on the connection."""

    async def one(host: Host, work: HostWork) -> HostResult:
        started = time.monotonic()

        def failed(status: Status, reason: str) -> HostResult:
            duration = time.monotonic() - started
            return HostResult(host.name, host.address, status, duration=duration, error=reason)

        if host.local:
            return failed(Status.ERROR, f"{verb} needs SSH (ansible_connection=local)")
        try:
            async with connector.session(host, work.slot) as conn:
                return await transfer(conn, host, progress=EventProgress(work.emit))
        except HostFailure as failure:
            return failed(failure.status, failure.reason)

    return one


@dataclass(frozen=True, slots=True)
class PushJob:
    """One push: what every host gets. Plain data, so a worker process can be handed it."""

    plan: PushPlan
    dest: str
    options: TransferOptions
    kind: ClassVar[str] = "push"

    def per_host(self, connector: Connector) -> HostJob:
        """The per-host work: connect, then ``push_host``, blocks read once per process."""
        source = BlockSource(self.options.block_size, self.options.cache_budget)
        transfer = partial(
            push_host,
            plan=self.plan,
            dest=self.dest,
            options=self.options,
            source=source,
        )
        return _job(connector, self.kind, transfer)


@dataclass(frozen=True, slots=True)
class PullJob:
    """One pull: what to fetch from every host and where it lands. Plain data, like PushJob."""

    sources: tuple[str, ...]
    dest_dir: Path
    options: TransferOptions
    kind: ClassVar[str] = "pull"

    def per_host(self, connector: Connector) -> HostJob:
        """The per-host work: connect, then ``pull_host``."""
        transfer = partial(
            pull_host,
            sources=list(self.sources),
            dest_dir=self.dest_dir,
            options=self.options,
        )
        return _job(connector, self.kind, transfer)


TransferJob = PushJob | PullJob
