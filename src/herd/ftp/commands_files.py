"""Commands on the tree and on single files: PWD CWD CDUP MKD RMD DELE RNFR RNTO, SIZE MDTM
MFMT MLST, and the checksums HASH (draft-bryan-ftpext-hash), XMD5, XSHA1, XSHA256.

Every path goes through the session's ``Jail``; every change to the tree is
emitted as an event for the operation log.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time

from herd.ftp.events import FileEvent, RenameEvent
from herd.ftp.jail import PathRefused
from herd.ftp.listing import facts_line, mdtm, parse_mdtm
from herd.ftp.replies import FtpReply
from herd.ftp.session import Session

__all__ = ["ASCII_SIZE_LIMIT", "FileCommands", "ascii_transfer_size", "file_digest"]

_HASHES = {"SHA-256": "sha256", "SHA-1": "sha1", "MD5": "md5"}
_CHUNK = 1024 * 1024
ASCII_SIZE_LIMIT = 64 * 1024 * 1024  # SIZE in TYPE A reads the file: up to this size


def _quoted(path: str) -> str:
    """RFC 959 quoting of a path in a 257 reply: inner quotes doubled."""
    return '"' + path.replace('"', '""') + '"'


def ascii_transfer_size(fd: int) -> int:
    """The octets a TYPE A RETR of the open file sends: each bare LF becomes CRLF."""
    total = 0
    previous = b""
    with os.fdopen(fd, "rb", buffering=0) as file:
        while chunk := file.read(_CHUNK):
            bare = chunk.count(b"\n") - chunk.count(b"\r\n")
            if previous == b"\r" and chunk.startswith(b"\n"):
                bare -= 1  # that LF ends a CRLF split across two reads
            total += len(chunk) + bare
            previous = chunk[-1:]
    return total


def file_digest(fd: int, algorithm: str) -> tuple[str, int]:
    """(hex digest, size) of an open file, read in 1 MiB chunks (hashlib drops the GIL)."""
    digest = hashlib.new(algorithm)
    size = 0
    with os.fdopen(fd, "rb", buffering=0) as file:
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        while n := file.readinto(buffer):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


class FileCommands(Session):
    """Directory and file commands other than transfers."""

    # -- directories -----------------------------------------------------------------------

    def cmd_PWD(self, arg: str) -> None:
        self.reply(257, f"{_quoted(self.cwd)} is the current directory.")

    cmd_XPWD = cmd_PWD

    def cmd_CWD(self, arg: str) -> None:
        assert self.jail is not None
        target = self.path(arg)
        if not stat.S_ISDIR(self.jail.stat(target).st_mode):
            raise FtpReply(550, f"{target}: not a directory.")
        self.cwd = target
        self.reply(250, f"Directory changed to {target}.")

    cmd_XCWD = cmd_CWD

    def cmd_CDUP(self, arg: str) -> None:
        self.cmd_CWD("..")

    cmd_XCUP = cmd_CDUP

    def cmd_MKD(self, arg: str) -> None:
        self.need("mkdir")
        target = self.path(arg)
        assert self.jail is not None
        self._changed("MKD", target, self.jail.mkdir)
        self.reply(257, f"{_quoted(target)} created.")

    cmd_XMKD = cmd_MKD

    def cmd_RMD(self, arg: str) -> None:
        self.need("rmdir")
        target = self.path(arg)
        assert self.jail is not None
        self._changed("RMD", target, self.jail.rmdir)
        self.reply(250, f"{target} removed.")

    cmd_XRMD = cmd_RMD

    def cmd_DELE(self, arg: str) -> None:
        self.need("delete")
        target = self.path(arg)
        assert self.jail is not None
        freed = self._changed("DELE", target, self.jail.remove)
        self._credit(freed)
        self.reply(250, f"{target} deleted.")

    def _changed(self, verb: str, target: str, action: object) -> int:
        """Run a tree change and emit its event, ok or refused; returns what it returned."""
        assert callable(action)
        started = time.time()
        try:
            result = action(target)
        except PathRefused as refused:
            self.report(
                FileEvent, verb=verb, path=target, ok=False, error=refused.message, started=started
            )
            raise
        self.report(
            FileEvent, verb=verb, path=target, started=started, duration=time.time() - started
        )
        return result if isinstance(result, int) else 0

    def _credit(self, freed: int) -> None:
        if self.account is not None and freed:
            self.account.credit(freed)
            self.account.persist()

    def cmd_RNFR(self, arg: str) -> None:
        self.need("rename")
        source = self.path(arg)
        assert self.jail is not None
        if not self.jail.exists(source):
            raise FtpReply(550, f"{source}: no such file or directory.")
        self.rename_from = source
        self.reply(350, "Ready for RNTO.")

    def cmd_RNTO(self, arg: str) -> None:
        source = self.rename_from
        if source is None:
            raise FtpReply(503, "RNFR first.")
        self.need("rename")
        target = self.path(arg)
        assert self.jail is not None
        started = time.time()
        try:
            replaced = self.jail.rename(source, target)
        except PathRefused as refused:
            self.report(
                RenameEvent,
                source=source,
                target=target,
                ok=False,
                error=refused.message,
                started=started,
            )
            raise
        self.report(
            RenameEvent,
            source=source,
            target=target,
            started=started,
            duration=time.time() - started,
        )
        self._credit(replaced)
        self.reply(250, f"Renamed {source} to {target}.")

    # -- single files ----------------------------------------------------------------------

    def _regular(self, arg: str) -> tuple[str, os.stat_result]:
        target = self.path(arg)
        assert self.jail is not None
        info = self.jail.stat(target)
        if not stat.S_ISREG(info.st_mode):
            raise FtpReply(550, f"{target}: not a regular file.")
        return target, info

    def cmd_SIZE(self, arg: str) -> None:
        target, info = self._regular(arg)
        if not self.ascii:
            self.reply(213, str(info.st_size))
            return
        # RFC 3659 4: in TYPE A the size is what RETR would send (LF becomes CRLF),
        # which means reading the file: counted up to a bound, refused above it.
        self.need("read")
        if info.st_size > ASCII_SIZE_LIMIT:
            raise FtpReply(
                550,
                f"{target}: SIZE in ASCII mode is counted only up to "
                f"{ASCII_SIZE_LIMIT >> 20} MiB; use TYPE I.",
            )
        assert self.jail is not None
        self.reply(213, str(ascii_transfer_size(self.jail.open_read(target))))

    def cmd_MDTM(self, arg: str) -> None:
        _target, info = self._regular(arg)
        self.reply(213, mdtm(info.st_mtime))

    def cmd_MFMT(self, arg: str) -> None:
        self.need("write")
        when, _, name = arg.strip().partition(" ")
        try:
            seconds = parse_mdtm(when)
        except ValueError:
            raise FtpReply(501, "MFMT needs YYYYMMDDHHMMSS and a path.") from None
        if not name:
            raise FtpReply(501, "MFMT needs YYYYMMDDHHMMSS and a path.")
        target, _info = self._regular(name)
        assert self.jail is not None
        self.jail.set_mtime(target, seconds)
        self.reply(213, f"Modify={mdtm(seconds)}; {target}")

    def cmd_MLST(self, arg: str) -> None:
        self.need("list")
        target = self.path(arg.strip() or ".")
        assert self.jail is not None and self.user is not None
        info = self.jail.stat(target)
        line = facts_line(target, info, self.user.perms, self.mlst_facts)
        self.reply(250, f"Listing {target}\n {line}\nEnd.")

    # -- checksums -------------------------------------------------------------------------

    def _digest(self, arg: str, name: str) -> tuple[str, str, int]:
        self.need("read")
        target, _info = self._regular(arg)
        assert self.jail is not None
        digest, size = file_digest(self.jail.open_read(target), _HASHES[name])
        return target, digest, size

    def cmd_HASH(self, arg: str) -> None:
        target, digest, size = self._digest(arg, self.hash_name)
        self.reply(213, f"{self.hash_name} 0-{size} {digest} {target}")

    def cmd_XMD5(self, arg: str) -> None:
        self.reply(250, self._digest(arg, "MD5")[1])

    def cmd_XSHA1(self, arg: str) -> None:
        self.reply(250, self._digest(arg, "SHA-1")[1])

    def cmd_XSHA256(self, arg: str) -> None:
        self.reply(250, self._digest(arg, "SHA-256")[1])
