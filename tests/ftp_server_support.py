"""A real herd FTP server on loopback for tests: started in a thread, stopped and checked after.

Used by the FTP server's integration and system tests (``tests/*/test_ftp_server*``,
``test_ftp_protocol*``, ``test_ftp_clients*``).
"""

from __future__ import annotations

import contextlib
import ftplib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herd.ftp.events import MemorySink
from herd.ftp.server import FtpServer
from herd.ftp.settings import FtpSettings
from herd.ftp.users import UserStore

PASSWORD = "s3cret-pw"
FAST = {
    "listen": (("127.0.0.1", 0),),
    "login_failure_delay": 0.01,
    "shutdown_grace": 2.0,
}


@dataclass
class RunningServer:
    """A server in a thread, its users database, its events and a ready user ``alice``."""

    server: FtpServer
    users: UserStore
    events: MemorySink
    root: Path

    @property
    def host(self) -> str:
        return self.server.addresses[0][0]

    @property
    def port(self) -> int:
        return self.server.addresses[0][1]

    @property
    def home(self) -> Path:
        return self.root / "alice"

    def client(
        self, user: str = "alice", password: str = PASSWORD, timeout: float = 10.0
    ) -> ftplib.FTP:
        ftp = ftplib.FTP()
        ftp.connect(self.host, self.port, timeout=timeout)
        try:
            ftp.login(user, password)
        except BaseException:
            ftp.close()
            raise
        return ftp

    def url(self, path: str = "/", user: str = "alice") -> str:
        return f"ftp://{user}:{PASSWORD}@{self.host}:{self.port}{path}"

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.01)


def os_thread_count() -> int:
    """The process's real OS threads, those ``threading`` does not know of included."""
    return len(os.listdir("/proc/self/task"))


@contextlib.contextmanager
def running_server(
    root: Path, quota: int | None = None, *, tls: bool = False, **settings: Any
) -> Iterator[RunningServer]:
    """Serve ``root/alice`` as user alice; every thread the server started is gone after.

    ``tls`` sets up FTPS with ``certificate()`` and an implicit-TLS port.
    """
    before = set(threading.enumerate())
    os_threads = os_thread_count()
    if tls:
        cert, key = certificate(root.parent)
        settings = {"tls_cert": cert, "tls_key": key,
                    "listen_implicit": (("127.0.0.1", 0),), **settings}  # fmt: skip
    users = UserStore(root / "ftp-users.db")
    users.add("alice", PASSWORD, home=root / "alice", quota=quota)
    events = MemorySink()
    chosen = FtpSettings(**{**FAST, **settings})
    server = FtpServer(chosen, users, events)
    thread = server.start_in_thread()
    running = RunningServer(server, users, events, root)
    try:
        yield running
    finally:
        server.shutdown(grace=1.0)
        server.server_close()
        thread.join(5.0)
        users.close()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
            if not leaked:
                break
            time.sleep(0.02)
        assert not leaked, f"threads left running: {leaked}"
        # the server's bare threads (sessions, transfers) are invisible to threading:
        # count the process's real OS threads too
        while os_thread_count() > os_threads and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os_thread_count() <= os_threads, "OS threads left running (sessions, transfers)"
        assert len(server.sessions) == 0
        assert server.connections == 0


class RawControl:
    """A bare control connection: send any bytes, read replies as (code, text)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def send(self, line: bytes | str) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data if data.endswith(b"\n") else data + b"\r\n")

    def reply(self) -> tuple[int, str]:
        """One complete reply, multi-line ones included."""
        first = self.file.readline()
        assert first, "connection closed before a reply"
        text = first.decode("utf-8", "replace").rstrip("\r\n")
        code = text[:3]
        lines = [text]
        if text[3:4] == "-":
            while True:
                raw = self.file.readline()
                assert raw, "connection closed inside a multi-line reply"
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                lines.append(line)
                if line.startswith(code + " "):
                    break
        return int(code), "\n".join(lines)

    def cmd(self, line: bytes | str) -> tuple[int, str]:
        self.send(line)
        return self.reply()

    def login(self, user: str = "alice", password: str = PASSWORD) -> None:
        assert self.reply()[0] == 220
        assert self.cmd(f"USER {user}")[0] == 331
        assert self.cmd(f"PASS {password}")[0] == 230

    def close(self) -> None:
        self.file.close()
        self.sock.close()


_CERTS: dict[str, tuple[Path, Path]] = {}


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1 (made once per test run)."""
    if "pair" not in _CERTS:
        from herd.ftp.certificate import write_self_signed

        _CERTS["pair"] = write_self_signed(directory / "tls", ["127.0.0.1"])
    return _CERTS["pair"]


def tls_client(
    running: RunningServer,
    cafile: Path,
    *,
    user: str = "alice",
    implicit: bool = False,
    reuse: bool = True,
    timeout: float = 10.0,
) -> ftplib.FTP_TLS:
    """A logged-in FTPS client with PROT P: herd's session-reusing FTP_TLS, or ftplib's own."""
    import ssl

    from herd.ftp.client_tls import ReusingFtpTls

    context = ssl.create_default_context(cafile=str(cafile))
    ftp: ftplib.FTP_TLS
    if reuse:
        ftp = ReusingFtpTls(context=context, implicit=implicit, timeout=timeout)
    else:
        ftp = ftplib.FTP_TLS(context=context, timeout=timeout)
    port = running.server.implicit_addresses[0][1] if implicit else running.port
    ftp.connect(running.host, port, timeout=timeout)
    try:
        ftp.login(user, PASSWORD)
        ftp.prot_p()
    except BaseException:
        ftp.close()
        raise
    return ftp
