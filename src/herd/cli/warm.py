"""The warm command line: one process per agent with herd's command line already imported.

The agent starts it (``herd agent warm``) and it lives as long as the agent
does. It listens on ``cli.sock`` beside the agent's socket (0600, in the user's
0700 runtime directory) and answers only its own uid. Each command a client
(``herd.cli.launch``) hands it gets a fork of this process, which takes the
client's terminal descriptors as 0, 1 and 2, its working directory, umask,
environment, arguments, locale and stdio encodings, and then runs the same
``main()`` the client would have run. Nothing runs before the client says
``go``, so a client that gave up waiting can run the command itself without it
running twice.

This process is single-threaded and never touches an SSH connection: a fork of
it holds nothing another command could use.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import importlib
import io
import marshal
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

from herd.cli.launch import LIMITS, MESSAGE_LIMIT, fingerprint, ids, receive, send
from herd.core.daemon import CodeStamps, hold_pid_lock, peer_uid
from herd.operation.agent_protocol import AgentFiles

__all__ = ["serve"]

# what `herd run`, `push` and `pull` import on their way (asyncssh stays out: the agent has it)
PRELOAD = (
    "herd.cli.run", "herd.cli.transfer", "herd.cli.fleet_options", "herd.cli.targets",
    "herd.cli.operation", "herd.cli.agent", "herd.inventory", "herd.ui.sinks", "herd.ui.render",
    "herd.ui.summary", "herd.ui.jsonlines", "herd.ui.progress", "herd.operation.recorder",
    "herd.operation.agent_client", "herd.operation.driver", "herd.core.audit",
    "herd.core.settings", "herd.core.plain", "herd.core.open_files", "herd.hosts.options",
    "herd.hosts.command", "herd.hosts.become", "herd.cli.gateways", "asyncio", "uvloop",
    "concurrent.futures.thread", "getpass", "locale", "pwd", "resource", "sqlite3",
)  # fmt: skip
_GO_BOUND = 5.0  # seconds a fork waits for the client's go before it gives up
_PR_SET_PDEATHSIG = 1


def serve(files: AgentFiles, agent: int) -> None:
    """Serve commands until the agent (pid ``agent``) is gone; returns at once if another
    warm command line of this user's holds the lock."""
    lock = hold_pid_lock(files.warm_lock)
    if lock is None:
        return
    _die_with_the_agent()
    for name in PRELOAD:
        importlib.import_module(name)
    stamps = CodeStamps()
    gc.freeze()  # what is imported stays out of every fork's collections (and unshared pages)
    path = files.warm_socket
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    old_mask = os.umask(0o177)
    try:
        listener.bind(str(path))
    finally:
        os.umask(old_mask)
    bound = path.stat().st_ino  # removed at the end only if no later process replaced it
    listener.listen(64)
    server = _Server(listener, stamps)
    signal.signal(signal.SIGTERM, _leave)
    try:
        while os.getppid() == agent and not server.stale:
            server.step()
    except SystemExit:
        pass
    finally:
        with contextlib.suppress(OSError):
            if path.stat().st_ino == bound:
                path.unlink()
        listener.close()
        os.close(lock)


