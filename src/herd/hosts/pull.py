"""Fetch files from one host into ``DEST_DIR/<host>/<remote path>``, atomic and verified locally.

Sources are remote files, directories (recursive, empty ones too) and globs
matched over the host's listings as the shell would (``herd.hosts.remote_glob``).
Each file is written under a temporary name beside its final one, hashed as it
arrives, checked against the host's own sha256 of the file afterwards (a host
without a hash tool has the file read back), and only then renamed into place;
a local copy already matching the host's is skipped. A missing source is that
host's error; the host's other files are still fetched.

A file that changes while it is read:

- one that only grew (a live log) is a valid snapshot of the bytes it had when
  listed: those are kept, checked against the host's sha256 of that many first
  bytes of the file (``head -c N``);
- one rewritten in place (the bytes already read are no longer the file's
  first ones), or one that got shorter, fails: "changed while being pulled";
- one the host lists as empty (``/proc/meminfo``, ``/sys``) is read to its end
  and kept as read: its content is made as it is read, so there is nothing
  stable to check it against.

Nothing is written locally through a symbolic link (``herd.hosts.local_tree``).
A host without an SFTP server (``NoSFTPServer``: never a dropped connection)
gets the same pull over plain command channels (``herd.hosts.shell_pull``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import os
import posixpath
import stat
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import asyncssh

from herd.core.model import FileRecord, Host, HostResult, Status
from herd.hosts.become import become_for
from herd.hosts.local_tree import (
    LocalTree,
    Parts,
    RefusedName,
    is_plain_name,
    remote_parts,
    sha256_of,
)
from herd.hosts.push import HOST_FIELD, remote_dest
from herd.hosts.remote_access import NoSFTPServer, open_sftp
from herd.hosts.remote_glob import SFTPLister, expand_glob, is_glob
from herd.hosts.sftp_ops import (
    HostTransfer,
    TransferFailure,
    Watchdog,
    bounded_gather,
    describe,
    some_of,
    transfer_result,
)
from herd.hosts.transfer_plan import TransferOptions, TransferProgress

if TYPE_CHECKING:
    from herd.hosts.shell_pull import ShellPull

__all__ = [
    "REWRITTEN",
    "Check",
    "Fetched",
    "Landing",
    "Remote",
    "check_copy",
    "local_reason",
    "pull_host",
]

REWRITTEN = "changed while being pulled (rewritten in place)"
_SHORTER = "changed while being pulled (it got shorter)"
_LOST = (
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
    asyncssh.ConnectionLost,
    ConnectionError,
)


@dataclass(frozen=True, slots=True)
class Remote:
    """One remote entry to fetch."""

    path: str
    parts: Parts  # where it lands under the host's directory
    kind: int  # asyncssh.FILEXFER_TYPE_*
    size: int
    mode: int
    mtime: int


class Check(enum.Enum):
    """How a fetched copy is checked against the host's file."""

    WHOLE = "whole"  # the file as it is now
    FIRST_BYTES = "first bytes"  # it grew while read: the bytes it had when listed
    NONE = "none"  # listed as empty but had content (/proc): made as read, nothing to compare


@dataclass(frozen=True, slots=True)
class Fetched:
    item: Remote
    temp: str  # beside the final name
    sha256: str
    size: int  # bytes kept: as listed, or as read for a file listed as empty
    check: Check


def _entry(path: str, attrs: asyncssh.SFTPAttrs, under: Parts = ()) -> Remote:
    parts = remote_parts(path)
    if parts[: len(under)] != under:
        raise RefusedName(f"{path!r}: not under {'/'.join(('', *under))}")
    return Remote(
        path=path,
        parts=parts[len(under) :],
        kind=attrs.type,
        size=attrs.size or 0,
        mode=stat.S_IMODE(attrs.permissions or 0o644),
        mtime=int(attrs.mtime or 0),
    )


def check_copy(item: Remote, received: int, after: asyncssh.SFTPAttrs) -> Check:
    """How to check a copy of ``received`` bytes, given the file's attributes after reading it.

    Raises ``TransferFailure`` for a file that got shorter or was rewritten in place.
    """
    now = after.size if after.size is not None else received
    if item.size:
        if received < item.size or now < item.size:
            raise TransferFailure(f"{item.path}: {_SHORTER}")
        if now == item.size and int(after.mtime or 0) != item.mtime:
            raise TransferFailure(f"{item.path}: {REWRITTEN}")
        return Check.FIRST_BYTES if now > item.size else Check.WHOLE
    if received and not now:
        return Check.NONE
    if now < received:
        raise TransferFailure(f"{item.path}: {_SHORTER}")
    return Check.FIRST_BYTES if now > received else Check.WHOLE


