"""Pull from a host without an SFTP server, over plain command channels (``herd.hosts.fs_shell``).

The same rules as over SFTP (``herd.hosts.pull``): sources and globs listed on
the host (``find``, names NUL-terminated), each file read with ``head -c`` of
the size it was listed with (``cat`` for a file listed as empty) into a local
temporary name, checked against the host's sha256 (or read back when it has
no hash tool), then renamed into place under ``DEST_DIR/<host>``; a local copy
already matching is skipped. Every name the host sends is checked: nothing it
says makes herd write outside the host's directory (``herd.hosts.local_tree``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import stat

import asyncssh

from herd.core.model import FileRecord, Host
from herd.hosts.become import Become
from herd.hosts.fs_shell import HostStat, ShellError, ShellFS, ShellLister
from herd.hosts.local_tree import LocalTree, Parts, RefusedName, remote_parts, sha256_of
from herd.hosts.pull import Check, Fetched, Landing, Remote, check_copy, local_reason
from herd.hosts.push import HOST_FIELD, remote_dest
from herd.hosts.remote_glob import expand_glob, is_glob
from herd.hosts.sftp_ops import TransferFailure, Watchdog
from herd.hosts.transfer_plan import TransferOptions, TransferProgress

__all__ = ["ShellPull"]

_KINDS = {
    stat.S_IFREG: asyncssh.FILEXFER_TYPE_REGULAR,
    stat.S_IFDIR: asyncssh.FILEXFER_TYPE_DIRECTORY,
    stat.S_IFLNK: asyncssh.FILEXFER_TYPE_SYMLINK,
}
_READ_LINKS = "for p; do readlink -- \"$p\"; printf '\\0'; done"
_HASH_RATE = 20 * 1024 * 1024
_TOOLS = ("stat", "find", "cat", "head", "readlink")


def _remote(path: str, attrs: HostStat) -> Remote:
    return Remote(
        path=path,
        parts=remote_parts(path),
        kind=_KINDS.get(attrs.kind, asyncssh.FILEXFER_TYPE_SPECIAL),
        size=attrs.size,
        mode=attrs.mode,
        mtime=attrs.mtime,
    )


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


class ShellPull(Landing):
    """One host's pull over command channels: list what the sources name, fetch each file."""

    def __init__(
        self,
        *,
        conn: asyncssh.SSHClientConnection,
        host: Host,
        tree: LocalTree,
        options: TransferOptions,
        progress: TransferProgress,
        dog: Watchdog,
        become: Become | None,
        no_sftp: str,
    ) -> None:
        self.fs = ShellFS(conn, become)
        self.host = host
        self.tree = tree
        self.options = options
        self.progress = progress
        self.dog = dog
        self.no_sftp = no_sftp
        self.records: list[FileRecord] = []
        self.problems: list[str] = []
        self.temps: set[tuple[Parts, str]] = set()

    def left_on_host(self) -> list[str]:
        return []  # a pull writes nothing on the host

    async def run(self, sources: list[str]) -> None:
        home = await self.fs.preflight(_TOOLS, self.no_sftp)
        entries = await self.listing(home, sources)
        dirs = [e for e in entries if e.kind == asyncssh.FILEXFER_TYPE_DIRECTORY]
        files = [e for e in entries if e.kind == asyncssh.FILEXFER_TYPE_REGULAR]
        self.progress.expect(self.host.name, sum(f.size for f in files))
        for item in dirs:
            try:
                self.tree.make_dir(item.parts)
            except (OSError, RefusedName) as exc:
                self.problems.append(f"{item.path}: {local_reason(exc)}")
        present = await self.already_here(files)
        fetched: list[Fetched] = []
        for item in files:
            if item.path in present:
                self.records.append(FileRecord(item.path, item.size, present[item.path], True))
                self.progress.advance(self.host.name, item.size)
            elif (copy := await self.fetch(item)) is not None:
                fetched.append(copy)
        await self.land(fetched)
        await self.links([e for e in entries if e.kind == asyncssh.FILEXFER_TYPE_SYMLINK])
        for item in reversed(dirs):
            with contextlib.suppress(OSError, RefusedName):
                self.tree.finish_dir(item.parts, item.mode | 0o700, item.mtime)

    # -- what to fetch -------------------------------------------------------------------

    async def listing(self, home: str, sources: list[str]) -> list[Remote]:
        """Every entry the sources name, directories walked; missing ones become problems."""
        entries: list[Remote] = []
        seen: set[str] = set()
        for given in sources:
            source = given.replace(HOST_FIELD, self.host.name)
            path, _ = remote_dest(home, source)
            names = [path]
            if is_glob(source):
                names = await expand_glob(ShellLister(self.fs), path)
                if not names:
                    self.problems.append(f"{source}: no match")
            for name in names:
                await self._walk(name, entries, seen)
                self.dog.kick()
        return entries

    async def _walk(self, top: str, entries: list[Remote], seen: set[str]) -> None:
        found, said = await self.fs.walk(top, follow=self.options.follow_symlinks)
        if not found:
            (there,) = await self.fs.stat_many([top], follow=False)
            self.problems.append(f"{top}: {said if there else 'no such file or directory'}")
            return
        if said:
            self.problems.append(f"{top}: cannot list all of it: {said}")
        for path, attrs in found:
            if path in seen:
                continue
            seen.add(path)
            if not _under(path, top):  # the host's answer is checked
                self.problems.append(f"{path!r}: not an entry of {top}: not fetched")
                continue
            if attrs is None:
                self.problems.append(f"{path}: gone while listed")
                continue
            try:
                item = _remote(path, attrs)
            except RefusedName as exc:
                self.problems.append(f"{exc}: not fetched")
                continue
            if item.kind == asyncssh.FILEXFER_TYPE_SPECIAL:
                self.problems.append(f"{path}: not a regular file, directory or link")
                continue
            entries.append(item)

    async def already_here(self, files: list[Remote]) -> dict[str, str]:
        """{remote path: sha256} of files whose local copy has the same size and hash."""
        candidates: dict[str, str] = {}
        for item in files:
            fd = self.tree.open_if_size(item.parts, item.size)
            if fd is not None:
                try:
                    candidates[item.path] = await asyncio.to_thread(sha256_of, fd)
                finally:
                    os.close(fd)
        remote = await self.host_hashes(list(candidates), sum(f.size for f in files))
        return {p: h for p, h in candidates.items() if remote.get(p) == h}

    async def host_hashes(self, paths: list[str], nbytes: int) -> dict[str, str]:
        """The host's sha256 of ``paths``, each read back here where it has no hash tool."""
        if not paths:
            return {}
        self.dog.allow(self.dog.stall + nbytes / _HASH_RATE)
        found = await self.fs.hashes(paths) or {}
        self.dog.kick()
        for path in paths:
            if path not in found:
                with contextlib.suppress(ShellError):
                    found[path] = await self.fs.read_back(path)
                self.dog.kick()
        return found

    # -- fetching ------------------------------------------------------------------------

    async def fetch(self, item: Remote) -> Fetched | None:
        """Copy one file to a local temporary name; None (and a problem noted) if it failed."""
        temp: str | None = None
        try:
            fd, temp = self.tree.new_temp(item.parts)
            self.temps.add((item.parts, temp))
            try:
                return await self._copy(item, fd, temp)
            finally:
                os.close(fd)
        except (ShellError, OSError, TransferFailure, RefusedName) as exc:
            if temp is not None:
                self._discard(item.parts, temp)
            if isinstance(exc, ShellError | TransferFailure):
                self.problems.append(
                    str(exc) if isinstance(exc, TransferFailure) else f"{item.path}: {exc}"
                )
            else:
                self.problems.append(f"{item.path}: {local_reason(exc)}")
            return None

    async def _copy(self, item: Remote, fd: int, temp: str) -> Fetched:
        digest = hashlib.sha256()
        received = 0
        async with contextlib.aclosing(self.fs.read(item.path, item.size or None)) as chunks:
            async for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
                digest.update(chunk)
                received += len(chunk)
                if not item.size:
                    self.progress.expect(self.host.name, len(chunk))  # more than listed
                self.progress.advance(self.host.name, len(chunk))
                self.dog.kick()
        (now,) = await self.fs.stat_many([item.path], follow=True)
        after = asyncssh.SFTPAttrs(
            size=now.size if now else 0, mtime=now.mtime if now else item.mtime
        )
        check = check_copy(item, received, after)
        os.fchmod(fd, self.options.mode if self.options.mode is not None else item.mode)
        os.utime(fd, (item.mtime, item.mtime))
        return Fetched(item, temp, digest.hexdigest(), received, check)

    async def _changed(self, fetched: list[Fetched]) -> set[str]:
        """The remote paths whose copy is not what the host's file holds (or held, if it grew)."""
        whole = [f for f in fetched if f.check is Check.WHOLE]
        remote = await self.host_hashes([f.item.path for f in whole], sum(f.size for f in whole))
        first_bytes = [f for f in fetched if f.check is Check.FIRST_BYTES] + [
            f for f in whole if remote.get(f.item.path) != f.sha256
        ]
        changed: set[str] = set()
        for f in first_bytes:  # read back: the host's first bytes as they are now
            digest = hashlib.sha256()
            try:
                async with contextlib.aclosing(self.fs.read(f.item.path, f.size)) as chunks:
                    async for chunk in chunks:
                        digest.update(chunk)
            except ShellError:
                changed.add(f.item.path)
                continue
            if digest.hexdigest() != f.sha256:
                changed.add(f.item.path)
            self.dog.kick()
        return changed

    async def links(self, links: list[Remote]) -> None:
        if not links:
            return
        out = await self.fs.run(_READ_LINKS, [k.path for k in links], check=False)
        answers = out.decode("utf-8", errors="surrogateescape").split("\0")
        for index, item in enumerate(links):
            answer = answers[index] if index < len(answers) else ""
            if not answer.endswith("\n"):  # readlink ends its answer with a newline
                self.problems.append(f"{item.path}: cannot read the link")
                continue
            target = answer[:-1]
            try:
                placed = self.tree.place_link(item.parts, target)
            except (OSError, RefusedName) as exc:
                self.problems.append(f"{item.path}: {local_reason(exc)}")
                continue
            text = target.encode("utf-8", errors="surrogateescape")
            sha256 = hashlib.sha256(text).hexdigest()
            self.records.append(FileRecord(item.path, len(text), sha256, skipped=not placed))
