"""What the agent and its clients share: where its files are, and what crosses its socket.

The agent (``herd agent``) is one process per user. Its files live in the
user's private runtime directory (``$XDG_RUNTIME_DIR/herd``, else
``/tmp/herd-UID``, checked to be a 0700 directory of this user's): the socket
``agent.sock`` (0600), ``agent.lock`` (held locked by the running agent, it
holds its pid) and ``agent.log``.

The protocol is one JSON object per line, each way. A client opens the socket
and sends one request: ``{"op": "hello"}``, ``{"op": "status"}``,
``{"op": "stop"}``, ``{"op": "check", "options": {...}, "hosts": [...]}`` (read
every file the hosts' connections need now, answered with ``warnings`` or a
``refused`` line), or ``{"op": "run", ...}`` followed by ``{"op": "host",
"host": {...}}`` and ``{"op": "cancel", "host": NAME}`` lines; for a run the
agent answers with the operation layer's own events (``herd.core.events``:
``host_output``, ``host_finished``), one per line, and a refusal is
``{"error": "..."}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herd.core.paths import runtime_dir

__all__ = [
    "AgentFiles",
    "LineBatch",
    "agent_files",
    "agent_gone",
    "agent_pid",
    "is_agent_process",
    "message",
    "read_message",
    "warm_pid",
]

LINE_LIMIT = 16 * 1024 * 1024  # a host with a huge inventory still fits on one line


@dataclass(frozen=True, slots=True)
class AgentFiles:
    """The agent's socket, lock and log, in this user's private runtime directory."""

    directory: Path

    @property
    def socket(self) -> Path:
        return self.directory / "agent.sock"

    @property
    def lock(self) -> Path:
        return self.directory / "agent.lock"

    @property
    def log(self) -> Path:
        return self.directory / "agent.log"

    @property
    def warm_socket(self) -> Path:
        """Where the agent's warm command line (``herd.cli.warm``) takes commands."""
        return self.directory / "cli.sock"

    @property
    def warm_lock(self) -> Path:
        return self.directory / "cli.lock"


def agent_files() -> AgentFiles:
    """This user's agent files (the directory is made, or checked to be ours, 0700)."""
    return AgentFiles(runtime_dir())


def agent_pid(files: AgentFiles) -> int | None:
    """The pid the lock file names, if it names a live herd agent of ours."""
    return _pid_in(files.lock, b"serve")


def warm_pid(files: AgentFiles) -> int | None:
    """The pid of the agent's warm command line, if it runs."""
    return _pid_in(files.warm_lock, b"warm")


def _pid_in(lock: Path, role: bytes) -> int | None:
    try:
        pid = int(lock.read_text(encoding="ascii").strip() or "0")
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and is_agent_process(pid, role) else None


def is_agent_process(pid: int, role: bytes = b"serve") -> bool:
    """Whether ``pid`` is a ``herd agent serve`` process of this user (not a reused pid),
    or with ``role`` b"warm" its warm command line."""
    try:
        if Path(f"/proc/{pid}").stat().st_uid != os.geteuid():
            return False
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"herd" in words and b"agent" in words and role in words


def agent_gone(pid: int, bound: float) -> bool:
    """Wait up to ``bound`` seconds for the agent ``pid`` to exit; whether it has."""
    deadline = time.monotonic() + bound
    while is_agent_process(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def message(body: dict[str, Any]) -> bytes:
    """One protocol line."""
    return json.dumps(body, separators=(",", ":")).encode("utf-8") + b"\n"


def read_message(line: bytes) -> dict[str, Any]:
    """The object of one protocol line; ValueError for anything else."""
    body = json.loads(line)
    if not isinstance(body, dict):
        raise ValueError(f"not a protocol message: {line[:80]!r}")  # noqa: TRY004 (json says ValueError too)
    return body


class LineBatch:
    """Protocol lines written during one turn of the event loop, sent with one write.

    A run's hosts start, and their events end, many at a time: one system call
    (and one wake-up of the peer) for all of them instead of one each. Every line
    of the connection must go through the batch, so their order holds.
    """

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[bytes] = []

    def write(self, line: bytes) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if not self._writer.is_closing():
            self._writer.write(data)
