"""SFTP and remote-shell steps shared by push and pull: hashing, temporary names, renames.

The remote sha256 is computed where the file is, with ``sha256sum`` (or
``shasum -a 256``) over one exec channel for a whole batch of files, the names
passed on stdin; a host with neither tool is read back over SFTP instead. The
same hashers give the sha256 of a file's first N bytes (``head -c N``): what a
pull checks a file that grew while it was read (a live log) against.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import posixpath
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

import asyncssh

from herd.core.model import FileRecord, Host, HostResult, Status
from herd.hosts.become import Become
from herd.hosts.connect import connection_lost
from herd.hosts.remote import feed_stdin
from herd.hosts.remote_access import start_script
from herd.hosts.transfer_plan import TransferOptions, TransferProgress

T = TypeVar("T")

__all__ = [
    "HASH_RATE",
    "HASH_SCRIPT",
    "PICK_HASHER",
    "PREFIX_HASH_SCRIPT",
    "TEMP_SUFFIX",
    "HostTransfer",
    "TransferFailure",
    "TransferJob",
    "Watchdog",
    "atomic_rename",
    "bounded_gather",
    "describe",
    "first_error",
    "is_temp_name",
    "parse_sha256_lines",
    "read_back_sha256",
    "read_blocks",
    "remote_prefix_sha256",
    "remote_sha256",
    "remove_quietly",
    "some_of",
    "stale_temp_of",
    "temp_name",
    "transfer_result",
]

TEMP_SUFFIX = ".tmp"
_TEMP_MARK = ".herd-"

# Picks the host's fastest hasher (OpenSSL uses the CPU's SHA instructions; coreutils'
# sha256sum is several times slower), then sha256sum, then shasum, into $h. The paths
# are absolute, so none can pass for an option. Exit 127: no hasher, read the files back.
PICK_HASHER = (
    "if openssl dgst -sha256 -r /dev/null >/dev/null 2>&1; then h='openssl dgst -sha256 -r'; "
    "elif command -v sha256sum >/dev/null 2>&1; then h=sha256sum; "
    "elif command -v shasum >/dev/null 2>&1; then h='shasum -a 256'; "
    "else exit 127; fi; "
)
HASH_SCRIPT = PICK_HASHER + "exec xargs -0 $h"
# The first N bytes of each file: stdin holds N and the path, NUL-terminated, for each
# file; one line comes back per file, in order: its digest, or "-" if it is not a
# readable regular file (what a shell outside the SFTP server's chroot sees).
PREFIX_HASH_SCRIPT = (
    PICK_HASHER + "head -c 0 </dev/null >/dev/null 2>&1 || exit 127; export h; "
    """exec xargs -0 -n 2 sh -c 'if [ -f "$2" ] && [ -r "$2" ]; """
    """then head -c "$1" <"$2" | $h; else echo -; fi' sh"""
)
_NO_HASHER = 127
_UNANNOUNCED_LIMIT = 16 * 1024  # asyncssh's limits when the server does not announce them
_UNANNOUNCED_SIZE = 128 * 1024  # what herd asks of such a server
HASH_RATE = 20 * 1024 * 1024  # bytes/s a busy host hashes at least: time allowed for it


class TransferFailure(Exception):
    """One host's transfer cannot go on; the message is the one-line reason for its result."""


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real error inside a task group's exception group."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return first_error(exc)
        return exc
    return group


def temp_name(final: str, now: float | None = None) -> str:
    """The name a file is written under beside its final one: ``.NAME.herd-TIME-XXXX.tmp``.

    TIME (hex seconds) says when it was started: a temporary file keeps the
    source's mtime, so only its name can tell a leftover from one in progress.
    """
    head, name = posixpath.split(final)
    started = int(time.time() if now is None else now)
    mark = f"{_TEMP_MARK}{started:x}-{secrets.token_hex(4)}"
    return posixpath.join(head, f".{name}{mark}{TEMP_SUFFIX}")


def is_temp_name(name: str) -> bool:
    """Whether ``name`` (a basename) is one of herd's temporary names."""
    return name.startswith(".") and _TEMP_MARK in name and name.endswith(TEMP_SUFFIX)


def stale_temp_of(name: str, older_than: float) -> str | None:
    """The final name a leftover temporary file ``name`` was for, if started before ``older_than``.

    None for any other name, or for a temporary file still young enough to be in use.
    """
    if not is_temp_name(name):
        return None
    final, _, rest = name[1 : -len(TEMP_SUFFIX)].rpartition(_TEMP_MARK)
    started, dash, _ = rest.partition("-")
    try:
        when = int(started, 16)
    except ValueError:
        return None
    return final if dash and final and when < older_than else None


