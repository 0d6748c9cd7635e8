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
from typing import Protocol

import asyncssh

from herd.hosts.local_tree import is_plain_name

__all__ = ["GLOB_CHARS", "Lister", "SFTPLister", "expand_glob", "is_glob"]

GLOB_CHARS = frozenset("*?[")
_UNLISTABLE = (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath, asyncssh.SFTPPermissionDenied)


def is_glob(text: str) -> bool:
    return bool(GLOB_CHARS.intersection(text))


def _matches(name: str, pattern: str) -> bool:
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatchcase(name, pattern)


class Lister(Protocol):
    """What a glob needs of the host's files (over SFTP, or over commands without it)."""

    async def is_dir(self, path: str) -> bool:
        """Whether ``path`` is a directory; a link to one leads on, as in the shell."""

    async def exists(self, path: str) -> bool:
        """Whether anything (a dangling link too) is at ``path``."""

    async def names(self, directory: str) -> list[str] | None:
        """The names in ``directory``; None if it cannot be listed."""


class SFTPLister:
    """A glob's view of the host over SFTP."""

    def __init__(self, sftp: asyncssh.SFTPClient) -> None:
        self._sftp = sftp

    async def is_dir(self, path: str) -> bool:
        try:
            attrs = await self._sftp.stat(path)
        except _UNLISTABLE:
            return False
        return attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY

    async def exists(self, path: str) -> bool:
        try:
            await self._sftp.lstat(path)
        except _UNLISTABLE:
            return False
        return True

    async def names(self, directory: str) -> list[str] | None:
        try:
            return [str(entry.filename) async for entry in self._sftp.scandir(directory)]
        except _UNLISTABLE:
            return None


async def expand_glob(host: Lister, pattern: str) -> list[str]:
    """The paths on the host that absolute ``pattern`` matches, sorted; [] if none."""
    parts = [part for part in pattern.split("/") if part]
    found = ["/"]
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        following: list[str] = []
        for directory in found:
            if not is_glob(part):
                path = posixpath.join(directory, part)
                if await (host.exists(path) if last else host.is_dir(path)):
                    following.append(path)
                continue
            names = await host.names(directory)
            for name in sorted(names or []):
                if not is_plain_name(name) or not _matches(name, part):
                    continue
                path = posixpath.join(directory, name)
                if last or await host.is_dir(path):
                    following.append(path)
        found = following
        if not found:
            break
    return found if parts else []
