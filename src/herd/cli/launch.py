"""The ``herd`` command's first step: hand the command to the agent's warm command line.

Python needs about 150 ms to import herd's command line (click, the inventory,
the renderers, the operation log) before a run can start, more than a warm run
on its kept connections takes. When the agent runs, it keeps one process with
all of that imported (``herd.cli.warm``); for ``run``, ``push`` and ``pull``
this module, which imports nothing but the standard library's basics, passes
that process the command: the arguments, the environment, the working
directory, the umask and the terminal's file descriptors themselves (SCM_RIGHTS).
The warm process forks a copy that runs the command exactly as this process
would have, writing to the same terminal; this one forwards Ctrl-C, SIGTERM and
SIGHUP to it and exits with its exit code.

Anything unusual takes the ordinary path, in this process: no agent, a
directory or socket that is not this user's, another interpreter, search path
or Python flags, changed source files, other groups, or limits, niceness or CPUs
the fork may not take, stdin elsewhere than a controlling terminal, ``--no-agent``,
or any other command.
"""

from __future__ import annotations

import _socket as socket  # socket.py and signal.py make enums of their constants: 3 ms
import marshal
import os
import sys

from herd.core.daemon import peer_uid

TYPE_CHECKING = False  # typing itself costs 3 ms of a warm run's 60
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable, Sequence
    from typing import Any
else:
    import _signal as signal  # signal.py's functions and constants, without the enums

__all__ = [
    "WARM_COMMANDS",
    "command_of",
    "current_umask",
    "fingerprint",
    "hand_over",
    "ids",
    "receive",
    "run",
    "send",
]

WARM_COMMANDS = frozenset({"run", "push", "pull"})
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGWINCH,
             signal.SIGCONT)  # fmt: skip
LIMITS = ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_CORE", "RLIMIT_FSIZE", "RLIMIT_AS",
          "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CPU", "RLIMIT_MEMLOCK")  # fmt: skip
MESSAGE_LIMIT = 1 << 20  # the request (arguments and environment) travels in one datagram
_ANSWER_BOUND = 5.0  # seconds the warm process has to take or decline a command

_GLOBAL_WITH_VALUE = ("-i", "--inventory", "--home")  # herd.cli.main's global options


def command_of(args: Sequence[str]) -> str | None:
    """The subcommand ``args`` name after herd's global options, or None (help, version,
    an option this scan does not know: the full command line decides those)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _GLOBAL_WITH_VALUE:
            skip = True
        elif arg == "--debug" or arg.startswith(("--inventory=", "--home=", "-i")):
            continue  # "-i" alone took the branch above: this is "-iFILE"
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def fingerprint() -> dict[str, Any]:
    """What must be the same in the warm process for a command to mean the same there:
    the interpreter, where imports come from (all but the script's own directory), the
    flags and ``-X`` options, the file system encoding, and herd's own files."""
    import herd

    return {
        "interpreter": [os.path.realpath(sys.executable), sys.prefix],
        "path": sys.path[1:],
        "flags": list(sys.flags),
        "xoptions": sorted(f"{k}={v}" for k, v in sys._xoptions.items()),
        "fs": [sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()],
        "herd": herd.__file__,
    }


def ids() -> list[Any]:
    """The user and group ids the warm process and its client must share."""
    return [os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups())]


def current_umask() -> int:
    """This process's umask (reading it means setting it: it is set back at once)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def warm_socket() -> str | None:
    """The warm command line's socket, if this user's runtime directory is in place
    (a real directory of ours, 0700; see ``herd.core.paths.runtime_dir``)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base:
        directory = f"{base}/herd"
    else:
        import tempfile

        directory = f"{tempfile.gettempdir()}/herd-{os.geteuid()}"
    try:
        info = os.lstat(directory)
    except OSError:
        return None
    if info.st_uid != os.geteuid() or (info.st_mode & 0o170777) != 0o040700:
        return None
    return f"{directory}/cli.sock"  # AgentFiles.warm_socket (pathlib would cost 3 ms)


def _request(args: Sequence[str]) -> dict[str, Any]:
    import resource

    streams = [sys.stdin, sys.stdout, sys.stderr]
    return {
        "argv": [os.fsencode(a).decode("latin-1") for a in ["herd", *args]],
        "env": {k.decode("latin-1"): v.decode("latin-1") for k, v in os.environb.items()},
        "umask": current_umask(),
        "streams": [
            [s.encoding, s.errors, s.line_buffering, getattr(s, "write_through", False)]
            if s
            else None
            for s in streams
        ],
        "sigint_ignored": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
        "limits": {name: resource.getrlimit(getattr(resource, name)) for name in LIMITS},
        "niceness": os.getpriority(os.PRIO_PROCESS, 0),
        "cpus": sorted(os.sched_getaffinity(0)),
        "executable": sys.executable,
        "ids": ids(),
        "fingerprint": fingerprint(),
    }


