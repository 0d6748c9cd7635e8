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

from herd.core.results import HostResult, Status
from herd.hosts.command import (
    OutputSink,
    RemoteCommand,
    Streams,
    collect,
    failure,
    finished,
    stopped,
)
from herd.inventory.model import Host

__all__ = ["run_locally"]

_KILL_GRACE = 2.0  # seconds between TERM and KILL for a command past its timeout


async def run_locally(
    host: Host, command: RemoteCommand, emit: OutputSink | None = None
) -> HostResult:
    """Run ``command`` through the local shell; never raises for the host."""
    started = time.monotonic()
    streams = Streams(command.output_cap)
    data = command.input_bytes()
    try:
        process = await asyncio.create_subprocess_shell(
            command.script(),
            stdin=asyncio.subprocess.PIPE if data else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return failure(host, started, Status.ERROR, f"cannot start the local shell: {exc}")
    assert process.stdout is not None and process.stderr is not None
    try:
        async with asyncio.timeout(command.timeout):
            if data and process.stdin is not None:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    process.stdin.write(data)
                    await process.stdin.drain()
                process.stdin.close()
            await collect(host.name, process.stdout, process.stderr, streams, emit)
            returncode = await process.wait()
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
