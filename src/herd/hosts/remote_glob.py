"""Expand a pull's glob over the host's directory listings, matched here, as the shell matches.

``*``, ``?`` and ``[...]`` match within one path component; a name starting
with ``.`` is matched only by a component that starts with ``.`` too, as in
``sh``. A backslash is an ordinary character, in the pattern and in names (a
file name may hold one: it must not fail the whole host, as asyncssh's own
glob does). Names the host lists are whatever it says: only plain names are
taken. A directory that cannot be listed matches nothing, as in the shell.
"""

from __future__ import annotations

import posixpath
from fnmatch import fnmatchcase

import asyncssh

from herd.hosts.local_tree import is_plain_name

__all__ = ["GLOB_CHARS", "expand_glob", "is_glob"]

GLOB_CHARS = frozenset("*?[")
_UNLISTABLE = (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath, asyncssh.SFTPPermissionDenied)


def is_glob(text: str) -> bool:
    return bool(GLOB_CHARS.intersection(text))


def _matches(name: str, pattern: str) -> bool:
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatchcase(name, pattern)


async def _is_dir(sftp: asyncssh.SFTPClient, path: str) -> bool:
    try:
        attrs = await sftp.stat(path)  # a link to a directory leads on, as in the shell
    except _UNLISTABLE:
        return False
    return attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY


async def _exists(sftp: asyncssh.SFTPClient, path: str) -> bool:
    try:
        await sftp.lstat(path)
    except _UNLISTABLE:
        return False
    return True


async def expand_glob(sftp: asyncssh.SFTPClient, pattern: str) -> list[str]:
    """The paths on the host that absolute ``pattern`` matches, sorted; [] if none."""
    parts = [part for part in pattern.split("/") if part]
    found = ["/"]
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        following: list[str] = []
        for directory in found:
            if not is_glob(part):
                path = posixpath.join(directory, part)
                if await (_exists(sftp, path) if last else _is_dir(sftp, path)):
                    following.append(path)
                continue
            try:
                names = [str(entry.filename) async for entry in sftp.scandir(directory)]
            except _UNLISTABLE:
                continue
            for name in sorted(names):
                if not is_plain_name(name) or not _matches(name, part):
                    continue
                path = posixpath.join(directory, name)
                if last or await _is_dir(sftp, path):
                    following.append(path)
        found = following
        if not found:
            break
    return found if parts else []
