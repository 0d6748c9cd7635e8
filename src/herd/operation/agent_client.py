"""The command line's side of the agent, on the standard library alone.

``ensure_agent`` finds this user's agent or starts one (it detaches itself
into its own session); ``request`` asks it one question; ``AgentRun`` hands it
one operation's hosts and turns the events it streams back into each host's
result. If the agent dies during an operation, every host it had not finished
ends with that reason and is never run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from herd.core.events import EventError, HostFinished, decode
from herd.core.model import Host, HostResult, Status
from herd.core.plain import plain
from herd.errors import ConfigError, SourceError, UsageError
from herd.operation.agent_protocol import (
    LINE_LIMIT,
    AgentFiles,
    LineBatch,
    agent_files,
    agent_gone,
    message,
    read_message,
    warm_pid,
)
from herd.operation.driver import HostWork

__all__ = ["AgentRun", "AgentUnavailable", "check", "ensure_agent", "request", "status"]

_START_BOUND = 30.0  # seconds a starting agent has to say it serves
_CHECK_BOUND = 60.0  # seconds the agent has to read every key and known_hosts file
_STALE_BOUND = 5.0  # seconds an idle agent of an earlier herd has to close and leave
_REFUSALS: dict[str, type[UsageError]] = {"ConfigError": ConfigError, "SourceError": SourceError}


class AgentUnavailable(Exception):
    """No agent could be had for this command: the reason, in one line."""


def request(files: AgentFiles, body: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request and read its one answer; OSError if no agent listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(files.socket))
        sock.sendall(message(body))
        with sock.makefile("rb") as answers:
            line = answers.readline(LINE_LIMIT)
    if not line:
        raise ConnectionResetError("the agent closed the connection without answering")
    try:
        answer = read_message(line)
    except ValueError as exc:
        raise ConnectionResetError(f"the agent answered nonsense: {exc}") from None
    if "error" in answer:
        raise AgentUnavailable(f"the agent refused: {answer['error']}")
    return answer


def check(
    options: dict[str, Any], hosts: list[dict[str, Any]], files: AgentFiles | None = None
) -> list[str]:
    """Have the agent read every key, known_hosts and ssh config file the hosts need (plain
    ``ConnectOptions`` and ``Host`` data, their paths as given here), as the run it will
    carry will: the warnings.

    Input the agent refuses raises the same error, with the same line, as reading the
    files in this process would; OSError or AgentUnavailable if the agent cannot answer.
    """
    body = {"op": "check", "options": options, "hosts": hosts, "cwd": str(Path.cwd())}
    answer = request(files or agent_files(), body, timeout=_CHECK_BOUND)
    if "refused" in answer:
        raise _REFUSALS.get(str(answer.get("kind")), UsageError)(str(answer["refused"]))
    return [str(warning) for warning in answer.get("warnings", ())]


def ensure_agent(persist: float) -> int:
    """The pid of this user's agent, started (with ``persist``) if none runs, or in place
    of one whose herd changed on disk since it started (it leaves once idle)."""
    files = agent_files()
    try:
        answer = request(files, {"op": "hello"})
    except OSError:
        answer = {}
    if answer.get("stale"):  # it runs an earlier herd, and leaves once its last client is done
        pid = int(answer["pid"])
        if not agent_gone(pid, _STALE_BOUND):
            raise AgentUnavailable(
                f"the agent (pid {pid}) runs herd as it was before its files changed and"
                " is still serving; it leaves when done"
            )
        answer = {}
    if not answer:
        _start(persist)
        try:
            answer = request(files, {"op": "hello"})
        except OSError as exc:
            raise AgentUnavailable(f"the agent started but does not answer: {exc}") from None
    home = str(Path.home())
    if answer.get("home") != home:
        raise AgentUnavailable(
            f"the agent (pid {answer.get('pid')}) runs with HOME={answer.get('home')}, not {home}"
        )
    return int(answer["pid"])


def _start(persist: float) -> None:
    """Start an agent and wait until it serves (or another, started at once, does)."""
    argv = [sys.executable, "-m", "herd", "agent", "serve", "--persist", f"{persist:g}"]
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            timeout=_START_BOUND,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AgentUnavailable(f"cannot start the agent: {exc}") from None
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AgentUnavailable(f"cannot start the agent: {why[-1] if why else done.returncode}")


class AgentRun:
    """One operation's connection to the agent: hosts go out, their events come back.

    An async context manager (the driver's ``resources``): entered on the
    operation's event loop, left when the last host is done.
    """

    def __init__(
        self,
        pid: int,
        setup: dict[str, Any],
        prepare: Callable[[Host], Host] = lambda host: host,
        files: AgentFiles | None = None,
    ) -> None:
        """``setup`` is the run's plain data; ``prepare`` trims a host to what the agent needs."""
        self.pid = pid
        self._setup = setup
        self._prepare = prepare
        self._files = files or agent_files()
        self._writer: asyncio.StreamWriter | None = None
        self._lines: LineBatch | None = None  # every line after the first goes through it
        self._reading: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[Host, HostWork, asyncio.Future[HostResult]]] = {}
        self._dead = False

    async def __aenter__(self) -> AgentRun:
        try:
            reader, writer = await asyncio.open_unix_connection(
                str(self._files.socket), limit=LINE_LIMIT
            )
            writer.write(message({"op": "run", **self._setup}))
            answer = read_message(await reader.readline())
        except (OSError, ValueError):
            self._dead = True
            return self
        if "error" in answer:
            self._dead = True
            writer.close()
            return self
        self._writer = writer
        self._lines = LineBatch(writer)
        self._reading = asyncio.create_task(self._read(reader))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            if self._lines is not None:
                self._lines.flush()
            self._writer.close()
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading

    async def run_host(self, host: Host, work: HostWork) -> HostResult:
        """``host``'s work, done by the agent; its output events go to ``work.emit``."""
        if self._dead or self._writer is None or self._lines is None:
            return self._died(host)
        done: asyncio.Future[HostResult] = asyncio.get_running_loop().create_future()
        self._pending[host.name] = (host, work, done)
        wire = {"op": "host", "host": plain(self._prepare(host)), "wants_output": work.wants_output}
        self._lines.write(message(wire))
        try:
            return await done
        except asyncio.CancelledError:  # Ctrl-C: the agent stops the host's command
            self._pending.pop(host.name, None)
            if not self._writer.is_closing():
                self._lines.write(message({"op": "cancel", "host": host.name}))
            raise

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                event = decode(line)
                if isinstance(event, HostFinished):
                    entry = self._pending.pop(event.result.host, None)
                    if entry is not None and not entry[2].done():
                        entry[2].set_result(event.result)
                    continue
                name = getattr(event, "host", None)
                waiting = self._pending.get(name) if isinstance(name, str) else None
                if waiting is not None:
                    waiting[1].emit(event)
        except (OSError, EventError, ValueError):
            pass
        finally:  # the agent is gone: what it had not finished ends now, and is not run again
            self._dead = True
            for host, _work, done in self._pending.values():
                if not done.done():
                    done.set_result(self._died(host))
            self._pending.clear()

    def _died(self, host: Host) -> HostResult:
        return HostResult(
            host.name,
            host.address,
            Status.ERROR,
            error=f"the agent (pid {self.pid}) died during the operation",
        )


def status(files: AgentFiles | None = None) -> dict[str, Any] | None:
    """The running agent's status (with its warm command line's pid), or None when no
    agent runs."""
    files = files or agent_files()
    try:
        answer = request(files, {"op": "status"})
    except OSError:
        return None
    answer["warm_pid"] = warm_pid(files)
    return answer
