"""The operation log as a sink: one writer thread, so no host's work waits on SQLite.

``Recorder.begin`` records the operation before anything connects (herd refuses
to run what it cannot record). Then each finished host is queued, and a thread
of the recorder's own writes the queue in batches, one transaction per batch, at
least once a second: another herd or a ``herd log verify`` holding the log's
write lock stalls the writer, never the live output, and a killed herd loses
at most a second of results. ``OperationFinished`` completes the operation as
ok, failed or interrupted; ``close`` waits for the writer and reports a write
that failed. Passwords never reach it: they are not in argv, nor in results.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from herd.core.audit import AuditLog
from herd.core.events import Event, HostFinished, OperationFinished
from herd.core.model import HostResult, OperationStatus
from herd.core.secrets import mask_argv, mask_secrets
from herd.errors import AuditError, HerdError

__all__ = ["Recorder"]

_FLUSH_SECONDS = 1.0
_FLUSH_HOSTS = 200
_CLOSE_WAIT = 60.0  # seconds close() waits for the writer (another process may hold the lock)


class Recorder:
    """Writes one operation and its host results to the operation log, off the event loop."""

    wants_output = False

    def __init__(self, path: Path, op_id: int, *, syslog: str | None) -> None:
        self.path = path
        self.op_id = op_id
        self._syslog = syslog
        self._queue: queue.SimpleQueue[HostResult | OperationFinished] = queue.SimpleQueue()
        self._failure: HerdError | None = None
        self._opened = threading.Event()  # the writer has its connection (or failed to)
        self._thread = threading.Thread(target=self._write_all, name="herd-recorder", daemon=True)
        self._thread.start()

    @classmethod
    def begin(
        cls,
        path: Path,
        kind: str,
        *,
        argv: Sequence[str],
        pattern: str | None,
        hosts: Sequence[str],
        command: str | None,
        syslog: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> Recorder:
        """Record that the operation starts; AuditError (exit 2) if it could not be recorded.

        ``syslog`` is the socket a one-line summary goes to when the operation ends;
        ``detail`` what else the record keeps (the rollout's batches, a canary pick).
        Secret-named values in ``argv`` and ``command`` are masked.
        """
        # syslog opened here too: a syslog asked for but missing refuses the run now
        with AuditLog(path, syslog=syslog is not None, syslog_address=syslog) as log:
            op_id = log.begin(
                kind,
                argv=mask_argv(argv),
                hosts=list(hosts),
                pattern=pattern,
                command=None if command is None else mask_secrets(command),
                detail=detail,
            )
            recorder = cls(path, op_id, syslog=syslog)
            # closed once the writer's connection is open: SQLite checkpoints the log
            # (and syncs it) when its last connection closes, once per run is enough
            recorder._opened.wait(_CLOSE_WAIT)
        return recorder

    def handle(self, event: Event) -> None:
        if isinstance(event, HostFinished):
            self._queue.put(event.result)
        elif isinstance(event, OperationFinished):
            self._queue.put(event)

    def close(self) -> None:
        """Wait for the writer to finish; AuditError if it could not write everything."""
        self._thread.join(_CLOSE_WAIT)
        if self._thread.is_alive():
            raise AuditError(
                f"{self.path}: operation {self.op_id} not completed in the log after"
                f" {_CLOSE_WAIT:g} s (another process holds it?); it will read as interrupted"
            )
        if self._failure is not None:
            raise self._failure

    def _write_all(self) -> None:
        pending: list[HostResult] = []
        try:
            log = AuditLog(
                self.path,
                check_writable=False,
                syslog=self._syslog is not None,
                syslog_address=self._syslog,
            )
        except HerdError as exc:
            self._failure = exc
            return
        finally:
            self._opened.set()
        try:
            while True:
                try:
                    item = self._queue.get(timeout=_FLUSH_SECONDS)
                except queue.Empty:
                    self._flush(log, pending)
                    continue
                if isinstance(item, OperationFinished):
                    self._flush(log, pending)
                    status = OperationStatus.ending(item.exit_code, item.interrupted)
                    log.finish(self.op_id, status=status, exit_code=item.exit_code)
                    return
                pending.append(item)
                if len(pending) >= _FLUSH_HOSTS:
                    self._flush(log, pending)
        except HerdError as exc:
            self._failure = exc
        finally:
            log.close()

    def _flush(self, log: AuditLog, pending: list[HostResult]) -> None:
        if pending:
            log.record_hosts(self.op_id, pending)
            pending.clear()
