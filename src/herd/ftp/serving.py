"""What a session needs of the server, and the shared state behind it.

The session and its transfers reach the server through ``SessionServer``, a
protocol the ``FtpServer`` satisfies, so the session does not import the
server that imports it. The state here is shared by every session: the failed
logins, the live sessions, the pool of transfer threads.
"""

from __future__ import annotations

import _thread
import abc
import itertools
import queue
import socketserver
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from herd.ftp.events import EventSink
from herd.ftp.jail import Jail
from herd.ftp.quota import QuotaBook
from herd.ftp.settings import FtpSettings
from herd.ftp.tls import ServerTls
from herd.ftp.users import FtpUser

__all__ = ["LoginGuard", "SessionServer", "Sessions", "TransferThreads", "UserAuthority"]

T = TypeVar("T")
S = TypeVar("S")


class UserAuthority(Protocol):
    """What the server needs from the users database (``herd.ftp.users.UserStore``)."""

    def authenticate(self, name: str, password: str) -> FtpUser | None: ...

    def get(self, name: str) -> FtpUser | None: ...

    def usage(self, name: str) -> int | None: ...

    def set_usage(self, name: str, used: int) -> None: ...

    def requires_tls(self, name: str) -> bool: ...

    def list(self) -> list[tuple[FtpUser, int]]: ...


class LoginGuard:
    """Counts failed logins per address; too many within the window lock the address out."""

    def __init__(
        self, failures: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = failures
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def locked_out(self, address: str) -> bool:
        with self._lock:
            until = self._locked_until.get(address)
            if until is None:
                return False
            if until > self._clock():
                return True
            del self._locked_until[address]
            return False

    def failed(self, address: str) -> None:
        now = self._clock()
        with self._lock:
            recent = self._failures.setdefault(address, deque())
            recent.append(now)
            while recent and recent[0] < now - self._window:
                recent.popleft()
            if len(recent) >= self._limit:
                self._locked_until[address] = now + self._window
                del self._failures[address]
            if len(self._failures) > 10_000:  # keep the table bounded under a spray of addresses
                stale = [a for a, q in self._failures.items() if q[-1] < now - self._window]
                for gone in stale:
                    del self._failures[gone]


class Sessions(Generic[S]):
    """The live sessions, for shutdown and for the tests' leak checks."""

    def __init__(self) -> None:
        self._items: set[S] = set()
        self._lock = threading.Lock()

    def add(self, session: S) -> None:
        with self._lock:
            self._items.add(session)

    def discard(self, session: S) -> None:
        with self._lock:
            self._items.discard(session)

    def snapshot(self) -> list[S]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class TransferThreads:
    """Bare threads that run transfers, kept a few seconds after one ends for the next.

    Starting a thread costs tens of microseconds and a session of a LIST and a
    RETR needs two; an idle one waits here instead (at most ``keep`` of them,
    each for ``idle`` seconds). Invariant: threads waiting = ``_idle`` + jobs queued.
    """

    def __init__(self, keep: int = 16, idle: float = 5.0) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = _thread.allocate_lock()
        self._idle = 0
        self._keep = keep
        self._idle_seconds = idle

    def start(self, step: Callable[..., None], *args: Any) -> None:
        """Run ``step(*args)`` in a thread of its own (RuntimeError if none can start)."""
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._jobs.put((step, args))
                return
        _thread.start_new_thread(self._run, (step, args))

    def _run(self, step: Callable[..., None], args: tuple[Any, ...]) -> None:
        while True:
            step(*args)
            with self._lock:
                if self._idle >= self._keep:
                    return
                self._idle += 1
            try:
                job = self._jobs.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle:  # nobody was promised this thread: it may go
                        self._idle -= 1
                        return
                job = self._jobs.get()  # a job was queued for a waiting thread
            if job is None:  # closed: this waiting thread ends now
                return
            step, args = job

    def close(self) -> None:
        """End the waiting threads now (the server is closing): none is left behind."""
        with self._lock:
            waiting, self._idle, self._keep = self._idle, 0, 0
        for _ in range(waiting):
            self._jobs.put(None)


class SessionServer(socketserver.BaseServer, metaclass=abc.ABCMeta):
    """The server as a session sees it; ``herd.ftp.server.FtpServer`` is the one there is."""

    settings: FtpSettings
    tls: ServerTls | None
    users: UserAuthority
    events: EventSink
    quota: QuotaBook
    logins: LoginGuard
    sessions: Sessions[Any]
    transfer_threads: TransferThreads
    session_numbers: itertools.count[int]

    @abc.abstractmethod
    def on_helper(self, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``step`` on a real thread of the server's and return what it returned."""

    @abc.abstractmethod
    def known_user(self, user: FtpUser) -> FtpUser:
        """``user`` as the users database knows them now (locked, quota changed)."""

    @abc.abstractmethod
    def jail_for(self, user: FtpUser) -> Jail:
        """The jail of ``user``'s home, shared by their sessions."""
