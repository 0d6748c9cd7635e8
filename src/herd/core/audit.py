"""The operation log: every run, push, pull and FTP event, in SQLite.

An operation is written when it starts and completed when it ends, so one whose
process died reads back as ``interrupted`` with the host results that were
complete. The database is in WAL mode and every write is one short
transaction, so several herd processes can append at once and lose nothing.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herd.core.results import FileRecord, HostResult, Output, Status
from herd.errors import AuditError

__all__ = [
    "SCHEMA_VERSION",
    "AuditLog",
    "HostRecord",
    "OperationRecord",
    "Operator",
]

SCHEMA_VERSION = 1
APPLICATION_ID = 0x48455244  # "HERD": tells our database from a foreign SQLite file

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operations (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    started     REAL NOT NULL,
    ended       REAL,
    status      TEXT NOT NULL,
    exit_code   INTEGER,
    user        TEXT NOT NULL,
    sudo_user   TEXT,
    operator    TEXT,
    controller  TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    argv        TEXT NOT NULL,
    pattern     TEXT,
    hosts       TEXT NOT NULL,
    command     TEXT,
    seq         INTEGER UNIQUE,
    prev_hash   TEXT,
    hash        TEXT
);
CREATE INDEX IF NOT EXISTS operations_started ON operations (started);
CREATE TABLE IF NOT EXISTS host_results (
    op_id         INTEGER NOT NULL REFERENCES operations (id),
    host          TEXT NOT NULL,
    address       TEXT NOT NULL,
    status        TEXT NOT NULL,
    exit_status   INTEGER,
    duration      REAL NOT NULL,
    error         TEXT NOT NULL,
    stdout        BLOB NOT NULL,
    stdout_total  INTEGER NOT NULL,
    stdout_sha256 TEXT NOT NULL,
    stderr        BLOB NOT NULL,
    stderr_total  INTEGER NOT NULL,
    stderr_sha256 TEXT NOT NULL,
    files         TEXT NOT NULL,
    PRIMARY KEY (op_id, host)
);
CREATE INDEX IF NOT EXISTS host_results_host ON host_results (host, op_id);
"""

RUNNING = "running"
INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class Operator:
    """Who ran an operation: the OS user, the sudo caller, a declared operator, the machine."""

    user: str
    sudo_user: str | None
    operator: str | None
    controller: str

    @classmethod
    def current(cls) -> Operator:
        return cls(
            user=getpass.getuser(),
            sudo_user=os.environ.get("SUDO_USER") or None,
            operator=os.environ.get("HERD_OPERATOR") or None,
            controller=socket.gethostname(),
        )

    @property
    def name(self) -> str:
        """The person to name in a table: the declared operator, else the sudo caller."""
        return self.operator or self.sudo_user or self.user


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """One operation as read back from the log."""

    id: int
    kind: str
    started: float
    ended: float | None
    status: str
    exit_code: int | None
    operator: Operator
    argv: list[str]
    pattern: str | None
    hosts: list[str]
    command: str | None
    pid: int
    seq: int | None
    prev_hash: str | None
    hash: str | None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


