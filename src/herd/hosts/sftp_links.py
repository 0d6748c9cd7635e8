"""Symbolic links over SFTP, whichever order the server takes SSH_FXP_SYMLINK's arguments in.

The SFTP draft says the link's path comes first, then its target; OpenSSH's
``sftp-server`` (and servers copying it) take them the other way round.
asyncssh guesses which from the SSH banner, so a Dropbear host, whose SFTP is
OpenSSH's ``sftp-server`` behind a banner that does not say OpenSSH, gets its
links made backwards: at the target's name, pointing at the link's.

The server is asked instead: once per SFTP session, a probe link between two
fresh temporary names in the directory a link is going to is made and read
back, which says where the server put it; the probe is removed at once. Its
names go into the caller's set of temporary files first, so a failure or a
lost connection in between leaves them to the same clean-up as any other.
"""

from __future__ import annotations

import posixpath

import asyncssh

from herd.hosts.sftp_ops import TransferFailure, describe, remove_quietly, temp_name

__all__ = ["LinkMaker"]

_PROBE = "herd-link-probe"


async def _link_target(sftp: asyncssh.SFTPClient, path: str) -> str | None:
    """What the link ``path`` points at; None if ``path`` is not a link."""
    try:
        attrs = await sftp.lstat(path)
        if attrs.type != asyncssh.FILEXFER_TYPE_SYMLINK:
            return None
        return str(await sftp.readlink(path))
    except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
        return None


class LinkMaker:
    """Makes links over one SFTP session, in the argument order its server was seen to take."""

    def __init__(self, sftp: asyncssh.SFTPClient, temps: set[str]) -> None:
        self._sftp = sftp
        self._temps = temps  # temporary names on the host the caller removes on failure
        self._swapped: bool | None = None

    async def symlink(self, target: str, path: str) -> None:
        """Make the link ``path`` pointing at ``target`` (raises ``asyncssh.SFTPError``)."""
        if self._swapped is None:
            self._swapped = await self._probe(posixpath.dirname(path) or "/")
        if self._swapped:
            await self._sftp.symlink(path, target)
        else:
            await self._sftp.symlink(target, path)

    async def _probe(self, directory: str) -> bool:
        """Whether the server swaps what asyncssh sends: a probe link made, read back, removed."""
        target = temp_name(posixpath.join(directory, _PROBE))
        link = temp_name(posixpath.join(directory, _PROBE))
        self._temps.update((target, link))
        try:
            await self._sftp.symlink(target, link)  # asks for ``link`` -> ``target``
            if await _link_target(self._sftp, link) == target:
                return False
            if await _link_target(self._sftp, target) == link:
                return True
            raise TransferFailure(
                f"{directory}: cannot tell how the SFTP server makes links (a probe link"
                " was not where it was asked for)"
            )
        except asyncssh.SFTPError as exc:
            raise TransferFailure(f"{directory}: cannot link: {describe(exc)}") from exc
        finally:
            left = await remove_quietly(self._sftp, [target, link])
            self._temps.difference_update({target, link} - set(left))
