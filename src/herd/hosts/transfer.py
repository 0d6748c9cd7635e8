"""Push and pull as per-host jobs for the fan-out: connect, transfer, and one result per host.

The connection comes from the same ``Connector`` as ``herd run`` (same host key
policy, keys and timeouts); a host that cannot be reached gets the same status
and reason it would get from a run. The transfer itself is ``push_host`` or
``pull_host``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import asyncssh

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
Transfer = Callable[[asyncssh.SSHClientConnection, Host], Awaitable[HostResult]]


def _job(connector: Connector, verb: str, transfer: Transfer) -> HostJob:
    """Connect to each host with ``connector`` and run ``transfer`` on the connection."""

    async def one(host: Host, _emit: OutputSink | None) -> HostResult:
        started = time.monotonic()

        def failed(status: Status, reason: str) -> HostResult:
            duration = time.monotonic() - started
            return HostResult(host.name, host.address, status, duration=duration, error=reason)

        if host.local:
            return failed(Status.ERROR, f"{verb} needs SSH (ansible_connection=local)")
        try:
            async with connector.session(host) as conn:
                return await transfer(conn, host)
        except HostFailure as failure:
            return failed(failure.status, failure.reason)

    return one


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
    return _job(
        connector,
        "push",
        partial(push_host, plan=plan, dest=dest, options=options, source=source, progress=progress),
    )


def pull_job(
    connector: Connector,
    *,
    sources: list[str],
    dest_dir: Path,
    options: TransferOptions,
    progress: TransferProgress,
) -> HostJob:
    """The per-host work of ``herd pull``: connect, then ``pull_host``."""
    return _job(
        connector,
        "pull",
        partial(pull_host, sources=sources, dest_dir=dest_dir, options=options, progress=progress),
    )
