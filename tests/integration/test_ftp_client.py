"""The FTP client (library, ``herd ftp ls/get/put/shell``) against herd's real server on loopback.

The server runs in a thread on port 0 with a real ``UserStore``; every test
checks behaviour through the client only, and the fixture stops the server and
checks no session thread is left behind.
"""

from __future__ import annotations

import ftplib
import io
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.errors import FtpClientError
from herd.ftp.client import FtpClient, Verdict
from herd.ftp.client_url import Credentials, parse_url
from herd.ftp.events import MemorySink
from herd.ftp.server import FtpServer
from herd.ftp.settings import FtpSettings
from herd.ftp.users import READ_ONLY, UserStore

PASSWORD = "pw-alice-1"


@dataclass
class Served:
    server: FtpServer
    home: Path  # alice's FTP home
    url: str  # ftp://alice@127.0.0.1:PORT/

    def client(self, path: str = "") -> FtpClient:
        client = FtpClient(parse_url(self.url + path), timeout=10)
        client.login(Credentials("alice", PASSWORD))
        return client


@pytest.fixture
def served(tmp_path: Path, isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    users = UserStore(isolated_env / "ftp-users.db")
    home = tmp_path / "alice"
    users.add("alice", PASSWORD, home=home, quota=64 << 20)
    users.add("reader", PASSWORD, home=home, perms=READ_ONLY)
    settings = FtpSettings(listen=(("127.0.0.1", 0),), login_failure_delay=0.0)
    server = FtpServer(settings, users, MemorySink())
    thread = server.start_in_thread()
    host, port = server.addresses[0]
    monkeypatch.setenv("HERD_FTP_PASSWORD", PASSWORD)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    before = threading.active_count()
    try:
        yield Served(server, home, f"ftp://alice@{host}:{port}/")
    finally:
        server.shutdown(1.0)
        thread.join(timeout=10)
        server.server_close()
        users.close()
    assert not thread.is_alive()
    assert threading.active_count() <= before


def payload(size: int) -> bytes:
    return os.urandom(size)


# -- the library ------------------------------------------------------------------------


def test_put_then_get_round_trip_is_verified_with_hash(served: Served, tmp_path: Path) -> None:
    data = payload(3 * 256 * 1024 + 17)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    with served.client() as client:
        sent = client.put(source, "copy.bin")
        got = client.get("copy.bin", tmp_path / "back.bin")
    assert (served.home / "copy.bin").read_bytes() == data
    assert (tmp_path / "back.bin").read_bytes() == data
    for transfer in (sent, got):
        assert transfer.verdict is Verdict.VERIFIED
        assert transfer.algorithm == "SHA-256"
        assert transfer.size == len(data)
        assert transfer.sent == len(data)


def test_interrupted_download_resumes_from_the_partial_file(served: Served, tmp_path: Path) -> None:
    data = payload(1_000_000)
    (served.home / "big.bin").write_bytes(data)
    partial = tmp_path / "big.bin"
    partial.write_bytes(data[:400_000])
    with served.client() as client:
        transfer = client.get("big.bin", partial, resume=True)
    assert partial.read_bytes() == data
    assert transfer.resumed_from == 400_000
    assert transfer.sent == 600_000
    assert transfer.verdict is Verdict.VERIFIED


def test_interrupted_upload_resumes_with_size_then_appe(served: Served, tmp_path: Path) -> None:
    data = payload(900_000)
    source = tmp_path / "up.bin"
    source.write_bytes(data)
    (served.home / "up.bin").write_bytes(data[:300_000])
    with served.client() as client:
        transfer = client.put(source, "up.bin", resume=True)
    assert (served.home / "up.bin").read_bytes() == data
    assert transfer.resumed_from == 300_000
    assert transfer.sent == 600_000
    assert transfer.verdict is Verdict.VERIFIED


def test_resume_of_a_complete_file_sends_nothing(served: Served, tmp_path: Path) -> None:
    data = payload(10_000)
    (served.home / "done.bin").write_bytes(data)
    (tmp_path / "done.bin").write_bytes(data)
    with served.client() as client:
        transfer = client.get("done.bin", tmp_path / "done.bin", resume=True)
    assert transfer.sent == 0
    assert transfer.verdict is Verdict.VERIFIED


def test_hash_falls_back_to_xsha256_then_says_unverified(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (served.home / "f.txt").write_bytes(b"abc" * 1000)
    with served.client() as client:
        client._features = {"SIZE": ""}  # a server whose FEAT offers no HASH
        transfer = client.get("f.txt", tmp_path / "f.txt")
        assert transfer.verdict is Verdict.VERIFIED
        assert transfer.algorithm == "SHA-256"
        real_sendcmd = client._ftp.sendcmd

        def no_hash_commands(command: str) -> str:
            if command.split(maxsplit=1)[0] in {"XSHA256", "XSHA1", "XMD5"}:
                raise ftplib.error_perm("502 Command not implemented.")
            return real_sendcmd(command)

        monkeypatch.setattr(client._ftp, "sendcmd", no_hash_commands)
        transfer = client.get("f.txt", tmp_path / "f2.txt")
    assert transfer.verdict is Verdict.UNVERIFIED
    assert (tmp_path / "f2.txt").read_bytes() == b"abc" * 1000


def test_refused_commands_raise_one_line_errors_naming_the_server(served: Served) -> None:
    with served.client() as client:
        with pytest.raises(FtpClientError, match=r"127\.0\.0\.1:\d+: RETR nothing.bin: 550"):
            client.get("nothing.bin", served.home.parent / "x")
        with pytest.raises(FtpClientError, match="CWD nowhere: 550"):
            client.cd("nowhere")


def test_wrong_password_is_a_client_error(served: Served) -> None:
    client = FtpClient(parse_url(served.url), timeout=10)
    with pytest.raises(FtpClientError, match="login as alice: 530"):
        client.login(Credentials("alice", "wrong"))
    client.close()


def test_directory_commands_work_through_the_client(served: Served) -> None:
    with served.client() as client:
        client.mkdir("docs")
        assert client.cd("docs") == "/docs"
        assert client.is_directory("/docs")
        assert not client.is_directory("/missing")
        client.cd("/")
        client.rename("docs", "papers")
        assert "papers" in client.names()
        client.rmdir("papers")
        assert "papers" not in client.names()


# -- the command line ----------------------------------------------------------------------


def test_cli_get_and_put_report_verified_transfers(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "report.txt"
    source.write_bytes(b"quarterly numbers\n" * 100)
    assert main(["ftp", "put", str(source), served.url]) == 0
    assert (served.home / "report.txt").read_bytes() == source.read_bytes()
    target = tmp_path / "down"
    target.mkdir()
    assert main(["ftp", "get", served.url + "report.txt", str(target)]) == 0
    assert (target / "report.txt").read_bytes() == source.read_bytes()
    out = capsys.readouterr().out
    assert out.count("SHA-256 verified") == 2


def test_cli_get_resume_flag_continues_a_partial_download(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = payload(500_000)
    (served.home / "iso.bin").write_bytes(data)
    local = tmp_path / "iso.bin"
    local.write_bytes(data[:123_456])
    assert main(["ftp", "get", served.url + "iso.bin", str(local), "-c"]) == 0
    assert local.read_bytes() == data
    assert "resumed at byte 123456" in capsys.readouterr().out


def test_cli_ls_lists_the_directory(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    (served.home / "a.txt").write_text("a")
    (served.home / "sub").mkdir()
    assert main(["ftp", "ls", served.url]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("-") and line.endswith("a.txt") for line in out.splitlines())
    assert any(line.startswith("d") and line.endswith("sub") for line in out.splitlines())


def test_cli_refused_command_exits_1_and_bad_usage_exits_2(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ftp", "get", served.url + "missing.bin", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err
    assert "550" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["ftp", "get", "http://example/x"]) == 2
    assert main(["ftp", "put", str(tmp_path / "absent"), served.url]) == 2
    assert main(["ftp", "ls", served.url.replace("alice@", "alice:pw@")]) == 2


def test_cli_read_only_user_is_refused_uploads_with_exit_1(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "x.txt"
    source.write_text("x")
    assert main(["ftp", "put", str(source), served.url.replace("alice@", "reader@")]) == 1
    assert "550" in capsys.readouterr().err or not (served.home / "x.txt").exists()


def test_shell_runs_a_script_from_stdin(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "notes.txt").write_text("remember\n")
    monkeypatch.chdir(tmp_path)
    script = "\n".join(
        [
            "mkdir work",
            "cd work",
            "pwd",
            "put notes.txt",
            "ls",
            "rename notes.txt kept.txt",
            "get kept.txt copy.txt",
            "rm kept.txt",
            "cd ..",
            "rmdir work",
            "quit",
            "ls",  # after quit: never run
        ]
    )
    monkeypatch.setattr(sys, "stdin", io.StringIO(script + "\n"))
    assert main(["ftp", "shell", served.url]) == 0
    out = capsys.readouterr().out
    assert "/work" in out
    assert "notes.txt" in out
    assert "SHA-256 verified" in out
    assert (tmp_path / "copy.txt").read_text() == "remember\n"
    assert not (served.home / "work").exists()


def test_shell_reports_failed_commands_and_exits_1(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = "cd nowhere\nfrobnicate\nrename onlyone\npwd\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(script))
    assert main(["ftp", "shell", served.url]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("error: ") and "550" in out[0]
    assert out[1] == "error: unknown command 'frobnicate' (try help)"
    assert out[2].startswith("error: usage: rename")
    assert out[3] == "/"


def test_cli_no_verify_says_the_check_was_skipped(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (served.home / "skip.txt").write_text("skip")
    assert main(["ftp", "get", served.url + "skip.txt", str(tmp_path / "s"), "--no-verify"]) == 0
    assert "not verified (--no-verify)" in capsys.readouterr().out


class _StopAfter:
    """A progress display that interrupts the transfer (like Ctrl-C) after ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen = 0

    def start(self, name: str, total: int | None, done: int) -> None:
        pass

    def advance(self, size: int) -> None:
        self.seen += size
        if self.seen >= self.limit:
            raise KeyboardInterrupt

    def finish(self) -> None:
        pass


def test_download_interrupted_mid_transfer_resumes_to_the_same_bytes(
    served: Served, tmp_path: Path
) -> None:
    data = payload(4 << 20)
    (served.home / "video.bin").write_bytes(data)
    local = tmp_path / "video.bin"
    with pytest.raises(KeyboardInterrupt), served.client() as client:
        client.get("video.bin", local, progress=_StopAfter(1 << 20))
    partial = local.stat().st_size
    assert 0 < partial < len(data)
    with served.client() as client:
        transfer = client.get("video.bin", local, resume=True)
    assert transfer.resumed_from == partial
    assert transfer.verdict is Verdict.VERIFIED
    assert local.read_bytes() == data


def _wait_until_settled(path: Path, timeout: float = 10.0) -> None:
    """Wait until ``path`` has bytes and stops growing."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else 0
        if size and size == last:
            return
        last = size
        time.sleep(0.05)


def test_upload_interrupted_mid_transfer_resumes_with_appe(served: Served, tmp_path: Path) -> None:
    data = payload(4 << 20)
    source = tmp_path / "dump.sql"
    source.write_bytes(data)
    with pytest.raises(KeyboardInterrupt), served.client() as client:
        client.put(source, "dump.sql", progress=_StopAfter(1 << 20))
    _wait_until_settled(served.home / "dump.sql")  # the server's thread still drains the socket
    with served.client() as client:
        transfer = client.put(source, "dump.sql", resume=True)
    assert transfer.resumed_from > 0  # the server kept the interrupted upload's bytes
    assert transfer.verdict is Verdict.VERIFIED
    assert (served.home / "dump.sql").read_bytes() == data
    assert transfer.sent == len(data) - transfer.resumed_from


def test_client_reaches_an_ipv6_server(
    tmp_path: Path,
    isolated_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    users = UserStore(isolated_env / "ftp-users.db")
    users.add("six", PASSWORD, home=tmp_path / "six")
    (tmp_path / "six" / "v6.txt").write_text("over IPv6\n")
    settings = FtpSettings(listen=(("::1", 0),), login_failure_delay=0.0)
    server = FtpServer(settings, users, MemorySink())
    thread = server.start_in_thread()
    monkeypatch.setenv("HERD_FTP_PASSWORD", PASSWORD)
    try:
        port = server.addresses[0][1]
        assert main(["ftp", "get", f"ftp://six@[::1]:{port}/v6.txt", str(tmp_path / "v6")]) == 0
    finally:
        server.shutdown(1.0)
        thread.join(timeout=10)
        server.server_close()
        users.close()
    assert (tmp_path / "v6").read_text() == "over IPv6\n"
    assert "SHA-256 verified" in capsys.readouterr().out


def test_cli_asks_for_the_password_hidden_when_none_is_set(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    asked: list[dict[str, object]] = []

    def fake_prompt(text: str, **options: object) -> str:
        asked.append({"text": text, **options})
        return PASSWORD

    monkeypatch.delenv("HERD_FTP_PASSWORD")
    monkeypatch.setenv("HOME", str(served.home.parent))  # no ~/.netrc there
    monkeypatch.setattr("herd.cli.ftp.click.prompt", fake_prompt)
    monkeypatch.setattr(sys, "stdin", Terminal())
    assert main(["ftp", "ls", served.url]) == 0
    assert asked[0]["hide_input"] is True
    assert str(asked[0]["text"]).startswith("Password for alice@127.0.0.1:")


def test_hash_mismatch_after_transfer_is_an_error(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (served.home / "f.bin").write_bytes(b"real bytes")
    with served.client() as client:
        monkeypatch.setattr(client, "remote_hash", lambda _path: ("SHA-256", "0" * 64))
        with pytest.raises(FtpClientError, match="SHA-256 differs"):
            client.get("f.bin", tmp_path / "f.bin")


def test_sha1_is_selected_with_opts_hash_when_sha256_is_not_offered(
    served: Served, tmp_path: Path
) -> None:
    (served.home / "f.bin").write_bytes(b"pick another algorithm")
    with served.client() as client:
        client._features = {"HASH": "SHA-1;MD5*"}  # as an older server would list it
        transfer = client.get("f.bin", tmp_path / "f.bin")
    assert transfer.algorithm == "SHA-1"
    assert transfer.verdict is Verdict.VERIFIED
