"""The syslog summary (option and setting): one line per operation, to a socket we bind."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.core.audit import AuditLog, Operator
from herd.core.model import HostResult, Output, Status
from herd.errors import AuditError


@pytest.fixture
def syslog_socket() -> Iterator[tuple[socket.socket, str]]:
    """A unix datagram socket standing in for /dev/log (short path: sun_path is 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="herd-log-") as directory:
        address = str(Path(directory) / "log")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(address)
        sock.settimeout(2.0)
        try:
            yield sock, address
        finally:
            sock.close()


def _run(log: AuditLog, *, ok: bool) -> int:
    who = Operator("root", "alice", None, "ctl1")
    op = log.begin("run", argv=["herd", "run", "web", "--", "uptime"], hosts=["w1", "w2"],
                   pattern="web", command="uptime", operator=who)  # fmt: skip
    log.record_hosts(op, [
        HostResult("w1", "w1", Status.OK, 0, Output(b"up\n", 3, "0" * 64)),
        HostResult("w2", "w2", Status.OK if ok else Status.FAILED, 0 if ok else 1),
    ])  # fmt: skip
    log.finish(op, status="ok" if ok else "failed", exit_code=0 if ok else 1)
    return op


def test_finished_operation_sends_one_summary_line(
    tmp_path: Path, syslog_socket: tuple[socket.socket, str]
) -> None:
    sock, address = syslog_socket
    with AuditLog(tmp_path / "operations.db", syslog=True, syslog_address=address) as log:
        op = _run(log, ok=False)
        record = log.operation(op)
    assert record is not None and record.hash is not None
    line = sock.recv(8192).decode()
    assert line.startswith("<12>")  # LOG_USER | LOG_WARNING: a host was not ok
    assert "herd[" in line and "\n" not in line
    assert f"operation {op} run web by alice (as root) on ctl1: uptime: 1 ok, 1 not ok" in line
    assert line.endswith(f"failed (seq 1 hash {record.hash[:16]})")


def _herd_run(tmp_path: Path, *extra: str) -> int:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[here]\nnode1 ansible_connection=local\n")
    return main(["-i", str(inventory), "run", "all", *extra, "--", "true"])


def test_the_log_setting_turns_syslog_on(
    tmp_path: Path, isolated_env: Path, syslog_socket: tuple[socket.socket, str]
) -> None:
    sock, address = syslog_socket
    (isolated_env / "herd.toml").write_text(f'[log]\nsyslog = true\nsyslog_address = "{address}"\n')
    assert _herd_run(tmp_path) == 0
    assert sock.recv(8192).decode().startswith("<14>")  # LOG_USER | LOG_INFO


def test_without_the_setting_nothing_goes_to_syslog(
    tmp_path: Path, isolated_env: Path, syslog_socket: tuple[socket.socket, str]
) -> None:
    sock, address = syslog_socket
    (isolated_env / "herd.toml").write_text(f'[log]\nsyslog_address = "{address}"\n')
    assert _herd_run(tmp_path) == 0
    sock.settimeout(0.2)
    with pytest.raises(TimeoutError):
        sock.recv(8192)
    assert _herd_run(tmp_path, "--syslog") == 0  # the option over the setting
    sock.settimeout(2.0)
    assert sock.recv(8192).decode().startswith("<14>")


def test_syslog_asked_for_but_missing_is_refused_at_open(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-syslog")
    with pytest.raises(AuditError) as exc:
        AuditLog(tmp_path / "operations.db", syslog=True, syslog_address=missing)
    assert str(exc.value).startswith(f"{missing}: cannot send to syslog: ")


def test_syslog_that_goes_away_mid_run_does_not_stop_the_record(
    tmp_path: Path, syslog_socket: tuple[socket.socket, str]
) -> None:
    sock, address = syslog_socket
    with AuditLog(tmp_path / "operations.db", syslog=True, syslog_address=address) as log:
        sock.close()
        op = _run(log, ok=True)
        record = log.operation(op)
        assert record is not None and record.status == "ok" and record.seq == 1


def test_an_operation_sealed_as_interrupted_is_announced_too(
    tmp_path: Path, syslog_socket: tuple[socket.socket, str]
) -> None:
    sock, address = syslog_socket
    db = tmp_path / "operations.db"
    with AuditLog(db, syslog=False) as log:
        op = log.begin("run", argv=["herd", "run", "web", "--", "reboot"], hosts=["w1"],
                       pattern="web", command="reboot")  # fmt: skip
        # as if the process that began it had died: a PID that cannot be alive
        log.connection.execute("UPDATE operations SET pid = 2147483647 WHERE id = ?", (op,))
    with AuditLog(db, syslog=True, syslog_address=address) as log:
        assert log.seal_interrupted() == [op]
    line = sock.recv(8192).decode()
    assert line.startswith("<12>") and f"operation {op} run web" in line
    assert ": reboot: 0 ok, 1 not ok, ?, interrupted (seq 1 hash " in line
