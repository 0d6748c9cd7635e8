"""Running a data transfer beside the control connection: its thread, its data connection.

Each transfer runs in a thread of its own (reused from the last transfers when
one waits), so the control connection stays responsive: ABOR, STAT and NOOP
are answered while data flows. (A listing or file of at most ``INLINE_BYTES``
whose client connected before the command is sent by the session's own thread:
it fits in the socket's buffer, so nothing waits on it.) The data connection is
opened here, under TLS in PROT P (resuming the control connection's TLS
session), and closed the way the transfer ended: close_notify after a complete
one, a bounded drain after a 552 so the client reads it.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from herd.ftp.datachannel import ActiveTarget, DataRefused, PassiveListener, plain_address
from herd.ftp.replies import Aborted, FtpReply
from herd.ftp.tls import TlsFailed, close_notify, handshake

if TYPE_CHECKING:
    from herd.ftp.serving import SessionServer

__all__ = ["DataTransfer", "Flag", "Transfers"]

log = logging.getLogger("herd.ftp")

# After a data connection is refused in PROT P, how long another (the client's) may come.
_RETRY_AFTER_REFUSAL = 2.0
# A transfer of at most this many bytes fits in a fresh connection's send buffer (Linux
# starts one at tcp_wmem's 16 KiB): sent in the session's own thread when the client has
# connected already, it cannot block, so the control connection is not kept waiting.
INLINE_BYTES = 16 * 1024


class Flag:
    """A one-way flag: set once, waited for by any number of threads.

    ``threading.Event`` builds a Condition and two locks; a transfer needs two
    flags, and a busy server starts thousands of transfers a second.
    """

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._set = False
        self._lock = _thread.allocate_lock()
        self._lock.acquire()

    def set(self) -> None:
        if not self._set:
            self._set = True
            with contextlib.suppress(RuntimeError):  # two setters at once: one releases
                self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        if self._set:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            self._lock.release()  # let the next waiter through too
        return self._set


class DataTransfer:
    """A running data transfer: its thread, its data socket, and the abort flag."""

    def __init__(self) -> None:
        self.abort = Flag()
        self.done = Flag()
        self._lock = _thread.allocate_lock()
        self.sock: socket.socket | None = None
        self.bytes = 0
        self.description = ""
        self.outgoing = False  # a download or listing (the server sends)

    def attach(self, sock: socket.socket) -> None:
        """The data connection is open; if ABOR came first, it is cut at once."""
        with self._lock:
            self.sock = sock
            aborted = self.abort.is_set()
        if aborted:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def interrupt(self) -> None:
        """Make the transfer fail now (called from the control thread)."""
        with self._lock:  # with attach(): whichever comes second cuts the connection
            self.abort.set()
            sock = self.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Transfers:
    """The transfer half of a session (``herd.ftp.session.Session`` has the control half)."""

    server: SessionServer
    sock: socket.socket  # the control connection
    transfer: DataTransfer | None
    data_source: PassiveListener | ActiveTarget | None
    closing: bool
    tls_context: ssl.SSLContext | None
    data_protection: str  # "" before PBSZ, "C" or "P"
    reply: Callable[[int, str], None]
    close_control: Callable[[], None]

    def drop_data_source(self) -> None:
        source, self.data_source = self.data_source, None
        if source is not None:
            source.close()

    def take_data_source(self) -> PassiveListener | ActiveTarget:
        source = self.data_source
        if source is None:
            raise FtpReply(425, "Use PASV, EPSV, PORT or EPRT first.")
        self.data_source = None
        return source

    def start_transfer(
        self,
        opening: str,
        work: Callable[[socket.socket, DataTransfer], tuple[int, str]],
        unused: Callable[[], None] = lambda: None,
        *,
        outgoing: bool = False,
        small: bool = False,
    ) -> None:
        """Open the data connection and run ``work`` on it in a worker thread.

        ``work`` returns the final reply; it raises Aborted, Reply (552, 451 ...),
        TimeoutError (data idle) or OSError (the client dropped the connection).
        ``unused`` cleans up (closes the file, removes the temporary) when no data
        connection came and ``work`` never ran. A ``small`` download (at most
        ``INLINE_BYTES``) whose client has connected already (most clients connect
        before they send the command) runs here instead: two thread hand-offs cost
        more than the transfer itself, and it fits in the socket's send buffer, so
        the control connection is not kept waiting on the client.
        """
        try:
            source = self.take_data_source()
        except FtpReply:
            unused()
            raise
        job = DataTransfer()
        job.description = opening
        job.outgoing = outgoing
        self.transfer = job
        if small and self.data_protection != "P" and isinstance(source, PassiveListener):
            ready = source.accept_ready()
            if ready is not None:
                self._run_transfer(job, source, opening, work, unused, connected=ready)
                return
        try:
            # A bare thread, like the session's own (no Thread object and start-up handshake
            # per transfer), reused from the last transfers when one is waiting. The
            # session waits for it (``job.done``) before it ends.
            self.server.transfer_threads.start(
                self._run_transfer, job, source, opening, work, unused
            )
        except RuntimeError:
            self.transfer = None
            source.close()
            unused()
            raise FtpReply(425, "Server busy, cannot start the transfer now.") from None

    def _run_transfer(
        self,
        job: DataTransfer,
        source: PassiveListener | ActiveTarget,
        opening: str,
        work: Callable[[socket.socket, DataTransfer], tuple[int, str]],
        unused: Callable[[], None],
        *,
        connected: socket.socket | None = None,
    ) -> None:
        timeout = self.server.settings.data_idle_timeout
        try:
            try:
                if connected is None:
                    sock = self._open_data(source, job, opening)
                else:
                    sock = connected
                    self.reply(150, opening)
            finally:
                source.close()
            job.attach(sock)
            with sock:
                sock.settimeout(timeout)
                code, text = self._work(job, sock, work)
                if code == 552 and job.bytes:
                    self.reply(code, text)  # first, so a client that reads it stops sending
                    self._drain(sock)
                    code = 0
                elif code == 226:
                    close_notify(sock, min(timeout, 5.0))
            if code:
                self.reply(code, text)  # after the close: the client sees EOF, then 226
            if code == 421:
                self.close_control()
        except DataRefused as refused:
            unused()
            self.reply(refused.code, refused.text)
        finally:
            self.transfer = None
            job.done.set()
            if self.closing:
                self.reply(421, "Server shutting down, closing control connection.")
                self.close_control()

    def _open_data(
        self, source: PassiveListener | ActiveTarget, job: DataTransfer, opening: str
    ) -> socket.socket:
        """The data connection, under TLS in PROT P; 150 is sent once it is there.

        In PROT P a connection that does not resume the control connection's TLS
        session is dropped (someone else reached the port first) and the next one
        awaited, for a short while: the client itself may be unable to resume.
        """
        timeout = self.server.settings.data_idle_timeout
        if not isinstance(source, PassiveListener):
            sock = source.connect(plain_address(self.sock.getsockname()[0]), timeout)
            self.reply(150, opening)
            return self._secure_data(sock) if self.data_protection == "P" else sock
        deadline = time.monotonic() + timeout
        announced = False
        refused: DataRefused | None = None
        while True:
            try:
                sock = source.accept(max(0.0, deadline - time.monotonic()), job.abort)
            except DataRefused:
                if refused is not None:
                    raise refused from None
                raise
            if not announced:
                self.reply(150, opening)
                announced = True
            if self.data_protection != "P":
                return sock
            try:
                return self._secure_data(sock)
            except DataRefused as failed:
                refused = failed  # told to the client if no good connection follows soon
                deadline = min(deadline, time.monotonic() + _RETRY_AFTER_REFUSAL)

    def _secure_data(self, sock: socket.socket) -> socket.socket:
        tls, context = self.server.tls, self.tls_context
        assert tls is not None and context is not None
        try:
            secured = handshake(sock, context, tls.timeout)
        except TlsFailed as failed:
            raise DataRefused(522, f"Data connection refused: {failed}.") from None
        if tls.require_reuse and not secured.session_reused:
            secured.close()
            raise DataRefused(
                522, "Data connection refused: it must resume the control connection's TLS session."
            )
        return secured

    def _drain(self, sock: socket.socket) -> None:
        """Over quota: read and drop what the client still sends, within bounds, then close.

        Closing with unread data would make the kernel reset the connection, and a
        client busy sending would never read the 552. The bounds keep this from
        being a free upload channel: what is read here never reaches the disk.
        """
        left = self.server.settings.over_quota_drain_bytes
        deadline = time.monotonic() + self.server.settings.over_quota_drain_seconds
        buffer = bytearray(256 * 1024)
        with contextlib.suppress(OSError):
            while left > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                sock.settimeout(remaining)
                count = sock.recv_into(buffer, min(left, len(buffer)))
                if not count:
                    close_notify(sock, 1.0)
                    break
                left -= count

    def _work(  # noqa: PLR0911 (one reply per way a transfer ends)
        self,
        job: DataTransfer,
        sock: socket.socket,
        work: Callable[[socket.socket, DataTransfer], tuple[int, str]],
    ) -> tuple[int, str]:
        try:
            return work(sock, job)  # it runs even when aborted already: it cleans up
        except Aborted:
            return 426, "Connection closed; transfer aborted."
        except FtpReply as answer:
            return answer.code, answer.text
        except TimeoutError:
            return 421, "Data connection timed out."
        except OSError as exc:
            if job.abort.is_set():
                return 426, "Connection closed; transfer aborted."
            return 426, f"Connection closed; transfer aborted ({exc.strerror or exc})."
        except Exception as exc:  # a bug must end in a reply, not a silent thread
            self.server.on_helper(log.error, "FTP transfer failed: %r", exc)
            self.server.on_helper(log.debug, "the failed transfer's error", exc_info=exc)
            return 451, "Requested action aborted: local error in processing."

    def wait_transfer(self) -> None:
        job = self.transfer
        if job is not None:
            job.done.wait()

    def abort_transfer(self) -> bool:
        """Interrupt a running transfer and wait for its 426; False when none ran."""
        job = self.transfer
        if job is None:
            return False
        job.interrupt()
        job.done.wait(self.server.settings.data_idle_timeout)
        return True