@dataclass(frozen=True, slots=True)
class HostRecord:
    """One host's result within an operation, as read back from the log."""

    op_id: int
    result: HostResult


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class AuditLog:
    """The operation log in one SQLite file; open one per process (or per thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = self._open(path)

    # -- opening -----------------------------------------------------------------

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise AuditError(f"{path}: cannot open the operation log: {exc}") from exc
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            has_tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
            if has_tables and app_id != APPLICATION_ID:
                raise AuditError(f"{path}: not a herd operation log (a foreign SQLite file)")  # noqa: TRY301 (closed below)
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            if not has_tables:
                db.execute("BEGIN IMMEDIATE")
                db.executescript(_SCHEMA.replace("\n;", ";"))  # executescript commits
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except AuditError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise AuditError(f"{path}: cannot use the operation log: {exc}") from exc
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            db.close()
            raise AuditError(
                f"{path}: written by a newer herd (schema {version}, this herd knows "
                f"{SCHEMA_VERSION}); upgrade herd to use it"
            )
        return db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; SQLite errors become one-line AuditErrors."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise AuditError(f"{self.path}: cannot write the operation log: {exc}") from exc

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
    ) -> int:
        """Record that an operation starts; returns its id."""
        who = operator or Operator.current()
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO operations (kind, started, status, user, sudo_user, operator,"
                " controller, pid, argv, pattern, hosts, command)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    time.time() if started is None else started,
                    RUNNING,
                    who.user,
                    who.sudo_user,
                    who.operator,
                    who.controller,
                    os.getpid(),
                    json.dumps(list(argv)),
                    pattern,
                    json.dumps(list(hosts)),
                    command,
                ),
            )
            op_id = cursor.lastrowid
        assert op_id is not None
        return op_id

    def record_hosts(self, op_id: int, results: Iterable[HostResult]) -> None:
        """Record finished hosts of a running operation (one transaction for the batch)."""
        rows = [_host_row(op_id, r) for r in results]
        if not rows:
            return
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO host_results VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def finish(
        self, op_id: int, *, status: str, exit_code: int, ended: float | None = None
    ) -> None:
        """Record that an operation ended with ``status`` (ok, failed, interrupted, error)."""
        with self._write() as db:
            db.execute(
                "UPDATE operations SET ended = ?, status = ?, exit_code = ? WHERE id = ?",
                (time.time() if ended is None else ended, status, exit_code, op_id),
            )

    # -- reading -----------------------------------------------------------------

    def operation(self, op_id: int) -> OperationRecord | None:
        row = self._db.execute(f"SELECT {_OP_COLUMNS} FROM operations WHERE id = ?", (op_id,))
        found = row.fetchone()
        return None if found is None else self._operation(found)

    def operations(self, *, limit: int = 20, kind: str | None = None) -> list[OperationRecord]:
        """The most recent operations, newest first."""
        where, args = ("WHERE kind = ?", [kind]) if kind else ("", [])
        rows = self._db.execute(
            f"SELECT {_OP_COLUMNS} FROM operations {where} ORDER BY id DESC LIMIT ?",
            [*args, limit],
        )
        return [self._operation(r) for r in rows]

    def host_results(self, op_id: int) -> list[HostResult]:
        rows = self._db.execute(
            "SELECT * FROM host_results WHERE op_id = ? ORDER BY rowid", (op_id,)
        )
        return [_host_result(r) for r in rows]

    def last_operation_id(self, kinds: Sequence[str] = ("run", "push", "pull")) -> int | None:
        marks = ",".join("?" * len(kinds))
        row = self._db.execute(
            f"SELECT max(id) FROM operations WHERE kind IN ({marks})", tuple(kinds)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def failed_hosts(self, op_id: int | None = None) -> list[str]:
        """Hosts that were not ok in operation ``op_id`` (default: the last one), in target order.

        A host the operation targeted but never finished (interrupted) counts as not ok.
        """
        if op_id is None:
            op_id = self.last_operation_id()
            if op_id is None:
                raise AuditError(f"{self.path}: no operation recorded yet, so no @failed hosts")
        record = self.operation(op_id)
        if record is None:
            raise AuditError(f"{self.path}: no operation {op_id} in the log")
        ok = {
            host
            for (host,) in self._db.execute(
                "SELECT host FROM host_results WHERE op_id = ? AND status = 'ok'", (op_id,)
            )
        }
        return [h for h in record.hosts if h not in ok]

    def _operation(self, row: Any) -> OperationRecord:
        (op_id, kind, started, ended, status, exit_code, user, sudo_user, operator,
         controller, pid, argv, pattern, hosts, command, seq, prev_hash, hash_) = row  # fmt: skip
        who = Operator(str(user), _opt(sudo_user), _opt(operator), str(controller))
        if status == RUNNING and controller == socket.gethostname() and not _pid_alive(int(pid)):
            status = INTERRUPTED
        return OperationRecord(
            id=int(op_id),
            kind=str(kind),
            started=float(started),
            ended=None if ended is None else float(ended),
            status=str(status),
            exit_code=None if exit_code is None else int(exit_code),
            operator=who,
            argv=json.loads(str(argv)),
            pattern=_opt(pattern),
            hosts=json.loads(str(hosts)),
            command=_opt(command),
            pid=int(pid),
            seq=None if seq is None else int(seq),
            prev_hash=_opt(prev_hash),
            hash=_opt(hash_),
        )


_OP_COLUMNS = (
    "id, kind, started, ended, status, exit_code, user, sudo_user, operator, controller,"
    " pid, argv, pattern, hosts, command, seq, prev_hash, hash"
)


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _host_row(op_id: int, r: HostResult) -> tuple[object, ...]:
    files = [[f.path, f.size, f.sha256, f.skipped] for f in r.files]
    return (
        op_id, r.host, r.address, r.status.value, r.exit_status, r.duration, r.error,
        r.stdout.data, r.stdout.total, r.stdout.sha256,
        r.stderr.data, r.stderr.total, r.stderr.sha256,
        json.dumps(files),
    )  # fmt: skip


def _host_result(row: Any) -> HostResult:
    (_, host, address, status, exit_status, duration, error,
     out, out_total, out_sha, err, err_total, err_sha, files) = row  # fmt: skip
    return HostResult(
        host=str(host),
        address=str(address),
        status=Status(status),
        exit_status=None if exit_status is None else int(exit_status),
        stdout=Output(bytes(out), int(out_total), str(out_sha)),
        stderr=Output(bytes(err), int(err_total), str(err_sha)),
        duration=float(duration),
        error=str(error),
        files=tuple(FileRecord(p, s, h, k) for p, s, h, k in json.loads(str(files))),
    )
