"""Run one command on one SSH host: connect, feed stdin, collect capped output, stop on time.

SSH servers leave a command running when its channel closes, so to stop a
command (timeout, Ctrl-C) herd signals its process group through a second
channel: ``herd.hosts.remote_stop`` starts the command as a group leader on
any server and reports its PID on a marked first stderr line, which
``herd.hosts.command_channel`` reads and removes as the output arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from asyncio import FIRST_COMPLETED
from dataclasses import dataclass
from typing import ClassVar

import asyncssh

from herd.core.model import Host, HostResult, Status
from herd.errors import ConfigError
from herd.hosts.command import (
    OutputSink,
    RemoteCommand,
    Streams,
    failure,
    finished,
    send_input,
    stopped,
)
from herd.hosts.command_channel import CommandChannel
from herd.hosts.connect import Connector, HostFailure, NotStarted, connection_lost
from herd.hosts.remote_stop import Mark, doubt, start_line, stop_remote
from herd.hosts.wire import session_env
from herd.operation.driver import HostWork, PerHost

__all__ = ["RunJob", "feed_stdin", "run_on_host"]


async def run_on_host(
    host: Host, command: RemoteCommand, connector: Connector, work: HostWork
) -> HostResult:
    """Run ``command`` on ``host`` (over SSH, or locally for a local host); never raises for it."""
    started = time.monotonic()
    emit = work.emit if work.wants_output else None
    try:
        command = command.for_host(host)
    except ConfigError as exc:  # checked before the run; a host's own variables, here
        return failure(host, started, Status.ERROR, str(exc))
    if host.local:
        from herd.hosts.local import run_locally

        return await run_locally(host, command, emit)
    try:
        try:
            return await _on_connection(host, command, connector, work, started=started)
        except NotStarted:  # a kept connection that was dead or silent: nothing ran there
            return await _on_connection(host, command, connector, work, started=started)
    except HostFailure as exc:
        return failure(host, started, exc.status, exc.reason)
    except (OSError, asyncssh.Error, NotStarted) as exc:  # the host went away
        return failure(host, started, Status.UNREACHABLE, connection_lost(exc))


async def _on_connection(
    host: Host, command: RemoteCommand, connector: Connector, work: HostWork, *, started: float
) -> HostResult:
    """The command on a connection of ``connector``'s; NotStarted if it never began there."""
    emit = work.emit if work.wants_output else None
    session = connector.session(host, work.slot, probe=False)
    async with session as conn:
        return await _run(host, command, conn, emit, started=started, open_bound=session.open_bound)


async def _run(
    host: Host,
    command: RemoteCommand,
    conn: asyncssh.SSHClientConnection,
    emit: OutputSink | None,
    *,
    started: float,
    open_bound: float | None,
) -> HostResult:
    streams = Streams(command.output_cap)
    session = CommandChannel(host.name, streams, emit)
    chan = await _open(conn, session, command, open_bound)
    mark: Mark | None = None
    try:
        async with asyncio.timeout(command.timeout):
            mark = await session.mark()
            feeding = _start_feeding(chan, session, command)
            try:
                await session.ended()
            finally:
                await _done_feeding(feeding)
    except TimeoutError:
        left = await _stop(conn, chan, mark, "TERM")
        assert command.timeout is not None
        return stopped(host, started, streams, command.timeout, left)
    except asyncio.CancelledError:
        await _stop(conn, chan, mark, "HUP")
        raise
    exit_signal = chan.get_exit_signal()
    signal = exit_signal[0] if exit_signal else None
    return finished(host, started, streams, chan.get_exit_status(), signal)


