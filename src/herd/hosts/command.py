"""The command every host runs, and the pieces that turn its output into a ``HostResult``.

Shared by SSH hosts (``herd.hosts.remote``) and ``ansible_connection=local``
hosts (``herd.hosts.local``), so both give the same result shape. Output is
capped in memory per stream; the rest is counted and hashed.
"""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from herd.core.results import CappedOutput, HostResult, Output, Status
from herd.inventory.model import Host

__all__ = [
    "OutputSink",
    "RemoteCommand",
    "Streams",
    "collect",
    "failure",
    "finished",
    "stopped",
]

# (host name, "stdout" or "stderr", bytes as they arrive)
OutputSink = Callable[[str, str, bytes], None]

_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class RemoteCommand:
    """The command every host runs, with what surrounds it (env, sudo, stdin, timeout)."""

    command: str
    env: tuple[tuple[str, str], ...] = ()
    sudo: bool = False
    become_password: str | None = field(default=None, repr=False)
    stdin: bytes | None = field(default=None, repr=False)
    timeout: float | None = None
    output_cap: int = 64 * 1024

    def script(self) -> str:
        """The command line sent to the host's shell.

        Variables are exported in the command line itself: sshd passes the
        client's environment only for names its AcceptEnv lists.
        """
        exports = "".join(f"export {name}={shlex.quote(value)}; " for name, value in self.env)
        line = exports + self.command
        if not self.sudo:
            return line
        run = f"sudo -n -- sh -c {shlex.quote(line)}"
        if self.become_password is None:
            return run  # -n: fail at once rather than wait for a password nobody will type
        return _BECOME + run

    def input_bytes(self) -> bytes | None:
        """What the command reads on stdin: the sudo password line first, then --stdin."""
        if self.become_password is None or not self.sudo:
            return self.stdin
        return self.become_password.encode() + b"\n" + (self.stdin or b"")


# The shell reads the password line from stdin itself (``read`` takes exactly one
# line from a pipe) and hands it to ``sudo -v`` through printf, a builtin, so it
# is in no process's argv and never reaches the command's stdin, whether or not
# sudo asks for it; the command then runs under the cached credentials.
_BECOME = (
    "IFS= read -r HERD_BECOME; "
    "printf '%s\\n' \"$HERD_BECOME\" | sudo -S -p '' -v; herd_sudo=$?; unset HERD_BECOME; "
    '[ "$herd_sudo" -eq 0 ] || { echo "herd: sudo did not accept the password" >&2; exit 1; }; '
)


class _Reader(Protocol):
    def read(self, n: int = ..., /) -> Awaitable[bytes]: ...


@dataclass(slots=True)
class Streams:
    """The two capped output streams of one command."""

    cap: int
    stdout: CappedOutput = field(init=False)
    stderr: CappedOutput = field(init=False)

    def __post_init__(self) -> None:
        self.stdout = CappedOutput(self.cap)
        self.stderr = CappedOutput(self.cap)


async def _pump(
    reader: _Reader, sink: CappedOutput, host: str, stream: str, emit: OutputSink | None
) -> None:
    while True:
        chunk = await reader.read(_CHUNK)
        if not chunk:
            return
        sink.write(chunk)
        if emit is not None:
            emit(host, stream, chunk)


async def collect(
    host: str, stdout: _Reader, stderr: _Reader, streams: Streams, emit: OutputSink | None
) -> None:
    """Read both streams to their end, concurrently, into ``streams``."""
    async with asyncio.TaskGroup() as group:
        group.create_task(_pump(stdout, streams.stdout, host, "stdout", emit))
        group.create_task(_pump(stderr, streams.stderr, host, "stderr", emit))


def finished(
    host: Host,
    started: float,
    streams: Streams,
    exit_status: int | None,
    signal: str | None = None,
) -> HostResult:
    """The result of a command that ran to its end."""
    error = ""
    if signal is not None:
        error = f"command killed by signal {signal}"
    elif exit_status is None:
        error = "command ended without an exit status"
    elif exit_status != 0:
        error = f"command exited with status {exit_status}"
    return HostResult(
        host=host.name,
        address=host.address,
        status=Status.OK if exit_status == 0 else Status.FAILED,
        exit_status=exit_status,
        stdout=streams.stdout.result(),
        stderr=streams.stderr.result(),
        duration=time.monotonic() - started,
        error=error,
    )


def stopped(host: Host, started: float, streams: Streams, timeout: float) -> HostResult:
    """The result of a command stopped at its timeout (what it printed so far is kept)."""
    return HostResult(
        host=host.name,
        address=host.address,
        status=Status.TIMEOUT,
        stdout=streams.stdout.result(),
        stderr=streams.stderr.result(),
        duration=time.monotonic() - started,
        error=f"command still running after {timeout:g} s: stopped",
    )


def failure(host: Host, started: float, status: Status, reason: str) -> HostResult:
    """The result of a host that never ran the command."""
    return HostResult(
        host=host.name,
        address=host.address,
        status=status,
        stdout=Output(),
        stderr=Output(),
        duration=time.monotonic() - started,
        error=reason,
    )
