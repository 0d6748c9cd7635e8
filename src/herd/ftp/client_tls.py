"""FTPS for herd's client: ftplib's FTP_TLS, made to resume the TLS session on data connections.

``ftplib.FTP_TLS`` opens each data connection with a fresh TLS session, which a
server that requires session reuse (herd, vsftpd's default, ProFTPD's
``NoSessionReuseRequired`` off) refuses. ``ReusingFtpTls`` hands the control
connection's session to every data connection, and also speaks implicit TLS
(``ftps://``: TLS from the first byte). The server's certificate is verified
by default against the system's CAs or ``--cacert``.
"""

from __future__ import annotations

import ftplib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herd.errors import UsageError

__all__ = ["ReusingFtpTls", "TlsOptions", "client_context"]


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """How the client checks the server: a CA file, or not at all (``insecure``)."""

    cafile: Path | None = None
    insecure: bool = False


def client_context(options: TlsOptions) -> ssl.SSLContext:
    """A TLS 1.2+ client context verifying the server (system CAs, or ``cafile``)."""
    try:
        context = ssl.create_default_context(
            cafile=None if options.cafile is None else str(options.cafile)
        )
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"{options.cafile}: cannot load CA certificates: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ReusingFtpTls(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control session; ``implicit`` for ftps://."""

    def __init__(self, *, context: ssl.SSLContext, implicit: bool, timeout: float) -> None:
        super().__init__(context=context, timeout=timeout, encoding="utf-8")
        self.implicit = implicit

    def connect(
        self,
        host: str = "",
        port: int = 0,
        timeout: float = -999,
        source_address: tuple[str, int] | None = None,
    ) -> str:
        if not self.implicit:
            return super().connect(host, port, timeout, source_address)
        # ftplib.FTP.connect, with the TLS handshake before the welcome is read.
        self.host, self.port = host, port
        if timeout != -999:
            self.timeout = timeout
        raw = socket.create_connection((host, port), self.timeout, source_address=source_address)
        try:
            self.sock = self.context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]  # FTP_TLS's own flag
            control = self.sock
            session = control.session if isinstance(control, ssl.SSLSocket) else None
            try:
                conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
            except BaseException:
                conn.close()
                raise
        return conn, size
