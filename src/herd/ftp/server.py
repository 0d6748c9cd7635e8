"""The FTP server: a ThreadingTCPServer whose settings live on the instance.

One thread per control connection (``FtpHandler``), started only when the
server can afford it: over the total or per-address connection limit, or from
an address locked out after failed logins, a client gets 421 and is closed
before any thread starts. The listen backlog comes from the settings (1024 by
default; socketserver's 5 drops bursts of connects), and several listen
addresses (IPv4 and IPv6) are served by one accept loop.

``shutdown(grace)`` stops accepting, closes idle sessions with 421, lets
running transfers finish for up to ``grace`` seconds, then cuts the rest.
"""

from __future__ import annotations

import _thread
import itertools
import os
import queue
import selectors
import socket
import socketserver
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from herd.errors import FtpError
from herd.ftp.events import EventSink, NullSink
from herd.ftp.handler import FtpHandler
from herd.ftp.jail import Jail, PathRefused
from herd.ftp.quota import QuotaBook
from herd.ftp.serving import (
    LoginGuard,
    Sessions,
    SessionServer,
    TransferThreads,
    UserAuthority,
)
from herd.ftp.session import Session, log
from herd.ftp.settings import FtpSettings
from herd.ftp.tls import ServerTls
from herd.ftp.users import FtpUser

__all__ = ["FtpServer"]

T = TypeVar("T")


class _HelperPool:
    """A few real threads that run steps for the bare session threads: logins, log lines.

    Logins: argon2 takes 19 MiB a verification and SQLite a deep C stack, so they run
    here, bounded, and session threads stay shallow (idle memory). Log lines: the
    logging module names the current thread, and asking that from a bare ``_thread``
    thread leaves a ``_DummyThread`` behind for good. Not ``concurrent.futures``: its
    workers start lazily from the submitting thread, with the same effect.
    """

    def __init__(self, size: int) -> None:
        self._jobs: queue.SimpleQueue[_HelperJob | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"ftp-helper-{n}", daemon=True)
            for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        job = _HelperJob(step, args, kwargs)
        self._jobs.put(job)
        job.done.acquire()  # released by the worker
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job.result = job.step(*job.args, **job.kwargs)
            except BaseException as exc:  # handed to the waiting session
                job.error = exc
            job.done.release()

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(10.0)


