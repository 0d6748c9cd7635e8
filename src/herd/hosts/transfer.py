"""Push and pull as per-host jobs for the fan-out: connect, transfer, and one result per host.

The connection comes from the same ``Connector`` as ``herd run`` (same host key
policy, keys and timeouts); a host that cannot be reached gets the same status
and reason it would get from a run. The transfer itself is ``push_host`` or
``pull_host``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from herd.core.results import HostResult, Status
from herd.hosts.command import OutputSink
from herd.hosts.connect import Connector, HostFailure
from herd.hosts.pull import pull_host
from herd.hosts.push import push_host
from herd.hosts.transfer_plan import PushPlan, TransferOptions, TransferProgress
from herd.hosts.transfer_stream import BlockSource
from herd.inventory.model import Host

__all__ = ["HostJob", "pull_job", "push_job"]

HostJob = Callable[[Host, OutputSink | None], Awaitable[HostResult]]


def _failed(host: Host, status: Status, reason: str, started: float) -> HostResult:
    return HostResult(
        host=host.name,
        address=host.address,
        status=status,
        duration=time.monotonic() - started,
        error=reason,
    )


def push_job(
    connector: Connector,
    *,
    plan: PushPlan,
    dest: str,
    options: TransferOptions,
    source: BlockSource,
    progress: TransferProgress,
) -> HostJob:
    """The per-host work of ``herd push``: connect, then ``push_host``."""

    async def one(host: Host, _emit: OutputSink | None) -> HostResult:
        started = time.monotonic()
        if host.local:
            return _failed(host, Status.ERROR, "push needs SSH (ansible_connection=local)", started)
        try:
            async with connector.session(host) as conn:
                return await push_host(
                    conn,
                    host,
                    plan=plan,
                    dest=dest,
                    options=options,
                    source=source,
                    progress=progress,
                )
        except HostFailure as failure:
            return _failed(host, failure.status, failure.reason, started)

    return one


def pull_job(
    connector: Connector,
    *,
    sources: list[str],
    dest_dir: Path,
    options: TransferOptions,
    progress: TransferProgress,
) -> HostJob:
    """The per-host work of ``herd pull``: connect, then ``pull_host``."""

    async def one(host: Host, _emit: OutputSink | None) -> HostResult:
        started = time.monotonic()
        if host.local:
            return _failed(host, Status.ERROR, "pull needs SSH (ansible_connection=local)", started)
        try:
            async with connector.session(host) as conn:
                return await pull_host(
                    conn,
                    host,
                    sources=sources,
                    dest_dir=dest_dir,
                    options=options,
                    progress=progress,
                )
        except HostFailure as failure:
            return _failed(host, failure.status, failure.reason, started)

    return one