async def _open(
    conn: asyncssh.SSHClientConnection,
    session: CommandChannel,
    command: RemoteCommand,
    bound: float | None,
) -> asyncssh.SSHClientChannel[bytes]:
    """The command's channel, its command sent. Within ``bound`` (None: none) the channel
    must open; if it does not, or the connection fails first, the command was never
    sent (asyncssh sends it once the channel is open): NotStarted, the connection aborted.
    """
    opening = conn.create_session(
        lambda: session,
        start_line(command.script()),
        encoding=None,
        **session_env(conn, command.environment),
    )
    if bound is None:
        chan, _ = await opening
        return chan
    starting = asyncio.ensure_future(opening)
    try:
        await asyncio.wait((starting, session.opened), timeout=bound, return_when=FIRST_COMPLETED)
    except asyncio.CancelledError:
        starting.cancel()
        raise
    if not session.opened.done():
        starting.cancel()
        conn.abort()
        with contextlib.suppress(asyncio.CancelledError, OSError, asyncssh.Error):
            await starting
        raise NotStarted(f"the kept connection did not answer in {bound:g} s")
    chan, _ = await starting
    return chan


class _Input:
    """A command channel's stdin as ``send_input`` writes it: waits while the channel is full."""

    def __init__(self, chan: asyncssh.SSHClientChannel[bytes], session: CommandChannel) -> None:
        self._chan = chan
        self._session = session

    def write(self, data: bytes) -> None:
        self._chan.write(data)

    async def drain(self) -> None:
        await self._session.writable()


async def _feed(
    chan: asyncssh.SSHClientChannel[bytes], session: CommandChannel, command: RemoteCommand
) -> None:
    """Stream the command's stdin; a command that stops reading it is not an error."""
    with contextlib.suppress(OSError, asyncssh.Error):
        await send_input(_Input(chan, session), command)
        chan.write_eof()


def _start_feeding(
    chan: asyncssh.SSHClientChannel[bytes], session: CommandChannel, command: RemoteCommand
) -> asyncio.Task[None] | None:
    """Give the command its stdin: a task streaming the ``--stdin`` file, or (none) the
    preamble alone, written and closed at once, as it fits in the channel's buffer.
    An empty preamble is not written: asyncssh would send it as a packet of its own."""
    if command.stdin is not None:
        return asyncio.create_task(_feed(chan, session, command))
    preamble = command.preamble()
    with contextlib.suppress(OSError, asyncssh.Error):  # as _feed: a command may not read it
        if preamble:
            chan.write(preamble)
        chan.write_eof()
    return None


async def _done_feeding(feeding: asyncio.Task[None] | None) -> None:
    """The command ended: stop writing what it did not read."""
    if feeding is None:
        return
    feeding.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await feeding


def feed_stdin(process: asyncssh.SSHClientProcess[bytes], data: bytes | None) -> None:
    """Give a remote command its stdin and close it.

    A command that exits without reading its stdin is not an error: the pipe
    may be gone, or its channel already closed ("not open for sending").
    """
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, asyncssh.ProtocolError):
        if data:
            process.stdin.write(data)
        process.stdin.write_eof()


async def _stop(
    conn: asyncssh.SSHClientConnection,
    chan: asyncssh.SSHClientChannel[bytes],
    mark: Mark | None,
    signal: str,
) -> str | None:
    """Signal the command through a second channel, then close its own.

    Returns why the command may still be running, or None when it surely is not.
    """
    left = doubt(await stop_remote(conn, mark, signal), mark)
    with contextlib.suppress(OSError, asyncssh.Error):
        chan.send_signal(signal)  # for servers that honour the SSH signal request
    chan.close()
    return left


@dataclass(frozen=True, slots=True)
class RunJob:
    """``herd run``'s command as plain data: herd runs it on each host in its own process,
    or hands it to worker processes (``herd.hosts.workers``), which build the same
    per-host work from it."""

    command: RemoteCommand
    kind: ClassVar[str] = "run"

    def per_host(self, connector: Connector) -> PerHost:
        """Each host's run, connected with ``connector``."""
        command = self.command

        async def one(host: Host, work: HostWork) -> HostResult:
            return await run_on_host(host, command, connector, work)

        return one
