"""The FTP protocol as clients see it: a real herd server on loopback, driven by ftplib
and by a bare control connection."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import random
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.ftp.handler import FtpHandler
from tests.ftp_server_support import PASSWORD, RawControl, RunningServer, running_server


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path) as running:
        yield running


@pytest.fixture
def ftp(ftp_server: RunningServer) -> Iterator[ftplib.FTP]:
    client = ftp_server.client()
    yield client
    client.close()


def _retr(ftp: ftplib.FTP, command: str, rest: int | None = None) -> bytes:
    out = io.BytesIO()
    ftp.retrbinary(command, out.write, rest=rest)
    return out.getvalue()


# -- login ---------------------------------------------------------------------------------


def test_every_user_name_gets_331_and_a_wrong_password_530(ftp_server: RunningServer) -> None:
    raw = RawControl(ftp_server.host, ftp_server.port)
    try:
        assert raw.reply()[0] == 220
        assert raw.cmd("USER nobody-here")[0] == 331
        assert raw.cmd("PASS whatever")[0] == 530
        assert raw.cmd("USER alice")[0] == 331
        assert raw.cmd("PASS wrong")[0] == 530
        assert raw.cmd("PASS again")[0] == 503  # PASS without USER
        assert raw.cmd("USER alice")[0] == 331
        assert raw.cmd(f"PASS {PASSWORD}")[0] == 230
        assert raw.cmd(f"PASS {PASSWORD}")[0] == 503
    finally:
        raw.close()
    failed = [e for e in ftp_server.events.events if e.command == "LOGIN FAILED"]
    assert [e.user for e in failed] == ["nobody-here", "alice"]


def test_commands_before_login_get_530(ftp_server: RunningServer) -> None:
    raw = RawControl(ftp_server.host, ftp_server.port)
    try:
        raw.reply()
        for command in ("PWD", "LIST", "RETR x", "CWD /", "PASV", "STOR y", "SITE QUOTA"):
            assert raw.cmd(command)[0] == 530, command
        assert raw.cmd("SYST")[0] == 215
        assert raw.cmd("FEAT")[0] == 211
    finally:
        raw.close()


def test_bad_sequence_and_bad_arguments_get_503_501_504_500(ftp_server: RunningServer) -> None:
    raw = RawControl(ftp_server.host, ftp_server.port)
    try:
        raw.login()
        assert raw.cmd("RNTO x")[0] == 503
        assert raw.cmd("TYPE X")[0] == 501
        assert raw.cmd("TYPE E")[0] == 504
        assert raw.cmd("MODE B")[0] == 504
        assert raw.cmd("MODE S")[0] == 200
        assert raw.cmd("STRU R")[0] == 504
        assert raw.cmd("STRU F")[0] == 200
        assert raw.cmd("REST abc")[0] == 501
        assert raw.cmd("RETR")[0] == 501
        assert raw.cmd("PWD extra")[0] == 501
        assert raw.cmd("XYZZY")[0] == 500
        assert raw.cmd("SMNT /mnt")[0] == 502
        assert raw.cmd("AUTH TLS")[0] == 502
        assert raw.cmd("RETR missing.txt")[0] == 425  # no data connection asked for
        assert raw.cmd("ACCT x")[0] == 202
        assert raw.cmd("ALLO 100")[0] == 202
        assert raw.cmd("NOOP")[0] == 200
        assert raw.cmd("HELP")[0] == 214
        assert raw.cmd("HELP RETR")[0] == 214
        assert raw.cmd("REIN")[0] == 220
        assert raw.cmd("PWD")[0] == 530
        assert raw.cmd("QUIT")[0] == 221
    finally:
        raw.close()


# -- the tree -------------------------------------------------------------------------------


def test_mkdir_cd_rename_delete_with_ftplib(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    assert ftp.pwd() == "/"
    assert ftp.mkd("docs") == "/docs"
    ftp.cwd("docs")
    assert ftp.pwd() == "/docs"
    ftp.storbinary("STOR draft.txt", io.BytesIO(b"draft"))
    ftp.rename("draft.txt", "final.txt")
    assert ftp.nlst() == ["final.txt"]
    assert (ftp_server.home / "docs" / "final.txt").read_bytes() == b"draft"
    ftp.cwd("..")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.rmd("docs")  # not empty
    ftp.delete("docs/final.txt")
    ftp.rmd("docs")
    assert not (ftp_server.home / "docs").exists()
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.cwd("docs")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.delete("nothing")
    commands = [e.command for e in ftp_server.events.events]
    assert "MKD /docs" in commands and "RMD /docs" in commands
    assert "RNFR /docs/draft.txt RNTO /docs/final.txt" in commands
    assert "DELE /docs/final.txt" in commands


def test_list_mlsd_nlst_and_mlst_parse(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    (ftp_server.home / "sub").mkdir()
    (ftp_server.home / "a file.txt").write_bytes(b"x" * 1234)
    lines: list[str] = []
    ftp.retrlines("LIST -la", lines.append)
    by_name = {line.split(None, 8)[8]: line.split(None, 8) for line in lines}
    assert by_name["a file.txt"][0].startswith("-") and by_name["a file.txt"][4] == "1234"
    assert by_name["sub"][0].startswith("d")
    assert by_name["sub"][5] in (
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    )
    facts = dict(ftp.mlsd())
    assert facts["a file.txt"]["type"] == "file" and facts["a file.txt"]["size"] == "1234"
    assert facts["sub"]["type"] == "dir" and "perm" in facts["sub"]
    assert sorted(ftp.nlst()) == ["a file.txt", "sub"]
    assert ftp.nlst("*.txt") == ["a file.txt"]  # mget-style globs
    mlst = ftp.sendcmd("MLST a file.txt")
    assert mlst.startswith("250-") and "size=1234;" in mlst and "/a file.txt" in mlst
    status = ftp.sendcmd("STAT sub")
    assert status.startswith("213-")
    with pytest.raises(ftplib.error_perm, match=r"^501"):
        list(ftp.mlsd("a file.txt"))


def test_size_in_ascii_mode_counts_crlf(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    (ftp_server.home / "t.txt").write_bytes(b"one\ntwo\n")
    ftp.voidcmd("TYPE A")
    assert ftp.size("t.txt") == 10  # what RETR in TYPE A sends
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.size("missing")


def test_ascii_mode_converts_line_endings_both_ways(
    ftp_server: RunningServer, ftp: ftplib.FTP
) -> None:
    ftp.storlines("STOR lines.txt", io.BytesIO(b"one\r\ntwo\r\nthree\r\n"))
    assert (ftp_server.home / "lines.txt").read_bytes() == b"one\ntwo\nthree\n"
    ftp.voidcmd("TYPE A")
    conn = ftp.transfercmd("RETR lines.txt")
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    conn.close()
    ftp.voidresp()
    assert data == b"one\r\ntwo\r\nthree\r\n"
    (ftp_server.home / "mixed.txt").write_bytes(b"dos\r\nunix\n")
    conn = ftp.transfercmd("RETR mixed.txt")
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    conn.close()
    ftp.voidresp()
    assert data == b"dos\r\nunix\r\n"  # CRLF already there is not doubled


def test_rest_resumes_downloads_and_beyond_the_end_gets_554(
    ftp_server: RunningServer, ftp: ftplib.FTP
) -> None:
    payload = os.urandom(100_000)
    (ftp_server.home / "blob").write_bytes(payload)
    assert _retr(ftp, "RETR blob", rest=60_000) == payload[60_000:]
    assert _retr(ftp, "RETR blob", rest=100_000) == b""
    with pytest.raises(ftplib.error_perm, match=r"^554"):
        _retr(ftp, "RETR blob", rest=100_001)
    with pytest.raises(ftplib.error_perm, match=r"^554"):
        ftp.storbinary("STOR blob", io.BytesIO(b"x"), rest=100_001)
    with pytest.raises(ftplib.error_perm, match=r"^554"):
        ftp.storbinary("STOR missing", io.BytesIO(b"x"), rest=5)
    assert not (ftp_server.home / "missing").exists()
    ftp.voidcmd("NOOP")  # the session is still fine


def test_rest_stor_and_appe_resume_uploads_in_place(
    ftp_server: RunningServer, ftp: ftplib.FTP
) -> None:
    payload = os.urandom(300_000)
    (ftp_server.home / "up.bin").write_bytes(payload[:120_000])
    ftp.storbinary("STOR up.bin", io.BytesIO(payload[100_000:]), rest=100_000)
    assert (ftp_server.home / "up.bin").read_bytes() == payload
    ftp.storbinary("APPE up.bin", io.BytesIO(b"tail"))
    assert (ftp_server.home / "up.bin").read_bytes() == payload + b"tail"
    ftp.storbinary("APPE new.bin", io.BytesIO(b"fresh"))
    assert (ftp_server.home / "new.bin").read_bytes() == b"fresh"


def test_stou_picks_a_unique_name(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    (ftp_server.home / "report").write_bytes(b"old")
    conn, _size = ftp.ntransfercmd("STOU report")
    conn.sendall(b"new")
    conn.close()
    ftp.voidresp()
    assert (ftp_server.home / "report").read_bytes() == b"old"
    assert (ftp_server.home / "report.1").read_bytes() == b"new"


def test_a_failed_stor_never_replaces_the_good_file(
    ftp_server: RunningServer, ftp: ftplib.FTP
) -> None:
    (ftp_server.home / "good.txt").write_bytes(b"good")
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("STOR good.txt")
    conn.sendall(b"partial" * 1000)
    assert ftp.abort().startswith("426")
    assert ftp.getresp().startswith("226")
    conn.close()
    assert (ftp_server.home / "good.txt").read_bytes() == b"good"
    assert sorted(p.name for p in ftp_server.home.iterdir()) == ["good.txt"]  # no temp left


def test_hash_opts_hash_xmd5_and_xsha256(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    payload = b"checksum me" * 1000
    (ftp_server.home / "c.bin").write_bytes(payload)
    code, algo, span, digest, path = ftp.sendcmd("HASH c.bin").split(" ", 4)
    assert (code, algo, span, path) == ("213", "SHA-256", f"0-{len(payload)}", "/c.bin")
    assert digest == hashlib.sha256(payload).hexdigest()
    assert ftp.sendcmd("OPTS HASH MD5") == "200 MD5"
    assert ftp.sendcmd("HASH c.bin").split()[3] == hashlib.md5(payload).hexdigest()
    assert "MD5*" in ftp.sendcmd("FEAT")
    assert ftp.sendcmd("XMD5 c.bin") == "250 " + hashlib.md5(payload).hexdigest()
    assert ftp.sendcmd("XSHA256 c.bin") == "250 " + hashlib.sha256(payload).hexdigest()
    with pytest.raises(ftplib.error_perm, match=r"^501"):
        ftp.sendcmd("OPTS HASH CRC99")


def test_mdtm_and_mfmt(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    (ftp_server.home / "t").write_bytes(b"t")
    assert ftp.sendcmd("MFMT 20200102030405 t") == "213 Modify=20200102030405; /t"
    assert ftp.sendcmd("MDTM t") == "213 20200102030405"
    with pytest.raises(ftplib.error_perm, match=r"^501"):
        ftp.sendcmd("MFMT yesterday t")


def test_feat_lists_the_extensions_and_utf8_is_on(ftp: ftplib.FTP) -> None:
    feat = ftp.sendcmd("FEAT")
    for feature in ("EPRT", "EPSV", "MDTM", "MFMT", "REST STREAM", "SIZE", "TVFS", "UTF8"):
        assert f"\n {feature}" in feat
    assert "\n MLST type*;size*;modify*;perm*;unique*;" in feat
    assert "\n HASH SHA-256*;SHA-1;MD5" in feat
    assert ftp.sendcmd("OPTS UTF8 ON").startswith("200")
    assert ftp.sendcmd("OPTS MLST type;size;") == "200 MLST OPTS type;size;"
    assert "\n MLST type*;size*;modify;perm;unique;" in ftp.sendcmd("FEAT")


def test_utf8_names_round_trip(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    ftp.encoding = "utf-8"
    ftp.storbinary("STOR café-日本.txt", io.BytesIO(b"u"))
    assert (ftp_server.home / "café-日本.txt").read_bytes() == b"u"
    assert ftp.nlst() == ["café-日本.txt"]


def test_site_quota_reports_usage(tmp_path: Path) -> None:
    with running_server(tmp_path, quota=1_000_000) as running:
        (running.home / "f").write_bytes(b"x" * 1000)
        with running.client() as ftp:
            report = ftp.sendcmd("SITE QUOTA")
            assert report.startswith("200 Quota: used 1000 bytes of 1000000")
            with pytest.raises(ftplib.error_perm, match=r"^501"):
                ftp.sendcmd("SITE CHMOD 777 f")
            with pytest.raises(ftplib.error_perm, match=r"^552"):
                ftp.sendcmd("ALLO 2000000")


# -- jail -------------------------------------------------------------------------------------


def test_jail_escape_attempts_are_refused(ftp_server: RunningServer, ftp: ftplib.FTP) -> None:
    outside = ftp_server.root / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    (ftp_server.home / "out").symlink_to(outside)
    (ftp_server.home / "abs").symlink_to("/etc")
    ftp.cwd("../../..")
    assert ftp.pwd() == "/"
    for path in ("../outside/secret", "/../outside/secret", "out/secret", "abs/passwd"):
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            _retr(ftp, f"RETR {path}")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.cwd("out")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.storbinary("STOR out/planted", io.BytesIO(b"x"))
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.rename("out/secret", "stolen")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        ftp.sendcmd("HASH abs/passwd")
    assert ftp.nlst() == []  # links that lead outside are not even listed
    raw = RawControl(ftp_server.host, ftp_server.port)
    try:
        raw.login()
        for bad in (b"MKD bad\x01name", b"DELE x\x00y", b"MKD \xc3\x28", b"MKD " + b"n" * 300):
            assert raw.cmd(bad)[0] == 553, bad
    finally:
        raw.close()
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_text() == "secret"


def test_a_read_only_user_cannot_change_anything(ftp_server: RunningServer) -> None:
    ftp_server.users.add("reader", PASSWORD, home=ftp_server.home, perms=("list", "read"))
    (ftp_server.home / "f").write_bytes(b"f")
    with ftp_server.client("reader") as ftp:
        assert _retr(ftp, "RETR f") == b"f"
        for action in (
            lambda: ftp.storbinary("STOR g", io.BytesIO(b"g")),
            lambda: ftp.delete("f"),
            lambda: ftp.mkd("d"),
            lambda: ftp.rename("f", "h"),
        ):
            with pytest.raises(ftplib.error_perm, match=r"^550"):
                action()


def test_anonymous_login_only_when_enabled_and_read_only(tmp_path: Path) -> None:
    public = tmp_path / "public"
    public.mkdir()
    (public / "readme").write_text("hi")
    with (
        running_server(tmp_path, anonymous_root=public) as running,
        running.client("anonymous", "guest@example.org") as ftp,
    ):
        assert _retr(ftp, "RETR readme") == b"hi"
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            ftp.storbinary("STOR x", io.BytesIO(b"x"))
    with running_server(tmp_path / "second") as running:
        ftp = ftplib.FTP()
        ftp.connect(running.host, running.port, timeout=10)
        try:
            with pytest.raises(ftplib.error_perm, match=r"^530"):
                ftp.login("anonymous", "guest@example.org")
        finally:
            ftp.close()


# -- data connections ----------------------------------------------------------------------------


def test_port_and_eprt_to_a_foreign_address_or_low_port_are_refused(ftp: ftplib.FTP) -> None:
    for command in ("PORT 10,1,2,3,200,1", "EPRT |1|10.1.2.3|51201|", "PORT 127,0,0,1,0,80"):
        with pytest.raises(ftplib.error_perm, match=r"^504"):
            ftp.sendcmd(command)


def test_active_mode_to_the_clients_own_address_works(
    ftp_server: RunningServer, ftp: ftplib.FTP
) -> None:
    (ftp_server.home / "a").write_bytes(b"active")
    ftp.set_pasv(False)
    assert _retr(ftp, "RETR a") == b"active"
    ftp.storbinary("STOR b", io.BytesIO(b"bee"))
    assert (ftp_server.home / "b").read_bytes() == b"bee"


def _stranger_at_the_passive_port(ftp: ftplib.FTP) -> tuple[socket.socket, tuple[str, int]]:
    """A connection from another address (127.0.0.2) to the passive port ``ftp`` was
    given for a binary RETR of file "a" (b"mine"), and that port."""
    ftp.voidcmd("TYPE I")
    address = ftp.makepasv()
    thief = socket.socket()
    thief.settimeout(5)
    thief.bind(("127.0.0.2", 0))
    thief.connect(address)
    return thief, address


def _only_the_client_got_it(ftp: ftplib.FTP, conn: socket.socket, thief: socket.socket) -> None:
    assert ftp.getresp().startswith("150")
    assert conn.recv(100) == b"mine"
    conn.close()
    assert ftp.getresp().startswith("226")
    assert thief.recv(100) == b""  # closed without a byte
    thief.close()


def test_a_passive_connection_from_another_address_is_dropped(
    ftp_server: RunningServer, ftp: ftplib.FTP
) -> None:
    (ftp_server.home / "a").write_bytes(b"mine")
    thief, address = _stranger_at_the_passive_port(ftp)
    ftp.putcmd("RETR a")
    conn = socket.create_connection(address, timeout=5)
    _only_the_client_got_it(ftp, conn, thief)


def test_a_stranger_connected_before_the_client_and_its_retr_is_dropped(
    ftp_server: RunningServer, ftp: ftplib.FTP
) -> None:
    """Both wait at the passive port when RETR comes (a small file, sent at once)."""
    (ftp_server.home / "a").write_bytes(b"mine")
    thief, address = _stranger_at_the_passive_port(ftp)
    conn = socket.create_connection(address, timeout=5)
    ftp.putcmd("RETR a")
    _only_the_client_got_it(ftp, conn, thief)


def test_passive_ports_come_from_the_range_and_differ(tmp_path: Path) -> None:
    with running_server(tmp_path, passive_ports=(40000, 40100)) as running:
        clients = [running.client() for _ in range(5)]
        try:
            ports = {client.makepasv()[1] for client in clients}
            assert len(ports) == 5 and all(40000 <= p <= 40100 for p in ports)
        finally:
            for client in clients:
                client.close()


def test_pasv_announces_the_masquerade_address(tmp_path: Path) -> None:
    with (
        running_server(tmp_path, masquerade_address="192.0.2.7") as running,
        running.client() as ftp,
    ):
        assert ftp.sendcmd("PASV").startswith("227 Entering Passive Mode (192,0,2,7,")


def test_epsv_over_ipv6(tmp_path: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("this machine has no ::1")
    with running_server(tmp_path, listen=(("127.0.0.1", 0), ("::1", 0))) as running:
        (running.home / "v6").write_bytes(b"six")
        v6_port = running.server.addresses[1][1]
        ftp = ftplib.FTP()
        ftp.connect("::1", v6_port, timeout=10)
        try:
            ftp.login("alice", PASSWORD)
            assert ftp.sendcmd("EPSV").startswith("229")
            assert _retr(ftp, "RETR v6") == b"six"
            assert ftp.nlst() == ["v6"]
            with pytest.raises(ftplib.error_temp, match=r"^425"):
                ftp.sendcmd("PASV")
            ftp.set_pasv(False)  # EPRT |2|::1|port|
            assert _retr(ftp, "RETR v6") == b"six"
        finally:
            ftp.close()


# -- transfers beside a responsive control connection ------------------------------------------


def _big_file(home: Path, size: int = 32 * 1024 * 1024) -> Path:
    path = home / "big.bin"
    with path.open("wb") as out:
        out.truncate(size)
    return path


def test_abor_while_the_data_connection_is_open_gives_426_then_226(
    ftp_server: RunningServer, ftp: ftplib.FTP
) -> None:
    _big_file(ftp_server.home)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    assert len(conn.recv(65536)) > 0
    assert ftp.sendcmd("NOOP").startswith("200")  # answered while data flows
    status = ftp.sendcmd("STAT")
    assert status.startswith("211-") and "Transfer in progress" in status
    assert ftp.abort().startswith("426")
    assert ftp.getresp().startswith("226")
    conn.close()
    assert ftp.sendcmd("NOOP").startswith("200")
    retr = [e for e in ftp_server.events.events if e.command == "RETR /big.bin"]
    assert retr and not retr[0].ok


def test_abor_after_the_client_closed_the_data_connection_gives_426_then_226(
    ftp_server: RunningServer, ftp: ftplib.FTP
) -> None:
    _big_file(ftp_server.home)
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    conn.recv(65536)
    conn.close()
    time.sleep(0.2)
    assert ftp.abort().startswith("426")
    assert ftp.getresp().startswith("226")
    assert _retr(ftp, "RETR big.bin", rest=32 * 1024 * 1024 - 10) == b"\0" * 10


def test_abor_with_no_transfer_gets_226(ftp: ftplib.FTP) -> None:
    assert ftp.abort().startswith("226")


def test_idle_control_connection_gets_421(tmp_path: Path) -> None:
    with running_server(tmp_path, control_idle_timeout=1.0) as running:
        raw = RawControl(running.host, running.port)
        try:
            raw.login()
            code, text = raw.reply()
            assert code == 421 and "Idle" in text
            assert raw.file.readline() == b""
        finally:
            raw.close()


def _epsv_port(raw: RawControl) -> int:
    code, text = raw.cmd("EPSV")
    assert code == 229
    return int(text.split("|||")[1].split("|")[0])


def test_a_data_connection_that_never_comes_gets_425_and_a_stalled_one_421(
    tmp_path: Path,
) -> None:
    with running_server(tmp_path, data_idle_timeout=0.5) as running:
        _big_file(running.home)
        raw = RawControl(running.host, running.port)
        try:
            raw.login()
            _epsv_port(raw)
            assert raw.cmd("RETR big.bin")[0] == 425  # the client never connected
            port = _epsv_port(raw)
            data = socket.create_connection((running.host, port), timeout=5)
            assert raw.cmd("RETR big.bin")[0] == 150
            code, _ = raw.reply()  # we never read: the server gives up on us
            assert code == 421
            assert raw.file.readline() == b""
            data.close()
        finally:
            raw.close()


def test_an_upload_whose_data_connection_never_comes_leaves_no_file(tmp_path: Path) -> None:
    with running_server(tmp_path, data_idle_timeout=0.3) as running:
        raw = RawControl(running.host, running.port)
        try:
            raw.login()
            for command in ("STOR new.bin", "STOU", "APPE log.txt"):
                _epsv_port(raw)
                assert raw.cmd(command)[0] == 425
            assert raw.cmd("NOOP")[0] == 200
        finally:
            raw.close()
        assert [p.name for p in running.home.iterdir()] == ["log.txt"]  # APPE creates it


# -- limits ---------------------------------------------------------------------------------------


def test_connections_over_the_limits_get_421(tmp_path: Path) -> None:
    with running_server(tmp_path, max_connections=3, max_connections_per_address=2) as running:
        first = RawControl(running.host, running.port)
        second = RawControl(running.host, running.port)
        third = RawControl(running.host, running.port)
        try:
            assert first.reply()[0] == 220 and second.reply()[0] == 220
            assert third.reply() == (
                421,
                "421 Too many connections from your address; try again later.",
            )
            other = socket.socket()
            other.bind(("127.0.0.2", 0))
            other.settimeout(5)
            other.connect((running.host, running.port))
            assert other.recv(100).startswith(b"220")
            fourth = socket.socket()
            fourth.bind(("127.0.0.3", 0))
            fourth.settimeout(5)
            fourth.connect((running.host, running.port))
            assert fourth.recv(100).startswith(b"421 Too many connections;")
            other.close()
            fourth.close()
        finally:
            for raw in (first, second, third):
                raw.close()


def test_an_address_is_locked_out_after_repeated_login_failures(tmp_path: Path) -> None:
    with running_server(tmp_path, lockout_failures=3, lockout_window=60) as running:
        raw = RawControl(running.host, running.port)
        try:
            raw.reply()
            for _ in range(3):
                raw.cmd("USER alice")
                assert raw.cmd("PASS wrong")[0] == 530
            raw.cmd("USER alice")
            assert raw.cmd(f"PASS {PASSWORD}")[0] == 421  # even the right password now
        finally:
            raw.close()
        late = socket.create_connection((running.host, running.port), timeout=5)
        assert late.recv(100).startswith(b"421")
        late.close()


def test_failed_logins_are_delayed(tmp_path: Path) -> None:
    with running_server(tmp_path, login_failure_delay=0.3) as running:
        raw = RawControl(running.host, running.port)
        try:
            raw.reply()
            raw.cmd("USER alice")
            started = time.monotonic()
            assert raw.cmd("PASS wrong")[0] == 530
            assert time.monotonic() - started >= 0.3
        finally:
            raw.close()


def test_an_overlong_command_line_gets_500_and_the_session_goes_on(
    ftp_server: RunningServer,
) -> None:
    raw = RawControl(ftp_server.host, ftp_server.port)
    try:
        raw.login()
        assert raw.cmd(b"NOOP " + b"x" * 10_000)[0] == 500
        assert raw.cmd("NOOP")[0] == 200
    finally:
        raw.close()


def test_an_internal_error_in_a_command_answers_451_and_the_session_goes_on(
    ftp_server: RunningServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: FtpHandler, arg: str) -> None:
        raise ValueError("simulated bug")

    monkeypatch.setattr(FtpHandler, "cmd_SYST", broken)
    with ftp_server.client() as ftp:
        with pytest.raises(ftplib.error_temp, match=r"^451"):
            ftp.sendcmd("SYST")
        assert ftp.sendcmd("NOOP").startswith("200")
    assert "simulated bug" in caplog.text


def test_random_bytes_on_the_control_connection_get_a_reply_per_line(
    ftp_server: RunningServer,
) -> None:
    rng = random.Random(7)
    bystander = ftp_server.client()
    raw = RawControl(ftp_server.host, ftp_server.port)
    try:
        raw.login()
        verbs = [b"", b"USER", b"CWD", b"LIST", b"PORT", b"EPRT", b"REST", b"TYPE", b"MKD", b"SITE"]
        for _ in range(300):
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60)))
            junk = junk.replace(b"\n", b"").replace(b"\r", b"")
            line = rng.choice(verbs) + b" " + junk if rng.random() < 0.6 else junk
            code, _text = raw.cmd(line)
            assert 200 <= code < 600, line
        assert raw.cmd("NOOP")[0] == 200
        assert bystander.sendcmd("NOOP").startswith("200")
        late = ftp_server.client()
        assert late.sendcmd("PWD").startswith("257")
        late.close()
    finally:
        raw.close()
        bystander.close()
