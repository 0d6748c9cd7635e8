"""herd's background processes (the agent, its warm command line, the builtin lab):
putting them out of the way, the lock that says one runs, who talks to them, and
whether the code they run is still the code on disk."""

from __future__ import annotations

import fcntl
import os
import sys
from _socket import SO_PEERCRED, SOL_SOCKET  # not socket.py: its enums cost the CLI 2 ms

TYPE_CHECKING = False  # herd.cli.launch imports this at every start: no typing, no pathlib
if TYPE_CHECKING:
    from _socket import socket
    from pathlib import Path

__all__ = ["CodeStamps", "detach", "hold_pid_lock", "peer_uid"]


def detach(log_file: str) -> None:
    """Leave the caller's session and terminal: stdin from /dev/null, stdout and stderr
    appended to ``log_file`` (created 0600), so Ctrl-C at the caller's terminal and a
    closed terminal never reach the process, and its stray output is kept."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(devnull)
    os.close(log)


def hold_pid_lock(path: Path) -> int | None:
    """Take the lock file ``path`` (0600) and write this process's pid in it; its
    descriptor, held for the process's life, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def peer_uid(sock: socket) -> int:
    """The uid of the process at the other end of unix socket ``sock`` (SO_PEERCRED)."""
    creds = sock.getsockopt(SOL_SOCKET, SO_PEERCRED, 12)  # struct ucred: pid, uid, gid
    return int.from_bytes(creds[4:8], sys.byteorder)


class CodeStamps:
    """The size and modification time of every module file this process has imported,
    to tell when the code on disk is no longer the code it runs (an upgrade, a checkout).

    A module imported after the last look is stamped at the next one.
    """

    def __init__(self) -> None:
        self._stamps: dict[str, tuple[int, int]] = {}
        self._stamp_new()

    def changed(self) -> bool:
        """Whether any file imported so far was changed or removed since it was stamped."""
        self._stamp_new()
        for path, stamp in self._stamps.items():
            try:
                info = os.stat(path)  # noqa: PTH116 - hundreds of files, no pathlib here
            except OSError:
                return True
            if (info.st_size, info.st_mtime_ns) != stamp:
                return True
        return False

    def _stamp_new(self) -> None:
        for module in list(sys.modules.values()):
            path = getattr(module, "__file__", None)
            if isinstance(path, str) and path not in self._stamps:
                try:
                    info = os.stat(path)  # noqa: PTH116 - as above
                except OSError:
                    continue
                self._stamps[path] = (info.st_size, info.st_mtime_ns)