def _leave(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _die_with_the_agent() -> None:
    """Have the kernel stop this process when its parent, the agent, ends, however it ends
    (``serve`` also looks at its parent, for an agent gone before this took effect)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class _Server:
    def __init__(self, listener: socket.socket, stamps: CodeStamps) -> None:
        self.listener = listener
        self.stamps = stamps
        # what a client must match: this process's own, the same for every request
        self.fingerprint = fingerprint()
        self.ids = ids()
        self.stale = False
        self.running: dict[int, socket.socket] = {}
        self.wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_write = wake_write
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)

    def step(self) -> None:
        listening = self.listener.fileno()
        ready, _, _ = select.select([listening, self.wake_read], [], [], 1.0)
        if self.wake_read in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_read, 512)
        self._reap()
        if listening in ready:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                conn, _ = self.listener.accept()
                self._take(conn)

    def _reap(self) -> None:
        while self.running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.running.pop(pid, None)
            if conn is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            answer = {"exit": code} if code >= 0 else {"killed": -code}
            with contextlib.suppress(OSError):
                send(conn, answer)
            conn.close()

    def _take(self, conn: socket.socket) -> None:
        fds: list[int] = []
        try:
            conn.settimeout(_GO_BOUND)
            if peer_uid(conn) != os.getuid():
                conn.close()
                return
            data, fds, flags, _ = socket.recv_fds(conn, MESSAGE_LIMIT, 4)
            request = marshal.loads(data)
            why = self._why_not(request, fds, flags)
        except (OSError, ValueError, EOFError, KeyError, TypeError) as exc:
            why = f"bad request: {exc}"
        if why:
            with contextlib.suppress(OSError):
                send(conn, {"decline": why})
            conn.close()
            for fd in fds:
                os.close(fd)
            return
        pid = os.fork()
        if pid == 0:
            self._become_command(conn, request, fds)  # never returns
        self.running[pid] = conn
        for fd in fds:
            os.close(fd)

    def _why_not(self, request: dict[str, Any], fds: list[int], flags: int) -> str | None:
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 4:
            return "the request did not arrive whole"
        if request["fingerprint"] != self.fingerprint:
            return "another interpreter, search path or flags"
        if self.stamps.changed():
            self.stale = True  # herd was changed on disk since this process imported it
            return "herd's files changed"
        if request["ids"] != self.ids:
            return "other user or group ids"
        return None

    def _become_command(self, conn: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
        code = 1
        try:
            self.listener.close()
            for other in self.running.values():
                other.close()
            signal.set_wakeup_fd(-1)
            os.close(self.wake_read)
            os.close(self.wake_write)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            why = _take_limits(request)
            if why:
                send(conn, {"decline": why})
                os._exit(0)
            send(conn, {"pid": os.getpid()})
            if receive(conn).get("go") is not True:
                os._exit(0)
            conn.settimeout(None)
            _take_process(request, fds)
            threading.Thread(target=_hang_up_with_the_client, args=(conn,), daemon=True).start()
            code = _run_command(request["argv"][1:])
        except BaseException:  # the client must hear an exit code whatever happens
            with contextlib.suppress(BaseException):
                import traceback

                traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):
                send(conn, {"exiting": code})
            os._exit(code)


def _take_limits(request: dict[str, Any]) -> str | None:
    """Take the client's resource limits, niceness and CPUs (``nice``, ``taskset``, ulimit);
    why not, if this process may not."""
    import resource

    try:
        if os.getpriority(os.PRIO_PROCESS, 0) != request["niceness"]:
            os.setpriority(os.PRIO_PROCESS, 0, request["niceness"])
        os.sched_setaffinity(0, request["cpus"])
    except OSError:
        return "cannot take the caller's niceness or CPUs"
    limits = request["limits"]
    for name in LIMITS:
        wanted = (int(limits[name][0]), int(limits[name][1]))
        which = getattr(resource, name)
        if resource.getrlimit(which) != wanted:
            try:
                resource.setrlimit(which, wanted)
            except (ValueError, OSError):
                return f"cannot take the caller's {name}"
    return None


def _take_process(request: dict[str, Any], fds: list[int]) -> None:
    """Become the client's process: its descriptors, directory, umask, environment,
    arguments, locale, time zone, stdio encodings and SIGINT."""
    import locale

    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    os.fchdir(fds[3])
    for fd in fds:
        os.close(fd)
    os.umask(request["umask"])
    os.environb.clear()
    for key, value in request["env"].items():
        os.environb[key.encode("latin-1")] = value.encode("latin-1")
    time.tzset()
    with contextlib.suppress(locale.Error):
        locale.setlocale(locale.LC_CTYPE, "")
    sys.executable = request["executable"]
    sys.argv = [os.fsdecode(arg.encode("latin-1")) for arg in request["argv"]]
    sys.stdin, sys.stdout, sys.stderr = (_stream(fd, form) for fd, form in
                                         enumerate(request["streams"]))  # fmt: skip
    sigint = signal.SIG_IGN if request["sigint_ignored"] else signal.default_int_handler
    signal.signal(signal.SIGINT, sigint)


def _stream(fd: int, form: list[Any] | None) -> io.TextIOWrapper:
    """Standard stream ``fd`` as the client's interpreter had it: encoding, errors, buffering."""
    encoding, errors, line_buffering, write_through = form or ("utf-8", "strict", False, False)
    if fd == 0:
        return open(0, encoding=encoding, errors=errors, closefd=False)
    stream = open(fd, "w", encoding=encoding, errors=errors, closefd=False)  # noqa: SIM115
    stream.reconfigure(line_buffering=line_buffering, write_through=write_through)
    return stream


def _hang_up_with_the_client(conn: socket.socket) -> None:
    """The client going away (killed, its terminal closed) is a hangup for this command."""
    with contextlib.suppress(OSError, ValueError, EOFError, TypeError):
        while receive(conn):
            pass
    os.kill(os.getpid(), signal.SIGHUP)


def _run_command(args: list[str]) -> int:
    """``main(args)`` as the console script runs it, then what the interpreter does at
    exit: wait for the threads left (``threading._shutdown``, as ``Py_FinalizeEx``
    does), run the exit handlers, flush the streams."""
    from herd.cli.main import main, stop_on_signals

    stop_on_signals()
    try:
        code = main(args)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # stopping is done: one late Ctrl-C changes nothing
    threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's own: executors, threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    return code
