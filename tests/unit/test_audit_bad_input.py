"""A log herd cannot use or write is a one-line AuditError naming the file, raised at open."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.core.audit import AuditLog
from herd.core.model import HostResult, Output, Status
from herd.errors import AuditError


def _one_line(exc: pytest.ExceptionInfo[AuditError], path: Path) -> str:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert exc.value.exit_code == 2
    return message


def test_corrupt_file_is_refused_naming_it(tmp_path: Path) -> None:
    db = tmp_path / "operations.db"
    db.write_bytes(os.urandom(8192))
    with pytest.raises(AuditError) as exc:
        AuditLog(db)
    assert "file is not a database" in _one_line(exc, db)


def test_foreign_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "operations.db"
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE invoices (id INTEGER)")
    raw.close()
    before = db.read_bytes()
    with pytest.raises(AuditError) as exc:
        AuditLog(db)
    assert "not a herd operation log" in _one_line(exc, db)
    assert db.read_bytes() == before


def test_log_from_a_newer_herd_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "operations.db"
    AuditLog(db).close()
    with sqlite3.connect(db) as raw:
        raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    raw.close()
    with pytest.raises(AuditError) as exc:
        AuditLog(db)
    assert "newer herd (schema 99" in _one_line(exc, db)


def test_cli_reports_a_corrupt_log_in_one_line_with_exit_2(
    isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (isolated_env / "operations.db").write_bytes(b"garbage" * 1000)
    assert main(["log"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"herd: error: {isolated_env / 'operations.db'}: ")


def _open_as_nobody(db: Path) -> str:
    """Open the log for writing in a forked child that dropped root; returns its error."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(reader)
        message = "opened"
        try:
            os.setgid(65534)
            os.setuid(65534)
            AuditLog(db, syslog=False).close()
        except AuditError as exc:
            message = str(exc)
        except BaseException as exc:
            message = f"unexpected {exc!r}"
        os.write(writer, message.encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    return message


@contextmanager
def _read_only_directory() -> Iterator[Path]:
    """A directory this process may not write: chmod for a user; for root, drop root in a child."""
    top = Path(tempfile.mkdtemp(prefix="herd-ro-"))
    try:
        top.chmod(0o755)
        yield top
    finally:
        top.chmod(0o755)
        for child in top.iterdir():
            child.unlink()
        top.rmdir()


@pytest.mark.parametrize("existing", [False, True])
def test_read_only_log_directory_is_refused_at_open(existing: bool) -> None:
    with _read_only_directory() as directory:
        db = directory / "operations.db"
        if existing:
            AuditLog(db).close()
            for name in os.listdir(directory):
                (directory / name).chmod(0o644)
        if os.geteuid() == 0:
            message = _open_as_nobody(db)
        else:
            directory.chmod(0o555)
            with pytest.raises(AuditError) as exc:
                AuditLog(db)
            message = str(exc.value)
        assert message.startswith(f"{db}: ")
        assert message.endswith(f"cannot record operations: {directory} is read-only")
        assert "\n" not in message


@contextmanager
def _tmpfs(size: str) -> Iterator[Path | None]:
    """A tiny tmpfs mounted for the test when we are allowed to mount, else None."""
    directory = Path(tempfile.mkdtemp(prefix="herd-full-"))
    mounted = False
    try:
        if os.geteuid() == 0:
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                capture_output=True,
                check=False,
                timeout=10,
            )
            mounted = done.returncode == 0
        yield directory if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", str(directory)], check=True, timeout=10)
        directory.rmdir()


def _big(n: int) -> HostResult:
    data = os.urandom(32 * 1024)
    return HostResult(f"h{n}", "127.0.0.1", Status.OK, 0, Output(data, len(data), "0" * 64))


def _fill_until_full(log: AuditLog) -> str:
    op = log.begin("run", argv=["herd"], hosts=[])
    with pytest.raises(AuditError) as exc:
        for n in range(10_000):
            log.record_hosts(op, [_big(n)])
    return str(exc.value)


def test_full_disk_refuses_at_open_and_fails_writes_in_one_line(tmp_path: Path) -> None:
    with _tmpfs("2m") as tiny:
        if tiny is not None:  # a device with less room than an operation may need
            with pytest.raises(AuditError) as exc:
                AuditLog(tiny / "operations.db")
            assert "no space left on the device" in _one_line(exc, tiny / "operations.db")
    with _tmpfs("6m") as small:
        # Room at open, then the device fills mid-operation (or SQLite's page limit does).
        db = (small or tmp_path) / "operations.db"
        with AuditLog(db) as log:
            if small is None:
                log.connection.execute("PRAGMA max_page_count = 400")
            message = _fill_until_full(log)
        assert message.startswith(f"{db}: cannot write the operation log: ")
        assert "full" in message and "\n" not in message


def test_record_hosts_for_an_unknown_operation_is_an_error(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "ops.db") as log, pytest.raises(AuditError, match="no operation 7"):
        log.record_hosts(7, [HostResult("a", "a", Status.OK)])
