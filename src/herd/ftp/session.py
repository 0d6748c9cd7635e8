"""One control connection: reading commands, replying, and running transfers beside it.

The control connection stays responsive while data flows: each transfer runs
in its own worker thread, and the session keeps reading commands. ABOR, STAT
and NOOP are answered at once during a transfer; QUIT and every other command
wait for the transfer to end, as a client that pipelines expects. The command
handlers themselves (``cmd_USER`` ...) live in the ``commands_*`` modules and
are gathered into ``herd.ftp.handler.FtpHandler``.
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import select
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from herd.ftp.datachannel import ActiveTarget, DataRefused, PassiveListener
from herd.ftp.events import FtpEvent, SessionEnded
from herd.ftp.jail import Jail, PathRefused
from herd.ftp.tls import TlsFailed, close_notify, handshake

if TYPE_CHECKING:
    from herd.ftp.quota import QuotaAccount
    from herd.ftp.server import FtpServer
    from herd.ftp.settings import FtpSettings
    from herd.ftp.users import FtpUser

__all__ = ["Aborted", "Command", "Flag", "Reply", "Session", "TransferJob"]

log = logging.getLogger("herd.ftp")

_TELNET_IAC = 0xFF
# After a data connection is refused in PROT P, how long another (the client's) may come.
_RETRY_AFTER_REFUSAL = 2.0
# Commands answered at once while a transfer runs; the rest wait for it to end.
_DURING_TRANSFER = frozenset({"ABOR", "STAT", "NOOP"})
# Known verbs this server does not implement: 502, so clients fall back. (CCC would
# drop TLS from the control connection: refused.)
_NOT_IMPLEMENTED = frozenset({"SMNT", "CCC", "ADAT", "MIC", "CONF", "ENC", "LPRT", "LPSV"})


class Reply(Exception):
    """Stop the command and answer ``code text`` (an error reply, usually)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class Aborted(Exception):
    """The transfer was aborted by ABOR or by a server shutdown."""


@dataclass(frozen=True, slots=True)
class Command:
    """A line of the command table: whether it needs a login, its argument, its help."""

    auth: bool
    arg: str  # "none", "required" or "optional"
    help: str


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


class TransferJob:
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


