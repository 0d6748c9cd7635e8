"""Fetch files from one host into ``DEST_DIR/<host>/<remote path>``, atomic and verified locally.

Sources are remote files, directories (recursive) and globs expanded on the
host. Each file is written under a temporary name beside its final one, hashed
as it arrives, checked against the host's own sha256 of the file afterwards
(which also catches a file that changed while it was being read), and only then
renamed into place. A missing source or a file that changed is that host's
error; the host's other files are still fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import stat
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import asyncssh

from herd.core.results import FileRecord, HostResult, Status
from herd.hosts.push import HOST_FIELD, remote_dest
from herd.hosts.sftp_ops import (
    HostTransfer,
    TransferFailure,
    Watchdog,
    bounded_gather,
    describe,
    some_of,
    temp_name,
    transfer_result,
)
from herd.hosts.transfer_plan import TransferOptions, TransferProgress, hash_file
from herd.inventory.model import Host

__all__ = ["local_path", "pull_host"]

_GLOB_CHARS = frozenset("*?[")
_LOST = (
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
    asyncssh.ConnectionLost,
    ConnectionError,
)


@dataclass(frozen=True, slots=True)
class _Remote:
    """One remote entry to fetch."""

    path: str
    kind: int  # asyncssh.FILEXFER_TYPE_*
    size: int
    mode: int
    mtime: int


@dataclass(frozen=True, slots=True)
class _Fetched:
    item: _Remote
    temp: Path
    final: Path
    sha256: str


def local_path(root: Path, remote: str) -> Path:
    """Where remote path ``remote`` (absolute, normalised) lands under ``root``."""
    relative = posixpath.normpath(remote).lstrip("/")
    return root / relative if relative and relative != "." else root


def _entry(path: str, attrs: asyncssh.SFTPAttrs) -> _Remote:
    return _Remote(
        path=path,
        kind=attrs.type,
        size=attrs.size or 0,
        mode=stat.S_IMODE(attrs.permissions or 0o644),
        mtime=int(attrs.mtime or 0),
    )


class _Pull(HostTransfer):
    """One host's pull: list what the sources name, then fetch each file."""

    def __init__(self, *, root: Path, **common: Any) -> None:
        super().__init__(**common)
        self.root = root
        self.problems: list[str] = []
        self.temps: set[Path] = set()

    async def run(self, sources: list[str]) -> None:
        entries = await self.listing(sources)
        files = [e for e in entries if e.kind == asyncssh.FILEXFER_TYPE_REGULAR]
        self.progress.expect(self.host.name, sum(f.size for f in files))
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
        for item in reversed(entries):
            if item.kind == asyncssh.FILEXFER_TYPE_DIRECTORY:
                final = local_path(self.root, item.path)
                with contextlib.suppress(OSError):
                    final.chmod(item.mode | 0o700)  # we must be able to use what we fetched
                    os.utime(final, (item.mtime, item.mtime))

    # -- what to fetch -------------------------------------------------------------------

    async def listing(self, sources: list[str]) -> list[_Remote]:
        """Every entry the sources name, directories walked; missing ones become problems."""
        home = await self.sftp.realpath(".")
        entries: list[_Remote] = []
        seen: set[str] = set()
        for given in sources:
            source = given.replace(HOST_FIELD, self.host.name)
            path, _ = remote_dest(home, source)
            if _GLOB_CHARS.intersection(source):
                try:
                    names = [str(n) for n in await self.sftp.glob(path)]
                except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
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
                await self._add(_entry(name, attrs), entries, seen)
        return entries

    async def _stat(self, path: str) -> asyncssh.SFTPAttrs:
        if self.options.follow_symlinks:
            return await self.sftp.stat(path)
        return await self.sftp.lstat(path)

    async def _add(self, item: _Remote, entries: list[_Remote], seen: set[str]) -> None:
        if item.path in seen:
            return
        seen.add(item.path)
        if item.kind not in (
            asyncssh.FILEXFER_TYPE_REGULAR,
            asyncssh.FILEXFER_TYPE_DIRECTORY,
            asyncssh.FILEXFER_TYPE_SYMLINK,
        ):
            self.problems.append(f"{item.path}: not a regular file, directory or link")
            return
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
            path = posixpath.join(item.path, name)
            attrs = child.attrs
            if self.options.follow_symlinks and attrs.type == asyncssh.FILEXFER_TYPE_SYMLINK:
                try:
                    attrs = await self.sftp.stat(path)
                except asyncssh.SFTPError as exc:
                    self.problems.append(f"{path}: {describe(exc)}")
                    continue
            await self._add(_entry(path, attrs), entries, seen)

    async def already_here(self, files: list[_Remote]) -> dict[str, str]:
        """{remote path: sha256} of files whose local copy has the same size and hash."""
        candidates: dict[str, str] = {}
        for item in files:
            final = local_path(self.root, item.path)
            with contextlib.suppress(OSError):
                info = final.lstat()
                if stat.S_ISREG(info.st_mode) and info.st_size == item.size:
                    candidates[item.path] = await asyncio.to_thread(hash_file, final)
        if not candidates:
            return {}
        remote = await self.host_hashes(list(candidates), sum(f.size for f in files)) or {}
        return {p: h for p, h in candidates.items() if remote.get(p) == h}

    # -- fetching ------------------------------------------------------------------------

    async def fetch(self, item: _Remote) -> _Fetched | None:
        """Copy one file to a local temporary name; None (and a problem noted) if it failed."""
        final = local_path(self.root, item.path)
        temp: Path | None = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            temp = Path(temp_name(str(final)))
            self.temps.add(temp)
            digest = await self._copy(item, temp)
        except (asyncssh.SFTPError, OSError, TransferFailure) as exc:
            if isinstance(exc, _LOST):
                self._discard(temp)
                raise
            self._discard(temp)
            self.problems.append(
                str(exc) if isinstance(exc, TransferFailure) else f"{item.path}: {describe(exc)}"
            )
            return None
        return _Fetched(item, temp, final, digest)

    async def _copy(self, item: _Remote, temp: Path) -> str:
        digest = hashlib.sha256()
        size = self.read_size
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            async with self.sftp.open(item.path, "rb", block_size=size) as remote:
                total = item.size  # as listed: a file that changed since fails the checks below
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
                after = await remote.stat()  # a new mtime: it changed while we read it
        finally:
            os.close(fd)
        if received != total or (after.size, after.mtime) != (item.size, item.mtime):
            raise TransferFailure(f"{item.path}: changed while being pulled")
        mode = self.options.mode if self.options.mode is not None else item.mode
        temp.chmod(mode)
        mtime = item.mtime
        os.utime(temp, (mtime, mtime))
        return digest.hexdigest()

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

    async def land(self, fetched: list[_Fetched]) -> None:
        """Check each copy against the host's hash, then rename it into place."""
        if not fetched:
            return
        remote: dict[str, str] = {}
        if self.options.verify:
            paths = [f.item.path for f in fetched]
            remote = await self.host_hashes(paths, sum(f.item.size for f in fetched)) or {}
        for f in fetched:
            # A file the host's shell cannot hash (no hasher, or an SFTP server chrooted
            # where the shell is not) keeps the size and mtime checks alone.
            if f.item.path in remote and remote[f.item.path] != f.sha256:
                self._discard(f.temp)
                self.problems.append(f"{f.item.path}: changed while being pulled (sha256 differs)")
                continue
            try:
                f.temp.replace(f.final)
            except OSError as exc:
                self._discard(f.temp)
                self.problems.append(f"{f.final}: cannot rename into place: {exc.strerror}")
                continue
            self.temps.discard(f.temp)
            self.records.append(FileRecord(f.item.path, f.item.size, f.sha256))

    async def link(self, item: _Remote) -> None:
        final = local_path(self.root, item.path)
        try:
            target = str(await self.sftp.readlink(item.path))
            record = FileRecord(
                item.path,
                len(target.encode("utf-8", errors="surrogateescape")),
                hashlib.sha256(target.encode("utf-8", errors="surrogateescape")).hexdigest(),
            )
            if final.is_symlink() and os.readlink(final) == target:  # noqa: PTH115 (exact text)
                self.records.append(FileRecord(record.path, record.size, record.sha256, True))
                return
            final.parent.mkdir(parents=True, exist_ok=True)
            temp = Path(temp_name(str(final)))
            temp.symlink_to(target)
            temp.replace(final)
        except (asyncssh.SFTPError, OSError) as exc:
            self.problems.append(f"{item.path}: {describe(exc)}")
            return
        self.records.append(record)

    def _discard(self, temp: Path | None) -> None:
        if temp is not None:
            with contextlib.suppress(OSError):
                temp.unlink()
            self.temps.discard(temp)

    def clean_up(self) -> None:
        for temp in list(self.temps):
            self._discard(temp)


async def pull_host(
    conn: asyncssh.SSHClientConnection,
    host: Host,
    *,
    sources: list[str],
    dest_dir: Path,
    options: TransferOptions,
    progress: TransferProgress,
) -> HostResult:
    """Pull ``sources`` from ``host`` into ``dest_dir/<host>``; the result lists each file."""
    started = time.monotonic()
    status, error = Status.OK, ""
    job: _Pull | None = None

    async def hang_up() -> None:
        conn.abort()

    dog = Watchdog(options.stall_timeout, hang_up)
    try:
        async with dog:
            sftp = await conn.start_sftp_client()
            job = _Pull(
                conn=conn,
                sftp=sftp,
                host=host,
                root=dest_dir / host.name,
                options=options,
                progress=progress,
                dog=dog,
            )
            try:
                await job.run(sources)
            finally:
                job.clean_up()
                sftp.exit()
    except (asyncssh.Error, OSError) as exc:
        status, error = Status.ERROR, describe(exc)
    if status is Status.OK and job is not None and job.problems:
        status, error = Status.ERROR, some_of(job.problems)
    return transfer_result(host, started, dog, job, status=status, error=error)
