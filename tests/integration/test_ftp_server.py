"""The FTP server as a whole: quotas, the operation log, shutdown, and many clients at once."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from herd.core.audit import AuditLog
from herd.ftp.recorder import AuditSink
from herd.ftp.server import FtpServer
from herd.ftp.settings import FtpSettings
from herd.ftp.users import UserStore
from tests.ftp_server_support import PASSWORD, RawControl, running_server

MB = 1024 * 1024


def _upload_until_refused(ftp: ftplib.FTP, name: str, size: int, command: str = "STOR") -> str:
    """Send ``size`` bytes; returns the final reply text (552 is caught, not raised)."""
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd(f"{command} {name}")
    chunk = b"q" * 65536
    try:
        for _ in range(size // len(chunk)):
            conn.sendall(chunk)
    except OSError:
        pass  # the server stopped reading: over quota
    conn.close()
    try:
        return ftp.voidresp()
    except ftplib.error_perm as refused:
        return str(refused)


# -- quota ----------------------------------------------------------------------------------


def test_quota_exceeded_mid_upload_stops_with_552_and_removes_the_stor(tmp_path: Path) -> None:
    with running_server(tmp_path, quota=2 * MB) as running:
        with running.client() as ftp:
            reply = _upload_until_refused(ftp, "huge.bin", 8 * MB)
            assert reply.startswith("552")
            assert not (running.home / "huge.bin").exists()
            assert list(running.home.iterdir()) == []  # no temporary left either
            assert ftp.sendcmd("SITE QUOTA").startswith("200 Quota: used 0 bytes of 2097152")
            ftp.storbinary("STOR small.bin", io.BytesIO(b"s" * MB))  # room is back
        assert running.users.usage("alice") == MB


def test_appe_over_quota_keeps_the_bytes_that_fit(tmp_path: Path) -> None:
    with running_server(tmp_path, quota=1 * MB) as running:
        (running.home / "log.txt").write_bytes(b"a" * 1000)
        with running.client() as ftp:
            assert _upload_until_refused(ftp, "log.txt", 4 * MB, "APPE").startswith("552")
        assert (running.home / "log.txt").stat().st_size == MB
        assert running.users.usage("alice") == MB


def test_concurrent_uploads_by_one_user_never_pass_the_quota(tmp_path: Path) -> None:
    with running_server(tmp_path, quota=3 * MB) as running:
        clients = [running.client() for _ in range(4)]
        replies: list[str] = []
        try:
            threads = [
                threading.Thread(
                    target=lambda c=c, i=i: replies.append(  # type: ignore[misc]
                        _upload_until_refused(c, f"part{i}", int(1.5 * MB))
                    )
                )
                for i, c in enumerate(clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            for client in clients:
                client.close()
        stored = sum(p.stat().st_size for p in running.home.iterdir())
        assert stored <= 3 * MB
        assert any(r.startswith("552") for r in replies)  # 6 MB asked, 3 MB allowed
        assert running.users.usage("alice") == stored
        with running.client() as ftp:  # the books are exact: the rest fits, one byte more not
            ftp.storbinary("STOR rest", io.BytesIO(b"r" * (3 * MB - stored)))
            assert _upload_until_refused(ftp, "one-more", 65536).startswith("552")
        assert running.users.usage("alice") == 3 * MB


def test_usage_follows_deletes_and_survives_a_restart(tmp_path: Path) -> None:
    with running_server(tmp_path, quota=10 * MB) as running, running.client() as ftp:
        ftp.storbinary("STOR a", io.BytesIO(b"a" * 3000))
        ftp.storbinary("STOR b", io.BytesIO(b"b" * 2000))
        ftp.storbinary("STOR a", io.BytesIO(b"A" * 1000))  # replaces 3000 bytes
        ftp.delete("b")
        assert "used 1000 bytes" in ftp.sendcmd("SITE QUOTA")
    users = UserStore(tmp_path / "ftp-users.db")
    try:
        assert users.usage("alice") == 1000
        server = FtpServer(FtpSettings(listen=(("127.0.0.1", 0),)), users)
        thread = server.start_in_thread()
        try:
            ftp = ftplib.FTP()
            ftp.connect(*server.addresses[0], timeout=10)
            ftp.login("alice", PASSWORD)
            assert "used 1000 bytes of 10485760" in ftp.sendcmd("SITE QUOTA")
            ftp.close()
        finally:
            server.shutdown(1.0)
            server.server_close()
            thread.join(5)
    finally:
        users.close()


# -- the operation log ---------------------------------------------------------------------------


def test_logins_transfers_and_changes_reach_the_operation_log(tmp_path: Path) -> None:
    log_path = tmp_path / "operations.db"
    sink = AuditSink(log_path)
    users = UserStore(tmp_path / "ftp-users.db")
    users.add("bob", PASSWORD, home=tmp_path / "bob")
    server = FtpServer(
        FtpSettings(listen=(("127.0.0.1", 0),), login_failure_delay=0.01), users, sink
    )
    thread = server.start_in_thread()
    payload = os.urandom(200_000)
    try:
        ftp = ftplib.FTP()
        ftp.connect(*server.addresses[0], timeout=10)
        with pytest.raises(ftplib.error_perm):
            ftp.login("bob", "not-the-password")
        ftp.login("bob", PASSWORD)
        ftp.mkd("d")
        ftp.storbinary("STOR d/f.bin", io.BytesIO(payload))
        ftp.retrbinary("RETR d/f.bin", lambda _data: None)
        ftp.rename("d/f.bin", "d/g.bin")
        ftp.delete("d/g.bin")
        ftp.rmd("d")
        ftp.quit()
    finally:
        server.shutdown(1.0)
        server.server_close()
        thread.join(5)
        sink.close()
        users.close()
    with AuditLog(log_path) as audit:
        operations = audit.operations(limit=50, kind="ftp")
        assert len(operations) == 1  # one session, one operation: its actions are its entries
        session = operations[0]
        assert session.status == "failed" and session.sealed  # one action (a login) failed
        assert session.hosts == ["127.0.0.1"] and session.operator.user == "bob"
        entries = audit.host_results(session.id)
        assert [e.host for e in entries] == [
            "#1 LOGIN FAILED", "#2 LOGIN", "#3 MKD /d", "#4 STOR /d/f.bin", "#5 RETR /d/f.bin",
            "#6 RNFR /d/f.bin RNTO /d/g.bin", "#7 DELE /d/g.bin", "#8 RMD /d",
        ]  # fmt: skip
        assert all(e.address == "127.0.0.1" for e in entries)
        assert [e.ok for e in entries] == [False] + [True] * 7
        stor = entries[3]
        assert stor.files[0].size == len(payload)
        assert stor.files[0].sha256 == hashlib.sha256(payload).hexdigest()
        everything = repr(entries) + repr(operations)
        assert PASSWORD not in everything and "not-the-password" not in everything
        assert audit.verify().ok


def test_each_session_is_its_own_operation_and_the_log_finds_it_by_client(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from herd.cli.main import main

    log_path = tmp_path / "operations.db"
    sink = AuditSink(log_path)
    users = UserStore(tmp_path / "ftp-users.db")
    users.add("bob", PASSWORD, home=tmp_path / "bob")
    users.add("eve", PASSWORD, home=tmp_path / "eve")
    server = FtpServer(FtpSettings(listen=(("127.0.0.1", 0),)), users, sink)
    thread = server.start_in_thread()
    try:
        for _ in range(3):
            with ftplib.FTP() as ftp:
                ftp.connect(*server.addresses[0], timeout=10)
                ftp.login("bob", PASSWORD)
                ftp.storbinary("STOR f.bin", io.BytesIO(b"f"))
                ftp.login("eve", PASSWORD)  # another user: another operation
                ftp.nlst()
                ftp.quit()
    finally:
        server.shutdown(1.0)
        server.server_close()
        thread.join(5)
        sink.close()
        users.close()
    with AuditLog(log_path) as audit:
        operations = audit.operations(limit=50, kind="ftp")
        assert [op.operator.user for op in reversed(operations)] == ["bob", "eve"] * 3
        assert all(op.status == "ok" for op in operations)
    assert main(["--home", str(tmp_path), "log", "--host", "127.0.0.1", "--json"]) == 0
    assert capsys.readouterr().out.count("\n") == 6


# -- shutdown -------------------------------------------------------------------------------------


def test_shutdown_closes_idle_sessions_and_lets_a_running_transfer_finish(tmp_path: Path) -> None:
    with running_server(tmp_path) as running:
        (running.home / "f.bin").write_bytes(os.urandom(8 * MB))
        idle = RawControl(running.host, running.port)
        idle.login()
        ftp = running.client()
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("RETR f.bin")
        stopper = threading.Thread(target=running.server.shutdown, args=(10.0,))
        stopper.start()
        assert idle.reply()[0] == 421  # the idle session is told at once
        received = 0
        while chunk := conn.recv(MB):
            received += len(chunk)
            time.sleep(0.001)
        conn.close()
        assert received == 8 * MB  # the transfer was allowed to finish
        assert ftp.getresp().startswith("226")
        with pytest.raises(ftplib.error_temp, match=r"^421"):
            ftp.getresp()
        stopper.join(10)
        assert not stopper.is_alive()
        ftp.close()
        idle.close()


def test_shutdown_cuts_transfers_still_running_after_the_grace_period(tmp_path: Path) -> None:
    with running_server(tmp_path) as running:
        with (running.home / "f.bin").open("wb") as out:
            out.truncate(64 * MB)
        ftp = running.client()
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("RETR f.bin")
        conn.recv(1000)  # then never read again
        started = time.monotonic()
        running.server.shutdown(0.5)
        assert time.monotonic() - started < 5
        assert len(running.server.sessions) == 0
        conn.close()
        ftp.close()
        with pytest.raises(OSError):
            socket.create_connection((running.host, running.port), timeout=2).close()


# -- many clients ----------------------------------------------------------------------------------


def test_200_concurrent_ftplib_clients_all_succeed(tmp_path: Path) -> None:
    with running_server(tmp_path) as running:
        payload = os.urandom(10_000)
        (running.home / "small.bin").write_bytes(payload)

        def session(_: int) -> bool:
            ftp = ftplib.FTP()
            try:
                ftp.connect(running.host, running.port, timeout=30)
                ftp.login("alice", PASSWORD)
                ftp.retrlines("LIST", lambda _line: None)
                out = io.BytesIO()
                ftp.retrbinary("RETR small.bin", out.write)
                ftp.quit()
                return out.getvalue() == payload
            finally:
                ftp.close()

        with ThreadPoolExecutor(max_workers=200) as pool:
            results = list(pool.map(session, range(200)))
        assert all(results)
        running.wait_for(lambda: running.server.connections == 0)


_IDLE_SERVER = """
import pathlib, sys
from herd.ftp.server import FtpServer
from herd.ftp.settings import FtpSettings
from herd.ftp.users import UserStore
root = pathlib.Path(sys.argv[1])
users = UserStore(root / "users.db")
users.add("idle", sys.argv[2], home=root / "idle")
server = FtpServer(FtpSettings(listen=(("127.0.0.1", 0),)), users)
print(server.addresses[0][1], flush=True)
server.serve_forever()
"""


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_idle_logged_in_sessions_stay_small_in_memory(tmp_path: Path) -> None:
    """A bound, not the benchmark: 300 idle sessions cost well under 40 KiB each."""
    server = subprocess.Popen(
        [sys.executable, "-c", _IDLE_SERVER, str(tmp_path), PASSWORD],
        stdout=subprocess.PIPE,
        text=True,
    )
    sessions: list[RawControl] = []
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        warm = RawControl("127.0.0.1", port)
        warm.login("idle")
        time.sleep(0.3)
        before = _rss_kib(server.pid)
        for _ in range(300):
            raw = RawControl("127.0.0.1", port)
            sessions.append(raw)
            raw.login("idle")
        time.sleep(0.3)
        per_session = (_rss_kib(server.pid) - before) / 300
        assert per_session < 40, f"{per_session:.1f} KiB per idle session"
        warm.close()
    finally:
        for raw in sessions:
            raw.close()
        server.terminate()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()


def test_usage_is_measured_again_at_start_so_files_deleted_on_disk_stop_counting(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path, quota=6 * MB) as running, running.client() as ftp:
        ftp.storbinary("STOR old.bin", io.BytesIO(b"o" * (5 * MB)))
    (tmp_path / "alice" / "old.bin").unlink()  # by the administrator, server down
    users = UserStore(tmp_path / "ftp-users.db")
    try:
        assert users.usage("alice") == 5 * MB  # the database does not know yet
        server = FtpServer(FtpSettings(listen=(("127.0.0.1", 0),)), users)
        thread = server.start_in_thread()
        try:
            assert server.rescanned.wait(10.0)
            ftp = ftplib.FTP()
            ftp.connect(*server.addresses[0], timeout=10)
            ftp.login("alice", PASSWORD)
            ftp.storbinary("STOR new.bin", io.BytesIO(b"n" * (4 * MB)))  # fits: 0 + 4 <= 6
            assert "used 4194304 bytes" in ftp.sendcmd("SITE QUOTA")
            ftp.quit()
        finally:
            server.shutdown(1.0)
            server.server_close()
            thread.join(5)
        assert users.usage("alice") == 4 * MB
    finally:
        users.close()


def test_user_rescan_records_what_is_on_disk_and_a_running_server_takes_it(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from herd.cli.main import main

    users = UserStore(isolated_env / "ftp-users.db")
    users.add("alice", PASSWORD, home=tmp_path / "alice", quota=6 * MB)
    server = FtpServer(FtpSettings(listen=(("127.0.0.1", 0),)), users)
    thread = server.start_in_thread()
    try:
        assert server.rescanned.wait(10.0)
        with ftplib.FTP() as ftp:
            ftp.connect(*server.addresses[0], timeout=10)
            ftp.login("alice", PASSWORD)
            ftp.storbinary("STOR a.bin", io.BytesIO(b"a" * (5 * MB)))
            ftp.quit()
        (tmp_path / "alice" / "a.bin").unlink()
        assert main(["ftp", "user", "rescan", "alice"]) == 0
        assert "alice: 0 B" in capsys.readouterr().out
        assert users.usage("alice") == 0
        with ftplib.FTP() as ftp:  # no session was open: the next login takes the figure
            ftp.connect(*server.addresses[0], timeout=10)
            ftp.login("alice", PASSWORD)
            ftp.storbinary("STOR b.bin", io.BytesIO(b"b" * (5 * MB)))
            ftp.quit()
        assert main(["ftp", "user", "rescan", "nobody"]) == 2
    finally:
        server.shutdown(1.0)
        server.server_close()
        thread.join(5)
        users.close()
