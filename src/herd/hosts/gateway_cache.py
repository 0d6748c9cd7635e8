"""A push's files sent once to a gateway: its private cache there.

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
gateway, for a gateway that died. A gateway whose chain goes on caches for its
next hop the same way, from its own cache.
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

from herd.errors import SourceError
from herd.hosts.remote_access import open_sftp
from herd.hosts.transfer import PushJob
from herd.hosts.transfer_plan import hash_file

__all__ = ["CACHE_PREFIX", "check_cache", "drop_cache", "remove_cache", "send_cache"]

CACHE_PREFIX = ".herd-push-"
_REMOVE_TIMEOUT = 10.0  # seconds herd gives the removal of a dead gateway's cache


async def send_cache(conn: asyncssh.SSHClientConnection, job: PushJob) -> tuple[str, PushJob]:
    """Put ``job``'s files in a new private directory on the far side of ``conn``.

    The directory, and the job with its files read from there. Raises
    ``OSError`` or ``asyncssh.Error`` (the directory removed again) if they
    cannot all be sent.
    """
    by_hash = {f.sha256: f.path for tree in job.plan.sources for f in tree.files}
    async with await open_sftp(conn, None) as sftp:
        home = await sftp.realpath(".")
        cache = posixpath.join(home, CACHE_PREFIX + secrets.token_hex(16))
        await sftp.mkdir(cache, asyncssh.SFTPAttrs(permissions=0o700))  # fails if it exists
        try:
            await sftp.chmod(cache, 0o700)  # whatever the umask there
            for sha256, path in by_hash.items():
                await sftp.put(path, posixpath.join(cache, sha256))
        except BaseException:
            with contextlib.suppress(OSError, asyncssh.Error):
                await sftp.rmtree(cache, ignore_errors=True)
            raise
    sources = tuple(
        replace(
            tree,
            files=tuple(replace(f, path=Path(cache, f.sha256)) for f in tree.files),
        )
        for tree in job.plan.sources
    )
    return cache, replace(job, plan=replace(job.plan, sources=sources))


def check_cache(job: PushJob, cache: str) -> None:
    """On the gateway: each file of ``job`` is in ``cache`` with its sha256 (SourceError if not)."""
    top = Path(cache)
    if not top.name.startswith(CACHE_PREFIX):
        raise SourceError(f"{cache}: not a herd push cache")
    for tree in job.plan.sources:
        for file in tree.files:
            if file.path.parent != top:
                raise SourceError(f"{file.path}: outside the push cache {cache}")
            try:
                found = hash_file(file.path)
            except OSError as exc:
                raise SourceError(f"{file.path}: cannot read: {exc.strerror or exc}") from exc
            if found != file.sha256:
                raise SourceError(f"{file.path}: arrived with sha256 {found}, not {file.sha256}")


def remove_cache(cache: str) -> None:
    """On the gateway: remove the push cache (only a directory named as one)."""
    if Path(cache).name.startswith(CACHE_PREFIX):
        shutil.rmtree(cache, ignore_errors=True)


async def drop_cache(conn: asyncssh.SSHClientConnection, cache: str) -> None:
    """From herd's side: remove a gateway's cache if it is still there (the gateway died)."""
    with contextlib.suppress(OSError, asyncssh.Error, TimeoutError):
        async with asyncio.timeout(_REMOVE_TIMEOUT):
            async with await open_sftp(conn, None) as sftp:
                await sftp.rmtree(cache, ignore_errors=True)
