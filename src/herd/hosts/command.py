"""The command every host runs, and the pieces that turn its output into a ``HostResult``.

Shared by SSH hosts (``herd.hosts.remote``) and ``ansible_connection=local``
hosts (``herd.hosts.local``), so both give the same result shape. Output is
capped in memory per stream; the rest is counted and hashed.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Protocol

from herd.core.events import HostOutput
from herd.core.model import CappedOutput, Host, HostResult, Output, Status
from herd.hosts.become import Become, become_for

__all__ = [
    "OutputSink",
    "RemoteCommand",
    "Streams",
    "collect",
    "failure",
    "finished",
    "send_input",
    "stopped",
]

# where a host's output goes as it arrives: HostOutput events, or nowhere (None)
OutputSink = Callable[[HostOutput], None]

_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class RemoteCommand:
    """The command every host runs, with what surrounds it (env, become, stdin, timeout).

    Nothing secret is ever in the command line a host sees (its process list is
    readable by every local user): the become password and the variables' values
    reach the host's shell on stdin, ahead of ``stdin``'s own bytes (see
    ``preamble``), and the shell reads them with builtins. The one exception is
    ``HERD_HOST``, the host's own inventory name, set in the command line: nothing
    secret, and reading it would cost every host a subshell and, for a command
    without stdin, a packet of its own.
    """

    command: str
    env: tuple[tuple[str, str], ...] = ()
    become: Become | None = None  # the command line's; a host's inventory may say otherwise
    stdin: Path | None = None  # a file every host reads as its stdin, streamed in chunks
    timeout: float | None = None
    output_cap: int = 64 * 1024
    # --script: the local script's text, sent as the last line of the preamble (see
    # herd.hosts.script: the command then writes it to a private file and runs it)
    script_text: str | None = field(default=None, repr=False)
    # the environment ssh's SendEnv takes its values from: the command line's when the
    # agent opens the sessions (never sent further, to a gateway); None: this process's
    environment: tuple[tuple[str, str], ...] | None = field(default=None, repr=False)
    host_name: str | None = None  # HERD_HOST's value: the host's inventory name

    def for_host(self, host: Host) -> RemoteCommand:
        """This command as ``host`` runs it: ``HERD_HOST`` set to the host's inventory name
        (``--env`` may say otherwise), and its inventory's become variables applied."""
        become = become_for(host, self.become)
        if "\0" in host.name:  # no command line holds it: read it like any other value
            return replace(self, env=(("HERD_HOST", host.name), *self.env), become=become)
        return replace(self, host_name=host.name, become=become)

    def script(self) -> str:
        """The command line sent to the host's login shell (no values, no password in it).

        Under become, the command runs in the target user's login shell, as it
        would without become in the login user's: bash syntax keeps working.
        """
        variables = _read_variables(self.env)
        if self.host_name is not None:
            variables = f"HERD_HOST={shlex.quote(self.host_name)}; export HERD_HOST; {variables}"
        if self.become is None:
            return variables + self.command
        return self.become.wrap(variables, self.command)

    def preamble(self) -> bytes:
        """What the host's shell reads on stdin before the command's own input.

        The password line for ``sudo -v``, then one line per variable, each value
        with its backslashes and newlines escaped for ``printf %b``, then a
        ``--script``'s text, escaped the same way.
        """
        lines = [] if self.become is None else self.become.password_line()
        values = [value for _, value in self.env]
        if self.script_text is not None:
            values.append(self.script_text)
        lines.extend(value.replace("\\", "\\\\").replace("\n", "\\n") for value in values)
        return "".join(line + "\n" for line in lines).encode("utf-8", errors="surrogateescape")


def _read_variables(env: tuple[tuple[str, str], ...]) -> str:
    """Shell code that reads each variable's value from a stdin line and exports it.

    ``read`` takes one line from a pipe and no more, ``printf`` is a builtin: the
    values are in no process's argv, and the command gets the rest of stdin.
    """
    if not env:
        return ""
    reads = "".join(
        f'IFS= read -r herd_v; {name}=$(printf "%bx" "$herd_v"); {name}=${{{name}%x}}; '
        f"export {name}; "
        for name, _ in env
    )
    return reads + "unset herd_v; "


class _Writer(Protocol):
    def write(self, data: bytes, /) -> None: ...

    async def drain(self) -> None: ...


async def send_input(stdin: _Writer, command: RemoteCommand) -> None:
    """Write the preamble, then the ``--stdin`` file in chunks, waiting for each to drain.

    Each host reads the file at its own pace; what herd holds per host is one
    chunk and what the transport buffers, whatever the file's size or the
    number of hosts. The caller closes stdin (and cancels this if the command
    ends without reading it all).
    """
    preamble = command.preamble()
    if preamble:
        stdin.write(preamble)
    if command.stdin is not None:
        fd = os.open(command.stdin, os.O_RDONLY | os.O_CLOEXEC)
        try:
            offset = 0
            while chunk := os.pread(fd, _CHUNK, offset):
                offset += len(chunk)
                stdin.write(chunk)
                await stdin.drain()
        finally:
            os.close(fd)
    if preamble:
        await stdin.drain()


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
    reader: _Reader,
    sink: CappedOutput,
    host: str,
    stream: Literal["stdout", "stderr"],
    emit: OutputSink | None,
) -> None:
    while True:
        chunk = await reader.read(_CHUNK)
        if not chunk:
            return
        sink.write(chunk)
        if emit is not None:
            emit(HostOutput(host, stream, chunk))


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
        exit_status = None  # asyncssh says -1: there is no exit status, the signal says it
        error = f"killed by SIG{signal}"
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
        signal=signal,
    )


def stopped(
    host: Host, started: float, streams: Streams, timeout: float, doubt: str | None = None
) -> HostResult:
    """The result of a command stopped at its timeout (what it printed so far is kept).

    ``doubt`` says why herd could not make sure the command stopped, if it could not.
    """
    how = "stopped" if doubt is None else f"the command may still be running ({doubt})"
    return HostResult(
        host=host.name,
        address=host.address,
        status=Status.TIMEOUT,
        stdout=streams.stdout.result(),
        stderr=streams.stderr.result(),
        duration=time.monotonic() - started,
        error=f"command still running after {timeout:g} s: {how}",
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
