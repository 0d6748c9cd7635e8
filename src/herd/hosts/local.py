"""``ansible_connection=local``: run the command on this machine, same result shape as SSH.

The command runs in its own process group, so a timeout or Ctrl-C stops the
whole pipeline it started, not just the shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

from herd.core.model import Host, HostResult, Status
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

__all__ = ["run_locally"]

_KILL_GRACE = 2.0  # seconds between TERM and KILL for a command past its timeout


async def run_locally(
    host: Host, command: RemoteCommand, emit: OutputSink | None = None
) -> HostResult:
    """Run ``command`` through the local shell; never raises for the host."""
    started = time.monotonic()
    streams = Streams(command.output_cap)
    try:
        process = await asyncio.create_subprocess_shell(
            command.script(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return failure(host, started, Status.ERROR, f"cannot start the local shell: {exc}")
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(command.timeout):
            feeding = asyncio.create_task(_feed(process, command))
            try:
                await collect(host.name, process.stdout, process.stderr, streams, emit)
                returncode = await process.wait()
            finally:
                feeding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeding
    except TimeoutError:
        await _stop(process, signal.SIGTERM)
        assert command.timeout is not None
        return stopped(host, started, streams, command.timeout)
    except asyncio.CancelledError:
        _signal_group(process, signal.SIGHUP)
        raise
    if returncode < 0:
        return finished(host, started, streams, None, signal.Signals(-returncode).name[3:])
    return finished(host, started, streams, returncode)


async def _feed(process: asyncio.subprocess.Process, command: RemoteCommand) -> None:
    """Stream the command's stdin, then close it; a command that stops reading is no error."""
    assert process.stdin is not None
    # a command that exits first closes the pipe: asyncio says so as an OSError or, once
    # the transport is closed, a RuntimeError
    with contextlib.suppress(OSError, RuntimeError):
        await send_input(process.stdin, command)
    process.stdin.close()


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


async def _stop(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    """Signal the command's process group; KILL it if it is still there after a grace time."""
    _signal_group(process, sig)
    try:
        async with asyncio.timeout(_KILL_GRACE):
            await process.wait()
    except TimeoutError:
        _signal_group(process, signal.SIGKILL)
        await process.wait()
