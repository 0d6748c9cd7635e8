"""The operation log: every run, push, pull and FTP event, in SQLite.

An operation is written when it starts and completed when it ends, so one whose
process died reads back as ``interrupted`` with the host results that were
complete. The database is in WAL mode and every write is one short
transaction, so several herd processes can append at once and lose nothing.
Completing an operation seals it into a hash chain (see ``herd.core.audit_chain``
for when a record joins the chain and what ``verify`` detects).

Opening the log for writing checks that it can be written (the directory, the
file, free space: ``herd.core.audit_file``), so herd refuses an operation it
could not record before it connects to any host.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from herd.core.audit_chain import (
    GENESIS,
    RESULT_COLUMNS,
    ChainReport,
    chain_head,
    seal,
    store_head,
    verify_chain,
)
from herd.core.audit_file import check_writable_log, open_log, sqlite_reason
from herd.core.audit_records import (
    INTERRUPTED,
    OP_COLUMNS,
    RUNNING,
    HostRecord,
    OperationRecord,
    Operator,
    PruneResult,
    host_result_from_row,
    host_row,
    operation_from_row,
    pid_alive,
)
from herd.core.audit_schema import SCHEMA_VERSION
from herd.core.audit_syslog import DEFAULT_SYSLOG_ADDRESS, SyslogSink
from herd.core.model import HostResult, OperationStatus
from herd.errors import AuditError, HerdError

__all__ = [
    "INTERRUPTED",
    "OP_COLUMNS",
    "RUNNING",
    "SCHEMA_VERSION",
    "AuditLog",
    "HostRecord",
    "OperationRecord",
    "Operator",
    "PruneResult",
    "operation_from_row",
]


class AuditLog:
    """The operation log in one SQLite file; open one per process (or per thread).

    ``check_writable`` (the default, for commands that record) makes opening fail
    at once when the log could not be written. ``syslog`` sends a one-line
    summary of each completed operation to the local syslog at
    ``syslog_address`` (the caller decides, from the ``[log]`` settings and the
    command line: the log reads no settings itself).
    """

    def __init__(
        self,
        path: Path,
        *,
        check_writable: bool = True,
        syslog: bool = False,
        syslog_address: str | None = None,
    ) -> None:
        self.path = path
        directory = path.parent
        if check_writable and directory.is_dir() and not os.access(directory, os.W_OK):
            raise AuditError(f"{path}: cannot record operations: {directory} is read-only")
        self._db = open_log(path)
        self._batched = False  # inside batch(): writes are savepoints of one transaction
        # Inside a batch the chain head lives here and reaches meta once, at the commit:
        # the head of the batch so far, and the one a write in its savepoint would make.
        self._batch_head: tuple[int, str] | None = None
        self._staged_head: tuple[int, str] | None = None
        self._sink: SyslogSink | None = None
        try:
            if check_writable:
                check_writable_log(self._db, path)
            if syslog:
                self._sink = SyslogSink(syslog_address or DEFAULT_SYSLOG_ADDRESS)
        except HerdError:
            self._db.close()
            raise

    def close(self) -> None:
        self._db.close()
        if self._sink is not None:
            self._sink.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection, for the query and export helpers (read only)."""
        return self._db

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Make the writes inside one transaction: a writer thread draining a queue of many.

        Each write still succeeds or fails on its own (a savepoint each); the batch
        commits once, which is most of what a small write costs.
        """
        if self._batched:
            yield
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise AuditError(
                f"{self.path}: cannot write the operation log: {sqlite_reason(exc)}"
            ) from exc
        self._batched = True  # _batch_head is None here: every way out of a batch resets it
        try:
            yield
        except BaseException:
            self._batched = False
            self._batch_head = None
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        self._batched = False
        head, self._batch_head = self._batch_head, None
        try:
            if head is not None:
                store_head(self._db, head)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise AuditError(
                f"{self.path}: cannot write the operation log: {sqlite_reason(exc)}"
            ) from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; SQLite errors become one-line AuditErrors."""
        if self._batched:
            with self._savepoint() as db:
                yield db
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise AuditError(
                f"{self.path}: cannot write the operation log: {sqlite_reason(exc)}"
            ) from exc

    @contextmanager
    def _savepoint(self) -> Iterator[sqlite3.Connection]:
        """One write inside a batch: undone alone if it fails."""
        try:
            self._db.execute("SAVEPOINT write")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK TO write")
                self._db.execute("RELEASE write")
                raise
            self._db.execute("RELEASE write")
            if self._staged_head is not None:
                self._batch_head = self._staged_head  # that write is part of the batch now
        except sqlite3.Error as exc:
            raise AuditError(
                f"{self.path}: cannot write the operation log: {sqlite_reason(exc)}"
            ) from exc
        finally:
            self._staged_head = None

    # -- writing -----------------------------------------------------------------

    def begin(
        self,
        kind: str,
        *,
        argv: Sequence[str],
        hosts: Sequence[str],
        pattern: str | None = None,
        command: str | None = None,
        operator: Operator | None = None,
        started: float | None = None,
        detail: dict[str, Any] | None = None,
        seal_dead: bool = True,
    ) -> int:
        """Record that an operation starts; returns its id.

        First seals, as interrupted, any operation of this controller whose process
        died (``seal_dead``; a long-lived writer that did so once at its start may skip
        it: that look reads every unsealed record, and a busy FTP server has many).
        """
        if seal_dead:
            self.seal_interrupted()
        with self._write() as db:
            return _insert_operation(
                db, kind, argv=argv, hosts=hosts, pattern=pattern, command=command,
                operator=operator, started=started, detail=detail,
            )  # fmt: skip

    def record_hosts(self, op_id: int, results: Iterable[HostResult]) -> None:
        """Record finished hosts of a running operation (one transaction for the batch)."""
        rows = [host_row(op_id, r) for r in results]
        if not rows:
            return
        with self._write() as db:
            found = db.execute("SELECT seq FROM operations WHERE id = ?", (op_id,)).fetchone()
            if found is None:
                raise AuditError(f"{self.path}: no operation {op_id} in the log")
            if found[0] is not None:
                raise AuditError(f"{self.path}: operation {op_id} is complete; cannot add hosts")
            _insert_hosts(db, rows)

    def finish(
        self, op_id: int, *, status: str, exit_code: int, ended: float | None = None
    ) -> None:
        """Record that an operation ended with ``status`` (ok, failed, interrupted, error).

        This seals the record and its host results into the hash chain.
        """
        with self._write() as db:
            when = time.time() if ended is None else ended
            self._seal(db, op_id, status=status, exit_code=exit_code, ended=when)
        self._announce(op_id)

    def record(
        self,
        kind: str,
        *,
        argv: Sequence[str],
        hosts: Sequence[str],
        results: Iterable[HostResult] = (),
        pattern: str | None = None,
        command: str | None = None,
        status: str | None = None,
        exit_code: int | None = None,
        operator: Operator | None = None,
        started: float | None = None,
        ended: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Record a one-shot event (an FTP login, an upload) whole, in one transaction.

        ``status`` defaults to ok when every result is ok, else failed.
        """
        results = list(results)
        if status is None:
            ok = all(r.ok for r in results)
            status = (OperationStatus.OK if ok else OperationStatus.FAILED).value
        if exit_code is None:
            exit_code = 0 if status == OperationStatus.OK else 1
        now = time.time()
        with self._write() as db:
            op_id = _insert_operation(
                db, kind, argv=argv, hosts=hosts, pattern=pattern, command=command,
                operator=operator, started=started or now, detail=detail,
            )  # fmt: skip
            _insert_hosts(db, [host_row(op_id, r) for r in results])
            when = now if ended is None else ended
            self._seal(db, op_id, status=status, exit_code=exit_code, ended=when, fresh=True)
        self._announce(op_id)
        return op_id

    def seal_interrupted(self) -> list[int]:
        """Seal as interrupted every unsealed operation of this controller whose process died."""
        here = socket.gethostname()
        rows = self._db.execute(
            "SELECT id, pid FROM operations WHERE seq IS NULL AND controller = ?", (here,)
        ).fetchall()
        alive = {pid: pid_alive(int(pid)) for pid in {pid for _op_id, pid in rows}}
        dead = [int(op_id) for op_id, pid in rows if not alive[pid]]
        sealed: list[int] = []
        if not dead:
            return sealed
        with self._write() as db:
            for op_id in dead:
                found = db.execute("SELECT seq FROM operations WHERE id = ?", (op_id,)).fetchone()
                if found is not None and found[0] is None:  # another writer may have been first
                    self._seal(db, op_id, status=INTERRUPTED, exit_code=None, ended=None)
                    sealed.append(op_id)
        for op_id in sealed:
            self._announce(op_id)
        return sealed

    def prune(
        self, before: float, *, argv: Sequence[str], operator: Operator | None = None
    ) -> PruneResult:
        """Remove the longest run of oldest sealed records that all started before ``before``.

        The removal is itself sealed as a ``prune`` record whose detail holds the
        seq and hash of the last removed record: the checkpoint ``verify`` starts from.
        """
        with self._write() as db:
            newer = db.execute(
                "SELECT min(seq) FROM operations WHERE seq IS NOT NULL AND started >= ?",
                (before,),
            ).fetchone()[0]
            if newer is None:
                newer = (db.execute("SELECT max(seq) FROM operations").fetchone()[0] or 0) + 1
            cut = db.execute(
                "SELECT seq, hash FROM operations WHERE seq = ?", (int(newer) - 1,)
            ).fetchone()
            if cut is None:
                return PruneResult(0, 0, 0, GENESIS, None)
            cut_seq, cut_hash = int(cut[0]), str(cut[1])
            removed_results = db.execute(
                "DELETE FROM host_results WHERE op_id IN"
                " (SELECT id FROM operations WHERE seq <= ?)",
                (cut_seq,),
            ).rowcount
            removed = db.execute("DELETE FROM operations WHERE seq <= ?", (cut_seq,)).rowcount
            detail = {
                "cut_seq": cut_seq,
                "cut_hash": cut_hash,
                "before": before,
                "removed_operations": removed,
                "removed_host_results": removed_results,
            }
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(before))
            summary = f"removed {removed} operations started before {when} (up to seq {cut_seq})"
            op_id = _insert_operation(
                db, "prune", argv=argv, hosts=[], pattern=None, command=summary,
                operator=operator, started=None, detail=detail,
            )  # fmt: skip
            self._seal(db, op_id, status=OperationStatus.OK, exit_code=0, ended=time.time())
        self._announce(op_id)
        return PruneResult(removed, removed_results, cut_seq, cut_hash, op_id)

    def verify(self) -> ChainReport:
        """Seal what died, then walk the hash chain (see ``herd.core.audit_chain``)."""
        with contextlib.suppress(AuditError):  # a read-only copy can still be verified
            self.seal_interrupted()
        try:
            report = verify_chain(self._db, self._head())
            for op_id, status, pid, controller in self._db.execute(
                "SELECT id, status, pid, controller FROM operations WHERE seq IS NULL"
            ):
                if status != RUNNING and report.problem is None:
                    report.problem = (
                        f"operation {op_id} says {status} but was never sealed into the chain"
                    )
                elif controller != socket.gethostname() or pid_alive(int(pid)):
                    report.running.append(int(op_id))
        except sqlite3.Error as exc:
            raise AuditError(
                f"{self.path}: cannot read the operation log: {sqlite_reason(exc)}"
            ) from exc
        return report

    def _head(self) -> tuple[int, str]:
        if self._batched and self._batch_head is not None:
            return self._batch_head
        return chain_head(self._db)

    def _seal(
        self,
        db: sqlite3.Connection,
        op_id: int,
        *,
        status: str,
        exit_code: int | None,
        ended: float | None,
        fresh: bool = False,
    ) -> None:
        """Seal ``op_id`` into the chain; inside a batch, after the batch's head in memory."""
        if not self._batched:
            seal(db, self.path, op_id, status=status, exit_code=exit_code, ended=ended, fresh=fresh)
            return
        head = self._staged_head or self._batch_head or chain_head(db)
        self._staged_head = seal(
            db, self.path, op_id, status=status, exit_code=exit_code, ended=ended,
            head=head, fresh=fresh,
        )  # fmt: skip

    def _announce(self, op_id: int) -> None:
        """Send the syslog summary of a completed operation, when syslog is on."""
        if self._sink is None:
            return
        record = self.operation(op_id)
        if record is None:
            return
        ok, not_ok = self.host_counts([op_id]).get(op_id, (0, 0))
        not_ok += max(0, len(record.hosts) - ok - not_ok)
        what = record.command or " ".join(record.argv[1:])
        target = f" {record.pattern}" if record.pattern else ""
        took = f"{record.duration:.1f}s" if record.duration is not None else "?"
        self._sink.send(
            f"operation {record.id} {record.kind}{target} by {record.operator.describe}:"
            f" {what}: {ok} ok, {not_ok} not ok, {took}, {record.status}"
            f" (seq {record.seq} hash {(record.hash or '')[:16]})",
            warning=record.status != "ok",
        )

    # -- reading -----------------------------------------------------------------

    def operation(self, op_id: int) -> OperationRecord | None:
        row = self._db.execute(f"SELECT {OP_COLUMNS} FROM operations WHERE id = ?", (op_id,))
        found = row.fetchone()
        return None if found is None else operation_from_row(found)

    def operations(self, *, limit: int = 20, kind: str | None = None) -> list[OperationRecord]:
        """The most recent operations, newest first."""
        where, args = ("WHERE kind = ?", [kind]) if kind else ("", [])
        rows = self._db.execute(
            f"SELECT {OP_COLUMNS} FROM operations {where} ORDER BY id DESC LIMIT ?",
            [*args, limit],
        )
        return [operation_from_row(r) for r in rows]

    def host_results(self, op_id: int) -> list[HostResult]:
        rows = self._db.execute(
            f"SELECT {RESULT_COLUMNS} FROM host_results WHERE op_id = ? ORDER BY rowid", (op_id,)
        )
        return [host_result_from_row(r) for r in rows]

    def host_counts(self, op_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """For each operation, how many recorded hosts were ok and how many were not."""
        counts: dict[int, tuple[int, int]] = {}
        for start in range(0, len(op_ids), 500):
            chunk = list(op_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for op_id, ok, total in self._db.execute(
                f"SELECT op_id, sum(status = 'ok'), count(*) FROM host_results"
                f" WHERE op_id IN ({marks}) GROUP BY op_id",
                chunk,
            ):
                counts[int(op_id)] = (int(ok), int(total) - int(ok))
        return counts

    def last_operation_id(self, kinds: Sequence[str] = ("run", "push", "pull")) -> int | None:
        marks = ",".join("?" * len(kinds))
        row = self._db.execute(
            f"SELECT max(id) FROM operations WHERE kind IN ({marks})", tuple(kinds)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def failed_hosts(self, op_id: int | None = None) -> list[str]:
        """Hosts that were not ok in operation ``op_id`` (default: the last one), in target order.

        A host the operation targeted but never finished (interrupted) or never started
        (skipped) counts as not ok: ``@failed`` finishes a stopped rollout.
        """
        return self.recorded_hosts(op_id, ok=False)

    def recorded_hosts(self, op_id: int | None, ok: bool) -> list[str]:
        """The hosts of operation ``op_id`` (default: the last) that were ok, or were not."""
        which = "@ok" if ok else "@failed"
        if op_id is None:
            op_id = self.last_operation_id()
            if op_id is None:
                raise AuditError(f"{self.path}: no operation recorded yet, so no {which} hosts")
        record = self.operation(op_id)
        if record is None:
            raise AuditError(f"{self.path}: no operation {op_id} in the log")
        done = {
            host
            for (host,) in self._db.execute(
                "SELECT host FROM host_results WHERE op_id = ? AND status = 'ok'", (op_id,)
            )
        }
        return [h for h in record.hosts if (h in done) == ok]


def _insert_operation(
    db: sqlite3.Connection,
    kind: str,
    *,
    argv: Sequence[str],
    hosts: Sequence[str],
    pattern: str | None,
    command: str | None,
    operator: Operator | None,
    started: float | None,
    detail: dict[str, Any] | None,
) -> int:
    who = operator or Operator.current()
    cursor = db.execute(
        "INSERT INTO operations (kind, started, status, user, sudo_user, operator,"
        " controller, pid, argv, pattern, hosts, command, detail)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            kind,
            time.time() if started is None else float(started),
            RUNNING,
            who.user,
            who.sudo_user,
            who.operator,
            who.controller,
            os.getpid(),
            json.dumps(list(argv), ensure_ascii=False),
            pattern,
            json.dumps(list(hosts), ensure_ascii=False),
            command,
            None if detail is None else json.dumps(detail, ensure_ascii=False, sort_keys=True),
        ),
    )
    op_id = cursor.lastrowid
    assert op_id is not None
    return op_id


def _insert_hosts(db: sqlite3.Connection, rows: list[tuple[object, ...]]) -> None:
    db.executemany(
        f"INSERT OR REPLACE INTO host_results (op_id, {RESULT_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
