"""The operation log store: written at start, completed at end, interrupted when killed."""

from __future__ import annotations

import getpass
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from herd.core.audit import SCHEMA_VERSION, AuditLog
from herd.core.model import HostResult, Output, Status
from tests.processes import race


def test_operation_round_trips_with_its_host_results(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "ops.db") as log:
        op = log.begin(
            "run",
            argv=["herd", "run", "web", "--", "uptime"],
            hosts=["w1", "w2"],
            pattern="web",
            command="uptime",
        )
        log.record_hosts(
            op,
            [
                HostResult("w1", "127.0.1.1", Status.OK, 0, Output(b"up\n", 3, "x")),
                HostResult("w2", "127.0.1.2", Status.UNREACHABLE, error="connection refused"),
            ],
        )
        log.finish(op, status="failed", exit_code=1)
        record = log.operation(op)
        assert record is not None
        assert (record.kind, record.status, record.exit_code) == ("run", "failed", 1)
        assert record.hosts == ["w1", "w2"]
        results = log.host_results(op)
        assert [r.status for r in results] == [Status.OK, Status.UNREACHABLE]
        assert results[0].stdout.data == b"up\n"
        assert log.failed_hosts() == ["w2"]


def test_operation_of_a_killed_process_reads_back_and_is_sealed_as_interrupted(
    tmp_path: Path,
) -> None:
    db = tmp_path / "ops.db"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from herd.core.audit import AuditLog
        from herd.core.model import HostResult, Status
        log = AuditLog(Path({str(db)!r}))
        op = log.begin("run", argv=["herd"], hosts=["a", "b"])
        log.record_hosts(op, [HostResult("a", "a", Status.OK, 0)])
        print(op, flush=True)
        time.sleep(60)
    """)
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        op = int(child.stdout.readline())
        with AuditLog(db) as log:
            assert log.verify().running == [op]  # alive: the unsealed tail, not a problem
        os.kill(child.pid, signal.SIGKILL)
    with AuditLog(db) as log:
        record = log.operation(op)
        assert record is not None and record.status == "interrupted"
        assert [r.host for r in log.host_results(op)] == ["a"]
        assert log.failed_hosts(op) == ["b"]
        # The next writer seals it into the chain as interrupted, results and all.
        later = log.begin("run", argv=["herd"], hosts=[])
        log.finish(later, status="ok", exit_code=0)
        record = log.operation(op)
        assert record is not None
        assert (record.status, record.seq, record.exit_code) == ("interrupted", 1, None)
        assert [r.host for r in log.host_results(op)] == ["a"]
        report = log.verify()
        assert report.ok and report.records == 2 and report.running == []


def test_two_processes_appending_at_once_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    AuditLog(db).close()
    script = f"""
        from herd.core.audit import AuditLog
        from herd.core.model import HostResult, Status
        log = AuditLog(pathlib.Path({str(db)!r}))
        for i in range(500):
            op = log.begin("run", argv=["herd"], hosts=["h"])
            log.record_hosts(op, [HostResult("h", "h", Status.OK, 0)])
            log.finish(op, status="ok", exit_code=0)
    """
    assert race(script, tmp_path, count=2, timeout=100) == []
    with AuditLog(db) as log:
        records = log.operations(limit=5000)
        assert len(records) == 1000
        assert all(r.status == "ok" for r in records)
        assert sorted(r.seq or 0 for r in records) == list(range(1, 1001))
        report = log.verify()
        assert (report.ok, report.records) == (True, 1000)


def test_herds_opening_a_new_log_at_once_all_find_it_theirs(tmp_path: Path) -> None:
    """Four herds race to create each of 40 new logs; none may take it for a foreign file."""
    failed = race(
        f"""
        from herd.core.audit import AuditLog
        for i in range(40):
            AuditLog(pathlib.Path({str(tmp_path)!r}) / f"ops{{i}}.db").close()
        """,
        tmp_path,
    )
    assert failed == []
    with AuditLog(tmp_path / "ops39.db") as log:
        assert log.verify().ok


def test_operator_identity_comes_from_the_os_sudo_and_herd_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUDO_USER", "alice")
    monkeypatch.setenv("HERD_OPERATOR", "night-shift-bob")
    with AuditLog(tmp_path / "ops.db") as log:
        op = log.begin("run", argv=["herd"], hosts=[])
        record = log.operation(op)
    assert record is not None
    who = record.operator
    assert (who.user, who.sudo_user, who.operator) == (
        getpass.getuser(),
        "alice",
        "night-shift-bob",
    )
    assert who.controller == socket.gethostname()
    assert who.name == "night-shift-bob"
    assert who.describe == f"night-shift-bob (as {who.user}, sudo from alice) on {who.controller}"


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE operations (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, started REAL NOT NULL, ended REAL,
    status TEXT NOT NULL, exit_code INTEGER, user TEXT NOT NULL, sudo_user TEXT, operator TEXT,
    controller TEXT NOT NULL, pid INTEGER NOT NULL, argv TEXT NOT NULL, pattern TEXT,
    hosts TEXT NOT NULL, command TEXT, seq INTEGER UNIQUE, prev_hash TEXT, hash TEXT
);
CREATE INDEX operations_started ON operations (started);
CREATE TABLE host_results (
    op_id INTEGER NOT NULL REFERENCES operations (id), host TEXT NOT NULL,
    address TEXT NOT NULL, status TEXT NOT NULL, exit_status INTEGER, duration REAL NOT NULL,
    error TEXT NOT NULL, stdout BLOB NOT NULL, stdout_total INTEGER NOT NULL,
    stdout_sha256 TEXT NOT NULL, stderr BLOB NOT NULL, stderr_total INTEGER NOT NULL,
    stderr_sha256 TEXT NOT NULL, files TEXT NOT NULL, PRIMARY KEY (op_id, host)
);
CREATE INDEX host_results_host ON host_results (host, op_id);
INSERT INTO meta VALUES ('schema_version', '1');
INSERT INTO operations (kind, started, ended, status, exit_code, user, controller, pid, argv,
    hosts) VALUES ('run', 1.0, 2.0, 'failed', 1, 'alice', 'ctl', 1, '["herd"]', '["a", "b"]');
INSERT INTO host_results VALUES (1, 'a', 'a', 'ok', 0, 0.5, '', X'6869', 2, 'x', X'', 0, 'y', '[]');
PRAGMA application_id = 1212502596;
"""


def test_log_from_the_first_schema_is_upgraded_and_its_records_sealed(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    with sqlite3.connect(db) as raw:
        raw.executescript(SCHEMA_1)
    raw.close()
    with AuditLog(db) as log:
        record = log.operation(1)
        assert record is not None
        assert (record.status, record.exit_code, record.seq) == ("failed", 1, 1)
        assert log.host_results(1)[0].stdout.data == b"hi"
        op = log.begin("run", argv=["herd"], hosts=[])
        log.finish(op, status="ok", exit_code=0)
        assert log.verify().records == 2 and log.verify().ok
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )
    raw.close()
