"""The FTP client behind ``herd ftp get/put/ls/shell``, built on ftplib.

Transfers resume (REST+RETR for downloads, SIZE then APPE for uploads) and are
verified afterwards with the server's hash command: HASH (draft-bryan-ftpext-
hash) when FEAT offers it, else XSHA256, else XMD5; with none of them the
transfer is reported as unverified rather than silently trusted. Server
refusals become one-line ``FtpClientError``s (exit 1) naming the server.
``ftpes://`` and ``ftps://`` URLs go over TLS (``herd.ftp.client_tls``).
"""

from __future__ import annotations

import ftplib
import hashlib
import posixpath
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Protocol

from herd.errors import FtpClientError, SourceError
from herd.ftp.client_tls import ReusingFtpTls, TlsOptions, client_context
from herd.ftp.client_url import Credentials, FtpUrl

__all__ = [
    "BLOCK_SIZE",
    "FileProgress",
    "FtpClient",
    "NoFileProgress",
    "Transfer",
    "Verdict",
]

BLOCK_SIZE = 256 * 1024
# Our names for hashlib's; the HASH draft names them "SHA-256", "SHA-1", "MD5".
_HASH_NAMES = {"SHA-256": "sha256", "SHA-512": "sha512", "SHA-1": "sha1", "MD5": "md5"}
_PREFERRED = ("SHA-256", "SHA-512", "SHA-1", "MD5")


class FileProgress(Protocol):
    """What a progress display is told while a file moves (the UI implements it)."""

    def start(self, name: str, total: int | None, done: int) -> None: ...

    def advance(self, size: int) -> None: ...

    def finish(self) -> None: ...


class NoFileProgress:
    """A progress display that shows nothing (scripts, tests, the shell's quiet mode)."""

    def start(self, name: str, total: int | None, done: int) -> None:
        pass

    def advance(self, size: int) -> None:
        pass

    def finish(self) -> None:
        pass


class Verdict(StrEnum):
    """What the hash check after a transfer found."""

    VERIFIED = "verified"
    UNVERIFIED = "unverified"  # the server offers no hash command
    SKIPPED = "skipped"  # the caller asked for no check
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class Transfer:
    """One finished transfer: what moved, from where it resumed, and the hash check."""

    remote: str
    local: Path
    size: int  # the whole file's size after the transfer
    sent: int  # bytes that crossed the wire this time
    resumed_from: int
    verdict: Verdict
    algorithm: str | None = None
    digest: str | None = None

    def describe(self) -> str:
        """The hash check in words, for the transfer's report line."""
        return {
            Verdict.VERIFIED: f"{self.algorithm} verified",
            Verdict.UNVERIFIED: "unverified: the server offers no hash command",
            Verdict.SKIPPED: "not verified (--no-verify)",
            Verdict.MISMATCH: f"{self.algorithm} mismatch",
        }[self.verdict]


