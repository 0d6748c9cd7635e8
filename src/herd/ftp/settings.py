"""The FTP server's settings: one frozen object, built once and handed to the server.

Nothing here lives in class attributes or module globals (pyftpdlib's
class-attribute configuration is the cautionary tale): two servers in one
process can run with different settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from herd.errors import ConfigError

__all__ = ["DEFAULT_PORT", "FtpSettings", "listen_addresses", "parse_listen", "port_range"]

DEFAULT_PORT = 2121


def parse_listen(text: str) -> tuple[str, int]:
    """``127.0.0.1:2121``, ``[::1]:2121``, ``::1`` or ``host`` (default port) -> (host, port)."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (end + 1 < len(value) and value[end + 1] != ":"):
            raise ValueError(f"a listen address like [IPv6]:PORT (bad: {text!r})")
        host, port_text = value[1:end], value[end + 2 :]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    if not host:
        raise ValueError(f"a listen address with a host (bad: {text!r})")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"a listen address whose port is 0-65535 (bad: {text!r})")
    return host, int(port_text)


def listen_addresses(value: object) -> tuple[tuple[str, int], ...]:
    """A listen setting: one address or a list, as text or [host, port] pairs."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise TypeError('a list of addresses like "127.0.0.1:2121" or "[::1]:2121"')
    result: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            result.append(parse_listen(item))
        elif isinstance(item, list) and len(item) == 2 and isinstance(item[1], int):
            result.append((str(item[0]), int(item[1])))
        else:
            raise TypeError('a list of addresses like "127.0.0.1:2121" or "[::1]:2121"')
    return tuple(result)


def port_range(value: object) -> tuple[int, int]:
    """A passive port range: ``"60000-60099"`` or ``[60000, 60099]``."""
    if isinstance(value, str):
        low, sep, high = value.partition("-")
        if sep and low.strip().isdigit() and high.strip().isdigit():
            return int(low), int(high)
    if isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value):
        return int(value[0]), int(value[1])
    raise TypeError('a range like "60000-60099" or [60000, 60099]')


@dataclass(frozen=True, slots=True)
class FtpSettings:
    """Everything ``herd ftp serve`` can be told; the defaults serve 127.0.0.1:2121."""

    # (host, port) pairs to listen on; port 0 picks a free port. IPv6 sockets ("::1", "::")
    # are IPv6-only: list both "0.0.0.0" and "::" to serve both families.
    listen: tuple[tuple[str, int], ...] = field(
        default=(("127.0.0.1", DEFAULT_PORT),), metadata={"parse": listen_addresses}
    )
    # Inclusive passive port range; None lets the kernel pick any free port.
    passive_ports: tuple[int, int] | None = field(default=None, metadata={"parse": port_range})
    # The address PASV announces instead of the control connection's (servers behind NAT).
    masquerade_address: str | None = None
    banner: str = "herd FTP server ready"
    max_connections: int = 2000
    max_connections_per_address: int = 2000
    control_idle_timeout: float = 300.0  # seconds without a command before 421 and close
    data_idle_timeout: float = 60.0  # seconds a data connection may stall (or not come)
    login_failure_delay: float = 1.0  # seconds before answering a failed login
    lockout_failures: int = 5  # failed logins from one address ...
    lockout_window: float = 300.0  # ... within this many seconds lock the address out as long
    max_line_length: int = 4096  # bytes of one command line, CRLF included
    listen_backlog: int = 1024  # request_queue_size: bursts of a thousand connects
    anonymous_root: Path | None = None  # read-only anonymous access to this tree; None = off
    shutdown_grace: float = 10.0  # seconds running transfers may finish after SIGTERM
    # Upload chunk: a plain binary upload holds a pipe of this size and one buffer to read
    # back for the hash; a TLS or ASCII one over 1 MiB, 3 buffers (one being filled, two
    # being hashed). Also the chunk of TLS and ASCII downloads.
    buffer_size: int = 1024 * 1024
    thread_stack_size: int = 256 * 1024  # per connection thread; small keeps idle memory low
    max_listing_entries: int = 100_000  # a LIST/MLSD of a larger directory is cut there
    # FTPS (RFC 4217). With a certificate and key, AUTH TLS is offered on every `listen`
    # address, and `listen_implicit` addresses speak TLS from the first byte (ftps://).
    tls_cert: Path | None = None  # PEM certificate (chain); `herd ftp cert` writes one
    tls_key: Path | None = None  # its PEM private key (keep it 0600)
    listen_implicit: tuple[tuple[str, int], ...] = field(
        default=(), metadata={"parse": listen_addresses}
    )
    require_tls: bool = False  # refuse logins and data connections without TLS
    # PROT P data connections must resume the control connection's TLS session (on:
    # a stranger cannot take over a data port); off only for clients that cannot.
    require_tls_session_reuse: bool = True
    tls_handshake_timeout: float = 10.0  # seconds a client has to finish a TLS handshake
    # Over quota, an upload's remaining data is read and thrown away (at most this many
    # bytes, for at most over_quota_drain_seconds) so the client reads the 552.
    over_quota_drain_bytes: int = 64 * 1024 * 1024
    over_quota_drain_seconds: float = 10.0

    @property
    def tls(self) -> bool:
        """Whether FTPS is configured."""
        return self.tls_cert is not None

    def __post_init__(self) -> None:
        if not self.listen:
            raise ConfigError("FtpSettings.listen needs at least one (host, port)")
        if self.passive_ports is not None:
            low, high = self.passive_ports
            if not 1024 <= low <= high <= 65535:
                raise ConfigError(f"bad passive port range {low}-{high}: use 1024-65535, low<=high")
        if self.buffer_size < 64 * 1024:
            raise ConfigError("FtpSettings.buffer_size must be at least 64 KiB")
        if self.max_line_length < 512:
            raise ConfigError("FtpSettings.max_line_length must be at least 512")
        if self.thread_stack_size and self.thread_stack_size < 32 * 1024:
            raise ConfigError("FtpSettings.thread_stack_size must be 0 (default) or >= 32 KiB")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together: give both or neither")
        if self.tls_cert is None and (self.listen_implicit or self.require_tls):
            needs = "listen_implicit" if self.listen_implicit else "require_tls"
            raise ConfigError(f"{needs} needs tls_cert and tls_key (herd ftp cert writes a pair)")
        for name in ("control_idle_timeout", "data_idle_timeout", "tls_handshake_timeout"):
            if not getattr(self, name) > 0:  # 0 would be no timeout at all for the kernel
                raise ConfigError(f"{name} must be more than 0 seconds")
