"""A one-line summary of each operation, sent to the local syslog.

The stdlib ``syslog`` module always writes to the system's ``/dev/log``; this
sender speaks the same local protocol (an RFC 3164 line on a unix datagram
socket) to an address we choose, so tests can bind their own socket instead of
writing to the real syslog.
"""

from __future__ import annotations

import os
import socket
import syslog
import time

from herd.errors import AuditError

__all__ = ["DEFAULT_SYSLOG_ADDRESS", "SyslogSink"]

DEFAULT_SYSLOG_ADDRESS = "/dev/log"
_MAX_DATAGRAM = 8192  # rsyslog and journald accept this much by default


class SyslogSink:
    """Sends one line per operation to a local syslog socket.

    It connects when created, so a missing syslog shows before an operation starts.
    """

    def __init__(
        self, address: str = DEFAULT_SYSLOG_ADDRESS, *, facility: int = syslog.LOG_USER
    ) -> None:
        self.address = address
        self.facility = facility
        self.failures = 0  # lines that could not be delivered after the socket was up
        self._socket = self._connect()

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.connect(self.address)
        except OSError as exc:
            sock.close()
            reason = exc.strerror or exc.__class__.__name__
            raise AuditError(f"{self.address}: cannot send to syslog: {reason}") from exc
        sock.settimeout(1.0)  # a datagram either goes at once or syslog is wedged
        return sock

    def send(self, message: str, *, warning: bool = False) -> None:
        """Send one line; a syslog that went away costs one reconnect try, never the operation."""
        severity = syslog.LOG_WARNING if warning else syslog.LOG_INFO
        now = time.localtime()
        stamp = f"{time.strftime('%b', now)} {now.tm_mday:2d} {time.strftime('%H:%M:%S', now)}"
        line = " ".join(message.split())
        data = f"<{self.facility | severity}>{stamp} herd[{os.getpid()}]: {line}".encode()
        for attempt in range(2):
            try:
                self._socket.send(data[:_MAX_DATAGRAM])
            except OSError:
                if attempt == 0:
                    try:
                        self._socket.close()
                        self._socket = self._connect()
                    except AuditError:
                        break
                    continue
                break
            else:
                return
        self.failures += 1

    def close(self) -> None:
        self._socket.close()
