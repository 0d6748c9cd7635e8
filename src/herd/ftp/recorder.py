"""The FTP server's operation log: one operation per session, written by one thread in batches.

Handler threads hand events to a queue and never wait on SQLite. The writer
thread takes whatever has queued up and writes it in one transaction
(``AuditLog.batch``), so a busy server pays one commit for many events.

Each FTP session (a login on one control connection) is one operation of kind
``ftp``: its host is the client's address, its entries are its actions
(``#1 LOGIN``, ``#2 STOR /a.iso`` ...), each with its status, error, duration
and, for transfers, the file's size and sha256. A session that ends within
one batch (the writer lingers a moment for the rest of a batch) is recorded
whole; a longer one is begun (so a server killed meanwhile leaves it
``interrupted``, as other operations), gets its entries batch by batch and is
sealed when the client goes. A new login as another
user on the same connection starts a new operation.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from herd.core.audit import AuditLog, Operator
from herd.core.model import HostResult
from herd.errors import AuditError
from herd.ftp.events import FtpEvent, LoginEvent, SessionEnded

__all__ = ["AuditSink"]

log = logging.getLogger(__name__)

_STOP = object()
_BATCH = 2000  # events written in one transaction at most
# Seconds the writer waits after the first event of a batch for more: most sessions then
# reach the log whole. A server killed meanwhile loses at most this much of its news.
_LINGER = 0.2


@dataclass(slots=True)
class _Operation:
    """One session's operation while it runs: begun in the log or not yet."""

    user: str
    client: str
    started: float
    op_id: int | None = None
    entries: int = 0
    failed: bool = False
    ended: float = 0.0
    pending: list[HostResult] = field(default_factory=list)  # not yet written

    def add(self, event: FtpEvent) -> None:
        self.entries += 1
        self.failed = self.failed or not event.ok
        self.ended = max(self.ended, event.started + event.duration)
        self.pending.append(event.host_result(f"#{self.entries} {event.command}"))


class AuditSink:
    """Writes sessions to the operation log from one writer thread; ``close`` drains the queue."""

    def __init__(
        self,
        path: Path,
        *,
        argv: tuple[str, ...] = ("herd", "ftp", "serve"),
        linger: float = _LINGER,
        syslog: str | None = None,
    ) -> None:
        self.path = path
        self._syslog = syslog  # the socket a summary of each session goes to, if any
        self._argv = argv
        self._linger = linger
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._controller = socket.gethostname()
        self._open: dict[int, _Operation] = {}
        AuditLog(path).close()  # fail now, in the caller, if the log cannot be opened
        self._thread = threading.Thread(target=self._write_all, name="ftp-audit", daemon=True)
        self._thread.start()

    def emit(self, event: FtpEvent) -> None:
        self._queue.put(event)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- the writer thread ---------------------------------------------------------

    def _write_all(self) -> None:
        audit = AuditLog(self.path, syslog=self._syslog is not None, syslog_address=self._syslog)
        try:
            try:
                audit.seal_interrupted()  # once: begin() below skips the look at every session
            except AuditError as exc:
                log.error("%s", exc)  # noqa: TRY400 (one line, no traceback)
            stopping = False
            while not stopping:
                batch = [self._queue.get()]
                if batch[0] is not _STOP:
                    # Let the rest of a short session arrive: it is then written whole in
                    # one statement group, not begun, added to and sealed in several.
                    time.sleep(self._linger)
                while len(batch) < _BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stopping = _STOP in batch
                events = [e for e in batch if isinstance(e, FtpEvent)]
                try:
                    with audit.batch():
                        self._write(audit, events)
                except AuditError as exc:
                    log.error("%s", exc)  # noqa: TRY400 (one line, no traceback)
                except Exception as exc:  # the writer must outlive one bad batch
                    log.error("cannot log %d FTP events: %r", len(events), exc)  # noqa: TRY400
        finally:
            audit.close()

    def _write(self, audit: AuditLog, events: list[FtpEvent]) -> None:
        """Fold the events into their sessions; write the finished whole, the rest as begun."""
        for event in events:
            current = self._open.get(event.session)
            if isinstance(event, SessionEnded):
                if current is not None:
                    del self._open[event.session]
                    self._complete(audit, current)
                continue
            if current is not None and _another_login(current, event):
                del self._open[event.session]
                self._complete(audit, current)
                current = None
            if current is None:
                current = _Operation(event.user, event.client, event.started)
                self._open[event.session] = current
            current.add(event)
        for running in self._open.values():
            self._keep(audit, running)

    def _operator(self, user: str) -> Operator:
        return Operator(user=user, sudo_user=None, operator=user, controller=self._controller)

    def _keep(self, audit: AuditLog, running: _Operation) -> None:
        """Write a running session's news: begin it first if it is new."""
        if running.op_id is None:
            running.op_id = audit.begin(
                "ftp", argv=self._argv, hosts=[running.client], pattern=running.client,
                command=f"FTP session of {running.user}", operator=self._operator(running.user),
                started=running.started, seal_dead=False,
            )  # fmt: skip
        if running.pending:
            audit.record_hosts(running.op_id, running.pending)
            running.pending = []

    def _complete(self, audit: AuditLog, done: _Operation) -> None:
        status = "failed" if done.failed else "ok"
        if done.op_id is None:
            audit.record(
                "ftp", argv=self._argv, hosts=[done.client], pattern=done.client,
                command=f"FTP session of {done.user}", operator=self._operator(done.user),
                results=done.pending, status=status, started=done.started, ended=done.ended,
            )  # fmt: skip
            return
        self._keep(audit, done)
        audit.finish(done.op_id, status=status, exit_code=int(done.failed), ended=done.ended)


def _another_login(current: _Operation, event: FtpEvent) -> bool:
    """A successful login as someone else than the session's user so far."""
    return isinstance(event, LoginEvent) and event.ok and event.user != current.user
