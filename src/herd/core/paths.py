"""Where herd keeps its files under one home directory.

The home is chosen by the command line (``--home``, then ``$HERD_HOME``, then
the platform data directory); this module only says what lives where inside it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from herd.errors import ConfigError

__all__ = [
    "HerdPaths",
    "expanded",
    "home_from_env",
    "private_dir",
    "private_file",
    "runtime_dir",
    "tighten_file",
]


def home_from_env() -> Path | None:
    """The home named by ``$HERD_HOME``, if it is set."""
    value = os.environ.get("HERD_HOME")
    return Path(value).expanduser() if value else None


@dataclass(frozen=True, slots=True)
class HerdPaths:
    """The files under one herd home."""

    home: Path

    @property
    def audit_db(self) -> Path:
        """The operation log (SQLite)."""
        return self.home / "operations.db"

    @property
    def ftp_users_db(self) -> Path:
        """FTP users, their password hashes, homes, quotas and usage."""
        return self.home / "ftp-users.db"

    @property
    def settings_file(self) -> Path:
        """Optional settings (TOML)."""
        return self.home / "herd.toml"

    @property
    def lab_dir(self) -> Path:
        """The default directory of the lab fleet."""
        return self.home / "lab"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700; an existing one of ours loses group
    and other access. Only ``path`` itself is tightened: its parents may be shared."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    _tighten(path, 0o700)
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists as 0600 (created empty if missing) before anything writes it.

    Created so from the start, not chmod-ed after: a file briefly readable by others
    is a file others may have opened.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
    except FileExistsError:
        tighten_file(path)
    return path


def tighten_file(path: Path) -> None:
    """Make an existing file 0600; nothing if it is not there or gone by now (SQLite removes
    its -wal and -shm files when the last connection closes, in another herd too)."""
    with contextlib.suppress(FileNotFoundError):
        _tighten(path, 0o600)


def _tighten(path: Path, mode: int) -> None:
    """Drop group and other permissions from a file or directory this user owns."""
    info = path.stat()
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        path.chmod(info.st_mode & mode & 0o7777)


def runtime_dir() -> Path:
    """This user's private directory for sockets and small generated files.

    ``$XDG_RUNTIME_DIR/herd`` (a per-user tmpfs), else ``herd-UID`` in the temporary
    directory. One found there must be a real directory of ours, 0700: in a shared
    /tmp another user could have made it first, to read or swap what herd puts in.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    path = Path(base) / "herd" if base else Path(tempfile.gettempdir()) / f"herd-{os.geteuid()}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise ConfigError(f"{path}: not a directory of this user's; remove it") from None
        if info.st_mode & 0o077:
            path.chmod(0o700)
    return path


def expanded(path: str) -> Path:
    """``path`` with a leading ``~`` expanded, as ``Path.expanduser`` does: a fleet's hosts
    name the same few key and known_hosts files, each made a Path once per HOME."""
    return _expanded(path, os.environ.get("HOME"))


@functools.lru_cache(maxsize=64)
def _expanded(path: str, home: str | None) -> Path:  # home: part of the key only
    return Path(path).expanduser()
