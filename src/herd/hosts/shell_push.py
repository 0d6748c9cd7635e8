"""Push to a host without an SFTP server, over plain command channels (``herd.hosts.fs_shell``).

The same rules as over SFTP (``herd.hosts.push``): rsync's landing rule, each
file written afresh under a temporary name beside its final one (``set -C``:
never through a link of that name), given its mode and mtime, verified with
the host's hash tool (or read back when it has none), and only then moved into
place with ``mv`` within its directory; files whose size and sha256 already
match are skipped. A link at a final name is replaced, never written through;
a directory there is refused. The temporary files of a failed push are
removed, and leftovers of a push that died are swept after a day.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import time
from collections.abc import AsyncIterator

import asyncssh

from herd.core.model import FileRecord, Host
from herd.hosts.become import Become
from herd.hosts.fs_shell import HostStat, ShellError, ShellFS, touch_stamp
from herd.hosts.local_tree import is_plain_name
from herd.hosts.push import (
    HOST_FIELD,
    STALE_TEMP_SECONDS,
    Dir,
    File,
    Link,
    batches,
    entries,
    remote_dest,
)
from herd.hosts.sftp_ops import TransferFailure, Watchdog, stale_temp_of, temp_name
from herd.hosts.transfer_plan import (
    LocalFile,
    PushPlan,
    SourceTree,
    TransferOptions,
    TransferProgress,
)
from herd.hosts.transfer_stream import BlockSource

__all__ = ["ShellPush"]

_CLEAN_UP_SECONDS = 5.0
_TOOLS = ("stat", "cat", "mv", "ln", "chmod", "touch", "mkdir", "rm")
# Moves $1 over $2 within one directory: a link there is replaced, a directory refused
# (mv would move the file into it).
_LAND = (
    "while [ $# -gt 1 ]; do t=$1 f=$2; shift 2; "
    'if [ -d "$f" ] && [ ! -L "$f" ]; then echo "$f: is a directory" >&2; exit 1; fi; '
    'if [ -L "$f" ]; then rm -f -- "$f" || exit 1; fi; '
    'mv -f -- "$t" "$f" || exit 1; done'
)
_MAKE_DIRS = (
    'for d; do if [ -L "$d" ]; then rm -f -- "$d" || exit 1; fi; '
    'mkdir -m 700 -- "$d" || exit 1; done'
)
# Temporary names beside each final name's directory, one NUL-terminated basename each
_TEMPS_IN = (
    'for d; do for f in "$d"/.*.herd-*.tmp; do '
    '{ [ -e "$f" ] || [ -L "$f" ]; } && printf \'%s\\0%s\\0\' "$d" "${f##*/}"; done; done; true'
)
_READ_LINKS = 'for p; do if [ -L "$p" ]; then readlink -- "$p"; fi; printf \'\\0\'; done'


class ShellPush:
    """One host's push over command channels, from resolving DEST to the last ``mv``."""

    def __init__(
        self,
        *,
        conn: asyncssh.SSHClientConnection,
        host: Host,
        options: TransferOptions,
        source: BlockSource,
        progress: TransferProgress,
        dog: Watchdog,
        become: Become | None,
        no_sftp: str,
    ) -> None:
        self.conn = conn
        self.fs = ShellFS(conn, become)
        self.become = become
        self.host = host
        self.options = options
        self.source = source
        self.progress = progress
        self.dog = dog
        self.no_sftp = no_sftp  # why SFTP could not be used: named if the fallback fails too
        self.records: list[FileRecord] = []
        self.temps: set[str] = set()
        self.created: set[str] = set()

    async def run(self, plan: PushPlan, dest: str) -> None:
        home = await self.fs.preflight(_TOOLS, self.no_sftp)
        self.dog.kick()
        dirs, files, links = entries(await self.landing(plan, dest, home))
        await self.make_dirs(dirs)
        await self.sweep_stale_temps(files)
        present = await self.already_there(files)
        for f in files:
            if f.final in present:
                self.records.append(FileRecord(f.final, f.local.size, f.local.sha256, True))
                self.progress.advance(self.host.name, f.local.size)
        for batch in batches([f for f in files if f.final not in present]):
            await self.send(batch)
        await self.send_links(links)
        await self.finish_dirs(dirs)

    async def _step(self, what: str, script: str, args: list[str]) -> bytes:
        try:
            out = await self.fs.run(script, args)
        except ShellError as exc:
            raise TransferFailure(f"{what}: {exc}") from exc
        self.dog.kick()
        return out

    async def landing(self, plan: PushPlan, dest: str, home: str) -> list[tuple[SourceTree, str]]:
        """Where each source lands: rsync's rule, as over SFTP."""
        path, trailing = remote_dest(home, dest.replace(HOST_FIELD, self.host.name))
        parent = posixpath.dirname(path) or "/"
        attrs, parent_attrs = await self.fs.stat_many([path, parent], follow=True)
        lone = plan.sources[0] if len(plan.sources) == 1 else None
        is_dir = attrs is not None and attrs.is_dir
        if lone is not None and not lone.is_dir and not trailing and not is_dir:
            await self._need_dir(parent, parent_attrs)
            return [(lone, path)]
        await self._need_dir(path, attrs)
        return [
            (tree, path if tree.contents else posixpath.join(path, tree.name))
            for tree in plan.sources
        ]

    async def _need_dir(self, path: str, attrs: HostStat | None) -> None:
        if attrs is not None and attrs.is_dir:
            return
        if attrs is not None:
            raise TransferFailure(f"{path}: not a directory")
        if not self.options.mkdir:
            raise TransferFailure(f"{path}: no such directory (--mkdir creates it)")
        await self._step(f"{path}: cannot create", 'exec mkdir -p -- "$1"', [path])
        self.created.add(path)

    async def make_dirs(self, dirs: list[Dir]) -> None:
        """Make each directory of the tree, a link in its place replaced, as over SFTP."""
        wanted = [d for d in dirs if not d.is_dest]
        found = await self.fs.stat_many([d.path for d in wanted], follow=False)
        making: list[str] = []
        for item, attrs in zip(wanted, found, strict=True):
            if attrs is not None and attrs.is_dir:
                continue
            if attrs is not None and not attrs.is_link:
                raise TransferFailure(f"{item.path}: exists and is not a directory")
            making.append(item.path)  # parents come before their children
        if making:
            await self._step("cannot create a directory", _MAKE_DIRS, making)
            self.created.update(making)

    async def sweep_stale_temps(self, files: list[File]) -> None:
        """Remove temporary files that an earlier push which died left beside these files."""
        wanted: dict[str, set[str]] = {}
        for f in files:
            directory, name = posixpath.split(f.final)
            if directory not in self.created:
                wanted.setdefault(directory, set()).add(name)
        if not wanted:
            return
        out = await self.fs.run(_TEMPS_IN, sorted(wanted), check=False)
        fields = out.decode("utf-8", errors="surrogateescape").split("\0")
        cutoff = time.time() - STALE_TEMP_SECONDS
        leftovers = [
            posixpath.join(directory, name)
            for directory, name in zip(fields[0::2], fields[1::2], strict=False)
            if directory in wanted  # what the host says is checked: one of ours, a plain name
            and is_plain_name(name)
            and stale_temp_of(name, cutoff) in wanted[directory]
        ]
        if leftovers:
            await self.fs.run('rm -f -- "$@"', leftovers, check=False)
        self.dog.kick()

    async def verified_hashes(self, paths: list[str]) -> dict[str, str]:
        """The host's sha256 of ``paths``, or read back where it has no hash tool."""
        total = sum(a.size for a in await self.fs.stat_many(paths, follow=False) if a)
        self.dog.allow(self.dog.stall + total / (20 * 1024 * 1024))
        found = await self.fs.hashes(paths) or {}
        self.dog.kick()
        for path in paths:
            if path not in found:
                try:
                    found[path] = await self.fs.read_back(path)
                except ShellError:
                    continue
                self.dog.kick()
        return found

    async def already_there(self, files: list[File]) -> set[str]:
        """The final paths whose size and sha256 already match the source."""
        files = [f for f in files if posixpath.dirname(f.final) not in self.created]
        stats = await self.fs.stat_many([f.final for f in files], follow=False)
        same = [
            (f, a)
            for f, a in zip(files, stats, strict=True)
            if a is not None and a.is_file and a.size == f.local.size
        ]
        hashes = await self.verified_hashes([f.final for f, _ in same]) if same else {}
        present = {f.final for f, _ in same if hashes.get(f.final) == f.local.sha256}
        for f, a in same:
            if f.final not in present:
                continue
            if a.mode == self._mode(f.local) and a.mtime == int(f.local.mtime):
                continue
            await self._step(
                f"{f.final}: cannot set its mode and time",
                f'chmod {self._mode(f.local):o} "$1" && TZ=UTC0 touch -c -t'
                f' {touch_stamp(f.local.mtime)} "$1"',
                [f.final],
            )
        return present

    async def send(self, batch: list[File]) -> None:
        """Write each file of ``batch`` under its temporary name, verify, then move into place."""
        temps = [await self._upload(f) for f in batch]
        if self.options.verify:
            landed = await self.verified_hashes(temps)
            for f, temp in zip(batch, temps, strict=True):
                if landed.get(temp) != f.local.sha256:
                    raise TransferFailure(
                        f"{f.final}: sha256 of the copy does not match the source"
                    )
        pairs = [p for f, temp in zip(batch, temps, strict=True) for p in (temp, f.final)]
        await self._step("cannot rename into place", _LAND, pairs)
        self.temps.difference_update(temps)
        self.records.extend(FileRecord(f.final, f.local.size, f.local.sha256) for f in batch)

    async def _blocks(self, local: LocalFile) -> AsyncIterator[bytes]:
        for index in range(self.source.blocks(local)):
            data = await self.source.block(local, index)
            yield data
            self.progress.advance(self.host.name, len(data))
            self.dog.kick()

    async def _upload(self, f: File) -> str:
        temp = temp_name(f.final)
        self.temps.add(temp)
        try:
            await self.fs.write_new(temp, self._mode(f.local), f.local.mtime, self._blocks(f.local))
        except (ShellError, OSError) as exc:
            raise TransferFailure(f"{f.final}: {exc}") from exc
        self.dog.kick()
        return temp

    async def send_links(self, links: list[Link]) -> None:
        if not links:
            return
        out = await self.fs.run(_READ_LINKS, [k.final for k in links], check=False)
        answers = out.decode("utf-8", errors="surrogateescape").split("\0")
        making: list[str] = []
        for index, item in enumerate(links):
            target = item.local.target
            now = answers[index] if index < len(answers) else ""
            skipped = now == target + "\n"  # readlink ends its answer with a newline
            if not skipped:
                temp = temp_name(item.final)
                self.temps.add(temp)  # before it exists: a lost connection leaves it named
                await self._step(f"{item.final}: cannot link", 'exec ln -s -- "$1" "$2"',
                                 [target, temp])  # fmt: skip
                making.extend((temp, item.final))
            size = len(target.encode("utf-8", errors="surrogateescape"))
            self.records.append(FileRecord(item.final, size, item.local.sha256, skipped))
        if making:
            await self._step("cannot rename a link into place", _LAND, making)
            self.temps.difference_update(making[0::2])

    async def finish_dirs(self, dirs: list[Dir]) -> None:
        """Give directories their source mode and mtime; DEST itself keeps its own."""
        for item in reversed(dirs):
            if item.is_dest:
                continue
            await self._step(
                f"{item.path}: cannot set its mode and time",
                f'chmod {item.local.mode & 0o7777:o} "$1" && TZ=UTC0 touch -c -t'
                f' {touch_stamp(item.local.mtime)} "$1"',
                [item.path],
            )

    def _mode(self, local: LocalFile) -> int:
        return self.options.mode if self.options.mode is not None else local.mode

    async def clean_up(self, fs: ShellFS | None = None) -> None:
        """Remove the temporary files left by a failure, within a few seconds."""
        if not self.temps:
            return
        with contextlib.suppress(TimeoutError, ShellError, asyncssh.Error, OSError):
            async with asyncio.timeout(_CLEAN_UP_SECONDS):
                await (fs or self.fs).run('rm -f -- "$@"', sorted(self.temps))
                self.temps.clear()

    async def clean_up_stalled(self) -> None:
        """The host stalled: remove the temporary files over a command of its own."""
        await self.clean_up(ShellFS(self.conn, self.become))

    def left_on_host(self) -> list[str]:
        return sorted(self.temps)
