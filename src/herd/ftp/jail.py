# The jail compares resolved str paths by prefix; os.path says that more plainly than pathlib.
# ruff: noqa: PTH105, PTH112, PTH114, PTH116, PTH118, PTH119, PTH120
"""The jailed filesystem: a user's virtual paths mapped onto their home, and nothing else.

Every path a client sends goes through ``Jail``. The rules:

- Paths are virtual and absolute from the home: ``/`` is the home; a relative
  path is taken from the session's current directory; ``..`` above ``/`` stays
  at ``/`` (as in a chroot).
- A name with NUL, a control character, bytes that were not UTF-8 (decoded as
  lone surrogates by the handler), more than 255 bytes, or a path of more than
  4096 bytes is refused with 553 before anything is touched.
- Symlinks are followed only when what they resolve to (``os.path.realpath``)
  is still inside the home; otherwise the path is refused with 550. Files are
  opened with ``O_NOFOLLOW`` on the resolved path, so a link swapped in after
  the check is refused too. Operations on a name itself (delete, rename, rmdir)
  resolve only its parent and never follow the final component.
- Listings leave out entries that resolve outside the home or nowhere.
"""

from __future__ import annotations

import os
import posixpath
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAX_NAME_BYTES", "MAX_PATH_BYTES", "Entry", "Jail", "PathRefused"]

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
_TEMP_PREFIX = ".herd-upload-"


