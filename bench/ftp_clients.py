"""The clients of bench/ftp.py: ftplib (herd's session-resuming FTP_TLS over TLS), curl, lftp.

They run in the bench's client processes; every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import ftplib
import resource
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

USER = "bench"
PASSWORD = "bench-password-1"
SMALL_FILE = "small.bin"
BIG_FILE = "big.bin"
CLIENT_TIMEOUT = 30.0


def raise_open_files_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the servers (each in its own process) --------------------------------------------


def login(port: int, tls: bool = False) -> ftplib.FTP:
    """A logged-in ftplib client; over TLS it is herd's session-resuming FTP_TLS, PROT P."""
    if tls:
        import ssl

        from herd.ftp.client_tls import ReusingFtpTls

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the bench's own throwaway certificate
        secure = ReusingFtpTls(context=context, implicit=False, timeout=CLIENT_TIMEOUT)
        secure.connect("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
        secure.login(USER, PASSWORD)
        secure.prot_p()
        return secure
    ftp = ftplib.FTP(timeout=CLIENT_TIMEOUT)
    ftp.connect("127.0.0.1", port, timeout=CLIENT_TIMEOUT)
    ftp.login(USER, PASSWORD)
    return ftp


def _end_tls(conn: socket.socket) -> None:
    unwrap = getattr(conn, "unwrap", None)
    if unwrap is not None:
        with contextlib.suppress(OSError, ValueError):
            unwrap()


def python_retr(port: int, tls: bool, size: int) -> float:
    """Seconds for one RETR of the big file with ftplib, discarding the data as it comes."""
    ftp = login(port, tls)
    ftp.voidcmd("TYPE I")
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    received = 0
    started = time.perf_counter()
    with ftp.transfercmd(f"RETR {BIG_FILE}") as conn:
        while count := conn.recv_into(view):
            received += count
        _end_tls(conn)
    ftp.voidresp()
    elapsed = time.perf_counter() - started
    ftp.quit()
    if received != size:
        raise RuntimeError(f"RETR got {received} of {size} bytes")
    return elapsed


def python_stor(port: int, tls: bool, source: Path) -> float:
    """Seconds for one STOR of the big file, sent with sendfile so the client is not the limit."""
    ftp = login(port, tls)
    ftp.voidcmd("TYPE I")
    started = time.perf_counter()
    with source.open("rb") as handle, ftp.transfercmd("STOR upload.bin") as conn:
        conn.sendfile(handle)
        _end_tls(conn)
    ftp.voidresp()
    elapsed = time.perf_counter() - started
    ftp.delete("upload.bin")
    ftp.quit()
    return elapsed


def curl_transfer(
    port: int, tls: bool, netrc: Path, upload: Path | None, name: str = "upload-curl.bin"
) -> float:
    """Seconds for curl to download the big file (to /dev/null) or upload ``upload`` as ``name``."""
    url = f"ftp://127.0.0.1:{port}/"
    command = ["curl", "--silent", "--show-error", "--netrc-file", str(netrc), "--max-time", "600"]
    if tls:
        command += ["--ssl-reqd", "--insecure"]  # the bench's throwaway certificate
    if upload is None:
        command += ["-o", "/dev/null", url + BIG_FILE]
    else:
        command += ["-T", str(upload), url + name]
    started = time.perf_counter()
    subprocess.run(command, check=True, timeout=660)
    return time.perf_counter() - started


def lftp_transfer(
    port: int, tls: bool, netrc: Path, upload: Path | None, name: str = "upload-lftp.bin"
) -> float:
    """Like ``curl_transfer``, with lftp; its script (and so the password) goes on stdin."""
    del netrc  # lftp reads only ~/.netrc
    settings = ["set net:max-retries 1", "set net:timeout 30", "set xfer:clobber on"]
    if tls:  # the bench's throwaway certificate
        settings += ["set ftp:ssl-force true", "set ftp:ssl-protect-data true",
                     "set ssl:verify-certificate no"]  # fmt: skip
    else:
        settings += ["set ftp:ssl-allow no"]
    work = f"get {BIG_FILE} -o /dev/null" if upload is None else f"put {upload} -o {name}"
    opening = f"open -u {USER},{PASSWORD} -p {port} 127.0.0.1"
    script = "\n".join([*settings, opening, work, ""])
    started = time.perf_counter()
    subprocess.run(["lftp"], input=script, text=True, check=True, timeout=660)
    return time.perf_counter() - started


TOOLS = {"curl": curl_transfer, "lftp": lftp_transfer}


def delete(port: int, tls: bool, name: str) -> None:
    """Remove an uploaded file (after the timing)."""
    ftp = login(port, tls)
    try:
        ftp.delete(name)
        ftp.quit()
    finally:
        ftp.close()


def one_session(port: int, tls: bool = False) -> str | None:
    """Login, LIST, RETR 10 KB, QUIT; None when it worked, else the reason."""
    try:
        ftp = login(port, tls)
        try:
            ftp.retrlines("LIST", lambda _line: None)
            chunks: list[bytes] = []
            ftp.retrbinary(f"RETR {SMALL_FILE}", chunks.append)
            if sum(map(len, chunks)) != 10 * 1024:
                return "short RETR"
            ftp.quit()
        finally:
            ftp.close()
    except (OSError, EOFError, ftplib.Error) as exc:
        return type(exc).__name__ if not str(exc) else str(exc).splitlines()[0][:60]
    return None


def tls_login(port: int, tls: bool = True) -> str | None:
    """AUTH TLS, login, QUIT: one handshake and one login; None when it worked."""
    try:
        ftp = login(port, tls)
        try:
            ftp.quit()
        finally:
            ftp.close()
    except (OSError, EOFError, ftplib.Error) as exc:
        return type(exc).__name__ if not str(exc) else str(exc).splitlines()[0][:60]
    return None


def client_worker(
    port: int, sessions: int, start_at: float, tls: bool, kind: str
) -> list[str | None]:
    """One client process: ``sessions`` threads started together at ``start_at``."""
    raise_open_files_limit()
    threading.stack_size(256 * 1024)
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)
    work = tls_login if kind == "login" else one_session
    with ThreadPoolExecutor(max_workers=sessions) as pool:
        return list(pool.map(lambda _i: work(port, tls), range(sessions)))