def _file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(_HASH_NAMES[algorithm])
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class FtpClient:
    """One logged-in FTP session; use as a context manager."""

    def __init__(
        self, url: FtpUrl, *, timeout: float = 30.0, tls: TlsOptions | None = None
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._ftp: ftplib.FTP
        if url.tls:
            context = client_context(tls or TlsOptions())
            self._ftp = ReusingFtpTls(
                context=context, implicit=url.tls == "implicit", timeout=timeout
            )
        else:
            self._ftp = ftplib.FTP(timeout=timeout, encoding="utf-8")
        self._features: dict[str, str] | None = None
        self._hash_selected: str | None = None  # "" once we know HASH is not offered

    # -- session ------------------------------------------------------------------

    @contextmanager
    def _server(self, what: str) -> Iterator[None]:
        """Turn ftplib's and the socket's errors into one-line FtpClientErrors."""
        try:
            yield
        except ftplib.Error as exc:
            reply = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FtpClientError(f"{self.url.server}: {what}: {reply}") from exc
        except (OSError, EOFError) as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError | socket.timeout):
                reason = f"no answer within {self.timeout:g}s"
            elif isinstance(exc, ssl.SSLCertVerificationError):
                reason = (
                    f"the server's certificate is not trusted ({exc.verify_message}):"
                    " give its CA with --cacert FILE, or skip the check with --insecure"
                )
            raise FtpClientError(f"{self.url.server}: {what}: {reason}") from exc

    def login(self, credentials: Credentials) -> str:
        """Connect and log in; returns the server's welcome line."""
        with self._server("connect"):
            welcome = self._ftp.connect(self.url.host, self.url.port, timeout=self.timeout)
        with self._server(f"login as {credentials.user}"):
            self._ftp.login(credentials.user, credentials.password)
        if isinstance(self._ftp, ReusingFtpTls):
            with self._server("PBSZ 0, PROT P"):
                self._ftp.prot_p()  # the files go over TLS too, not only the password
        with self._server("TYPE I"):
            self._ftp.voidcmd("TYPE I")
        return welcome

    def close(self) -> None:
        """QUIT politely; close the socket whatever the server does."""
        try:
            self._ftp.quit()
        except (ftplib.Error, OSError, EOFError, AttributeError):
            pass
        finally:
            self._ftp.close()

    def __enter__(self) -> FtpClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            # Failed or interrupted (Ctrl-C mid-transfer): QUIT would wait behind the
            # transfer's reply, so just drop the connection.
            self._ftp.close()

    @property
    def features(self) -> dict[str, str]:
        """FEAT's answer as {NAME: parameters}; empty when the server has no FEAT."""
        if self._features is None:
            self._features = {}
            try:
                with self._server("FEAT"):
                    reply = self._ftp.sendcmd("FEAT")
            except FtpClientError as exc:
                if not isinstance(exc.__cause__, ftplib.error_perm):
                    raise
                return self._features  # an RFC 959-only server: no extensions
            for line in reply.splitlines()[1:-1]:
                name, _, params = line.strip().partition(" ")
                if name:
                    self._features[name.upper()] = params
        return self._features

    # -- simple commands -----------------------------------------------------------

    def pwd(self) -> str:
        with self._server("PWD"):
            return self._ftp.pwd()

    def cd(self, path: str) -> str:
        with self._server(f"CWD {path}"):
            self._ftp.cwd(path)
        return self.pwd()

    def listing(self, path: str = "") -> list[str]:
        """LIST's lines (``ls -l`` style) for a directory or a file."""
        lines: list[str] = []
        command = f"LIST {path}" if path else "LIST"
        with self._server(command):
            self._ftp.retrlines(command, lines.append)
        return lines

    def names(self, path: str = "") -> list[str]:
        with self._server(f"NLST {path}".strip()):
            return self._ftp.nlst(*([path] if path else []))

    def mkdir(self, path: str) -> None:
        with self._server(f"MKD {path}"):
            self._ftp.mkd(path)

    def rmdir(self, path: str) -> None:
        with self._server(f"RMD {path}"):
            self._ftp.rmd(path)

    def delete(self, path: str) -> None:
        with self._server(f"DELE {path}"):
            self._ftp.delete(path)

    def rename(self, source: str, target: str) -> None:
        with self._server(f"RNFR {source} RNTO {target}"):
            self._ftp.rename(source, target)

    def size(self, path: str) -> int | None:
        """The remote file's size, or None when it does not exist (or SIZE is refused)."""
        try:
            size = self._ftp.size(path)
        except ftplib.error_perm:
            return None
        except (ftplib.Error, OSError, EOFError) as exc:
            raise FtpClientError(f"{self.url.server}: SIZE {path}: {exc}") from exc
        return size

    def is_directory(self, path: str) -> bool:
        """Whether ``path`` is a remote directory (CWD into it and back)."""
        if path in {"", ".", "/"}:
            return True
        here = self.pwd()
        try:
            self._ftp.cwd(path)
        except ftplib.error_perm:
            return False
        except (ftplib.Error, OSError, EOFError) as exc:
            raise FtpClientError(f"{self.url.server}: CWD {path}: {exc}") from exc
        self.cd(here)
        return True

    # -- hashes ---------------------------------------------------------------------

    def _hash_algorithm(self) -> str | None:
        """The strongest algorithm HASH offers, selected once with OPTS HASH if needed."""
        if self._hash_selected is None:
            self._hash_selected = ""
            listed = [a for a in self.features.get("HASH", "").split(";") if a]
            offered = {a.rstrip("*").upper(): a.endswith("*") for a in listed}
            chosen = next((a for a in _PREFERRED if a in offered), None)
            if chosen is not None and not offered[chosen]:
                with self._server(f"OPTS HASH {chosen}"):
                    self._ftp.sendcmd(f"OPTS HASH {chosen}")
            self._hash_selected = chosen or ""
        return self._hash_selected or None

    def remote_hash(self, path: str) -> tuple[str, str] | None:
        """(algorithm, hex digest) of a remote file from the best hash command offered."""
        if self._hash_algorithm() is not None:
            with self._server(f"HASH {path}"):
                reply = self._ftp.sendcmd(f"HASH {path}")
            # 213 <algorithm> <start>-<end> <hex> <filename>
            fields = reply[4:].split(" ", 3)
            if len(fields) < 3:
                raise FtpClientError(f"{self.url.server}: HASH {path}: odd reply {reply!r}")
            return fields[0].upper(), fields[2].lower()
        # Servers seldom list the X commands in FEAT: ask, and take 500/502 as "not here".
        for command, algorithm in (("XSHA256", "SHA-256"), ("XSHA1", "SHA-1"), ("XMD5", "MD5")):
            try:
                reply = self._ftp.sendcmd(f"{command} {path}")
            except ftplib.error_perm as exc:
                if str(exc)[:3] in {"500", "502", "504"}:
                    continue
                raise FtpClientError(f"{self.url.server}: {command} {path}: {exc}") from exc
            except (ftplib.Error, OSError, EOFError) as exc:
                raise FtpClientError(f"{self.url.server}: {command} {path}: {exc}") from exc
            words = reply[4:].split()
            if words:
                return algorithm, words[0].lower()
        return None

    def verify(self, remote: str, local: Path) -> tuple[Verdict, str | None, str | None]:
        """Compare the local file with the server's hash of the remote one."""
        answer = self.remote_hash(remote)
        if answer is None:
            return Verdict.UNVERIFIED, None, None
        algorithm, remote_digest = answer
        if algorithm not in _HASH_NAMES:
            return Verdict.UNVERIFIED, algorithm, None
        local_digest = _file_digest(local, algorithm)
        verdict = Verdict.VERIFIED if local_digest == remote_digest else Verdict.MISMATCH
        return verdict, algorithm, local_digest

    # -- transfers --------------------------------------------------------------------

    def get(
        self,
        remote: str,
        local: Path,
        *,
        resume: bool = False,
        verify: bool = True,
        progress: FileProgress | None = None,
    ) -> Transfer:
        """Download ``remote`` into ``local``; with ``resume`` continue a partial file."""
        shown = progress or NoFileProgress()
        total = self.size(remote)
        offset = local.stat().st_size if resume and local.is_file() else 0
        if total is not None and offset > total:
            offset = 0  # the local file is longer: not a prefix, start over
        sent = 0
        if total is None or offset < total:
            mode = "ab" if offset else "wb"
            try:
                handle = local.open(mode)
            except OSError as exc:
                raise SourceError(f"{local}: cannot write: {exc}") from exc
            shown.start(posixpath.basename(remote) or remote, total, offset)
            try:
                sent = self._retrieve(remote, handle, offset, shown.advance)
            finally:
                handle.close()
                shown.finish()
        return self._finished(remote, local, offset, sent, verify)

    def _retrieve(
        self, remote: str, handle: IO[bytes], offset: int, advance: Callable[[int], None]
    ) -> int:
        received = 0

        def write(block: bytes) -> None:
            nonlocal received
            handle.write(block)
            received += len(block)
            advance(len(block))

        with self._server(f"RETR {remote}"):
            self._ftp.retrbinary(f"RETR {remote}", write, BLOCK_SIZE, rest=offset or None)
        return received

    def put(
        self,
        local: Path,
        remote: str,
        *,
        resume: bool = False,
        verify: bool = True,
        progress: FileProgress | None = None,
    ) -> Transfer:
        """Upload ``local`` to ``remote``; with ``resume`` append what the server lacks."""
        shown = progress or NoFileProgress()
        try:
            handle = local.open("rb")
            total = local.stat().st_size
        except OSError as exc:
            raise SourceError(f"{local}: cannot read: {exc}") from exc
        with handle:
            offset = (self.size(remote) or 0) if resume else 0
            if offset > total:
                offset = 0  # the remote file is longer: not a prefix, send it all again
            sent = 0
            if offset < total or total == 0:
                handle.seek(offset)
                command = f"APPE {remote}" if offset else f"STOR {remote}"
                shown.start(local.name, total, offset)
                try:
                    sent = self._store(command, handle, shown.advance)
                finally:
                    shown.finish()
        return self._finished(remote, local, offset, sent, verify)

    def _store(self, command: str, handle: IO[bytes], advance: Callable[[int], None]) -> int:
        sent = 0
        with self._server(command):
            with self._ftp.transfercmd(command) as conn:
                while block := handle.read(BLOCK_SIZE):
                    conn.sendall(block)
                    sent += len(block)
                    advance(len(block))
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()  # close_notify: the server knows the file is whole
            self._ftp.voidresp()
        return sent

    def _finished(self, remote: str, local: Path, offset: int, sent: int, verify: bool) -> Transfer:
        size = local.stat().st_size
        verdict, algorithm, digest = (
            self.verify(remote, local) if verify else (Verdict.SKIPPED, None, None)
        )
        transfer = Transfer(remote, local, size, sent, offset, verdict, algorithm, digest)
        if verdict is Verdict.MISMATCH:
            raise FtpClientError(
                f"{self.url.server}: {remote}: {algorithm} differs from {local} after transfer"
            )
        return transfer