class PathRefused(Exception):
    """A path the jail will not serve, and why; ``bad_name`` when the name itself is refused.

    A filesystem error, not a reply: the session says 553 for a refused name and
    550 for the rest (RFC 959).
    """

    def __init__(self, message: str, *, bad_name: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.bad_name = bad_name


@dataclass(frozen=True, slots=True)
class Entry:
    """One directory entry as a listing shows it (symlinks inside the home are followed)."""

    name: str
    stat: os.stat_result


def _bad_char(name: str) -> bool:
    return any(
        ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF  # control, lone surrogate
        for c in name
    )


class Jail:
    """A user's home seen as ``/``; every file operation of a session goes through here."""

    def __init__(self, home: Path) -> None:
        self.root = os.path.realpath(home)
        if not os.path.isdir(self.root):
            raise PathRefused("home directory is missing")

    # -- mapping -------------------------------------------------------------------

    def normalize(self, cwd: str, path: str) -> str:
        """The absolute virtual path ``path`` names from ``cwd``; refuses unsafe names (553)."""
        if not path:
            return cwd
        if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
            raise PathRefused("path too long", bad_name=True)
        if _bad_char(path):
            raise PathRefused(
                "file name not allowed (control characters or not UTF-8)", bad_name=True
            )
        joined = posixpath.join(cwd, path)
        parts: list[str] = []
        for part in joined.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            if len(part.encode("utf-8")) > MAX_NAME_BYTES:
                raise PathRefused("file name too long", bad_name=True)
            parts.append(part)
        return "/" + "/".join(parts)

    def _host(self, vpath: str) -> str:
        return os.path.join(self.root, vpath.lstrip("/")) if vpath != "/" else self.root

    def _inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self.root + os.sep)

    def real(self, vpath: str, *, follow: bool = True) -> str:
        """The host path of ``vpath``, checked to resolve inside the home (else 550)."""
        if vpath == "/":
            return self.root
        host = self._host(vpath)
        if follow:  # realpath resolves the parent on its way: one pass, not two
            resolved = os.path.realpath(host)
            if not self._inside(resolved):
                raise PathRefused(f"{vpath}: no such file or directory")
            return resolved
        parent = os.path.realpath(os.path.dirname(host))
        if not self._inside(parent):
            raise PathRefused(f"{vpath}: no such file or directory")
        return os.path.join(parent, os.path.basename(host))

    def virtual(self, real: str) -> str:
        """The virtual path of a host path inside the home."""
        rel = os.path.relpath(real, self.root)
        return "/" if rel == "." else "/" + rel.replace(os.sep, "/")

    # -- looking -------------------------------------------------------------------

    def stat(self, vpath: str) -> os.stat_result:
        try:
            return os.stat(self.real(vpath))
        except OSError as exc:
            raise PathRefused(f"{vpath}: {exc.strerror or 'cannot stat'}") from None

    def is_dir(self, vpath: str) -> bool:
        try:
            return stat.S_ISDIR(self.stat(vpath).st_mode)
        except PathRefused:
            return False

    def exists(self, vpath: str) -> bool:
        try:
            return os.path.lexists(self.real(vpath, follow=False))
        except PathRefused:
            return False

    def entries(self, vpath: str, limit: int) -> list[Entry]:
        """The entries of directory ``vpath`` (up to ``limit``), sorted by name."""
        real = self.real(vpath)
        found: list[Entry] = []
        try:
            with os.scandir(real) as scan:
                for item in scan:
                    entry = self._entry(item)
                    if entry is not None:
                        found.append(entry)
                        if len(found) >= limit:
                            break
        except NotADirectoryError:
            raise PathRefused(f"{vpath}: not a directory") from None
        except OSError as exc:
            raise PathRefused(f"{vpath}: {exc.strerror or 'cannot list'}") from None
        found.sort(key=lambda e: e.name)
        return found

    def _entry(self, item: os.DirEntry[str]) -> Entry | None:
        try:
            if item.is_symlink():
                resolved = os.path.realpath(item.path)
                if not self._inside(resolved):
                    return None
                return Entry(item.name, os.stat(resolved))
            return Entry(item.name, item.stat(follow_symlinks=False))
        except OSError:
            return None

    def walk_size(self) -> int:
        """Bytes of the regular files under the home (symlinks not followed)."""
        total = 0
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                try:
                    info = os.lstat(os.path.join(directory, name))
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
        return total

    # -- opening files ---------------------------------------------------------------

    def open_read(self, vpath: str) -> int:
        """A file descriptor to read the regular file ``vpath``."""
        return self._open(vpath, self.real(vpath), os.O_RDONLY)

    def open_write(self, vpath: str, *, create: bool = True) -> int:
        """A descriptor to write into ``vpath`` in place (APPE, REST+STOR), created if missing."""
        flags = os.O_RDWR | (os.O_CREAT if create else 0)  # read: the hash reads back
        return self._open(vpath, self.real(vpath), flags)

    def _open(self, vpath: str, real: str, flags: int) -> int:
        flags |= os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # no FIFO may block us
        try:
            fd = os.open(real, flags, 0o644)
        except OSError as exc:
            raise PathRefused(f"{vpath}: {exc.strerror or 'cannot open'}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise PathRefused(f"{vpath}: not a regular file")
        os.set_blocking(fd, True)
        return fd

    def create_temp(self, vpath: str) -> tuple[int, str, str]:
        """A new temporary file beside ``vpath``: (descriptor, temp path, final path)."""
        final = self.real(vpath, follow=False)
        if os.path.isdir(final):
            raise PathRefused(f"{vpath}: is a directory")
        try:
            fd, temp = tempfile.mkstemp(
                prefix=_TEMP_PREFIX, suffix=".part", dir=os.path.dirname(final)
            )
        except OSError as exc:
            raise PathRefused(f"{vpath}: {exc.strerror or 'cannot create'}") from None
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; an uploaded file reads like any other
        return fd, temp, final

    def create_unique(self, vpath: str) -> tuple[int, str]:
        """A new file named ``vpath``, or ``vpath.1``, ``vpath.2``...: (descriptor, its vpath)."""
        base = self.real(vpath, follow=False)
        for n in range(10_000):
            candidate = base if n == 0 else f"{base}.{n}"
            try:
                fd = os.open(candidate, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                continue
            except OSError as exc:
                raise PathRefused(f"{vpath}: {exc.strerror or 'cannot create'}") from None
            return fd, self.virtual(candidate)
        raise PathRefused(f"{vpath}: no unique name left")

    # -- changing the tree -------------------------------------------------------------

    def replace(self, temp: str, final: str) -> int:
        """Move a finished upload into place; returns the size of the file it replaced."""
        replaced = _regular_size(final)
        os.replace(temp, final)
        return replaced

    def mkdir(self, vpath: str) -> None:
        real = self.real(vpath, follow=False)
        self._change(vpath, os.mkdir, real, 0o755)

    def rmdir(self, vpath: str) -> None:
        if vpath == "/":
            raise PathRefused("/: cannot remove the home directory")
        self._change(vpath, os.rmdir, self.real(vpath, follow=False))

    def remove(self, vpath: str) -> int:
        """Delete the file (or symlink) ``vpath``; returns the bytes it freed."""
        real = self.real(vpath, follow=False)
        if os.path.isdir(real) and not os.path.islink(real):
            raise PathRefused(f"{vpath}: is a directory")
        freed = _regular_size(real)
        self._change(vpath, os.unlink, real)
        return freed

    def rename(self, source: str, target: str) -> int:
        """Rename within the home; returns the bytes of a file the target replaced."""
        if "/" in (source, target):
            raise PathRefused("/: cannot rename the home directory")
        real_source = self.real(source, follow=False)
        real_target = self.real(target, follow=False)
        if not os.path.lexists(real_source):
            raise PathRefused(f"{source}: no such file or directory")
        replaced = _regular_size(real_target)
        self._change(source, os.rename, real_source, real_target)
        return replaced

    def set_mtime(self, vpath: str, when: float) -> None:
        real = self.real(vpath)
        self._change(vpath, os.utime, real, (when, when), follow_symlinks=False)

    @staticmethod
    def _change(vpath: str, action: object, *args: object, **kwargs: object) -> None:
        assert callable(action)
        try:
            action(*args, **kwargs)
        except OSError as exc:
            raise PathRefused(f"{vpath}: {exc.strerror or 'refused'}") from None


def _regular_size(real: str) -> int:
    try:
        info = os.lstat(real)
    except OSError:
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0
