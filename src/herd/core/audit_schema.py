"""The operation log's SQLite schema: creating it, and upgrading older logs in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from herd.core.audit_chain import GENESIS, seal
from herd.core.audit_records import RUNNING

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "create", "upgrade"]

SCHEMA_VERSION = 2  # 1: the first store, without the hash chain's columns
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
    detail      TEXT,
    seq         INTEGER UNIQUE,
    prev_hash   TEXT,
    results_sha TEXT,
    hash        TEXT
);
CREATE INDEX IF NOT EXISTS operations_started ON operations (started);
CREATE INDEX IF NOT EXISTS operations_unsealed ON operations (id) WHERE seq IS NULL;
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


def create(db: sqlite3.Connection) -> None:
    """Create the tables of a new log and mark the file as herd's, in one transaction.

    Several herds may open a new log at once: each one's tables, mark and first meta
    rows land together or not at all, so none of them ever sees herd's tables without
    herd's mark (which would read as a foreign file), and the later ones change nothing.
    """
    db.executescript(
        f"""BEGIN IMMEDIATE;
        {_SCHEMA}
        PRAGMA application_id = {APPLICATION_ID};
        INSERT OR IGNORE INTO meta (key, value) VALUES
            ('schema_version', '{SCHEMA_VERSION}'), ('chain_seq', '0'), ('chain_hash', '{GENESIS}');
        COMMIT;"""
    )


def upgrade(db: sqlite3.Connection, path: Path) -> None:
    """Bring a schema 1 log (before the hash chain) to schema 2, sealing its finished records."""
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and int(row[0]) >= SCHEMA_VERSION:  # another process was first
            db.execute("ROLLBACK")
            return
        columns = {c[1] for c in db.execute("PRAGMA table_info(operations)")}
        for name in ("detail", "results_sha"):
            if name not in columns:
                db.execute(f"ALTER TABLE operations ADD COLUMN {name} TEXT")
        db.execute(
            "CREATE INDEX IF NOT EXISTS operations_unsealed ON operations (id) WHERE seq IS NULL"
        )
        db.executemany(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)",
            [("chain_seq", "0"), ("chain_hash", GENESIS)],
        )
        finished = db.execute(
            "SELECT id, status, exit_code, ended FROM operations"
            " WHERE seq IS NULL AND status != ? ORDER BY id",
            (RUNNING,),
        ).fetchall()
        for op_id, status, exit_code, ended in finished:
            seal(db, path, int(op_id), status=status, exit_code=exit_code, ended=ended)
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