def describe(exc: BaseException) -> str:
    """One line a person understands for an error met on a host."""
    if isinstance(exc, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection):
        return "connection lost"
    if isinstance(exc, asyncssh.SFTPError):
        return str(exc.reason or type(exc).__name__)
    if isinstance(exc, asyncssh.ConnectionLost | ConnectionError | asyncssh.DisconnectError):
        return connection_lost(exc)
    if isinstance(exc, TimeoutError):
        return "no progress in time (host stalled)"
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    return str(exc) or type(exc).__name__


def _unescape(name: bytes) -> bytes:
    out = bytearray()
    chars = iter(name)
    for char in chars:
        if char == 0x5C:  # backslash
            following = next(chars, 0x5C)
            out.append({0x6E: 0x0A, 0x72: 0x0D}.get(following, following))
        else:
            out.append(char)
    return bytes(out)


def parse_sha256_lines(output: bytes) -> dict[str, str]:
    """Read ``sha256sum`` (or ``openssl dgst -r``) output into {path: hex digest}.

    sha256sum escapes names with a newline or backslash; that is undone here.
    """
    hashes: dict[str, str] = {}
    for raw in output.split(b"\n"):
        line = raw
        escaped = line.startswith(b"\\")
        if escaped:
            line = line[1:]
        if len(line) < 66 or line[64:65] != b" ":
            continue
        digest = line[:64].decode("ascii", errors="replace").lower()
        name = line[66:]
        if escaped:
            name = _unescape(name)
        hashes[name.decode("utf-8", errors="surrogateescape")] = digest
    return hashes


def _nul_terminated(texts: Iterable[str]) -> bytes:
    return b"".join(t.encode("utf-8", errors="surrogateescape") + b"\0" for t in texts)


async def _hash_command(
    conn: asyncssh.SSHClientConnection,
    script: str,
    stdin: bytes,
    timeout: float,
    become: Become | None,
) -> bytes | None:
    """What one of the hash scripts prints (as ``become``'s user); None if no hasher."""
    process, preamble = await start_script(conn, script, become)
    feed_stdin(process, preamble + stdin)  # without a hasher it exits first: 127 says so
    result = await process.wait(check=False, timeout=timeout)
    if result.exit_status == _NO_HASHER:
        return None
    return result.stdout if isinstance(result.stdout, bytes) else b""


async def remote_sha256(
    conn: asyncssh.SSHClientConnection,
    paths: Sequence[str],
    timeout: float,
    become: Become | None = None,
) -> dict[str, str] | None:
    """The sha256 of each of ``paths`` as the host computes it; None if it has no hasher.

    A path that cannot be hashed (missing, unreadable) is simply absent from the answer.
    """
    if not paths:
        return {}
    stdout = await _hash_command(conn, HASH_SCRIPT, _nul_terminated(paths), timeout, become)
    return None if stdout is None else parse_sha256_lines(stdout)


async def remote_prefix_sha256(
    conn: asyncssh.SSHClientConnection,
    prefixes: Sequence[tuple[str, int]],
    timeout: float,
    become: Become | None = None,
) -> dict[str, str] | None:
    """The sha256 of the first N bytes of each (path, N), as the host computes it.

    None if the host has no hasher; a path it could not read is absent from the answer.
    """
    if not prefixes:
        return {}
    stdin = _nul_terminated(text for path, size in prefixes for text in (str(size), path))
    stdout = await _hash_command(conn, PREFIX_HASH_SCRIPT, stdin, timeout, become)
    if stdout is None:
        return None
    lines = stdout.splitlines()
    if len(lines) != len(prefixes):  # not one answer per file: trust none of them
        return {}
    return {
        path: line[:64].decode("ascii").lower()
        for (path, _), line in zip(prefixes, lines, strict=True)
        if len(line) >= 64 and all(c in b"0123456789abcdefABCDEF" for c in line[:64])
    }


async def read_back_sha256(
    sftp: asyncssh.SFTPClient, path: str, block_size: int, requests: int, size: int | None = None
) -> str:
    """The sha256 of a remote file (or of its first ``size`` bytes) read back over SFTP.

    For hosts without a hasher, and SFTP servers chrooted where the shell is not.
    """
    digest = hashlib.sha256()
    async with sftp.open(path, "rb", block_size=block_size) as remote:
        if size is None:
            size = (await remote.stat()).size or 0
        async for chunk in read_blocks(remote, size, block_size, requests):
            digest.update(chunk)
    return digest.hexdigest()


