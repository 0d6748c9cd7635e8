"""Send a push plan to one host over SFTP: atomic, verified, and skipping what is already there.

Where each source lands (rsync's rule, never what exists): a directory
``src/tree`` as ``DEST/tree``, ``src/tree/`` into ``DEST`` itself, several
sources into the directory ``DEST``; a single file into ``DEST`` if DEST ends
in ``/`` or is a directory, else at ``DEST``.

Each file is written under a temporary name beside its final one, given its
mode and mtime, hashed on the host, and only then renamed into place; on any
failure the temporary files are removed, so no partial file ever appears under
a final name. Files whose size and sha256 already match are skipped. A host
that stalls gets its temporary files removed over a new SFTP session if it
still answers; what could not be removed is named in its result, and the next
push of the same files removes it once it is a day old.

Links on the host are never written through. DEST itself is the operator's
choice and is followed if it is a link to a directory (as rsync does); below
it, a link where the source has a directory is replaced by a directory, and
one where it has a file or a link by that file or link (a rename over a link
replaces the link). SFTP cannot open a path without following the directories
in it, so a link made below DEST while the push runs is not caught.

A host without an SFTP server (``NoSFTPServer``: never a dropped connection)
gets the same push over plain command channels (``herd.hosts.shell_push``).
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import asyncssh

from herd.core.model import FileRecord, Host, HostResult, Status
from herd.hosts.become import become_for
from herd.hosts.remote_access import NoSFTPServer, open_sftp
from herd.hosts.sftp_links import LinkMaker
from herd.hosts.sftp_ops import (
    HostTransfer,
    TransferFailure,
    Watchdog,
    atomic_rename,
    bounded_gather,
    describe,
    first_error,
    remove_quietly,
    stale_temp_of,
    temp_name,
    transfer_result,
)
from herd.hosts.transfer_plan import (
    LocalDir,
    LocalFile,
    LocalLink,
    PushPlan,
    SourceTree,
    TransferOptions,
    TransferProgress,
)
from herd.hosts.transfer_stream import BlockSource, SourceChanged

if TYPE_CHECKING:
    from herd.hosts.shell_push import ShellPush

__all__ = [
    "HOST_FIELD",
    "STALE_TEMP_SECONDS",
    "Dir",
    "File",
    "Link",
    "batches",
    "entries",
    "push_host",
    "remote_dest",
]

HOST_FIELD = "{host}"  # in a remote path: replaced by each host's inventory name

# A temporary file started this long ago was left by a push that died (killed, host
# rebooted): the next push of the same file removes it. A day leaves room for a
# very large file on a slow link still being written by another push.
STALE_TEMP_SECONDS = 24 * 3600
_BATCH_FILES = 256  # files verified with one remote hash command, then renamed
_BATCH_BYTES = 256 * 1024 * 1024
_CLEAN_UP_SECONDS = 5.0  # what removing temporary files may take on a host that failed


@dataclass(frozen=True, slots=True)
class File:
    local: LocalFile
    final: str


@dataclass(frozen=True, slots=True)
class Link:
    local: LocalLink
    final: str


@dataclass(frozen=True, slots=True)
class Dir:
    local: LocalDir
    path: str
    is_dest: bool = False  # DEST itself (a source's contents land there): the operator's


def remote_dest(home: str, dest: str) -> tuple[str, bool]:
    """DEST made absolute against the login directory, and whether it ended with ``/``."""
    trailing = dest.endswith("/")
    if dest == "~" or dest.startswith("~/"):
        dest = dest[2:]
    path = posixpath.normpath(posixpath.join(home, dest)) if dest else home
    return path, trailing


def _join(root: str, relative: object) -> str:
    text = str(relative)
    return root if text == "." else posixpath.join(root, text)


def _is_dir(attrs: asyncssh.SFTPAttrs | None) -> bool:
    return attrs is not None and attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY


async def _stat_or_none(
    sftp: asyncssh.SFTPClient, path: str, *, follow: bool = True
) -> asyncssh.SFTPAttrs | None:
    try:
        return await (sftp.stat(path) if follow else sftp.lstat(path))
    except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
        return None


class _Push(HostTransfer):
    """One host's push, from resolving DEST to the last rename."""

    def __init__(self, *, source: BlockSource, **common: Any) -> None:
        super().__init__(**common)
        self.source = source
        self.temps: set[str] = set()  # temporary files on the host not yet renamed or removed
        self.created: set[str] = set()  # directories this push made: nothing in them to skip
        self.links = LinkMaker(self.sftp, self.temps)  # the server's argument order, probed

    async def run(self, plan: PushPlan, dest: str) -> None:
        dirs, files, links = entries(await self.landing(plan, dest))
        await self.make_dirs(dirs)
        await self.sweep_stale_temps(files)
        present = await self.already_there(files)
        for f in files:
            if f.final in present:
                self.records.append(FileRecord(f.final, f.local.size, f.local.sha256, True))
                self.progress.advance(self.host.name, f.local.size)
        await self.send([f for f in files if f.final not in present])
        await self.send_links(links)
        await self.finish_dirs(dirs)

    # -- where things land ---------------------------------------------------------------

    async def landing(self, plan: PushPlan, dest: str) -> list[tuple[SourceTree, str]]:
        """Where each source lands: rsync's rule, which never depends on what exists below DEST."""
        home = await self.sftp.realpath(".")
        path, trailing = remote_dest(home, dest.replace(HOST_FIELD, self.host.name))
        attrs = await _stat_or_none(self.sftp, path)  # DEST: a link to a directory is followed
        lone = plan.sources[0] if len(plan.sources) == 1 else None
        if lone is not None and not lone.is_dir and not trailing and not _is_dir(attrs):
            parent = posixpath.dirname(path) or "/"
            await self._need_dir(parent, await _stat_or_none(self.sftp, parent))
            return [(lone, path)]  # a single file (or link) lands at DEST
        await self._need_dir(path, attrs)
        return [
            (tree, path if tree.contents else posixpath.join(path, tree.name))
            for tree in plan.sources
        ]

    async def _need_dir(self, path: str, attrs: asyncssh.SFTPAttrs | None) -> None:
        """Check that directory ``path`` (``attrs``) is there, or make it with --mkdir."""
        if _is_dir(attrs):
            return
        if attrs is not None:
            raise TransferFailure(f"{path}: not a directory")
        if not self.options.mkdir:
            raise TransferFailure(f"{path}: no such directory (--mkdir creates it)")
        try:
            await self.sftp.makedirs(path, exist_ok=True)
        except asyncssh.SFTPError as exc:
            raise TransferFailure(f"{path}: cannot create: {describe(exc)}") from exc
        self.created.add(path)

    # -- the steps -----------------------------------------------------------------------

    async def make_dirs(self, dirs: list[Dir]) -> None:
        """Make each directory of the tree, never taking a link on the host for one."""
        for item in dirs:  # parents come before their children
            if item.is_dest:
                continue  # checked or made by landing(), and followed if a link
            attrs = await _stat_or_none(self.sftp, item.path, follow=False)
            if _is_dir(attrs):
                continue
            if attrs is not None and attrs.type != asyncssh.FILEXFER_TYPE_SYMLINK:
                raise TransferFailure(f"{item.path}: exists and is not a directory")
            try:
                if attrs is not None:  # a link: replaced by the directory, as rsync does
                    await self.sftp.remove(item.path)
                await self.sftp.mkdir(item.path, asyncssh.SFTPAttrs(permissions=0o700))
            except asyncssh.SFTPError as exc:
                raise TransferFailure(f"{item.path}: cannot create: {describe(exc)}") from exc
            self.created.add(item.path)
            self.dog.kick()

    async def sweep_stale_temps(self, files: list[File]) -> None:
        """Remove temporary files that an earlier push which died left beside these files."""
        wanted: dict[str, set[str]] = {}
        for f in files:
            directory, name = posixpath.split(f.final)
            if directory not in self.created:
                wanted.setdefault(directory, set()).add(name)
        cutoff = time.time() - STALE_TEMP_SECONDS
        for directory, names in wanted.items():
            try:
                entries = await self.sftp.readdir(directory)
            except asyncssh.SFTPError:
                continue  # unreadable: the push itself will say what is wrong there
            leftovers = [
                posixpath.join(directory, str(entry.filename))
                for entry in entries
                if stale_temp_of(str(entry.filename), cutoff) in names
            ]
            await remove_quietly(self.sftp, leftovers)
            self.dog.kick()

    async def already_there(self, files: list[File]) -> set[str]:
        """The final paths whose size and sha256 already match the source."""
        files = [f for f in files if posixpath.dirname(f.final) not in self.created]
        stats = await bounded_gather(
            [partial(_stat_or_none, self.sftp, f.final, follow=False) for f in files], 64
        )
        same_size = [
            f
            for f, attrs in zip(files, stats, strict=True)
            if attrs is not None
            and attrs.type == asyncssh.FILEXFER_TYPE_REGULAR
            and attrs.size == f.local.size
        ]
        hashes = await self.verified_hashes(
            [f.final for f in same_size], sum(f.local.size for f in files)
        )
        present = {f.final for f in same_size if hashes.get(f.final) == f.local.sha256}
        for f, attrs in zip(files, stats, strict=True):
            if f.final in present and attrs is not None:
                await self._fix_attributes(f, attrs)
        return present

    async def _fix_attributes(self, f: File, attrs: asyncssh.SFTPAttrs) -> None:
        mode = self._mode(f.local)
        mtime = int(f.local.mtime)
        if (attrs.permissions or 0) & 0o7777 != mode or attrs.mtime != mtime:
            await self.sftp.setstat(
                f.final, asyncssh.SFTPAttrs(permissions=mode, atime=mtime, mtime=mtime)
            )

    async def send(self, files: list[File]) -> None:
        """Write, verify and rename ``files`` in batches, recording each one that lands."""
        for batch in batches(files):
            temps = await bounded_gather(
                [partial(self._upload, f) for f in batch], self.options.files_in_flight
            )
            if self.options.verify:
                landed = await self.verified_hashes(temps, sum(f.local.size for f in batch))
                for f, temp in zip(batch, temps, strict=True):
                    if landed.get(temp) != f.local.sha256:
                        raise TransferFailure(
                            f"{f.final}: sha256 of the copy does not match the source"
                        )
            await bounded_gather(
                [partial(self._land, f, temp) for f, temp in zip(batch, temps, strict=True)],
                self.options.files_in_flight,
            )

    async def _land(self, f: File, temp: str) -> None:
        await self._rename(temp, f.final)
        self.records.append(FileRecord(f.final, f.local.size, f.local.sha256))

    async def _rename(self, temp: str, final: str) -> None:
        try:
            await atomic_rename(self.sftp, temp, final)
        except asyncssh.SFTPError as exc:
            raise TransferFailure(f"{final}: cannot rename into place: {describe(exc)}") from exc
        self.temps.discard(temp)
        self.dog.kick()

    async def _upload(self, f: File) -> str:
        temp = temp_name(f.final)
        self.temps.add(temp)
        size = self.write_size  # a longer block goes as several requests of this size
        try:
            async with (
                # "x": created afresh (O_EXCL), never opened through a link of that name
                self.sftp.open(
                    temp, "xb", asyncssh.SFTPAttrs(permissions=0o600), block_size=size
                ) as remote,
                asyncio.TaskGroup() as group,
            ):
                for index in range(self.source.blocks(f.local)):
                    length = self.source.block_length(f.local, index)
                    await self.in_flight.take(length)
                    group.create_task(self._put(remote, f.local, index, length))
            mtime = int(f.local.mtime)
            attrs = asyncssh.SFTPAttrs(permissions=self._mode(f.local), atime=mtime, mtime=mtime)
            await self.sftp.setstat(temp, attrs)
        except BaseExceptionGroup as errors:
            await self._upload_failed(f, first_error(errors))
        except (SourceChanged, asyncssh.SFTPError) as exc:
            await self._upload_failed(f, exc)
        self.dog.kick()
        return temp

    async def _put(
        self, remote: asyncssh.SFTPClientFile, local: LocalFile, index: int, length: int
    ) -> None:
        try:
            data = await self.source.block(local, index)
            await remote.write(data, index * self.source.block_size)
        finally:
            self.in_flight.give(length)
        self.progress.advance(self.host.name, len(data))
        self.dog.kick()

    async def _upload_failed(self, f: File, exc: BaseException) -> None:
        """Turn a failed upload into the host's reason, naming a full disk when statvfs says so."""
        if not isinstance(exc, SourceChanged | asyncssh.SFTPError):
            raise exc
        reason = describe(exc)
        if isinstance(exc, asyncssh.SFTPFailure):
            try:
                vfs = await self.sftp.statvfs(posixpath.dirname(f.final) or "/")
            except (asyncssh.Error, OSError):
                vfs = None
            if vfs is not None and vfs.bavail * vfs.frsize < f.local.size:
                reason = "no space left on device"
        raise TransferFailure(f"{f.final}: {reason}") from exc

    async def send_links(self, links: list[Link]) -> None:
        for item in links:
            target = item.local.target
            attrs = await _stat_or_none(self.sftp, item.final, follow=False)
            skipped = False
            if attrs is not None and attrs.type == asyncssh.FILEXFER_TYPE_SYMLINK:
                skipped = await self.sftp.readlink(item.final) == target
            if not skipped:
                temp = temp_name(item.final)
                self.temps.add(temp)  # before it exists: a lost connection leaves it named
                try:
                    await self.links.symlink(target, temp)
                except asyncssh.SFTPError as exc:
                    raise TransferFailure(f"{item.final}: cannot link: {describe(exc)}") from exc
                await self._rename(temp, item.final)
            size = len(target.encode("utf-8", errors="surrogateescape"))
            self.records.append(FileRecord(item.final, size, item.local.sha256, skipped))

    async def finish_dirs(self, dirs: list[Dir]) -> None:
        """Give directories their source mode and mtime, now that their contents are in.

        DEST itself keeps its own: a push of ``./`` into ``/tmp`` must not change /tmp's mode.
        """
        for item in reversed(dirs):
            if item.is_dest:
                continue
            mtime = int(item.local.mtime)
            attrs = asyncssh.SFTPAttrs(permissions=item.local.mode, atime=mtime, mtime=mtime)
            await self.sftp.setstat(item.path, attrs)

    def _mode(self, local: LocalFile) -> int:
        return self.options.mode if self.options.mode is not None else local.mode

    async def clean_up(self) -> None:
        """Remove temporary files left by a failure (a dead host keeps them: it cannot be asked)."""
        await self._remove_temps(self.sftp)

    async def clean_up_stalled(self) -> None:
        """The host stalled: remove the temporary files over a new SFTP session, if it answers.

        The stalled session may hold the files open and never answer again; a host whose
        SSH connection still answers gets them removed by a session of its own.
        """
        if not self.temps:
            return
        sftp: asyncssh.SFTPClient | None = None
        try:
            async with asyncio.timeout(_CLEAN_UP_SECONDS):
                sftp = await open_sftp(self.conn, self.become)
                await self._remove_temps(sftp)
        except (TimeoutError, asyncssh.Error, OSError):
            pass  # it does not answer: left_on_host() names what is left
        finally:
            if sftp is not None:
                sftp.exit()

    async def _remove_temps(self, sftp: asyncssh.SFTPClient) -> None:
        """Remove the temporary files, one at a time, within ``_CLEAN_UP_SECONDS``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLEAN_UP_SECONDS):
                for temp in sorted(self.temps):
                    if not await remove_quietly(sftp, [temp]):
                        self.temps.discard(temp)

    def left_on_host(self) -> list[str]:
        return sorted(self.temps)


def batches(files: list[File]) -> Iterator[list[File]]:
    batch: list[File] = []
    size = 0
    for f in files:
        batch.append(f)
        size += f.local.size
        if len(batch) >= _BATCH_FILES or size >= _BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def entries(
    landing: list[tuple[SourceTree, str]],
) -> tuple[list[Dir], list[File], list[Link]]:
    dirs: list[Dir] = []
    files: list[File] = []
    links: list[Link] = []
    for tree, root in landing:
        dirs.extend(
            Dir(d, _join(root, d.relative), is_dest=tree.contents and str(d.relative) == ".")
            for d in tree.dirs
        )
        files.extend(File(f, _join(root, f.relative)) for f in tree.files)
        links.extend(Link(k, _join(root, k.relative)) for k in tree.links)
    return dirs, files, links


async def push_host(
    conn: asyncssh.SSHClientConnection,
    host: Host,
    *,
    plan: PushPlan,
    dest: str,
    options: TransferOptions,
    source: BlockSource,
    progress: TransferProgress,
) -> HostResult:
    """Push ``plan`` to ``host``; the result lists every file that landed or was skipped."""
    started = time.monotonic()
    status, error = Status.OK, ""
    job: _Push | ShellPush | None = None
    progress.expect(host.name, plan.total_bytes)

    async def hang_up() -> None:
        try:
            if job is not None:
                await job.clean_up_stalled()
        finally:
            conn.abort()

    dog = Watchdog(options.stall_timeout, hang_up)
    try:
        async with dog:
            # not `async with` the SFTP client: its exit waits on the host, which may be dead
            become = become_for(host, options.become)
            sftp: asyncssh.SFTPClient | None = None
            try:
                sftp = await open_sftp(conn, become)
            except NoSFTPServer as exc:  # never a dropped connection: that is not a fallback
                from herd.hosts.shell_push import ShellPush  # it builds on this module

                job = ShellPush(
                    conn=conn,
                    host=host,
                    options=options,
                    source=source,
                    progress=progress,
                    dog=dog,
                    become=become,
                    no_sftp=describe(exc),
                )
            else:
                job = _Push(
                    conn=conn,
                    sftp=sftp,
                    host=host,
                    options=options,
                    source=source,
                    progress=progress,
                    dog=dog,
                    become=become,
                )
            try:
                await job.run(plan, dest)
            except BaseException:
                await job.clean_up()
                raise
            finally:
                if sftp is not None:
                    sftp.exit()
    except TransferFailure as exc:
        status, error = Status.ERROR, str(exc)
    except (asyncssh.Error, OSError) as exc:
        status, error = Status.ERROR, describe(exc)
    return transfer_result(host, started, dog, job, status=status, error=error)