class Landing(ABC):
    """The local half of a pull, over SFTP or commands alike: each copy is checked against
    the host, then renamed into place under DEST/HOST, or discarded with the reason."""

    tree: LocalTree
    options: TransferOptions
    records: list[FileRecord]
    problems: list[str]
    temps: set[tuple[Parts, str]]  # (final, temporary name beside it)

    @abstractmethod
    async def _changed(self, fetched: list[Fetched]) -> set[str]:
        """The remote paths whose copy is not what the host's file holds (or held, if it grew)."""

    async def land(self, fetched: list[Fetched]) -> None:
        """Check each copy against the host's hash, then rename it into place."""
        changed = await self._changed(fetched) if self.options.verify and fetched else set()
        for f in fetched:
            if f.item.path in changed:
                self._discard(f.item.parts, f.temp)
                self.problems.append(f"{f.item.path}: {REWRITTEN}")
                continue
            try:
                self.tree.land(f.item.parts, f.temp)
            except (OSError, RefusedName) as exc:
                self._discard(f.item.parts, f.temp)
                self.problems.append(
                    f"{f.item.path}: cannot rename into place: {local_reason(exc)}"
                )
                continue
            self.temps.discard((f.item.parts, f.temp))
            self.records.append(FileRecord(f.item.path, f.size, f.sha256))

    def _discard(self, parts: Parts, temp: str) -> None:
        self.tree.discard(parts, temp)
        self.temps.discard((parts, temp))

    def clean_up(self) -> None:
        for parts, temp in list(self.temps):
            self._discard(parts, temp)