async def read_blocks(
    remote: asyncssh.SFTPClientFile, size: int, block_size: int, requests: int
) -> AsyncIterator[bytes]:
    """The first ``size`` bytes of an open remote file, in order, ``requests`` reads in flight.

    A block shorter than asked means the file shrank under us: the caller sees a
    short total and decides. Reads still in flight are cancelled if the caller stops.
    """
    offsets = deque(range(0, size, block_size))
    window: deque[asyncio.Task[bytes]] = deque()
    try:
        while offsets or window:
            while offsets and len(window) < requests:
                offset = offsets.popleft()
                want = min(block_size, size - offset)
                window.append(asyncio.ensure_future(remote.read(want, offset)))
            chunk = await window.popleft()
            yield chunk
            if not chunk:
                return
    finally:
        for task in window:
            task.cancel()
        if window:
            await asyncio.gather(*window, return_exceptions=True)


async def atomic_rename(sftp: asyncssh.SFTPClient, temp: str, final: str) -> None:
    """Move ``temp`` over ``final`` in one step (posix-rename@openssh.com where the server has it).

    Without the extension, the old file is removed first: for a moment there is no
    file under the final name, but never a partial one.
    """
    try:
        await sftp.posix_rename(temp, final)
    except asyncssh.SFTPOpUnsupported:
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await sftp.remove(final)
        await sftp.rename(temp, final)


async def remove_quietly(sftp: asyncssh.SFTPClient, paths: Iterable[str]) -> list[str]:
    """Remove leftover temporary files; the ones still there (any already gone are not)."""
    left: list[str] = []
    for path in paths:
        try:
            await sftp.remove(path)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
            pass
        except (asyncssh.Error, OSError):
            left.append(path)
    return left


