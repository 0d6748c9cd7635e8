"""FTPS (RFC 4217) on the server: TLS contexts, handshakes with a deadline, session checks.

TLS 1.2 or newer only, with the standard ``ssl`` module. A data connection in
``PROT P`` must resume the TLS session of its own control connection (vsftpd's
``require_ssl_reuse``), so someone who reaches a passive port first, even from
the client's address, gets nothing. The ``ssl`` module does not let a server
compare session ids across connections, so each TLS control connection gets a
context of its own, as each vsftpd session (a process of its own) has: only
sessions that context issued can be resumed on it, and those went to this
control connection's client alone. With ``require_tls_session_reuse = false``
every connection shares one context and data connections need not resume.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from pathlib import Path

from herd.errors import ConfigError

__all__ = ["ServerTls", "TlsFailed", "close_notify", "handshake"]


class TlsFailed(Exception):
    """A TLS handshake that failed or did not finish in time; the text says why."""


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.load_cert_chain(cert, key)
    return context


class ServerTls:
    """The server's certificate and how each connection gets its TLS context."""

    def __init__(self, cert: Path, key: Path, *, require_reuse: bool, timeout: float) -> None:
        self.cert = cert
        self.key = key
        self.require_reuse = require_reuse
        self.timeout = timeout
        for setting, path in (("tls_cert", cert), ("tls_key", key)):
            if not path.is_file():
                raise ConfigError(f"{setting}: {path}: no such file")
        try:
            self._shared = _context(cert, key)  # also checks the files at start-up
            # Shared by every connection: no TLS 1.3 tickets after the handshake (see
            # Session.start_tls); a client that resumes anyway gets a full handshake.
            self._shared.num_tickets = 0
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise ConfigError(
                f"tls_cert {cert} / tls_key {key}: cannot load the certificate: {reason}"
            ) from None

    def session_context(self) -> ssl.SSLContext:
        """The context for one control connection and its data connections."""
        if not self.require_reuse:
            return self._shared
        try:
            return _context(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:  # the files changed under a running server
            raise TlsFailed(f"cannot load the certificate: {exc}") from None


def handshake(sock: socket.socket, context: ssl.SSLContext, timeout: float) -> ssl.SSLSocket:
    """Wrap ``sock`` as a TLS server and finish the handshake within ``timeout`` seconds.

    On failure ``sock`` is closed and TlsFailed raised: a client that never
    finishes its handshake holds the thread no longer than the timeout.
    """
    try:
        wrapped = context.wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False, suppress_ragged_eofs=False
        )
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        raise TlsFailed(f"TLS failed: {exc}") from None
    try:
        wrapped.settimeout(timeout)
        wrapped.do_handshake()
        wrapped.settimeout(None)
    except TimeoutError:
        wrapped.close()
        raise TlsFailed(f"TLS handshake not finished within {timeout:g}s") from None
    except (ssl.SSLError, OSError) as exc:
        wrapped.close()
        reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
        raise TlsFailed(f"TLS handshake failed: {reason}") from None
    return wrapped


def close_notify(sock: socket.socket, timeout: float) -> None:
    """End a TLS data connection cleanly (close_notify both ways), within ``timeout``."""
    if not isinstance(sock, ssl.SSLSocket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        return
    with contextlib.suppress(OSError, ValueError):
        sock.settimeout(timeout)
        sock.unwrap()
