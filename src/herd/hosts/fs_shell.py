"""A host's files over plain command channels, for hosts without an SFTP server.

Every step is a small POSIX ``sh`` script run by ``exec sh -c '...'``, or, when
long, sent on stdin to ``sh -s`` (Dropbear drops an exec request much over 9000
bytes). One command runs at a time per host: Dropbear 2022.83 fails session
opens when several start at once. Paths are always absolute and single-quoted,
so no name can pass for an option or shell code; what the host sends back
(listings) is NUL-terminated and checked by the caller like any host-provided
name. Needs ``stat -c`` (GNU coreutils or BusyBox) besides the usual ``cat``,
``mv``, ``ln``, ``chmod`` and ``touch``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import stat
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass

import asyncssh

from herd.hosts.become import Become
from herd.hosts.remote import feed_stdin
from herd.hosts.remote_access import start_script
from herd.hosts.sftp_ops import PICK_HASHER, TransferFailure

__all__ = ["HostStat", "ShellError", "ShellFS", "ShellLister", "quote", "touch_stamp"]

_INLINE_LIMIT = 4000  # longer scripts go on stdin to ``sh -s``
_READ_SIZE = 256 * 1024
_NO_HASHER = 127
_STAT_FORMAT = "'%f %s %Y'"  # raw mode (hex), size, mtime
# a line per path, in order: stat's answer, or "-" if there is nothing there
_STAT_LOOP = 'for p; do stat {flag} -c {fmt} -- "$p" 2>/dev/null || echo -; done'
# For each path: the path, NUL, then stat's answer line (or "-")
_STAT_EACH = (
    'for f; do printf "%s\\0" "$f"; stat {flag} -c {fmt} -- "$f" 2>/dev/null || echo -; done'
)
_HASH_LOOP = (
    'for p; do if [ -f "$p" ] && [ -r "$p" ]; then $h <"$p" || echo -; else echo -; fi; done'
)
# The names in directory $1, each NUL-terminated (exit 1: it cannot be listed)
_NAMES_IN = (
    '[ -d "$1" ] && [ -r "$1" ] && [ -x "$1" ] || exit 1; '
    'for f in "$1"/* "$1"/.*; do { [ -e "$f" ] || [ -L "$f" ]; } || continue; '
    'n=${f##*/}; [ "$n" = . ] || [ "$n" = .. ] || printf \'%s\\0\' "$n"; done; exit 0'
)
_PREFLIGHT = (
    "for t; do "
    'command -v "$t" >/dev/null 2>&1 || { echo "the host has no $t command" >&2; exit 1; }; '
    "done; pwd -P"
)


class ShellError(TransferFailure):
    """A command on the host failed; the message is what it said (its last stderr line)."""


def quote(text: str) -> str:
    """``text`` as one single-quoted shell word (a ``'`` becomes ``'\\''``)."""
    return "'" + text.replace("'", "'\\''") + "'"


def _words(paths: Sequence[str]) -> str:
    return " ".join(quote(p) for p in paths)


@dataclass(frozen=True, slots=True)
class HostStat:
    """What ``stat`` says of a path on the host."""

    kind: int  # stat.S_IFDIR, S_IFREG, S_IFLNK, ...
    mode: int  # permission bits
    size: int
    mtime: int

    @property
    def is_dir(self) -> bool:
        return self.kind == stat.S_IFDIR

    @property
    def is_file(self) -> bool:
        return self.kind == stat.S_IFREG

    @property
    def is_link(self) -> bool:
        return self.kind == stat.S_IFLNK


def _parse_stat(line: str) -> HostStat | None:
    fields = line.split()
    if len(fields) != 3:
        return None
    try:
        raw, size, mtime = int(fields[0], 16), int(fields[1]), int(fields[2])
    except ValueError:
        return None
    return HostStat(stat.S_IFMT(raw), stat.S_IMODE(raw), size, mtime)


def _parse_walk(out: bytes) -> list[tuple[str, HostStat | None]]:
    """``_STAT_EACH``'s answer: each path (NUL-terminated) followed by a stat line."""
    found: list[tuple[str, HostStat | None]] = []
    pos = 0
    while (end := out.find(b"\0", pos)) >= 0 and (line_end := out.find(b"\n", end)) >= 0:
        name = out[pos:end].decode("utf-8", errors="surrogateescape")
        found.append((name, _parse_stat(out[end + 1 : line_end].decode("ascii", errors="replace"))))
        pos = line_end + 1
    return found


