"""The shared vocabulary: a host, what happened on it, and a batch of such results.

``Host`` is a host as the rest of herd sees it (the inventory builds them, the
engine reaches them). Every operation on many hosts (a run, a push, a pull)
yields one ``HostResult`` per host, local or remote alike: partial failure is a
value, not an exception; a ``BatchResult`` gathers them.
"""

from __future__ import annotations

import hashlib
import signal
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from herd.errors import signal_exit_code

__all__ = [
    "BatchResult",
    "CappedOutput",
    "FileRecord",
    "Host",
    "HostResult",
    "OperationStatus",
    "Output",
    "Status",
]


@dataclass(frozen=True, slots=True)
class Host:
    """One inventory host with its variables resolved (Ansible precedence applied).

    The connection fields are read from herd's names or their Ansible twins
    (``address``/``ansible_host``, ``port``/``ansible_port``, ...); ``None`` means
    "not set here": ``~/.ssh/config`` and the SSH defaults apply underneath.
    """

    name: str
    address: str
    port: int | None = None
    user: str | None = None
    identity_files: tuple[str, ...] = ()
    password: str | None = field(default=None, repr=False)
    jump: str | None = None
    known_hosts: str | None = None
    connect_timeout: float | None = None
    local: bool = False  # ansible_connection=local: run on this machine without SSH
    groups: tuple[str, ...] = ()
    vars: Mapping[str, object] = field(default_factory=dict, repr=False)
    connection: str = "ssh"  # ansible_connection as written: "ssh", "local", or another plugin


class Status(StrEnum):
    """What happened on one host, classified by who caused it."""

    OK = "ok"
    FAILED = "failed"  # the command ran and exited non-zero
    UNREACHABLE = "unreachable"  # no connection: refused, no route, no banner in time
    TIMEOUT = "timeout"  # the command ran out of time and was stopped
    AUTH_FAILED = "auth_failed"  # the host refused our credentials
    HOSTKEY_UNKNOWN = "hostkey_unknown"  # first contact: no known_hosts entry for the host
    HOSTKEY_MISMATCH = "hostkey_mismatch"  # the host's key differs from the recorded one
    ERROR = "error"  # anything else: a transfer error, a protocol error
    SKIPPED = "skipped"  # never started: a failure threshold was crossed, or an interruption


class OperationStatus(StrEnum):
    """How an operation stands in the log: running, then ok, failed or interrupted."""

    RUNNING = "running"
    OK = "ok"  # every host ok
    FAILED = "failed"  # one host or more not ok
    INTERRUPTED = "interrupted"  # stopped by a signal, or its process died

    @classmethod
    def ending(cls, exit_code: int, interrupted: bool) -> OperationStatus:
        """The status an operation that ended with ``exit_code`` is recorded with."""
        if interrupted:
            return cls.INTERRUPTED
        return cls.OK if exit_code == 0 else cls.FAILED


@dataclass(frozen=True, slots=True)
class Output:
    """One output stream of a host: its first bytes, and the size and hash of the whole."""

    data: bytes = b""
    total: int = 0
    sha256: str = hashlib.sha256(b"").hexdigest()

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class CappedOutput:
    """Collects a stream in memory up to ``cap`` bytes; counts and hashes all of it."""

    __slots__ = ("_buffer", "_cap", "_hash", "_total")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self._total = 0

    def write(self, chunk: bytes) -> None:
        self._total += len(chunk)
        self._hash.update(chunk)
        room = self._cap - len(self._buffer)
        if room > 0:
            self._buffer += chunk[:room]

    def result(self) -> Output:
        return Output(bytes(self._buffer), self._total, self._hash.hexdigest())


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One file sent to or fetched from a host."""

    path: str
    size: int
    sha256: str
    skipped: bool = False  # already there with the same size and hash


@dataclass(frozen=True, slots=True)
class HostResult:
    """The outcome on one host, the same shape for SSH, local runs and transfers."""

    host: str
    address: str
    status: Status
    exit_status: int | None = None
    stdout: Output = field(default_factory=Output)
    stderr: Output = field(default_factory=Output)
    duration: float = 0.0
    error: str = ""  # one line a person understands, empty when ok
    files: tuple[FileRecord, ...] = ()
    signal: str | None = None  # the signal that killed the command ("KILL"); exit_status is None
    batch: int = 0  # the rollout batch the host ran in (1, 2, ...); 0 when there were none

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def bytes_transferred(self) -> int:
        return sum(f.size for f in self.files if not f.skipped)

    @property
    def skipped(self) -> int:
        return sum(1 for f in self.files if f.skipped)

    def json_fields(self) -> dict[str, object]:
        """DESIGN.md's per-host JSON keys, the shape of every ``--json`` line and export."""
        return {
            "host": self.host,
            "address": self.address,
            "status": self.status.value,
            "exit_status": self.exit_status,
            "stdout": self.stdout.text,
            "stderr": self.stderr.text,
            "duration": round(self.duration, 3),
            "error": self.error,
            # added keys: a stream cut at the output cap says so, with its full size
            "signal": f"SIG{self.signal}" if self.signal else None,
            "batch": self.batch,
            "stdout_truncated": self.stdout.truncated,
            "stderr_truncated": self.stderr.truncated,
            "stdout_bytes": self.stdout.total,
            "stderr_bytes": self.stderr.total,
        }


@dataclass(slots=True)
class BatchResult:
    """All host results of one operation, in the order they finished."""

    results: list[HostResult] = field(default_factory=list)
    interrupted: bool = False
    stop_signal: int = signal.SIGINT  # what interrupted it: Ctrl-C, or SIGTERM, SIGHUP

    def interrupt(self, signum: int = signal.SIGINT) -> None:
        """Mark the batch stopped early by ``signum`` (the first signal counts)."""
        if not self.interrupted:
            self.interrupted = True
            self.stop_signal = signum

    def __iter__(self) -> Iterator[HostResult]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def add(self, result: HostResult) -> None:
        self.results.append(result)

    def extend(self, results: Iterable[HostResult]) -> None:
        self.results.extend(results)

    @property
    def ok(self) -> list[HostResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[HostResult]:
        return [r for r in self.results if not r.ok]

    def by_status(self) -> dict[Status, list[HostResult]]:
        groups: dict[Status, list[HostResult]] = {}
        for result in self.results:
            groups.setdefault(result.status, []).append(result)
        return groups

    @property
    def exit_code(self) -> int:
        """DESIGN.md's contract: 0 all ok, 1 any host not ok, 128+N stopped by signal N."""
        if self.interrupted:
            return signal_exit_code(self.stop_signal)
        return 0 if all(r.ok for r in self.results) else 1
