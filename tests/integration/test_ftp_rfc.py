"""RFC corners a client can hit: REIN, MLSD, SIZE and REST in TYPE A, REST+APPE, OPTS MLST,
and a control connection closed mid-transfer (RFC 959, 3659)."""

from __future__ import annotations

import ftplib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ftp_server_support import RawControl, RunningServer, running_server


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path) as running:
        yield running


@pytest.fixture
def ftp(ftp_server: RunningServer) -> Iterator[ftplib.FTP]:
    client = ftp_server.client()
    yield client
    client.close()


def _retr_ascii(ftp: ftplib.FTP, name: str) -> bytes:
    ftp.voidcmd("TYPE A")
    conn = ftp.transfercmd(f"RETR {name}")
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    conn.close()
    ftp.voidresp()
    return data


def test_stat_of_a_path_after_rein_answers_530(ftp_server: RunningServer) -> None:
    raw = RawControl(ftp_server.host, ftp_server.port)
    try:
        raw.login()
        assert raw.cmd("STAT /")[0] == 213
        assert raw.cmd("REIN")[0] == 220
        assert raw.cmd("STAT /")[0] == 530
        assert raw.cmd("STAT")[0] == 211  # the server's status needs no login
    finally:
        raw.close()


def test_mlsd_of_a_missing_path_is_550_and_of_a_file_501(
    ftp_server: RunningServer, ftp: ftplib.FTP
) -> None:
    (ftp_server.home / "file.txt").write_bytes(b"f")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        list(ftp.mlsd("no-such-dir"))
    with pytest.raises(ftplib.error_perm, match=r"^501"):
        list(ftp.mlsd("file.txt"))


def test_size_in_ascii_mode_is_what_retr_sends(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    text = b"one\ntwo\r\nthree\n" + b"\r" + b"\n" * 3 + b"x" * 70_000 + b"\n"
    (ftp_server.home / "t.txt").write_bytes(text)
    sent = _retr_ascii(ftp, "t.txt")
    assert ftp.sendcmd("SIZE t.txt") == f"213 {len(sent)}"
    assert len(sent) > len(text)
    ftp.voidcmd("TYPE I")
    assert ftp.sendcmd("SIZE t.txt") == f"213 {len(text)}"


def test_size_in_ascii_mode_of_a_huge_file_is_refused(
    ftp_server: RunningServer, ftp: ftplib.FTP
) -> None:
    with (ftp_server.home / "huge.txt").open("wb") as out:
        out.truncate(65 * 1024 * 1024)
    ftp.voidcmd("TYPE A")
    with pytest.raises(ftplib.error_perm, match=r"^550 .*TYPE I"):
        ftp.sendcmd("SIZE huge.txt")


def test_rest_in_ascii_mode_is_refused(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    (ftp_server.home / "t.txt").write_bytes(b"a\nb\nc\n")
    ftp.voidcmd("TYPE A")
    with pytest.raises(ftplib.error_perm, match=r"^504"):
        ftp.sendcmd("REST 2")
    assert ftp.sendcmd("REST 0").startswith("350")
    assert _retr_ascii(ftp, "t.txt") == b"a\r\nb\r\nc\r\n"


def test_rest_then_appe_writes_at_the_marker(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    (ftp_server.home / "f.bin").write_bytes(b"0123456789")
    ftp.storbinary("APPE f.bin", io.BytesIO(b"abc"), rest=4)
    assert (ftp_server.home / "f.bin").read_bytes() == b"0123abc789"
    with pytest.raises(ftplib.error_perm, match=r"^554"):
        ftp.storbinary("APPE f.bin", io.BytesIO(b"x"), rest=11)
    with pytest.raises(ftplib.error_perm, match=r"^554"):
        ftp.storbinary("APPE new.bin", io.BytesIO(b"x"), rest=1)
    assert not (ftp_server.home / "new.bin").exists()
    ftp.storbinary("APPE f.bin", io.BytesIO(b"end"))  # no REST: at the end, as before
    assert (ftp_server.home / "f.bin").read_bytes() == b"0123abc789end"


@pytest.mark.parametrize("bad", ["bad_fact", "type;si ze;", "type;size", "type;;"])
def test_a_malformed_opts_mlst_is_501_and_changes_nothing(ftp: ftplib.FTP, bad: str) -> None:
    assert ftp.sendcmd("OPTS MLST type;size;") == "200 MLST OPTS type;size;"
    with pytest.raises(ftplib.error_perm, match=r"^501"):
        ftp.sendcmd(f"OPTS MLST {bad}")
    assert "\n MLST type*;size*;modify;perm;unique;" in ftp.sendcmd("FEAT")


def test_unknown_but_well_formed_mlst_facts_are_ignored(ftp: ftplib.FTP) -> None:
    assert ftp.sendcmd("OPTS MLST UNIX.mode;Size;") == "200 MLST OPTS size;"
    assert ftp.sendcmd("OPTS MLST") == "200 MLST OPTS "


def _open_sockets() -> int:
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{name}").startswith("socket:")
        except OSError:
            continue
    return count


def test_closing_the_control_connection_mid_retr_stops_the_transfer(
    ftp_server: RunningServer,
) -> None:
    with (ftp_server.home / "big.bin").open("wb") as out:
        out.truncate(512 * 1024 * 1024)
    before = _open_sockets()
    ftp = ftp_server.client()
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    try:
        assert conn.recv(65536)
        ftp_server.wait_for(lambda: ftp_server.server.sessions.snapshot()[0].transfer is not None)
        ftp.sock.close()  # the control connection goes; the data one stays, unread
        ftp.file.close()
        started = time.monotonic()
        ftp_server.wait_for(lambda: len(ftp_server.server.sessions) == 0, timeout=10.0)
        assert time.monotonic() - started < 5.0
        ftp_server.wait_for(lambda: ftp_server.server.connections == 0)
        received = 0
        conn.settimeout(5.0)
        while chunk := conn.recv(1 << 20):  # what was in flight, then the end
            received += len(chunk)
        assert received < 512 * 1024 * 1024
    finally:
        conn.close()
    ftp_server.wait_for(lambda: _open_sockets() <= before, timeout=10.0)
