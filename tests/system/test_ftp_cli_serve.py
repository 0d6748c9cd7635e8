"""``herd ftp serve`` as a real process: serves the users of --home, logs, stops on signals."""

from __future__ import annotations

import ftplib
import io
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.core.audit import AuditLog
from herd.ftp.users import UserStore

pytestmark = pytest.mark.system


def read_line(process: subprocess.Popen[str], timeout: float) -> str:
    """One line of the server's stdout, or fail after ``timeout`` seconds."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError("herd ftp serve printed nothing in time")
    return process.stdout.readline()


@pytest.fixture
def serve(isolated_env: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    users = UserStore(isolated_env / "ftp-users.db")
    users.add("alice", "pw-1", home=tmp_path / "alice")
    users.close()
    config = tmp_path / "ftp.toml"
    config.write_text('listen = ["127.0.0.1:0"]\nshutdown_grace = 2\nlogin_failure_delay = 0\n')
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "herd",
            "--home",
            str(isolated_env),
            "ftp",
            "serve",
            "--config",
            str(config),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        first = read_line(process, 30)
        if not first.startswith("serving FTP on ftp://127.0.0.1:"):
            process.wait(timeout=10)
            assert process.stderr is not None
            raise AssertionError(f"herd ftp serve did not start: {process.stderr.read()}")
        yield process, int(first.strip().rsplit(":", 1)[1])
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_answers_users_from_home_and_stops_cleanly_on_signal(
    serve: tuple[subprocess.Popen[str], int], isolated_env: Path, stop_signal: signal.Signals
) -> None:
    process, port = serve
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    ftp.login("alice", "pw-1")
    ftp.storbinary("STOR hello.txt", io.BytesIO(b"hello\n"))
    ftp.quit()
    with pytest.raises(ftplib.error_perm, match="530"):
        refused = ftplib.FTP()
        refused.connect("127.0.0.1", port, timeout=10)
        try:
            refused.login("alice", "wrong")
        finally:
            refused.close()
    idle = ftplib.FTP()
    idle.connect("127.0.0.1", port, timeout=10)
    idle.login("alice", "pw-1")
    started = time.monotonic()
    process.send_signal(stop_signal)
    assert process.wait(timeout=20) == 0
    assert time.monotonic() - started < 10
    idle.close()
    assert process.stdout is not None
    rest = process.stdout.read()
    assert f"{stop_signal.name}: closing" in rest
    assert rest.rstrip().endswith("stopped")
    log = AuditLog(isolated_env / "operations.db")
    sessions = log.operations(limit=50, kind="ftp")
    entries = [e.host for op in sessions for e in log.host_results(op.id)]
    assert all(op.sealed for op in sessions)  # the idle one too: ended by the shutdown
    log.close()
    assert len(sessions) == 3
    assert "#1 LOGIN" in entries
    assert "#1 LOGIN FAILED" in entries
    assert "#2 STOR /hello.txt" in entries


def test_a_session_of_a_killed_server_reads_interrupted(
    serve: tuple[subprocess.Popen[str], int], isolated_env: Path
) -> None:
    process, port = serve
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    ftp.login("alice", "pw-1")
    ftp.storbinary("STOR kept.txt", io.BytesIO(b"kept\n"))
    log = AuditLog(isolated_env / "operations.db")
    try:
        deadline = time.monotonic() + 10
        while not [e for op in log.operations(kind="ftp") for e in log.host_results(op.id)][1:]:
            assert time.monotonic() < deadline, "the session never reached the log"
            time.sleep(0.05)
        (running,) = log.operations(kind="ftp")
        assert running.status == "running"
        process.kill()
        process.wait(timeout=10)
        (session,) = log.operations(kind="ftp")
        assert session.status == "interrupted"
        assert [e.host for e in log.host_results(session.id)] == ["#1 LOGIN", "#2 STOR /kept.txt"]
        assert log.verify().ok  # sealed as interrupted, and the chain holds
        (sealed,) = log.operations(kind="ftp")
        assert sealed.sealed and sealed.status == "interrupted"
    finally:
        log.close()
        ftp.close()


def test_serve_with_a_bad_config_exits_2_with_one_line(isolated_env: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("max_connections = 'lots'\n")
    done = subprocess.run(
        [sys.executable, "-m", "herd", "ftp", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "bad.toml: [ftp] max_connections must be a whole number" in done.stderr


def test_serve_on_a_busy_port_exits_2_naming_the_address(
    serve: tuple[subprocess.Popen[str], int], isolated_env: Path
) -> None:
    _process, port = serve
    done = subprocess.run(
        [sys.executable, "-m", "herd", "ftp", "serve", "--listen", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"127.0.0.1 port {port}" in done.stderr or f"127.0.0.1:{port}" in done.stderr
    assert done.stderr.strip().count("\n") == 0


def test_sigterm_lets_a_running_download_finish_within_the_grace_period(
    serve: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    process, port = serve
    data = os.urandom(16 << 20)
    (tmp_path / "alice" / "big.bin").write_bytes(data)
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", port, timeout=10)
    ftp.login("alice", "pw-1")
    ftp.voidcmd("TYPE I")
    received = bytearray()
    with ftp.transfercmd("RETR big.bin") as conn:
        received += conn.recv(1 << 20)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # the server is shutting down while the data still flows
        while chunk := conn.recv(1 << 20):
            received += chunk
    assert ftp.voidresp().startswith("226")
    ftp.close()
    assert bytes(received) == data
    assert process.wait(timeout=20) == 0


def test_serve_without_users_warns_that_nobody_can_log_in(tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "herd",
            "--home",
            str(home),
            "ftp",
            "serve",
            "--listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert read_line(process, 30).startswith("serving FTP on ftp://127.0.0.1:")
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0
    assert "warning: no FTP users yet" in err
