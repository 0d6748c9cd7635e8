"""Data connections: passive listeners (PASV/EPSV) and active connects (PORT/EPRT).

Safety rules from RFC 2577 and the issue:

- A passive port is bound and listening in one step (a plain ``bind`` without
  SO_REUSEPORT), so two sessions never get the same port.
- A passive connection is accepted only from the control connection's client
  address; anyone else who connects first is dropped (no data theft).
- PORT/EPRT may only name the client's own address and a port of 1024 or more
  (no FXP bounce, no scanning of privileged ports).
"""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
import time
from typing import Protocol

from herd.ftp.replies import FtpReply

__all__ = [
    "ActiveTarget",
    "DataRefused",
    "PassiveListener",
    "parse_eprt",
    "parse_port",
    "plain_address",
    "receive_timeout",
    "same_address",
    "send_timeout",
    "timeval",
]


class AbortFlag(Protocol):
    """What an accept watches to give up early (a transfer's abort flag)."""

    def is_set(self) -> bool: ...


class DataRefused(FtpReply):
    """A data connection request refused or failed: the reply that says so."""


def _canonical(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def timeval(seconds: float) -> bytes:
    """``seconds`` as a ``struct timeval``, for SO_SNDTIMEO and SO_RCVTIMEO."""
    return struct.pack("@ll", int(seconds), int((seconds % 1) * 1_000_000))


def send_timeout(sock: socket.socket, seconds: float) -> None:
    """Make ``sock`` blocking, with ``seconds`` as the kernel's send timeout.

    A send that moves nothing for that long fails with EAGAIN (``BlockingIOError``);
    a Python-level timeout would instead put a poll() before every send.
    """
    sock.setblocking(True)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(seconds))


def receive_timeout(sock: socket.socket, seconds: float) -> None:
    """Make ``sock`` blocking, with ``seconds`` as the kernel's receive timeout (see above)."""
    sock.setblocking(True)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(seconds))


def plain_address(address: str) -> str:
    """``::ffff:127.0.0.1`` -> ``127.0.0.1``; other addresses unchanged."""
    return address[7:] if address.startswith("::ffff:") and "." in address else address


def same_address(a: str, b: str) -> bool:
    """Whether two IP address strings name the same host (IPv4-mapped IPv6 included)."""
    if a == b:
        return True
    try:
        return _canonical(a) == _canonical(b)
    except ValueError:
        return False


def parse_port(argument: str) -> tuple[str, int]:
    """``h1,h2,h3,h4,p1,p2`` -> (address, port); DataRefused(501) when malformed."""
    parts = argument.strip().split(",")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise DataRefused(501, "PORT needs h1,h2,h3,h4,p1,p2") from None
    if len(numbers) != 6 or not all(0 <= n <= 255 for n in numbers):
        raise DataRefused(501, "PORT needs h1,h2,h3,h4,p1,p2")
    return ".".join(str(n) for n in numbers[:4]), numbers[4] * 256 + numbers[5]


def parse_eprt(argument: str) -> tuple[str, int]:
    """``|1|132.235.1.2|6275|`` or ``|2|::1|6275|`` -> (address, port) per RFC 2428."""
    if len(argument) < 7:
        raise DataRefused(501, "EPRT needs |proto|address|port|")
    delimiter = argument[0]
    fields = argument[1:].split(delimiter)
    if len(fields) != 4 or fields[3] != "":
        raise DataRefused(501, "EPRT needs |proto|address|port|")
    proto, address, port_text = fields[:3]
    if proto not in ("1", "2"):
        raise DataRefused(522, "Network protocol not supported, use (1,2)")
    try:
        ip = ipaddress.ip_address(address)
        port = int(port_text)
    except ValueError:
        raise DataRefused(501, "EPRT: bad address or port") from None
    if (proto == "1") != (ip.version == 4) or not 0 < port < 65536:
        raise DataRefused(501, "EPRT: bad address or port")
    return address, port


class PassiveListener:
    """One listening socket for one passive transfer, bound within the configured range."""

    def __init__(
        self, local_address: str, client_address: str, ports: tuple[int, int] | None
    ) -> None:
        self.client_address = client_address
        family = socket.AF_INET6 if ":" in local_address else socket.AF_INET
        self._sock = self._bind(family, local_address, ports)
        self.port: int = self._sock.getsockname()[1]

    @staticmethod
    def _bind(family: int, address: str, ports: tuple[int, int] | None) -> socket.socket:
        candidates: list[int]
        if ports is None:
            candidates = [0]
        else:
            low, high = ports
            candidates = list(range(low, high + 1))
            start = random.randrange(len(candidates))
            candidates = candidates[start:] + candidates[:start]
        for port in candidates:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.bind((address, port))
                sock.listen(1)
            except OSError:
                sock.close()
                continue
            return sock
        raise DataRefused(425, "no free passive port, try again later")

    def accept(self, timeout: float, abort: AbortFlag) -> socket.socket:
        """The client's data connection; others are dropped; DataRefused(425) on timeout."""
        deadline = time.monotonic() + timeout
        while not abort.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._sock.settimeout(min(left, 0.25))
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                raise DataRefused(425, f"cannot open data connection: {exc.strerror}") from None
            if same_address(peer[0], self.client_address):
                return conn
            conn.close()  # someone else raced the client for the port: refuse them
        raise DataRefused(425, "cannot open data connection: the client did not connect")

    def accept_ready(self) -> socket.socket | None:
        """The client's data connection if it is there already (no wait), else None."""
        self._sock.setblocking(False)
        while True:
            try:
                conn, peer = self._sock.accept()
            except OSError:  # none waiting (BlockingIOError), or a failure accept() will see
                return None
            if same_address(peer[0], self.client_address):
                return conn  # blocking: accept4 without SOCK_NONBLOCK, no default timeout
            conn.close()  # someone else raced the client for the port: refuse them

    def close(self) -> None:
        self._sock.close()


class ActiveTarget:
    """Where PORT/EPRT asked us to connect, already checked against the client's address."""

    def __init__(self, address: str, port: int, client_address: str) -> None:
        if not same_address(address, client_address):
            raise DataRefused(504, "refused: data connections go only to your own address")
        if port < 1024:
            raise DataRefused(504, "refused: data port below 1024")
        self.address = address
        self.port = port

    def connect(self, local_address: str, timeout: float) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            if (":" in local_address) == (family == socket.AF_INET6):
                sock.bind((local_address, 0))
            sock.connect((self.address, self.port))
        except OSError as exc:
            sock.close()
            raise DataRefused(425, f"cannot open data connection: {exc.strerror or exc}") from None
        return sock

    def close(self) -> None:
        pass
