"""A pull's writes under ``DEST_DIR/HOST``, none of which ever follows a symbolic link.

What a host sends decides the names written here, so a host must not be able to
steer a write anywhere else: a link that an earlier pull stored (``x/link ->
/root/.ssh``) must not carry the next pull's ``x/link/authorized_keys`` out of
the tree. So every path below the host's directory is reached one name at a
time from an open directory, each opened with ``O_NOFOLLOW`` (openat(2)-style
resolution), and every operation names its last component relative to its
directory (``dir_fd``): nothing there is ever followed.

- a link (or anything else that is not a directory) where a directory is now
  wanted: a link is replaced by the directory, as rsync does (the link was a
  copy of what the host had there before); any other file is an error;
- a file, or a link, lands by a rename over the final name, which replaces
  a link there instead of writing through it;
- names are checked before use: an empty name, ``.``, ``..``, or one holding
  ``/`` or NUL is refused (SFTP names are whatever the host says).

``DEST_DIR`` itself is the operator's choice and may be a link to where they
want the files; the host's directory in it is herd's and must be a real one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from herd.hosts.sftp_ops import temp_name

__all__ = ["LocalTree", "Parts", "RefusedName", "is_plain_name", "remote_parts", "sha256_of"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO under the name must not hang the open (it is no regular file anyway)
_EXISTING_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_HASH_CHUNK = 1024 * 1024

Parts = tuple[str, ...]  # a path below the host's directory, one plain name per component


class RefusedName(ValueError):
    """A name from the host that herd will not write under: it is not one plain name."""


def is_plain_name(name: str) -> bool:
    """Whether ``name`` names one entry of a directory and nothing else."""
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


def remote_parts(remote: str) -> Parts:
    """The names of an absolute, normalised remote path; ``RefusedName`` for anything else."""
    if not remote.startswith("/"):
        raise RefusedName(f"{remote!r}: not an absolute path")
    parts = tuple(remote[1:].split("/")) if remote != "/" else ()
    for name in parts:
        if not is_plain_name(name):
            raise RefusedName(f"{remote!r}: {name!r} is not a plain file name")
    return parts


def _open_dir(parent: int, name: str, *, create: bool, umask: int | None = None) -> int:
    """Open directory ``name`` in ``parent`` without following a link; make it if asked,
    under ``umask`` (the operator's) or else this process's, as mkdir(1) would.

    With ``create``, a link in its place is removed first (never followed).
    """
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:  # a link (Linux says ENOTDIR, BSDs ELOOP) or some other file
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if not (create and stat.S_ISLNK(info.st_mode)):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), name) from None
        os.unlink(name, dir_fd=parent)
    made = False
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o777 if umask is None else 0o700, dir_fd=parent)
        made = True
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
    if made and umask is not None:
        os.fchmod(fd, 0o777 & ~umask)  # opened without following a link: the one just made
    return fd


def make_dirs(path: Path, umask: int | None) -> None:
    """``mkdir -p path`` under ``umask`` (None: this process's); the path is the operator's,
    so links in it are followed as the shell would."""
    if umask is None:
        path.mkdir(parents=True, exist_ok=True)
        return
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
            directory.chmod(0o777 & ~umask)


def sha256_of(fd: int) -> str:
    """The sha256 of what an open file holds from where it stands to its end."""
    digest = hashlib.sha256()
    while chunk := os.read(fd, _HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


class LocalTree:
    """One host's directory under a pull's DEST_DIR, written without following links."""

    def __init__(self, dest_dir: Path, host: str, umask: int | None = None) -> None:
        self.dest_dir = dest_dir
        self.host = host
        self.umask = umask  # the operator's, for the directories made here
        self._root: int | None = None

    def _open_root(self, *, create: bool) -> int:
        """The host's directory (made if asked); a link there is refused, never followed."""
        if self._root is None:
            if not is_plain_name(self.host):
                raise RefusedName(f"{self.host!r}: not a plain directory name")
            if create:
                make_dirs(self.dest_dir, self.umask)  # the operator's: may be a link
            dest = os.open(self.dest_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self._root = _open_dir(dest, self.host, create=False)
            except FileNotFoundError:
                if not create:
                    raise
                self._root = _open_dir(dest, self.host, create=True, umask=self.umask)
            except NotADirectoryError:
                where = self.dest_dir / self.host
                raise NotADirectoryError(
                    f"{where}: not a directory (herd does not follow a link there)"
                ) from None
            finally:
                os.close(dest)
        return self._root

    def close(self) -> None:
        if self._root is not None:
            os.close(self._root)
            self._root = None

    @contextlib.contextmanager
    def directory(self, parts: Sequence[str], *, create: bool) -> Iterator[int]:
        """An open descriptor of directory ``parts``, reached without following a link."""
        fd = os.dup(self._open_root(create=create))
        try:
            for name in parts:
                if not is_plain_name(name):
                    raise RefusedName(f"{name!r}: not a plain file name")
                child = _open_dir(fd, name, create=create, umask=self.umask)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def make_dir(self, parts: Parts) -> None:
        """Make directory ``parts`` and its parents, replacing links in their way."""
        with self.directory(parts, create=True):
            pass

    def finish_dir(self, parts: Parts, mode: int, mtime: int) -> None:
        """Give directory ``parts`` its mode and mtime, if it is (still) a real directory."""
        with self.directory(parts, create=False) as fd:
            os.fchmod(fd, mode)
            os.utime(fd, (mtime, mtime))

    def new_temp(self, parts: Parts) -> tuple[int, str]:
        """A new temporary file beside ``parts``, open for writing, and its name."""
        with self.directory(parts[:-1], create=True) as directory:
            temp = temp_name(parts[-1])
            return os.open(temp, _NEW_FILE_FLAGS, 0o600, dir_fd=directory), temp

    def land(self, parts: Parts, temp: str) -> None:
        """Rename ``temp`` over ``parts``: a link under that name is replaced, not followed."""
        with self.directory(parts[:-1], create=False) as directory:
            os.replace(temp, parts[-1], src_dir_fd=directory, dst_dir_fd=directory)

    def discard(self, parts: Parts, temp: str) -> None:
        """Remove temporary file ``temp`` beside ``parts``, if it is there."""
        with (
            contextlib.suppress(OSError, RefusedName),
            self.directory(parts[:-1], create=False) as directory,
        ):
            os.unlink(temp, dir_fd=directory)

    def open_if_size(self, parts: Parts, size: int) -> int | None:
        """A descriptor of ``parts`` if it is a regular file of ``size`` bytes, else None."""
        try:
            with self.directory(parts[:-1], create=False) as directory:
                fd = os.open(parts[-1], _EXISTING_FILE_FLAGS, dir_fd=directory)
        except (OSError, RefusedName):
            return None  # missing, a link, or under one: not here
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size == size:
            return fd
        os.close(fd)
        return None

    def place_link(self, parts: Parts, target: str) -> bool:
        """Make ``parts`` a link to ``target``; False if it already was exactly that link."""
        with self.directory(parts[:-1], create=True) as directory:
            with contextlib.suppress(OSError):
                if os.readlink(parts[-1], dir_fd=directory) == target:
                    return False
            temp = temp_name(parts[-1])
            os.symlink(target, temp, dir_fd=directory)
            try:
                os.replace(temp, parts[-1], src_dir_fd=directory, dst_dir_fd=directory)
            except OSError:
                os.unlink(temp, dir_fd=directory)
                raise
        return True
