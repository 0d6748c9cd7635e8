"""Run one command on one SSH host: connect, feed stdin, collect capped output, stop on time.

OpenSSH's sshd ignores the SSH "signal" request and leaves a command running
when its channel closes, so to stop a command (timeout, Ctrl-C) herd signals
its process group through a second channel. The group is known because the
command line first reports the shell's PID (sshd makes every session shell a
process group leader) on a marked first stderr line, which is read and
removed before the output is collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncssh

from herd.core.results import HostResult, Status
from herd.errors import ConfigError
from herd.hosts.command import (
    OutputSink,
    RemoteCommand,
    Streams,
    collect,
    failure,
    finished,
    send_input,
    stopped,
)
from herd.hosts.connect import Connector, HostFailure, connection_lost
from herd.inventory.model import Host

__all__ = ["feed_stdin", "run_on_host"]

_PID_MARK = b"herd-pid:"
_STOP_TIMEOUT = 3.0  # seconds to signal a command through a second channel
_KILL_GRACE = 2  # seconds a timed-out command has to exit on TERM before KILL


async def run_on_host(
    host: Host, command: RemoteCommand, connector: Connector, emit: OutputSink | None = None
) -> HostResult:
    """Run ``command`` on ``host`` (over SSH, or locally for a local host); never raises for it."""
    started = time.monotonic()
    try:
        command = command.for_host(host)
    except ConfigError as exc:  # checked before the run; a host's own variables, here
        return failure(host, started, Status.ERROR, str(exc))
    if host.local:
        from herd.hosts.local import run_locally

        return await run_locally(host, command, emit)
    try:
        async with connector.session(host) as conn:
            return await _run(host, command, conn, emit, started)
    except HostFailure as exc:
        return failure(host, started, exc.status, exc.reason)
    except (OSError, asyncssh.Error) as exc:
        return failure(host, started, Status.ERROR, connection_lost(exc))


async def _run(
    host: Host,
    command: RemoteCommand,
    conn: asyncssh.SSHClientConnection,
    emit: OutputSink | None,
    started: float,
) -> HostResult:
    streams = Streams(command.output_cap)
    line = f"echo {_PID_MARK.decode()}$$ >&2; {command.script()}"
    process = await conn.create_process(line, encoding=None)
    pid: int | None = None
    try:
        async with asyncio.timeout(command.timeout):
            pid = await _read_pid(process, streams, host.name, emit)
            feeding = asyncio.create_task(_feed(process, command))
            try:
                await collect(host.name, process.stdout, process.stderr, streams, emit)
                await process.wait_closed()
            finally:
                await _done_feeding(feeding)
    except TimeoutError:
        await _stop(conn, process, pid, "TERM")
        assert command.timeout is not None
        return stopped(host, started, streams, command.timeout)
    except asyncio.CancelledError:
        await _stop(conn, process, pid, "HUP")
        raise
    signal = process.exit_signal[0] if process.exit_signal else None
    return finished(host, started, streams, process.exit_status, signal)


async def _feed(process: asyncssh.SSHClientProcess[bytes], command: RemoteCommand) -> None:
    """Stream the command's stdin; a command that stops reading it is not an error."""
    with contextlib.suppress(OSError, asyncssh.Error):
        await send_input(process.stdin, command)
        process.stdin.write_eof()


async def _done_feeding(feeding: asyncio.Task[None]) -> None:
    """The command ended: stop writing what it did not read."""
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


async def _read_pid(
    process: asyncssh.SSHClientProcess[bytes],
    streams: Streams,
    host: str,
    emit: OutputSink | None,
) -> int | None:
    """Read the marked PID line; anything else there is kept as the command's stderr."""
    line: bytes = await process.stderr.readline()
    before, mark, after = line.partition(_PID_MARK)
    pid = int(after.strip()) if mark and after.strip().isdigit() else None
    kept = before if pid is not None else line  # what a login shell printed first, if anything
    if kept:
        streams.stderr.write(kept)
        if emit is not None:
            emit(host, "stderr", kept)
    return pid


async def _stop(
    conn: asyncssh.SSHClientConnection,
    process: asyncssh.SSHClientProcess[bytes],
    pid: int | None,
    signal: str,
) -> None:
    """Signal the command's process group through a second channel, then close its own.

    After a TERM (timeout), a detached watcher on the host sends KILL to what is
    left of the group a few seconds later, so a command that ignores TERM is
    stopped all the same; a HUP (Ctrl-C) is left to the command, as a closed
    terminal would be.
    """
    if pid is not None:
        kill = f"kill -{signal} -- -{pid} 2>/dev/null || kill -{signal} {pid} 2>/dev/null"
        if signal == "TERM":
            kill += f"; (sleep {_KILL_GRACE:g}; kill -KILL -- -{pid}) </dev/null >/dev/null 2>&1 &"
        with contextlib.suppress(OSError, asyncssh.Error, TimeoutError):
            async with asyncio.timeout(_STOP_TIMEOUT):
                await conn.run(kill, check=False)
    with contextlib.suppress(OSError, asyncssh.Error):
        process.send_signal(signal)  # for servers that honour the SSH signal request
    process.close()