def touch_stamp(mtime: float) -> str:
    """``mtime`` as ``touch -t`` takes it, in UTC (run with ``TZ=UTC0``)."""
    return time.strftime("%Y%m%d%H%M.%S", time.gmtime(int(mtime)))


class ShellFS:
    """One host's files over command channels, one command at a time."""

    def __init__(self, conn: asyncssh.SSHClientConnection, become: Become | None) -> None:
        self._conn = conn
        self._become = become
        self._one_at_a_time = asyncio.Lock()

    async def _start(
        self, script: str, args: Sequence[str] = ()
    ) -> tuple[asyncssh.SSHClientProcess[bytes], bytes]:
        """Start ``script`` with ``args`` as $1...; what must go first on its stdin."""
        words = _words(args)
        inline = f"exec sh -c {quote(script)} sh {words}"
        if len(inline.encode("utf-8", errors="surrogateescape")) <= _INLINE_LIMIT:
            return await start_script(self._conn, inline, self._become)
        body = f"set -- {words}\n{script}\n" if args else f"{script}\n"
        process, preamble = await start_script(self._conn, "exec sh -s", self._become)
        return process, preamble + body.encode("utf-8", errors="surrogateescape")

    async def run(self, script: str, args: Sequence[str] = (), *, check: bool = True) -> bytes:
        """What ``script`` prints; raises ``ShellError`` if it fails (and ``check``)."""
        status, out, said = await self.run_status(script, args)
        if check and status != 0:
            raise ShellError(said)
        return out

    async def run_status(self, script: str, args: Sequence[str] = ()) -> tuple[int, bytes, str]:
        """``script``'s exit status, what it printed, and the last line it said on stderr."""
        async with self._one_at_a_time:
            process, stdin = await self._start(script, args)
            feed_stdin(process, stdin)  # a command done before it is fed is no error
            result = await process.wait(check=False)
        out = result.stdout if isinstance(result.stdout, bytes) else b""
        status = result.exit_status if result.exit_status is not None else -1
        return status, out, _said(result.stderr, result.exit_status)

    async def preflight(self, tools: Sequence[str], no_sftp: str) -> str:
        """The login directory, once ``tools`` are seen to be there.

        Raises ``TransferFailure`` naming ``no_sftp`` (why SFTP could not be used)
        and why the commands cannot stand in: a tool missing, or the host refusing
        to run commands at all.
        """
        try:
            out = await self.run(_PREFLIGHT, tools)
        except (ShellError, asyncssh.ChannelOpenError) as exc:
            reason = exc.reason if isinstance(exc, asyncssh.ChannelOpenError) else str(exc)
            raise TransferFailure(f"{no_sftp}; over plain commands: {reason}") from exc
        return out.decode("utf-8", errors="surrogateescape").removesuffix("\n")

    async def stat_many(self, paths: Sequence[str], *, follow: bool) -> list[HostStat | None]:
        """``stat`` of each path (``follow``: through a link), None where nothing is."""
        if not paths:
            return []
        script = _STAT_LOOP.format(flag="-L" if follow else "", fmt=_STAT_FORMAT)
        lines = (await self.run(script, paths)).decode("ascii", errors="replace").splitlines()
        if len(lines) != len(paths):
            raise ShellError(f"stat answered {len(lines)} lines for {len(paths)} paths")
        return [_parse_stat(line) for line in lines]

    async def walk(
        self, path: str, *, follow: bool
    ) -> tuple[list[tuple[str, HostStat | None]], str]:
        """Every entry under ``path`` (itself first, parents before children) with its stat,
        and what ``find`` said if it could not walk all of it ("" if it could)."""
        flag = "-L" if follow else ""
        each = _STAT_EACH.format(flag=flag, fmt=_STAT_FORMAT)
        status, out, said = await self.run_status(
            f'exec find {flag} "$1" -exec sh -c {quote(each)} sh {{}} +', [path]
        )
        return _parse_walk(out), (said if status != 0 else "")

    async def hashes(self, paths: Sequence[str]) -> dict[str, str] | None:
        """The host's sha256 of each readable regular file; None if it has no hash tool."""
        if not paths:
            return {}
        async with self._one_at_a_time:
            process, stdin = await self._start(PICK_HASHER + _HASH_LOOP, paths)
            feed_stdin(process, stdin)
            result = await process.wait(check=False)
        if result.exit_status == _NO_HASHER:
            return None
        out = result.stdout if isinstance(result.stdout, bytes) else b""
        lines = out.splitlines()
        if len(lines) != len(paths):  # not one answer per file: trust none of them
            return {}
        hexdigits = b"0123456789abcdefABCDEF"
        return {
            path: line[:64].decode("ascii").lower()
            for path, line in zip(paths, lines, strict=True)
            if len(line) >= 64 and all(c in hexdigits for c in line[:64])
        }

    async def read_back(self, path: str) -> str:
        """The sha256 of a remote file, read back here (for hosts without a hash tool)."""
        digest = hashlib.sha256()
        async with contextlib.aclosing(self.read(path)) as chunks:
            async for chunk in chunks:
                digest.update(chunk)
        return digest.hexdigest()

    async def read(self, path: str, size: int | None = None) -> AsyncGenerator[bytes, None]:
        """The bytes of ``path`` (its first ``size`` if given), as they arrive."""
        script = 'exec cat -- "$1"' if size is None else f'exec head -c {int(size)} -- "$1"'
        async with self._one_at_a_time:
            process, stdin = await self._start(script, [path])
            try:  # a reader that stops early (an error here) closes the channel
                feed_stdin(process, stdin)
                while chunk := await process.stdout.read(_READ_SIZE):
                    yield chunk
                result = await process.wait(check=False)
            finally:
                process.close()
        if result.exit_status != 0:
            raise ShellError(_said(result.stderr, result.exit_status))

    async def write_new(
        self, path: str, mode: int, mtime: float, chunks: AsyncIterator[bytes]
    ) -> None:
        """Create ``path`` afresh (never through a link of that name), fill, chmod, touch."""
        script = (
            'umask 077; set -C; cat >"$1" || exit 1; '
            f'chmod {mode & 0o7777:o} "$1" && TZ=UTC0 touch -c -t {touch_stamp(mtime)} "$1"'
        )
        async with self._one_at_a_time:
            process, stdin = await self._start(script, [path])
            try:  # a source that fails part way closes the channel: cat stops there
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    # cat gone early: its exit status says why
                    process.stdin.write(stdin)
                    async for chunk in chunks:
                        process.stdin.write(chunk)
                        await process.stdin.drain()
                feed_stdin(process, None)
                result = await process.wait(check=False)
            finally:
                process.close()
        if result.exit_status != 0:
            raise ShellError(_said(result.stderr, result.exit_status))


class ShellLister:
    """A glob's view of the host over commands (``herd.hosts.remote_glob.Lister``)."""

    def __init__(self, fs: ShellFS) -> None:
        self._fs = fs

    async def is_dir(self, path: str) -> bool:
        found = await self._fs.stat_many([path], follow=True)
        return found[0] is not None and found[0].is_dir

    async def exists(self, path: str) -> bool:
        return (await self._fs.stat_many([path], follow=False))[0] is not None

    async def names(self, directory: str) -> list[str] | None:
        status, out, _ = await self._fs.run_status(_NAMES_IN, [directory])
        if status != 0:
            return None
        return [n for n in out.decode("utf-8", errors="surrogateescape").split("\0") if n]


def _said(stderr: object, status: int | None) -> str:
    text = stderr.decode("utf-8", errors="replace") if isinstance(stderr, bytes) else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {status}"
