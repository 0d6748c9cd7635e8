"""What an FTP session did, as typed events, and the sink that writes them to the operation log.

The handler emits events; sinks consume them (pyftpdlib's ``on_login`` hooks,
structlog's processors). ``AuditSink`` hands each event to ONE writer thread
through a queue, so handler threads never wait on SQLite: each event becomes
one operation of kind ``ftp`` with the client address as its host.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from herd.core.audit import AuditLog, Operator
from herd.core.model import FileRecord, HostResult, Status
from herd.errors import AuditError

__all__ = [
    "AuditSink",
    "EventSink",
    "FileEvent",
    "FtpEvent",
    "LoginEvent",
    "MemorySink",
    "NullSink",
    "RenameEvent",
    "TransferEvent",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class FtpEvent(ABC):
    """Something a client did: who (user, address), whether it worked, when and how long."""

    user: str  # "-" before login
    client: str  # the client's IP address
    ok: bool = True
    error: str = ""
    started: float = field(default_factory=time.time)
    duration: float = 0.0

    @property
    @abstractmethod
    def command(self) -> str:
        """The event in the operation log's words: "STOR /path", "LOGIN", ..."""

    @property
    def files(self) -> tuple[FileRecord, ...]:
        return ()

    def host_result(self) -> HostResult:
        return HostResult(
            host=self.client,
            address=self.client,
            status=Status.OK if self.ok else Status.ERROR,
            duration=self.duration,
            error=self.error,
            files=self.files,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginEvent(FtpEvent):
    """A login attempt (the password is never part of it)."""

    @property
    def command(self) -> str:
        return "LOGIN" if self.ok else "LOGIN FAILED"


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferEvent(FtpEvent):
    """An upload (STOR, APPE, STOU) or a download (RETR) of one file."""

    verb: str
    path: str
    size: int = 0
    sha256: str = ""  # of the uploaded file as stored; empty for downloads

    @property
    def command(self) -> str:
        return f"{self.verb} {self.path}"

    @property
    def files(self) -> tuple[FileRecord, ...]:
        return (FileRecord(self.path, self.size, self.sha256),)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEvent(FtpEvent):
    """A change to the tree: DELE, MKD or RMD."""

    verb: str
    path: str

    @property
    def command(self) -> str:
        return f"{self.verb} {self.path}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RenameEvent(FtpEvent):
    """RNFR + RNTO."""

    source: str
    target: str

    @property
    def command(self) -> str:
        return f"RNFR {self.source} RNTO {self.target}"


class EventSink(Protocol):
    """Consumes session events; ``emit`` must return at once."""

    def emit(self, event: FtpEvent) -> None: ...


class NullSink:
    """Drops every event."""

    def emit(self, event: FtpEvent) -> None:
        pass


class MemorySink:
    """Keeps events in a list (tests, and the demo's summary)."""

    def __init__(self) -> None:
        self.events: list[FtpEvent] = []
        self._lock = threading.Lock()

    def emit(self, event: FtpEvent) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type[FtpEvent]) -> list[FtpEvent]:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]


_STOP = object()


class AuditSink:
    """Writes events to the operation log from one writer thread; ``close`` drains the queue."""

    def __init__(self, path: Path, *, argv: tuple[str, ...] = ("herd", "ftp", "serve")) -> None:
        self.path = path
        self._argv = argv
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._controller = socket.gethostname()
        AuditLog(path).close()  # fail now, in the caller, if the log cannot be opened
        self._thread = threading.Thread(target=self._write_all, name="ftp-audit", daemon=True)
        self._thread.start()

    def emit(self, event: FtpEvent) -> None:
        self._queue.put(event)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _write_all(self) -> None:
        audit = AuditLog(self.path)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                assert isinstance(item, FtpEvent)
                try:
                    self._write(audit, item)
                except AuditError as exc:
                    log.error("%s", exc)  # noqa: TRY400 (one line, no traceback)
                except Exception as exc:  # the writer must outlive one bad event
                    log.error("cannot log FTP event %s: %r", item.command, exc)  # noqa: TRY400
        finally:
            audit.close()

    def _write(self, audit: AuditLog, event: FtpEvent) -> None:
        who = Operator(
            user=event.user, sudo_user=None, operator=event.user, controller=self._controller
        )
        audit.record(
            "ftp",
            argv=self._argv,
            hosts=[event.client],
            command=event.command,
            operator=who,
            results=[event.host_result()],
            status="ok" if event.ok else "error",
            started=event.started,
            ended=event.started + event.duration,
        )
