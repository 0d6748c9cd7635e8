"""FTPS (RFC 4217) on herd's server, driven by ftplib: explicit and implicit TLS, PROT P with
the control connection's TLS session resumed, require_tls, and handshakes that never end."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from herd.ftp.events import LoginEvent
from tests.ftp_server_support import (
    PASSWORD,
    RawControl,
    RunningServer,
    certificate,
    running_server,
    tls_client,
)

MB = 1024 * 1024


@pytest.fixture
def cafile(tmp_path: Path) -> Path:
    return certificate(tmp_path)[0]


@pytest.fixture
def ftps_server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path / "server", tls=True) as running:
        yield running


def test_feat_offers_auth_tls_pbsz_and_prot_only_with_a_certificate(
    tmp_path: Path, ftps_server: RunningServer
) -> None:
    with ftps_server.client() as ftp:
        feat = ftp.sendcmd("FEAT")
        for feature in ("AUTH TLS", "PBSZ", "PROT"):
            assert f"\n {feature}\n" in feat
        with pytest.raises(ftplib.error_perm, match=r"^503"):
            ftp.sendcmd("PBSZ 0")  # before AUTH TLS
    with running_server(tmp_path / "plain") as plain, plain.client() as ftp:
        assert "AUTH" not in ftp.sendcmd("FEAT")
        with pytest.raises(ftplib.error_perm, match=r"^502"):
            ftp.sendcmd("AUTH TLS")


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_tls_login_list_upload_download_and_hash_with_the_session_resumed(
    ftps_server: RunningServer, cafile: Path, implicit: bool
) -> None:
    payload = os.urandom(3 * MB + 17)
    ftp = tls_client(ftps_server, cafile, implicit=implicit)
    try:
        assert isinstance(ftp.sock, ssl.SSLSocket)
        assert ftp.sock.version() in ("TLSv1.2", "TLSv1.3")
        ftp.storbinary("STOR secret.bin", io.BytesIO(payload))
        out = io.BytesIO()
        ftp.retrbinary("RETR secret.bin", out.write)
        assert out.getvalue() == payload
        assert ftp.nlst() == ["secret.bin"]
        assert ftp.sendcmd("HASH secret.bin").split()[3] == hashlib.sha256(payload).hexdigest()
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            ftp.retrbinary("RETR ../../etc/passwd", out.write)  # the jail holds under TLS
    finally:
        ftp.quit()
    stored = [e for e in ftps_server.events.events if e.command == "STOR /secret.bin"]
    assert stored[0].files[0].sha256 == hashlib.sha256(payload).hexdigest()


def test_a_data_connection_with_a_fresh_tls_session_is_refused(
    ftps_server: RunningServer, cafile: Path
) -> None:
    (ftps_server.home / "f.txt").write_bytes(b"data")
    ftp = tls_client(ftps_server, cafile, reuse=False)  # ftplib's FTP_TLS does not resume
    try:
        received = b""
        try:
            with ftp.transfercmd("RETR f.txt") as conn:
                while chunk := conn.recv(65536):
                    received += chunk
        except (ssl.SSLError, OSError):
            pass  # the server dropped the data connection: that is the refusal
        assert received == b""
        with pytest.raises(ftplib.error_perm, match=r"^522 .*resume"):
            ftp.voidresp()
        ftp.voidcmd("NOOP")  # the control connection is fine
    finally:
        ftp.close()


def test_ftplib_without_resumption_works_when_reuse_is_not_required(
    tmp_path: Path, cafile: Path
) -> None:
    with running_server(tmp_path / "s", tls=True, require_tls_session_reuse=False) as running:
        (running.home / "f.txt").write_bytes(b"data")
        ftp = tls_client(running, cafile, reuse=False)
        chunks: list[bytes] = []
        ftp.retrbinary("RETR f.txt", chunks.append)
        ftp.quit()
        assert chunks == [b"data"]


def test_a_stranger_who_reaches_the_passive_port_first_gets_nothing(
    ftps_server: RunningServer, cafile: Path
) -> None:
    payload = os.urandom(200_000)
    (ftps_server.home / "private.bin").write_bytes(payload)
    ftp = tls_client(ftps_server, cafile)
    stolen: list[bytes] = []
    try:
        ftp.voidcmd("TYPE I")
        host, port = ftp.makepasv()
        context = ssl.create_default_context(cafile=str(cafile))

        def stranger() -> None:
            raw = socket.create_connection((host, port), timeout=10)
            try:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                    while chunk := sock.recv(65536):
                        stolen.append(chunk)
            except (OSError, ssl.SSLError):
                pass

        thief = threading.Thread(target=stranger)
        thief.start()
        time.sleep(0.2)  # the stranger is connected, and first
        conn = socket.create_connection((host, port), timeout=10)
        ftp.putcmd("RETR private.bin")
        assert ftp.getresp().startswith("150")
        assert isinstance(ftp.sock, ssl.SSLSocket)
        data = b""
        with ftp.context.wrap_socket(
            conn, server_hostname="127.0.0.1", session=ftp.sock.session
        ) as tls:
            while chunk := tls.recv(65536):
                data += chunk
            tls.unwrap()
        assert ftp.voidresp().startswith("226")
        thief.join(15)
        assert data == payload
        assert b"".join(stolen) == b""
    finally:
        ftp.close()


def test_require_tls_refuses_a_login_in_clear_before_the_password(tmp_path: Path) -> None:
    with running_server(tmp_path / "s", tls=True, require_tls=True) as running:
        raw = RawControl(running.host, running.port)
        try:
            raw.reply()
            code, text = raw.cmd("USER alice")
            assert code == 530 and "TLS" in text
            assert raw.cmd(f"PASS {PASSWORD}")[0] == 503  # nothing is waiting for a password
        finally:
            raw.close()
        assert not running.events.of(LoginEvent)  # no password was checked


def test_a_user_who_requires_tls_is_refused_in_clear_and_others_are_not(
    tmp_path: Path, cafile: Path
) -> None:
    with running_server(tmp_path / "s", tls=True) as running:
        running.users.set("alice", require_tls=True)
        running.users.add("bob", PASSWORD, home=tmp_path / "bob")
        with pytest.raises(ftplib.error_perm, match=r"^530 TLS required"):
            running.client()
        running.client(user="bob").quit()
        ftp = tls_client(running, cafile)  # over TLS alice is welcome, with PROT P only
        with pytest.raises(ftplib.error_perm, match=r"^534"):
            ftp.sendcmd("PROT C")
        ftp.storbinary("STOR ok.txt", io.BytesIO(b"ok"))
        ftp.quit()


def test_require_tls_refuses_data_in_clear(tmp_path: Path, cafile: Path) -> None:
    with running_server(tmp_path / "s", tls=True, require_tls=True) as running:
        (running.home / "f").write_bytes(b"f")
        ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=str(cafile)), timeout=10)
        ftp.connect(running.host, running.port)
        ftp.login("alice", PASSWORD)  # AUTH TLS, but no PROT P
        with pytest.raises(ftplib.error_perm, match=r"^521"):
            ftp.retrbinary("RETR f", lambda _data: None)
        ftp.quit()


@pytest.mark.parametrize("where", ["implicit port", "after AUTH TLS"])
def test_a_client_that_never_finishes_its_handshake_holds_no_thread(
    tmp_path: Path, where: str
) -> None:
    with running_server(tmp_path / "s", tls=True, tls_handshake_timeout=0.5) as running:
        if where == "implicit port":
            sock = socket.create_connection(running.server.implicit_addresses[0], timeout=10)
        else:
            sock = socket.create_connection((running.host, running.port), timeout=10)
            sock.recv(1000)
            sock.sendall(b"AUTH TLS\r\n")
            assert sock.recv(1000).startswith(b"234")
        try:
            running.wait_for(lambda: len(running.server.sessions) == 1)
            started = time.monotonic()
            running.wait_for(lambda: len(running.server.sessions) == 0, timeout=5.0)
            assert time.monotonic() - started < 3.0
            assert sock.recv(1000) == b""  # and the server closed it
        finally:
            sock.close()


def test_quota_is_enforced_over_tls_and_the_client_reads_552(tmp_path: Path, cafile: Path) -> None:
    with running_server(tmp_path / "s", quota=2 * MB, tls=True) as running:
        ftp = tls_client(running, cafile)
        with pytest.raises(ftplib.error_perm, match=r"^552"):
            ftp.storbinary("STOR big.bin", io.BytesIO(b"x" * (3 * MB)))
        assert list(running.home.iterdir()) == []
        ftp.storbinary("STOR small.bin", io.BytesIO(b"x" * MB))
        ftp.quit()


def test_200_concurrent_tls_clients_all_succeed(ftps_server: RunningServer, cafile: Path) -> None:
    payload = os.urandom(10_000)
    (ftps_server.home / "small.bin").write_bytes(payload)

    def session(_: int) -> bytes:
        ftp = tls_client(ftps_server, cafile, timeout=60.0)
        try:
            ftp.retrlines("LIST", lambda _line: None)
            out = io.BytesIO()
            ftp.retrbinary("RETR small.bin", out.write)
            ftp.quit()
            return out.getvalue()
        finally:
            ftp.close()

    with ThreadPoolExecutor(max_workers=200) as pool:
        results = list(pool.map(session, range(200)))
    assert all(r == payload for r in results)
    ftps_server.wait_for(lambda: ftps_server.server.connections == 0, timeout=20.0)


def test_a_tls_upload_cut_without_close_notify_is_not_stored_as_complete(
    ftps_server: RunningServer, cafile: Path
) -> None:
    ftp = tls_client(ftps_server, cafile)
    try:
        ftp.voidcmd("TYPE I")
        conn = ftp.transfercmd("STOR cut.bin")
        conn.sendall(b"x" * 100_000)
        raw = socket.socket(fileno=conn.detach())  # close the TCP connection, not TLS
        raw.close()
        with pytest.raises(ftplib.error_temp, match=r"^426"):
            ftp.voidresp()
        assert not (ftps_server.home / "cut.bin").exists()
    finally:
        ftp.close()
