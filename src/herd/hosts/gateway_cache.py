"""A push's files sent once to a gateway, a pull's fetched back from it: its private cache.

A push through a gateway crosses the controller's link once per gateway, not
once per host: before the gateway gets its hosts, herd puts each distinct file
of the push (by sha256, so a file sent under two names goes once) into a new
directory on the gateway, made 0700 with a random name under the gateway
user's home, over the gateway's own SSH connection. The job the gateway gets
points its files there, every other field as it was (where each lands, its
mode and time), so the hosts behind it get exactly what a direct push gives.
The gateway checks each file's sha256 before its first host (``check_cache``),
pushes with the same engine (atomic, verified, idempotent), and removes the
cache when it ends (``remove_cache``); herd removes it too on closing the
gateway, for a gateway that died.

A pull through a gateway lands in its cache, ``CACHE/HOST/REMOTE_PATH``, with
the pull engine's rules; as each host finishes, herd fetches ``CACHE/HOST``
back over the gateway's connection with the same engine, landing it in
``DEST/HOST/REMOTE_PATH`` exactly as a direct pull would (nothing written
through a link, names checked: the gateway is a host, and trusted no more),
then removes ``CACHE/HOST`` there (``fetch_back``). The price: each file is
written on the gateway's disk on the way, and a re-run still moves files from
the hosts to the gateway (only the controller's copies are skipped).

A gateway whose chain goes on does the same for its next hop, from its own cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import posixpath
import secrets
import shutil
from dataclasses import replace
from pathlib import Path

import asyncssh

from herd.core.model import Host, HostResult, Status
from herd.errors import SourceError
from herd.hosts.pull import pull_host
from herd.hosts.remote_access import open_sftp
from herd.hosts.sftp_ops import describe
from herd.hosts.transfer import PullJob, PushJob, TransferJob
from herd.hosts.transfer_plan import NoProgress, hash_file

__all__ = [
    "CACHE_PREFIX",
    "FETCHING",
    "check_cache",
    "drop_cache",
    "fetch_back",
    "remove_cache",
    "send_cache",
]

CACHE_PREFIX = ".herd-cache-"
FETCHING = 4  # hosts fetched back from one gateway at once: sshd allows 10 channels
_REMOVE_TIMEOUT = 10.0  # seconds herd gives the removal of a dead gateway's cache


async def _new_cache(sftp: asyncssh.SFTPClient) -> str:
    """A new directory only this user can enter, under its home on the far side."""
    home = await sftp.realpath(".")
    cache = posixpath.join(home, CACHE_PREFIX + secrets.token_hex(16))
    await sftp.mkdir(cache, asyncssh.SFTPAttrs(permissions=0o700))  # fails if it exists
    await sftp.chmod(cache, 0o700)  # whatever the umask there
    return cache


async def send_cache(
    conn: asyncssh.SSHClientConnection, job: TransferJob
) -> tuple[str, TransferJob]:
    """A new private directory on the far side of ``conn``, and ``job`` pointed at it:
    a push with its files put there, a pull landing there.

    Raises ``OSError`` or ``asyncssh.Error`` (the directory removed again) if the
    files cannot all be sent.
    """
    async with await open_sftp(conn, None) as sftp:
        cache = await _new_cache(sftp)
        if isinstance(job, PushJob):
            by_hash = {f.sha256: f.path for tree in job.plan.sources for f in tree.files}
            try:
                for sha256, path in by_hash.items():
                    await sftp.put(path, posixpath.join(cache, sha256))
            except BaseException:
                with contextlib.suppress(OSError, asyncssh.Error):
                    await sftp.rmtree(cache, ignore_errors=True)
                raise
    if isinstance(job, PullJob):
        return cache, replace(job, dest_dir=Path(cache))
    sources = tuple(
        replace(
            tree,
            files=tuple(replace(f, path=Path(cache, f.sha256)) for f in tree.files),
        )
        for tree in job.plan.sources
    )
    return cache, replace(job, plan=replace(job.plan, sources=sources))


def check_cache(job: TransferJob, cache: str) -> None:
    """On the gateway: a pull lands in ``cache``; each file of a push is there with its
    sha256 (SourceError if not)."""
    top = Path(cache)
    if not top.name.startswith(CACHE_PREFIX):
        raise SourceError(f"{cache}: not a herd gateway cache")
    if isinstance(job, PullJob):
        if job.dest_dir != top:
            raise SourceError(f"{cache}: the pull lands in {job.dest_dir}, not its cache")
        return
    for tree in job.plan.sources:
        for file in tree.files:
            if file.path.parent != top:
                raise SourceError(f"{file.path}: outside the cache {cache}")
            try:
                found = hash_file(file.path)
            except OSError as exc:
                raise SourceError(f"{file.path}: cannot read: {exc.strerror or exc}") from exc
            if found != file.sha256:
                raise SourceError(f"{file.path}: arrived with sha256 {found}, not {file.sha256}")


def remove_cache(cache: str) -> None:
    """On the gateway: remove the cache (only a directory named as one)."""
    if Path(cache).name.startswith(CACHE_PREFIX):
        shutil.rmtree(cache, ignore_errors=True)


async def drop_cache(conn: asyncssh.SSHClientConnection, cache: str) -> None:
    """From herd's side: remove a gateway's cache if it is still there (the gateway died)."""
    with contextlib.suppress(OSError, asyncssh.Error, TimeoutError):
        async with asyncio.timeout(_REMOVE_TIMEOUT):
            async with await open_sftp(conn, None) as sftp:
                await sftp.rmtree(cache, ignore_errors=True)


async def fetch_back(
    conn: asyncssh.SSHClientConnection,
    result: HostResult,
    *,
    host: Host,
    cache: str,
    job: PullJob,
) -> HostResult:
    """``host``'s pull, landed in the gateway's ``cache``, landed in ``job``'s DEST/HOST too.

    The gateway's result stands (its files, bytes and hashes are the host's own);
    a failure to fetch it back makes it the host's error, naming the gateway.
    """
    top = posixpath.join(cache, host.name)
    try:
        async with await open_sftp(conn, None) as sftp:
            await sftp.lstat(top)
    except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
        return result  # nothing of the host's landed there
    except (OSError, asyncssh.Error) as exc:
        return replace(result, status=Status.ERROR, error=f"fetching it back: {describe(exc)}")
    bare = replace(host, vars={})  # the cache is the gateway user's: no become there
    options = replace(job.options, become=None, follow_symlinks=False)
    back = await pull_host(
        conn, bare, sources=[top], dest_dir=job.dest_dir, options=options,
        progress=NoProgress(), under=top,
    )  # fmt: skip
    with contextlib.suppress(OSError, asyncssh.Error):
        async with await open_sftp(conn, None) as sftp:  # its disk, freed host by host
            await sftp.rmtree(top, ignore_errors=True)
    if back.status is Status.OK:
        return result
    said = "; ".join(filter(None, [result.error, f"fetching it back: {back.error}"]))
    return replace(result, status=back.status, error=said)