# requests and answers are marshal-ed dicts: both ends are the same interpreter (the
# fingerprint says so) and the peer is this user (SO_PEERCRED)


def send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """One message, with ``fds`` passed along (SCM_RIGHTS)."""
    rights = b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds)
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)] if fds else []
    sock.sendmsg([marshal.dumps(message)], ancillary)


def receive(sock: socket.socket) -> dict[str, Any]:
    """One message; empty when the peer is gone."""
    data = sock.recv(MESSAGE_LIMIT)
    if not data:
        return {}
    answer = marshal.loads(data)
    if not isinstance(answer, dict):
        raise TypeError("not a message")
    return answer


def hand_over(args: Sequence[str]) -> int | None:
    """Run ``args`` in the agent's warm command line and return its exit code; None when
    it is not to be had or declines (nothing has run: the caller runs the command)."""
    path = warm_socket()
    if path is None or _asks_elsewhere():
        return None
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
        here = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    before: dict[int, Any] = {}
    process: int | None = None
    try:
        process = _offer(sock, path, args, here)
        if process is not None:
            before = _forward_signals(process)  # before the go: no signal falls in between
            send(sock, {"go": True})  # from here on the command runs there, and only there
    except (OSError, ValueError, EOFError, TypeError):
        if process is not None:
            os.close(process)
        process = None
    finally:
        os.close(here)
    if process is None:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        sock.close()
        return None
    return _follow(sock)


def _asks_elsewhere() -> bool:
    """Whether a password prompt would go to a terminal other than stdin: the controlling
    one (``/dev/tty``), which the warm process, in the agent's session, cannot open."""
    if os.isatty(0):
        return False
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC))
    except OSError:
        return False  # no terminal at all (cron, CI, a script): both read stdin
    return True


def _offer(sock: socket.socket, path: str, args: Sequence[str], here: int) -> int | None:
    """Offer the command to the warm command line at ``path``: a pidfd of the process that
    took it (it waits for the go), or None if it declined (nothing ran)."""
    sock.settimeout(_ANSWER_BOUND)
    sock.connect(path)
    if peer_uid(sock) != os.geteuid():
        return None  # not this user's: it gets nothing
    send(sock, _request(args), [0, 1, 2, here])
    taken = receive(sock)
    if "pid" not in taken:
        return None
    # signals go by pidfd: to that process, never to a pid reused after it ended
    return os.pidfd_open(int(taken["pid"]))


def _forward_signals(process: int) -> dict[int, Any]:
    """Pass the signals a terminal or a supervisor gives this process on to the command's
    (pidfd ``process``), those not ignored here; Ctrl-Z stops both and ``fg`` or ``bg``
    continues both. The handlers the signals had."""

    def forward(signum: int, _frame: object) -> None:
        try:
            signal.pidfd_send_signal(process, signum)
        except ProcessLookupError:
            return  # it has ended: its exit code is on the way

    def pause(_signum: int, _frame: object) -> None:
        forward(signal.SIGSTOP, None)
        signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTSTP)  # stopped here until continued
        signal.signal(signal.SIGTSTP, pause)

    before: dict[int, Any] = {}
    handlers: list[tuple[int, Callable[[int, Any], None]]] = [(s, forward) for s in FORWARDED]
    handlers.append((signal.SIGTSTP, pause))
    for signum, handler in handlers:
        if signal.getsignal(signum) != signal.SIG_IGN:
            before[signum] = signal.signal(signum, handler)
    return before


def _follow(sock: socket.socket) -> int:
    """Wait for the command's process to exit; its exit code."""
    sock.settimeout(None)
    said: int | None = None
    while True:
        try:
            answer = receive(sock)
        except (OSError, ValueError, EOFError, TypeError):
            answer = {}
        if not answer:
            break
        if "exit" in answer:
            return int(answer["exit"])
        if "killed" in answer:
            why = signal.strsignal(int(answer["killed"]))
            print(f"herd: error: the command's process was killed ({why})", file=sys.stderr)
            return 128 + int(answer["killed"])
        if "exiting" in answer:
            said = int(answer["exiting"])
    if said is not None:
        return said  # the warm command line is gone: the process said its code itself
    print("herd: error: the agent's command process ended without an exit code", file=sys.stderr)
    return 1


def run() -> None:
    """The `herd` command (bin/herd): the warm command line when it serves, else this one."""
    args = sys.argv[1:]
    if command_of(args) in WARM_COMMANDS and "--no-agent" not in args:
        code = hand_over(args)
        if code is not None:
            sys.exit(code)
    from herd.cli.main import run as run_here

    run_here()