class Session(socketserver.BaseRequestHandler):
    """The state and machinery of one control connection."""

    commands: ClassVar[Mapping[str, Command]] = {}
    server: FtpServer
    request: socket.socket
    implicit: bool  # came in on an implicit-TLS address: TLS before the banner

    # -- life cycle ------------------------------------------------------------------

    def setup(self) -> None:
        self.settings: FtpSettings = self.server.settings
        self.client: str = _plain_address(self.client_address[0])
        self.sock = self.request
        self.local_address: str = _plain_address(self.sock.getsockname()[0])
        self._send_lock = threading.Lock()
        self._inbuf = bytearray()
        self._discarding = False
        self.closing = False
        self.transfer: TransferJob | None = None
        self.data_source: PassiveListener | ActiveTarget | None = None
        self.epsv_all = False
        self.session_id = next(self.server.session_numbers)  # names its events
        self.emitted = False  # whether the operation log has heard of this session
        # FTPS state (RFC 4217): the control connection's TLS context once secured, and
        # whether PBSZ was given and data connections are protected (PROT P).
        self.tls_context: ssl.SSLContext | None = None
        self.pbsz = False
        self.protect_data = False
        self.reset_login()
        with contextlib.suppress(OSError):
            # ftplib sends ABOR as urgent data: keep its last byte in the stream
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Blocking, with the idle timeout as the kernel's send timeout: reads are waited
        # for with poll() below, and a send that would block for good fails instead.
        # (A Python-level timeout would add a poll() to every send and every recv.)
        self.sock.setblocking(True)
        idle = self.settings.control_idle_timeout
        with contextlib.suppress(OSError):
            self.sock.setsockopt(
                socket.SOL_SOCKET,
                socket.SO_SNDTIMEO,
                struct.pack("@ll", int(idle), int((idle % 1) * 1_000_000)),
            )
        self._poller = select.poll()
        self._poller.register(self.sock, select.POLLIN)
        self.server.sessions.add(self)

    def reset_login(self) -> None:
        """Forget the login and every per-login setting (new session or REIN)."""
        self.release_account()
        self.user: FtpUser | None = None
        self.user_name = "-"
        self.pending_user: str | None = None
        self.jail: Jail | None = None
        self.account: QuotaAccount | None = None
        self.cwd = "/"
        self.ascii = False
        self.rest = 0
        self.rename_from: str | None = None
        self.hash_name = "SHA-256"
        self.mlst_facts: tuple[str, ...] = ("type", "size", "modify", "perm", "unique")
        self.tls_required = False  # this login (server or user setting) needs TLS throughout

    @property
    def secure(self) -> bool:
        """Whether the control connection is under TLS."""
        return self.tls_context is not None

    def start_tls(self) -> bool:
        """TLS on the control connection (AUTH TLS, or an implicit-TLS address)."""
        tls = self.server.tls
        assert tls is not None
        try:
            context = tls.session_context()
            secured = handshake(self.sock, context, tls.timeout)
        except TlsFailed:
            self.closing = True
            return False
        self.sock = secured
        self.tls_context = context
        if tls.require_reuse:
            # TLS 1.3 sends session tickets after the handshake. The control connection's
            # are the ones data connections resume; more of them on a data connection
            # arrive while an uploading client only writes, which GnuTLS clients (lftp)
            # take badly. This context is this session's own (``ServerTls``).
            context.num_tickets = 0
        self._inbuf.clear()  # nothing sent in clear before the handshake counts
        self._poller = select.poll()
        self._poller.register(self.sock, select.POLLIN)
        return True

    def handle(self) -> None:
        if self.implicit and not self.start_tls():
            return
        self.reply(220, self.settings.banner)
        while not self.closing:
            line = self._read_line()
            if line is None:
                # RFC 959: a control connection closed mid-transfer is ABOR and QUIT; a
                # client that also stopped reading must not keep a thread sending for good.
                # (An upload ends by itself: its sender closes or goes idle. What came of
                # it is kept, so an interrupted client can resume it.)
                job = self.transfer
                if job is not None and job.outgoing:
                    self.abort_transfer()
                break
            self.dispatch(line)
        self.wait_transfer()

    def release_account(self) -> None:
        """Hand the quota account back to the server's book (logout, REIN, end)."""
        account = getattr(self, "account", None)
        if account is not None:
            self.account = None
            self.server.quota.release(account)

    def finish(self) -> None:
        job = self.transfer
        if job is not None:
            job.interrupt()
            job.done.wait(5.0)
        self.release_account()
        self.drop_data_source()
        if self.emitted:
            self.emit(
                SessionEnded(user=self.user_name, client=self.client, session=self.session_id)
            )
        if self.sock is not self.request:  # the TLS socket took over the descriptor
            with contextlib.suppress(OSError):
                self.sock.close()
        self.server.sessions.discard(self)

    def stop(self, *, force: bool) -> None:
        """Called by the server on shutdown: close when idle, or now when ``force``."""
        self.closing = True
        job = self.transfer
        if job is not None and not job.done.is_set():
            if not force:
                return  # the worker closes the session when its transfer ends
            job.interrupt()
        self.reply(421, "Server shutting down, closing control connection.")
        self.close_control()

    def close_control(self) -> None:
        self.closing = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    # -- replies -----------------------------------------------------------------------

    def reply(self, code: int, text: str) -> None:
        """Send one reply; several lines become a multi-line reply (RFC 959 4.2)."""
        if text.isprintable():  # one plain line: most replies
            self._send(f"{code} {text}\r\n".encode("utf-8", "surrogateescape"))
            return
        lines = text.split("\n")
        parts = [f"{code}-{lines[0]}"]
        for line in lines[1:-1]:
            parts.append(f" {line}" if line[:1].isdigit() else line)
        parts.append(f"{code} {lines[-1]}" if len(lines) > 1 else f"{code} {lines[0]}")
        if len(lines) == 1:
            parts = parts[-1:]
        text = "".join(_printable(p) + "\r\n" for p in parts)
        self._send(text.encode("utf-8", "surrogateescape"))

    def _send(self, data: bytes) -> None:
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError:
                self.closing = True

    def emit(self, event: FtpEvent) -> None:
        self.emitted = True
        self.server.events.emit(event)

    # -- reading commands --------------------------------------------------------------

    def _read_line(self) -> bytes | None:
        """The next command line without CRLF, or None when the connection ends."""
        limit = self.settings.max_line_length
        while True:
            newline = self._inbuf.find(b"\n")
            if newline >= 0:
                line = bytes(self._inbuf[:newline])
                del self._inbuf[: newline + 1]
                if self._discarding or newline + 1 > limit:
                    self._discarding = False
                    self.reply(500, "Command line too long.")
                    continue
                return line.rstrip(b"\r")
            if len(self._inbuf) > limit:
                self._inbuf.clear()
                self._discarding = True
            # Wait first, then read: a recv() blocked in the kernel would hold a 4 KiB
            # buffer per idle session (the memory target is 20 KiB per session).
            sock = self.sock  # TLS may hold decrypted bytes the kernel no longer has
            buffered = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
            if not buffered and not self._poller.poll(self.settings.control_idle_timeout * 1000):
                if self.transfer is not None:
                    continue  # a long transfer keeps the control connection quiet
                self.reply(421, "Idle timeout, closing control connection.")
                return None
            try:
                data = self._tls_recv() if self.secure else self.sock.recv(4096)
            except OSError:
                return None
            if data is None:
                continue  # only part of a TLS record so far
            if not data:
                return None
            self._inbuf += data

    def _tls_recv(self) -> bytes | None:
        """Read what TLS has decrypted, without blocking (None: a record is incomplete).

        One SSL object must not be read and written by two threads at once, and a
        transfer's thread sends replies: both hold the send lock around the socket.
        """
        with self._send_lock:
            self.sock.settimeout(0.0)
            try:
                return self.sock.recv(4096)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return None
            finally:
                self.sock.settimeout(None)

    def dispatch(self, raw: bytes) -> None:
        """Parse one line and run its command; every line gets exactly one final reply."""
        text = _strip_telnet(raw).decode("utf-8", "surrogateescape")
        verb, _, arg = text.lstrip(" ").partition(" ")
        verb = verb.upper()
        command = self.commands.get(verb) if verb.isascii() and verb.isalnum() else None
        if command is None:
            if verb in _NOT_IMPLEMENTED:
                self.reply(502, f"{verb} not implemented.")
            else:
                self.reply(500, "Unknown command." if text.strip() else "Empty command line.")
            return
        if verb not in _DURING_TRANSFER:
            self.wait_transfer()
            if self.closing:
                return
        try:
            self._check(verb, command, arg)
            getattr(self, f"cmd_{verb}")(arg)
        except Reply as answer:
            self.reply(answer.code, answer.text)
        except PathRefused as refused:
            self.reply(refused.code, refused.message)
        except DataRefused as refused:
            self.reply(refused.code, refused.message)
        except OSError as exc:  # a local file error outside the jail's own checks
            self.reply(550, f"{verb} failed: {exc.strerror or type(exc).__name__}.")
        except Exception as exc:  # a bug must cost one reply, not the session
            self.server.on_helper(log.error, "FTP %s from %s failed: %r", verb, self.client, exc)
            self.server.on_helper(log.debug, "the failed command's error", exc_info=exc)
            self.reply(451, "Requested action aborted: local error in processing.")
        if verb != "REST":
            self.rest = 0  # REST applies to the very next command only
        if verb != "RNFR":
            self.rename_from = None  # and RNFR to the very next RNTO

    def _check(self, verb: str, command: Command, arg: str) -> None:
        if command.auth and self.user is None:
            raise Reply(530, "Log in with USER and PASS first.")
        if command.arg == "required" and not arg.strip():
            raise Reply(501, f"{verb} needs an argument.")
        if command.arg == "none" and arg.strip():
            raise Reply(501, f"{verb} takes no argument.")

    # -- paths and permissions -----------------------------------------------------------

    def need(self, permission: str) -> None:
        if self.user is None:  # STAT <path> needs no login to be parsed, but does to run
            raise Reply(530, "Log in with USER and PASS first.")
        if permission not in self.user.perms:
            raise Reply(550, f"Permission denied ({permission}).")

    def path(self, arg: str) -> str:
        """The virtual path an argument names (553 for names the jail refuses)."""
        assert self.jail is not None
        return self.jail.normalize(self.cwd, arg)

    # STAT with a path: a listing over the control connection (commands_transfer has it).
    stat_path: Callable[[str], None]

    # -- transfers ---------------------------------------------------------------------

    def drop_data_source(self) -> None:
        source, self.data_source = self.data_source, None
        if source is not None:
            source.close()

    def take_data_source(self) -> PassiveListener | ActiveTarget:
        source = self.data_source
        if source is None:
            raise Reply(425, "Use PASV, EPSV, PORT or EPRT first.")
        self.data_source = None
        return source

    def start_transfer(
        self,
        opening: str,
        work: Callable[[socket.socket, TransferJob], tuple[int, str]],
        unused: Callable[[], None] = lambda: None,
        *,
        outgoing: bool = False,
    ) -> None:
        """Open the data connection and run ``work`` on it in a worker thread.

        ``work`` returns the final reply; it raises Aborted, Reply (552, 451 ...),
        TimeoutError (data idle) or OSError (the client dropped the connection).
        ``unused`` cleans up (closes the file, removes the temporary) when no data
        connection came and ``work`` never ran.
        """
        try:
            source = self.take_data_source()
        except Reply:
            unused()
            raise
        job = TransferJob()
        job.description = opening
        job.outgoing = outgoing
        self.transfer = job
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
            raise Reply(425, "Server busy, cannot start the transfer now.") from None

    def _run_transfer(
        self,
        job: TransferJob,
        source: PassiveListener | ActiveTarget,
        opening: str,
        work: Callable[[socket.socket, TransferJob], tuple[int, str]],
        unused: Callable[[], None],
    ) -> None:
        timeout = self.settings.data_idle_timeout
        try:
            try:
                sock = self._open_data(source, job, opening)
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
            self.reply(refused.code, refused.message)
        finally:
            self.transfer = None
            job.done.set()
            if self.closing:
                self.reply(421, "Server shutting down, closing control connection.")
                self.close_control()

    def _open_data(
        self, source: PassiveListener | ActiveTarget, job: TransferJob, opening: str
    ) -> socket.socket:
        """The data connection, under TLS in PROT P; 150 is sent once it is there.

        In PROT P a connection that does not resume the control connection's TLS
        session is dropped (someone else reached the port first) and the next one
        awaited, for a short while: the client itself may be unable to resume.
        """
        timeout = self.settings.data_idle_timeout
        if not isinstance(source, PassiveListener):
            sock = source.connect(self.local_address, timeout)
            self.reply(150, opening)
            return self._secure_data(sock) if self.protect_data else sock
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
            if not self.protect_data:
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
        left = self.settings.over_quota_drain_bytes
        deadline = time.monotonic() + self.settings.over_quota_drain_seconds
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
        job: TransferJob,
        sock: socket.socket,
        work: Callable[[socket.socket, TransferJob], tuple[int, str]],
    ) -> tuple[int, str]:
        try:
            return work(sock, job)  # it runs even when aborted already: it cleans up
        except Aborted:
            return 426, "Connection closed; transfer aborted."
        except Reply as answer:
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
        job.done.wait(self.settings.data_idle_timeout)
        return True


def _plain_address(address: str) -> str:
    """``::ffff:127.0.0.1`` -> ``127.0.0.1``; other addresses unchanged."""
    return address[7:] if address.startswith("::ffff:") and "." in address else address


def _strip_telnet(raw: bytes) -> bytes:
    """Drop Telnet commands (IAC IP, IAC DM ... that clients send before ABOR)."""
    if _TELNET_IAC not in raw:
        return raw
    out = bytearray()
    index = 0
    while index < len(raw):
        byte = raw[index]
        if byte == _TELNET_IAC and index + 1 < len(raw):
            if raw[index + 1] == _TELNET_IAC:
                out.append(_TELNET_IAC)
            index += 2
            continue
        out.append(byte)
        index += 1
    return bytes(out)


def _printable(line: str) -> str:
    """A reply line cannot carry CR, LF or NUL (names on disk might)."""
    return line.replace("\r", "?").replace("\0", "?")