class _HelperJob:
    __slots__ = ("args", "done", "error", "kwargs", "result", "step")

    def __init__(
        self, step: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.kwargs = kwargs
        self.step = step
        self.args = args
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = _thread.allocate_lock()
        self.done.acquire()


def _listen_socket(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise FtpError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    return sock


class FtpServer(socketserver.ThreadingTCPServer, SessionServer):
    """A multi-user FTP server; ``addresses`` are the bound (host, port) pairs."""

    def __init__(
        self, settings: FtpSettings, users: UserAuthority, events: EventSink | None = None
    ) -> None:
        self.settings = settings
        self.tls: ServerTls | None = None
        if settings.tls_cert is not None and settings.tls_key is not None:
            self.tls = ServerTls(
                settings.tls_cert,
                settings.tls_key,
                require_reuse=settings.require_tls_session_reuse,
                timeout=settings.tls_handshake_timeout,
            )
        self.users = users
        self.events: EventSink = events if events is not None else NullSink()
        self.quota = QuotaBook(users)
        self.logins = LoginGuard(settings.lockout_failures, settings.lockout_window)
        self._helpers = _HelperPool(max(2, os.cpu_count() or 2))
        self.sessions: Sessions[Session] = Sessions()
        self.transfer_threads = TransferThreads()
        self.session_numbers = itertools.count(1)  # next() is atomic: one per connection
        # socketserver reads these from the instance: never class attributes (see settings.py).
        self.allow_reuse_address = True
        self.daemon_threads = True
        self.block_on_close = False
        self.request_queue_size = settings.listen_backlog
        host, port = settings.listen[0]
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), FtpHandler, bind_and_activate=False)
        self.socket.close()  # replaced by our own listeners (IPv6-only flag, backlog)
        self._listeners: list[socket.socket] = []
        self._implicit: set[socket.socket] = set()  # listeners that speak TLS at once
        try:
            for listen_host, listen_port in settings.listen:
                self._listeners.append(
                    _listen_socket(listen_host, listen_port, settings.listen_backlog)
                )
            for listen_host, listen_port in settings.listen_implicit:
                listener = _listen_socket(listen_host, listen_port, settings.listen_backlog)
                self._listeners.append(listener)
                self._implicit.add(listener)
        except FtpError:
            self.server_close()
            raise
        self.socket = self._listeners[0]
        self.server_address = self.socket.getsockname()[:2]
        self.addresses: list[tuple[str, int]] = [
            s.getsockname()[:2] for s in self._listeners if s not in self._implicit
        ]
        self.implicit_addresses: list[tuple[str, int]] = [
            s.getsockname()[:2] for s in self._listeners if s in self._implicit
        ]
        self._count_lock = threading.Lock()
        self._connections = 0
        self._per_address: Counter[str] = Counter()
        self._stop = threading.Event()
        self._serving = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._user_objects: dict[str, FtpUser] = {}
        self._jails: dict[Path, Jail] = {}
        self._rescanner: threading.Thread | None = None
        self.rescanned = threading.Event()  # set once every home was measured at start

    def on_helper(self, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``step`` on a helper thread (password check, usage lookup, log line); wait."""
        return self._helpers.run(step, *args, **kwargs)

    def known_user(self, user: FtpUser) -> FtpUser:
        """One FtpUser object per account state, shared by all its sessions (memory)."""
        with self._count_lock:
            known = self._user_objects.get(user.name)
            if known == user:
                return known
            self._user_objects[user.name] = user
            return user

    def jail_for(self, user: FtpUser) -> Jail:
        """One Jail per home, shared by its sessions (memory); PathRefused if it is gone."""
        with self._count_lock:
            jail = self._jails.get(user.home)
        if jail is not None and os.path.isdir(jail.root):  # noqa: PTH112 (the jail works in str paths)
            return jail
        jail = Jail(user.home)
        with self._count_lock:
            if len(self._jails) > 10_000:  # homes of deleted users must not pile up
                self._jails.clear()
            self._jails[user.home] = jail
        return jail

    # -- accepting -------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Accept connections on every listen address until ``shutdown``."""
        self._stopped.clear()
        self._serving.set()
        if self._rescanner is None:  # before the small thread stacks: SQLite goes deep
            self._rescanner = threading.Thread(
                target=self.rescan_usage, name="ftp-rescan", daemon=True
            )
            self._rescanner.start()
        previous_stack = threading.stack_size()
        try:
            threading.stack_size(self.settings.thread_stack_size)
        except (ValueError, RuntimeError):
            previous_stack = -1
        try:
            with selectors.DefaultSelector() as selector:
                for listener in self._listeners:
                    listener.setblocking(False)
                    selector.register(listener, selectors.EVENT_READ)
                while not self._stop.is_set():
                    for key, _mask in selector.select(poll_interval):
                        if self._stop.is_set():
                            break
                        ready = key.fileobj
                        assert isinstance(ready, socket.socket)
                        self._accept_all(ready)
        finally:
            if previous_stack >= 0:
                threading.stack_size(previous_stack)
            self._stopped.set()

    def _accept_all(self, listener: socket.socket) -> None:
        implicit = listener in self._implicit
        for _ in range(256):  # drain a burst, but let the loop look at other listeners too
            try:
                request, client = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            request.setblocking(True)
            if not self.verify_request(request, client):
                self.shutdown_request(request)
                continue
            try:
                self.process_request(request, client, implicit)
            except RuntimeError:  # no thread could be started: refuse, do not crash
                self._release(client)
                self._refuse(request, "Server busy, too many connections; try again later.")
                self.shutdown_request(request)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Count the connection in, or answer 421 when over a limit or locked out."""
        address = str(client_address[0])
        if self.logins.locked_out(address):
            self._refuse(request, "Too many failed logins from your address; try again later.")
            return False
        with self._count_lock:
            if self._connections >= self.settings.max_connections:
                reason = "Too many connections; try again later."
            elif self._per_address[address] >= self.settings.max_connections_per_address:
                reason = "Too many connections from your address; try again later."
            else:
                self._connections += 1
                self._per_address[address] += 1
                return True
        self._refuse(request, reason)
        return False

    @staticmethod
    def _refuse(request: socket.socket, reason: str) -> None:
        try:
            request.settimeout(1.0)
            request.sendall(f"421 {reason}\r\n".encode())
        except OSError:
            pass

    def _release(self, client_address: Any) -> None:
        address = str(client_address[0])
        with self._count_lock:
            self._connections -= 1
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]

    def process_request(self, request: Any, client_address: Any, implicit: bool = False) -> None:
        """Start the session's thread.

        A bare ``_thread`` thread, not ``threading.Thread``: its Thread, Event and
        Condition objects cost about 2 KiB per idle session, a tenth of the memory
        target. Sessions are tracked in ``self.sessions`` for shutdown instead.
        """
        _thread.start_new_thread(self.process_request_thread, (request, client_address, implicit))

    def finish_request(self, request: Any, client_address: Any, implicit: bool = False) -> None:
        """Run one session (what ``BaseRequestHandler.__init__`` does, one C call shallower)."""
        handler = FtpHandler.__new__(FtpHandler)
        handler.request, handler.client_address, handler.server = request, client_address, self
        if implicit:
            handler.implicit = True
        handler.setup()
        try:
            handler.handle()
        finally:
            handler.finish()

    def process_request_thread(
        self, request: Any, client_address: Any, implicit: bool = False
    ) -> None:
        try:
            try:
                self.finish_request(request, client_address, implicit)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
        finally:
            self._release(client_address)

    def rescan_usage(self) -> None:
        """Measure every user's home again (files may have changed while we were down)."""
        try:
            for account, _recorded in self.users.list():
                if self._stop.is_set():
                    return
                try:
                    jail = Jail(account.home)
                except PathRefused:
                    continue  # a missing home: the login will say so
                self.quota.rescan(account.name, account.quota, jail.walk_size)
        except (FtpError, OSError) as exc:
            self.on_helper(log.error, "cannot measure the FTP homes' usage: %s", exc)
        finally:
            self.rescanned.set()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line per failed session (socketserver would print a traceback)."""
        exc = sys.exception()
        self.on_helper(log.error, "FTP session from %s failed: %r", client_address[0], exc)
        self.on_helper(log.debug, "the failed session's error", exc_info=exc)

    @property
    def connections(self) -> int:
        with self._count_lock:
            return self._connections

    # -- starting and stopping ----------------------------------------------------------------

    def start_in_thread(self) -> threading.Thread:
        """Serve in a background thread (tests, the demo); returns once accepting."""
        thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="ftp-server", daemon=True
        )
        thread.start()
        self._serving.wait(5.0)
        return thread

    def shutdown(self, grace: float | None = None) -> None:
        """Stop accepting; let transfers finish for ``grace`` seconds; then close everything."""
        grace = self.settings.shutdown_grace if grace is None else grace
        self._stop.set()
        self._stopped.wait(5.0)
        for listener in self._listeners:
            listener.close()
        if self._rescanner is not None:
            self._rescanner.join(5.0)
        for session in self.sessions.snapshot():
            session.stop(force=False)
        deadline = time.monotonic() + grace
        while len(self.sessions) and time.monotonic() < deadline:
            time.sleep(0.02)
        for session in self.sessions.snapshot():
            session.stop(force=True)
        deadline = time.monotonic() + 5.0
        while (len(self.sessions) or self.connections) and time.monotonic() < deadline:
            time.sleep(0.02)

    def server_close(self) -> None:
        for listener in getattr(self, "_listeners", []):
            listener.close()
        if hasattr(self, "_helpers"):
            self._helpers.close()
        self.transfer_threads.close()
        super().server_close()
