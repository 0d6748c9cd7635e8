"""What an FTP session did, as typed events, and the simple sinks.

The handler emits events; sinks consume them (pyftpdlib's ``on_login`` hooks,
structlog's processors). Every event names its session (one control
connection), so the operation log's sink (``herd.ftp.recorder.AuditSink``)
makes one operation of each session, with its actions as the entries.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol

from herd.core.model import FileRecord, HostResult, Status

__all__ = [
    "EventSink",
    "FileEvent",
    "FtpEvent",
    "LoginEvent",
    "MemorySink",
    "NullSink",
    "RenameEvent",
    "SessionEnded",
    "TransferEvent",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FtpEvent(ABC):
    """Something a client did: who (user, address), whether it worked, when and how long."""

    user: str  # "-" before login
    client: str  # the client's IP address
    session: int = 0  # which control connection: the server numbers them
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

    def host_result(self, label: str | None = None) -> HostResult:
        """The event as an entry of the operation log (``label`` names it; default the client)."""
        return HostResult(
            host=label or self.client,
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


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnded(FtpEvent):
    """The control connection closed: the session's operation is complete."""

    @property
    def command(self) -> str:
        return "END"


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
