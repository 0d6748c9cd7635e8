"""The operation log's file: opened private and in WAL mode, its schema created or upgraded.

``open_log`` refuses a foreign SQLite file and a log written by a newer herd;
``check_writable_log`` fails at once, naming the file, when an operation could
not be recorded (no free space, a read-only or locked database), so herd
refuses the operation before it connects to any host.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from herd.core.audit_schema import APPLICATION_ID, SCHEMA_VERSION, create, upgrade
from herd.core.paths import private_dir, private_file, tighten_file
from herd.core.sqlite_wal import use_wal
from herd.errors import AuditError

__all__ = ["MIN_FREE_BYTES", "check_writable_log", "open_log", "sqlite_reason"]

MIN_FREE_BYTES = 4 * 1024 * 1024  # below this, refuse to start an operation we may not record


def sqlite_reason(exc: sqlite3.Error) -> str:
    """SQLite's reason in one line."""
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


def open_log(path: Path) -> sqlite3.Connection:
    """The log at ``path`` (created if missing), at this herd's schema; AuditError if not."""
    try:
        # 0600 in a 0700 home (argv and outputs are private); SQLite gives its -wal and
        # -shm files the database's mode, and older ones are tightened here
        private_dir(path.parent)
        private_file(path)
        for suffix in ("-wal", "-shm"):
            tighten_file(path.with_name(path.name + suffix))
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else sqlite_reason(exc)
        raise AuditError(f"{path}: cannot open the operation log: {reason}") from exc
    try:
        db.execute("PRAGMA busy_timeout = 30000")
        tables, app_id = db.execute(  # one statement: one snapshot of the file
            "SELECT (SELECT count(*) FROM sqlite_master),"
            " (SELECT application_id FROM pragma_application_id)"
        ).fetchone()
        has_tables = tables > 0
        if has_tables and app_id != APPLICATION_ID:
            raise AuditError(f"{path}: not a herd operation log (a foreign SQLite file)")  # noqa: TRY301 (closed below)
        use_wal(db)
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        if not has_tables:
            create(db)
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except AuditError:
        db.close()
        raise
    except sqlite3.Error as exc:
        db.close()
        raise AuditError(f"{path}: cannot use the operation log: {sqlite_reason(exc)}") from exc
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        db.close()
        raise AuditError(
            f"{path}: written by a newer herd (schema {version}, this herd knows "
            f"{SCHEMA_VERSION}); upgrade herd to use it"
        )
    if version < SCHEMA_VERSION:
        try:
            upgrade(db, path)
        except AuditError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            reason = sqlite_reason(exc)
            raise AuditError(f"{path}: cannot upgrade the operation log: {reason}") from exc
    return db


def check_writable_log(db: sqlite3.Connection, path: Path) -> None:
    """Fail now, naming the file, if an operation could not be recorded."""
    stats = os.statvfs(path.parent)
    if stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
        raise AuditError(
            f"{path}: cannot record operations: no space left on the device"
            f" ({stats.f_bavail * stats.f_frsize // 1024} KiB free)"
        )
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
    except sqlite3.Error as exc:
        raise AuditError(f"{path}: cannot record operations: {sqlite_reason(exc)}") from exc
