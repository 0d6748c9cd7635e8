"""One control connection: reading commands, replying, and running transfers beside it.

The control connection stays responsive while data flows: each transfer runs
in its own worker thread (``herd.ftp.transfers``; only one small enough to fit
in the socket's buffer, whose client is already connected, is sent at once by
the session), and the session keeps reading commands. ABOR, STAT and NOOP are
answered at once during a transfer; QUIT and every other command wait for the
transfer to end, as a client that pipelines expects. The command handlers
themselves (``cmd_USER`` ...) live in the ``commands_*`` modules and are
gathered into ``herd.ftp.handler.FtpHandler``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from herd.ftp.datachannel import ActiveTarget, PassiveListener, plain_address, timeval
from herd.ftp.events import FtpEvent, SessionEnded
from herd.ftp.jail import Jail, PathRefused
from herd.ftp.replies import Command, FtpReply
from herd.ftp.tls import TlsFailed, handshake
from herd.ftp.transfers import DataTransfer, Flag, Transfers

if TYPE_CHECKING:
    from herd.ftp.quota import QuotaAccount
    from herd.ftp.serving import SessionServer
    from herd.ftp.settings import FtpSettings
    from herd.ftp.users import FtpUser

__all__ = ["DataTransfer", "Flag", "Session"]

log = logging.getLogger("herd.ftp")

_TELNET_IAC = 0xFF
# One read of the control connection. It blocks while the client is idle, holding its
# buffer the while: small, so an idle session stays small (issue 19's bound is 20 KB),
# and one read still takes a whole command line (a longer one takes a few reads).
_READ_SIZE = 256
# Commands answered at once while a transfer runs; the rest wait for it to end.
_DURING_TRANSFER = frozenset({"ABOR", "STAT", "NOOP"})
# Known verbs this server does not implement: 502, so clients fall back. (CCC would
# drop TLS from the control connection: refused.)
_NOT_IMPLEMENTED = frozenset({"SMNT", "CCC", "ADAT", "MIC", "CONF", "ENC", "LPRT", "LPSV"})


class Session(Transfers, socketserver.BaseRequestHandler):
    """The state and machinery of one control connection."""

    commands: ClassVar[Mapping[str, Command]] = {}
    server: SessionServer
    request: socket.socket
    # Came in on an implicit-TLS address: TLS before the banner. Set on the instance only
    # when true: an idle session's attributes must stay few enough for CPython to share
    # their keys between instances (more than 30 costs about 1.3 KiB a session).
    implicit = False

    # -- life cycle ------------------------------------------------------------------

    @property
    def settings(self) -> FtpSettings:
        return self.server.settings

    def setup(self) -> None:
        self.client: str = plain_address(self.client_address[0])
        self.sock = self.request
        self._send_lock = threading.Lock()
        self._inbuf = bytearray()
        self._discarding = False
        self.closing = False
        self.transfer: DataTransfer | None = None
        self.data_source: PassiveListener | ActiveTarget | None = None
        self.epsv_all = False
        self.session_id = next(self.server.session_numbers)  # names its events
        # FTPS state (RFC 4217): the control connection's TLS context once secured, and
        # the data connections' protection: "" before PBSZ, then "C" (clear) or "P" (private).
        self.tls_context: ssl.SSLContext | None = None
        self.data_protection = ""
        self.reset_login()
        with contextlib.suppress(OSError):
            # ftplib sends ABOR as urgent data: keep its last byte in the stream
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Blocking, with the idle timeout as the kernel's send and receive timeouts: a
        # send that would block for good fails, and so does the wait for a command.
        # (A Python-level timeout would add a poll() to every send and every recv.)
        self.sock.setblocking(True)
        idle = self.settings.control_idle_timeout
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(idle))
            # and as the receive timeout: it bounds the wait for the next command
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(idle))
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
        # The recorder ignores the end of a session it never heard of.
        self.report(SessionEnded)
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
        self.server.events.emit(event)

    def report(self, kind: type[FtpEvent], **fields: Any) -> None:
        """Emit an event of ``kind`` about this session: user (unless given), client, session."""
        fields.setdefault("user", self.user_name)
        self.emit(kind(client=self.client, session=self.session_id, **fields))

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
            try:
                data = self._tls_read() if self.secure else self.sock.recv(_READ_SIZE)
            except (BlockingIOError, TimeoutError):  # SO_RCVTIMEO: the idle timeout
                if self.transfer is not None:
                    continue  # a long transfer keeps the control connection quiet
                self.reply(421, "Idle timeout, closing control connection.")
                return None
            except OSError:
                return None
            if data is None:
                continue  # only part of a TLS record so far
            if not data:
                return None
            self._inbuf += data

    def _tls_read(self) -> bytes | None:
        """Wait for the client's next TLS record, then read what it decrypts to.

        The wait is a one-byte peek blocked in the kernel (SO_RCVTIMEO bounds it:
        BlockingIOError), which holds no buffer: a blocked TLS read would hold
        one. The peek sees the encrypted record, which is all a wait needs.
        """
        sock = self.sock
        assert isinstance(sock, ssl.SSLSocket)
        if sock.pending() == 0:  # TLS may hold decrypted bytes the kernel no longer has
            with contextlib.suppress(ConnectionError):  # the read that follows reports it
                socket.socket.recv(sock, 1, socket.MSG_PEEK)
        return self._tls_recv()

    @property
    def local_address(self) -> str:
        """The server's address on this connection (what PASV announces)."""
        return plain_address(self.sock.getsockname()[0])

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
        except FtpReply as answer:  # DataRefused, quota, permissions: the command's own reply
            self.reply(answer.code, answer.text)
        except PathRefused as refused:  # the jail's refusal: a name (553) or a path (550)
            self.reply(553 if refused.bad_name else 550, refused.message)
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
            raise FtpReply(530, "Log in with USER and PASS first.")
        if command.arg == "required" and not arg.strip():
            raise FtpReply(501, f"{verb} needs an argument.")
        if command.arg == "none" and arg.strip():
            raise FtpReply(501, f"{verb} takes no argument.")

    # -- paths and permissions -----------------------------------------------------------

    def need(self, permission: str) -> None:
        if self.user is None:  # STAT <path> needs no login to be parsed, but does to run
            raise FtpReply(530, "Log in with USER and PASS first.")
        if permission not in self.user.perms:
            raise FtpReply(550, f"Permission denied ({permission}).")

    def path(self, arg: str) -> str:
        """The virtual path an argument names (553 for names the jail refuses)."""
        assert self.jail is not None
        return self.jail.normalize(self.cwd, arg)

    # STAT with a path: a listing over the control connection (commands_transfer has it).
    stat_path: Callable[[str], None]


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