async def bounded_gather(jobs: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run ``jobs`` with at most ``limit`` at once; results in order; the first error wins."""
    results: list[T] = []
    pending = list(jobs)
    semaphore = asyncio.Semaphore(max(1, limit))

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(job)) for job in pending]
    except BaseExceptionGroup as errors:
        raise first_error(errors) from None
    results.extend(task.result() for task in tasks)
    return results


class Watchdog:
    """Gives up on a host that stops making progress, whatever it is waiting for.

    ``kick()`` pushes the deadline ``stall`` seconds ahead; ``allow(seconds)``
    grants one longer wait (a remote hash of a big file, during which nothing
    moves). When the deadline passes, ``expired`` turns true, so the caller
    reports a timeout, and ``on_stall`` runs (push first removes its temporary
    files if the host still answers; both then abort the host's connection,
    which fails every request still waiting on it at once). Leaving the
    ``async with`` waits for ``on_stall`` to finish once it has started.
    """

    def __init__(self, stall: float, on_stall: Callable[[], Awaitable[None]]) -> None:
        self.stall = stall
        self.expired = False
        self._on_stall = on_stall
        self._deadline = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watchdog:
        self._deadline = asyncio.get_running_loop().time() + self.stall
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            if not self.expired:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while (left := self._deadline - loop.time()) > 0:
            await asyncio.sleep(left)
        self.expired = True
        await self._on_stall()

    def kick(self) -> None:
        self.allow(self.stall)

    def allow(self, seconds: float) -> None:
        deadline = asyncio.get_running_loop().time() + max(seconds, self.stall)
        self._deadline = max(self._deadline, deadline)


def some_of(items: Sequence[str], separator: str = "; ", shown: int = 3) -> str:
    """The first ``shown`` of ``items`` joined, and how many more there are."""
    text = separator.join(items[:shown])
    more = len(items) - shown
    return f"{text} (and {more} more)" if more > 0 else text


class TransferJob(Protocol):
    """What a host's result is made from: the files that landed, what is left on the host."""

    records: list[FileRecord]

    def left_on_host(self) -> list[str]: ...


def transfer_result(
    host: Host,
    started: float,
    dog: Watchdog,
    job: TransferJob | None,
    *,
    status: Status,
    error: str,
) -> HostResult:
    """One host's push or pull result; a host the watchdog hung up on is a timeout.

    Temporary files that could not be removed (the host stopped answering) are named
    in the reason, so the operator knows where they are.
    """
    if dog.expired:
        status, error = Status.TIMEOUT, f"no progress for {dog.stall:g} s"
    left = job.left_on_host() if job is not None else []
    if left and status is not Status.OK:
        error = (
            f"{error}; left on the host: {some_of(left, ', ')}"
            " (a push of the same files removes them after a day)"
        )
    return HostResult(
        host=host.name,
        address=host.address,
        status=status,
        duration=time.monotonic() - started,
        error=error,
        files=tuple(job.records) if job is not None else (),
    )


def request_sizes(limits: asyncssh.SFTPLimits, block_size: int) -> tuple[int, int]:
    """The largest SFTP read and write to ask of this server, up to ``block_size``.

    A server that answers limits@openssh.com (OpenSSH 8.6 and later) says what
    it takes; asyncssh's stand-in without an answer is a timid 16 KiB, where
    herd keeps 128 KiB, which every SFTP server it has met accepts. asyncssh
    splits a longer read or write into requests of these sizes.
    """

    def fitting(announced: int) -> int:
        told = announced and announced != _UNANNOUNCED_LIMIT
        return min(block_size, announced if told else _UNANNOUNCED_SIZE)

    return fitting(limits.max_read_len), fitting(limits.max_write_len)


class ByteBudget:
    """Bytes one host may have in SFTP reads and writes at once (first come, first served).

    Counting bytes, not requests, lets a host keep many small files moving at
    once while a big file's large requests stay within the same memory. A
    single request larger than the budget goes alone.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def take(self, nbytes: int) -> None:
        if not self._waiting and self._fits(nbytes):
            self._used += nbytes
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (nbytes, granted)
        self._waiting.append(entry)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.give(nbytes)  # granted as we were cancelled: hand it on
            else:
                self._waiting.remove(entry)
            raise

    def would_wait(self, nbytes: int) -> bool:
        """Whether ``take(nbytes)`` would wait now (for others to give back theirs)."""
        return bool(self._waiting) or not self._fits(nbytes)

    def give(self, nbytes: int) -> None:
        self._used -= nbytes
        while self._waiting and self._fits(self._waiting[0][0]):
            wanted, granted = self._waiting.popleft()
            self._used += wanted
            granted.set_result(None)

    def _fits(self, nbytes: int) -> bool:
        return self._used == 0 or self._used + nbytes <= self._limit


class HostTransfer:
    """One host's push or pull: its connection, SFTP session, options, watchdog, and what landed."""

    def __init__(
        self,
        *,
        conn: asyncssh.SSHClientConnection,
        sftp: asyncssh.SFTPClient,
        host: Host,
        options: TransferOptions,
        progress: TransferProgress,
        dog: Watchdog,
        become: Become | None = None,
    ) -> None:
        self.conn = conn
        self.become = become  # whom the SFTP session and the hash commands act as
        self.sftp = sftp
        self.host = host
        self.options = options
        self.progress = progress
        self.dog = dog
        self.records: list[FileRecord] = []
        self.read_size, self.write_size = request_sizes(sftp.limits, options.block_size)
        # what SFTP reads and writes may hold at once: block size x requests
        self.in_flight = ByteBudget(max(1, options.requests) * options.block_size)

    def left_on_host(self) -> list[str]:
        """Temporary files this transfer made on the host and could not remove."""
        return []

    async def host_hashes(self, paths: list[str], nbytes: int) -> dict[str, str] | None:
        """The host's own sha256 of ``paths`` (None: it has no hasher), with time allowed for it."""
        if not paths:
            return {}
        allowance = self.dog.stall + nbytes / HASH_RATE
        self.dog.allow(allowance)
        found = await remote_sha256(self.conn, paths, timeout=allowance, become=self.become)
        self.dog.kick()
        return found

    async def verified_hashes(self, paths: list[str], nbytes: int) -> dict[str, str]:
        """sha256 of remote files: by the host's own hasher, or read back if it has none.

        Files the host's shell could not hash (no hasher, or an SFTP server chrooted
        where the shell is not, as the builtin lab's) are read back over SFTP: a size
        and an mtime alone never pass for a verified copy.
        """
        found = await self.host_hashes(paths, nbytes) or {}
        for path in paths:
            if path not in found:
                found[path] = await read_back_sha256(
                    self.sftp, path, self.read_size, self.options.requests
                )
                self.dog.kick()
        return found

    async def host_prefix_hashes(self, prefixes: list[tuple[str, int]]) -> dict[str, str]:
        """The sha256 of the first N bytes of each (path, N), read back where the host cannot."""
        if not prefixes:
            return {}
        allowance = self.dog.stall + sum(size for _, size in prefixes) / HASH_RATE
        self.dog.allow(allowance)
        found = (
            await remote_prefix_sha256(self.conn, prefixes, timeout=allowance, become=self.become)
            or {}
        )
        self.dog.kick()
        for path, size in prefixes:
            if path not in found:
                found[path] = await read_back_sha256(
                    self.sftp, path, self.read_size, self.options.requests, size
                )
                self.dog.kick()
        return found