class _Pull(HostTransfer, Landing):
    """One host's pull: list what the sources name, then fetch each file."""

    def __init__(self, *, tree: LocalTree, under: str = "/", **common: Any) -> None:
        super().__init__(**common)
        self.tree = tree
        # what lands under DEST/HOST: the remote path below ``under`` (all of it, by default)
        self.under = remote_parts(under)
        self.problems: list[str] = []
        self.temps: set[tuple[Parts, str]] = set()  # (final, temporary name beside it)

    async def run(self, sources: list[str]) -> None:
        entries = await self.listing(sources)
        dirs = [e for e in entries if e.kind == asyncssh.FILEXFER_TYPE_DIRECTORY]
        files = [e for e in entries if e.kind == asyncssh.FILEXFER_TYPE_REGULAR]
        self.progress.expect(self.host.name, sum(f.size for f in files))
        self.make_dirs(dirs)
        present = await self.already_here(files)
        for item in files:
            if item.path in present:
                sha256 = present[item.path]
                self.records.append(FileRecord(item.path, item.size, sha256, skipped=True))
                self.progress.advance(self.host.name, item.size)
        fetched = await bounded_gather(
            [partial(self.fetch, f) for f in files if f.path not in present],
            self.options.files_in_flight,
        )
        await self.land([f for f in fetched if f is not None])
        for item in entries:
            if item.kind == asyncssh.FILEXFER_TYPE_SYMLINK:
                await self.link(item)
        for item in reversed(dirs):
            with contextlib.suppress(OSError, RefusedName):
                # we must be able to use what we fetched
                self.tree.finish_dir(item.parts, item.mode | 0o700, item.mtime)

    # -- what to fetch -------------------------------------------------------------------

    async def listing(self, sources: list[str]) -> list[Remote]:
        """Every entry the sources name, directories walked; missing ones become problems."""
        home = await self.sftp.realpath(".")
        entries: list[Remote] = []
        seen: set[str] = set()
        for given in sources:
            source = given.replace(HOST_FIELD, self.host.name)
            path, _ = remote_dest(home, source)
            if is_glob(source):
                names = await expand_glob(SFTPLister(self.sftp), path)
                self.dog.kick()
                if not names:
                    self.problems.append(f"{source}: no match")
                    continue
            else:
                names = [path]
            for name in names:
                try:
                    attrs = await self._stat(name)
                except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
                    self.problems.append(f"{name}: no such file or directory")
                    continue
                except asyncssh.SFTPError as exc:
                    self.problems.append(f"{name}: {describe(exc)}")
                    continue
                await self._add(name, attrs, entries, seen)
        return entries

    async def _stat(self, path: str) -> asyncssh.SFTPAttrs:
        if self.options.follow_symlinks:
            return await self.sftp.stat(path)
        return await self.sftp.lstat(path)

    async def _add(
        self, path: str, attrs: asyncssh.SFTPAttrs, entries: list[Remote], seen: set[str]
    ) -> None:
        if path in seen:
            return
        seen.add(path)
        try:
            item = _entry(path, attrs, self.under)
        except RefusedName as exc:
            self.problems.append(f"{exc}: not fetched")
            return
        top = bool(self.under) and not item.parts  # DEST/HOST itself: made, never copied
        if top and item.kind != asyncssh.FILEXFER_TYPE_DIRECTORY:
            self.problems.append(f"{item.path}: not a directory")
            return
        if item.kind not in (
            asyncssh.FILEXFER_TYPE_REGULAR,
            asyncssh.FILEXFER_TYPE_DIRECTORY,
            asyncssh.FILEXFER_TYPE_SYMLINK,
        ):
            self.problems.append(f"{item.path}: not a regular file, directory or link")
            return
        if not top:
            entries.append(item)
        if item.kind != asyncssh.FILEXFER_TYPE_DIRECTORY:
            return
        try:
            children = [name async for name in self.sftp.scandir(item.path)]
        except asyncssh.SFTPError as exc:
            self.problems.append(f"{item.path}: cannot list: {describe(exc)}")
            return
        self.dog.kick()
        for child in sorted(children, key=lambda n: str(n.filename)):
            name = str(child.filename)
            if name in (".", ".."):
                continue
            if not is_plain_name(name):  # SFTP names are whatever the host says
                self.problems.append(f"{item.path}: {name!r} is not a plain file name: not fetched")
                continue
            path = posixpath.join(item.path, name)
            attrs = child.attrs
            if self.options.follow_symlinks and attrs.type == asyncssh.FILEXFER_TYPE_SYMLINK:
                try:
                    attrs = await self.sftp.stat(path)
                except asyncssh.SFTPError as exc:
                    self.problems.append(f"{path}: {describe(exc)}")
                    continue
            await self._add(path, attrs, entries, seen)

    def make_dirs(self, dirs: list[Remote]) -> None:
        """Make every directory listed, empty ones too (parents come before their children)."""
        for item in dirs:
            try:
                self.tree.make_dir(item.parts)
            except (OSError, RefusedName) as exc:
                self.problems.append(f"{item.path}: {local_reason(exc)}")

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
        if not candidates:
            return {}
        remote = await self.verified_hashes(list(candidates), sum(f.size for f in files))
        return {p: h for p, h in candidates.items() if remote.get(p) == h}

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
        except (asyncssh.SFTPError, OSError, TransferFailure, RefusedName) as exc:
            if temp is not None:
                self._discard(item.parts, temp)
            if isinstance(exc, _LOST):
                raise
            if isinstance(exc, TransferFailure):
                self.problems.append(str(exc))
            elif isinstance(exc, asyncssh.SFTPError):
                self.problems.append(f"{item.path}: {describe(exc)}")
            else:
                self.problems.append(f"{item.path}: {local_reason(exc)}")
            return None

    async def _copy(self, item: Remote, fd: int, temp: str) -> Fetched:
        digest = hashlib.sha256()
        async with self.sftp.open(item.path, "rb", block_size=self.read_size) as remote:
            if item.size:
                received = await self._read_listed(remote, fd, digest, item.size)
            else:  # empty, or a file whose size is not known until read (/proc)
                received = await self._read_to_end(remote, fd, digest)
            after = await remote.stat()
        check = check_copy(item, received, after)
        os.fchmod(fd, self.options.mode if self.options.mode is not None else item.mode)
        os.utime(fd, (item.mtime, item.mtime))
        return Fetched(item, temp, digest.hexdigest(), received, check)

    async def _read_listed(
        self, remote: asyncssh.SFTPClientFile, fd: int, digest: hashlib._Hash, total: int
    ) -> int:
        """Read the ``total`` bytes the file had when listed, requests in flight; bytes read."""
        size = self.read_size
        received = 0
        window: list[tuple[asyncio.Task[bytes], int]] = []
        try:
            for offset in range(0, total, size):
                want = min(size, total - offset)
                # files pulled side by side share the budget: one that waited for it
                # while holding reads it has not written could wait for ever
                while window and self.in_flight.would_wait(want):
                    received += await self._next(fd, digest, window)
                await self.in_flight.take(want)
                read = asyncio.ensure_future(self._read(remote, want, offset))
                window.append((read, want))
                if len(window) >= self.options.requests:
                    received += await self._next(fd, digest, window)
            while window:
                received += await self._next(fd, digest, window)
        finally:
            for read, want in window:  # left over by an error: stop them, free their bytes
                read.cancel()
                self.in_flight.give(want)
            await asyncio.gather(*(read for read, _ in window), return_exceptions=True)
        return received

    async def _read_to_end(
        self, remote: asyncssh.SFTPClientFile, fd: int, digest: hashlib._Hash
    ) -> int:
        """Read a file listed as empty to its end, one request at a time; bytes read."""
        size = self.read_size
        received = 0
        while True:
            await self.in_flight.take(size)
            try:
                data = await self._read(remote, size, received)
            finally:
                self.in_flight.give(size)
            if not data:
                return received
            self.progress.expect(self.host.name, len(data))  # more than it was listed with
            received += self._write(fd, digest, data)

    async def _read(self, remote: asyncssh.SFTPClientFile, want: int, offset: int) -> bytes:
        data = cast(bytes, await remote.read(want, offset))  # opened "rb": bytes
        self.dog.kick()
        return data

    async def _next(
        self, fd: int, digest: hashlib._Hash, window: list[tuple[asyncio.Task[bytes], int]]
    ) -> int:
        """Write the oldest read in flight; its bytes are freed once they are on disk."""
        read, want = window.pop(0)
        try:
            return self._write(fd, digest, await read)
        finally:
            self.in_flight.give(want)

    def _write(self, fd: int, digest: hashlib._Hash, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        digest.update(data)
        self.progress.advance(self.host.name, len(data))
        return len(data)

    async def _changed(self, fetched: list[Fetched]) -> set[str]:
        """The remote paths whose copy is not what the host's file holds (or held, if it grew)."""
        whole = [f for f in fetched if f.check is Check.WHOLE]
        paths = [f.item.path for f in whole]
        # A file the host's shell cannot hash (no hasher, or an SFTP server chrooted
        # where the shell is not) is read back. One whose hash differs may have grown
        # since we looked: its first bytes decide.
        remote = await self.verified_hashes(paths, sum(f.size for f in whole))
        first_bytes = [f for f in fetched if f.check is Check.FIRST_BYTES] + [
            f for f in whole if f.item.path in remote and remote[f.item.path] != f.sha256
        ]
        hashes = await self.host_prefix_hashes([(f.item.path, f.size) for f in first_bytes])
        return {f.item.path for f in first_bytes if hashes.get(f.item.path) != f.sha256}

    async def link(self, item: Remote) -> None:
        try:
            target = str(await self.sftp.readlink(item.path))
            placed = self.tree.place_link(item.parts, target)
        except asyncssh.SFTPError as exc:
            self.problems.append(f"{item.path}: {describe(exc)}")
            return
        except (OSError, RefusedName) as exc:
            self.problems.append(f"{item.path}: {local_reason(exc)}")
            return
        text = target.encode("utf-8", errors="surrogateescape")
        sha256 = hashlib.sha256(text).hexdigest()
        self.records.append(FileRecord(item.path, len(text), sha256, skipped=not placed))


def local_reason(exc: OSError | RefusedName) -> str:
    """An error met writing locally, without the temporary or relative name it names."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


async def pull_host(
    conn: asyncssh.SSHClientConnection,
    host: Host,
    *,
    sources: list[str],
    dest_dir: Path,
    options: TransferOptions,
    progress: TransferProgress,
    under: str = "/",
) -> HostResult:
    """Pull ``sources`` from ``host`` into ``dest_dir/<host>``; the result lists each file.

    What lands is each remote path below ``under``: a gateway's cache, fetched back
    over the gateway's connection (which a stall then leaves open for its other hosts).
    """
    started = time.monotonic()
    status, error = Status.OK, ""
    job: _Pull | ShellPull | None = None
    sftp: asyncssh.SFTPClient | None = None

    async def hang_up() -> None:
        if under == "/":
            conn.abort()
        elif sftp is not None:
            sftp.exit()

    dog = Watchdog(options.stall_timeout, hang_up)
    tree = LocalTree(dest_dir, host.name, options.umask)
    try:
        async with dog:
            become = become_for(host, options.become)
            try:
                sftp = await open_sftp(conn, become)
            except NoSFTPServer as exc:  # never a dropped connection: that is not a fallback
                if under != "/":
                    raise TransferFailure(describe(exc)) from exc
                from herd.hosts.shell_pull import ShellPull  # it builds on this module

                job = ShellPull(
                    conn=conn,
                    host=host,
                    tree=tree,
                    options=options,
                    progress=progress,
                    dog=dog,
                    become=become,
                    no_sftp=describe(exc),
                )
            else:
                job = _Pull(
                    conn=conn,
                    sftp=sftp,
                    host=host,
                    tree=tree,
                    options=options,
                    progress=progress,
                    dog=dog,
                    become=become,
                    under=under,
                )
            try:
                await job.run(sources)
            finally:
                job.clean_up()
                if sftp is not None:
                    sftp.exit()
    except TransferFailure as exc:
        status, error = Status.ERROR, str(exc)
    except (asyncssh.Error, OSError) as exc:
        status, error = Status.ERROR, describe(exc)
    finally:
        tree.close()
    if status is Status.OK and job is not None and job.problems:
        status, error = Status.ERROR, some_of(job.problems)
    return transfer_result(host, started, dog, job, status=status, error=error)
