"""How ``herd run`` records itself: syslog on request, hosts written as they finish,
and hosts whose connection plugin herd does not speak reported, not attempted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.core.audit import AuditLog


@pytest.fixture
def syslog_socket() -> Iterator[tuple[socket.socket, str]]:
    """A unix datagram socket standing in for /dev/log (short path: sun_path is 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="herd-log-") as directory:
        address = str(Path(directory) / "log")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(address)
            sock.settimeout(5.0)
            yield sock, address


def _inventory(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "inventory.ini"
    path.write_text("\n".join(["[here]", *lines]) + "\n")
    return path


def test_syslog_option_sends_one_summary_line_per_run(
    tmp_path: Path,
    isolated_env: Path,
    syslog_socket: tuple[socket.socket, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sock, address = syslog_socket
    (isolated_env / "herd.toml").write_text(f'[log]\nsyslog_address = "{address}"\n')
    inventory = _inventory(tmp_path, "node1 ansible_connection=local")
    assert main(["-i", str(inventory), "run", "all", "--syslog", "--", "true"]) == 0
    capsys.readouterr()
    line = sock.recv(8192).decode()
    assert "herd" in line and "run" in line and "ok" in line


def test_syslog_option_without_a_syslog_refuses_before_running(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (isolated_env / "herd.toml").write_text(f'[log]\nsyslog_address = "{tmp_path}/no-log"\n')
    marker = tmp_path / "ran"
    inventory = _inventory(tmp_path, "node1 ansible_connection=local")
    code = main(["-i", str(inventory), "run", "all", "--syslog", "--", f"touch {marker}"])
    assert code == 2
    assert "syslog" in capsys.readouterr().err
    assert not marker.exists()


def test_hosts_of_a_connection_herd_does_not_speak_are_errors_not_attempts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = _inventory(
        tmp_path, "node1 ansible_connection=local", "win1 ansible_connection=winrm"
    )
    assert main(["-i", str(inventory), "run", "all", "--json", "--", "echo hi"]) == 1
    rows = {row["host"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["node1"]["status"] == "ok"
    assert rows["win1"]["status"] == "error"
    assert "ansible_connection=winrm" in rows["win1"]["error"]


def test_a_finished_host_is_in_the_log_within_a_second_even_if_herd_is_killed(
    tmp_path: Path, isolated_env: Path
) -> None:
    inventory = _inventory(
        tmp_path, "node1 ansible_connection=local", "node2 ansible_connection=local"
    )
    # The first host to take the lock finishes at once; the other hangs until killed.
    command = f"mkdir {tmp_path}/lock 2>/dev/null || exec sleep 60"
    argv = [sys.executable, "-m", "herd", "-i", str(inventory), "run", "all", "--", command]
    env = {**os.environ, "HERD_HOME": str(isolated_env)}
    db = isolated_env / "operations.db"
    with subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    ) as herd:
        deadline = time.monotonic() + 30
        while not (tmp_path / "lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2.5)  # more than the one-second flush, with room for a loaded machine
        os.killpg(herd.pid, signal.SIGKILL)
    with AuditLog(db, check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None and record.status == "interrupted"
        results = log.host_results(op_id)
        assert [r.status.value for r in results] == ["ok"]
