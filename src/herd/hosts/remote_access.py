"""Whom a transfer acts as on a host: the login user, or the user it becomes.

Without become, SFTP is the host's own subsystem and the hash commands run in
the login shell. With ``--become`` (or the inventory's ``ansible_become``), the
host's ``sftp-server`` runs under sudo, su or doas on a channel of its own and
herd's SFTP client talks to it there: every stat, temporary file, rename and
link of the transfer is made as the target user, so a non-root login writes
root-owned paths the same atomic, verified way. The hash commands run as that
user too. A become password reaches the host on stdin, ahead of the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncssh
from asyncssh.sftp import MIN_SFTP_VERSION, start_sftp_client

from herd.hosts.become import Become

__all__ = ["SFTP_SERVERS", "open_sftp", "start_script"]

# Where distributions install OpenSSH's sftp-server (Debian, Red Hat, Arch, BSD, the rest)
SFTP_SERVERS = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
    "/usr/libexec/sftp-server",
    "/usr/lib/sftp-server",
)
_RUN_SFTP_SERVER = (
    "for s in " + " ".join(SFTP_SERVERS) + '; do [ -x "$s" ] && exec "$s"; done; '
    'echo "herd: no sftp-server found in the usual places" >&2; exit 127'
)
_STDERR_SHOWN = 400  # bytes of what sudo said, when the server did not start
_STDERR_WAIT = 2.0


async def open_sftp(
    conn: asyncssh.SSHClientConnection, become: Become | None
) -> asyncssh.SFTPClient:
    """An SFTP session as the login user, or as the user ``become`` names.

    Raises ``asyncssh.SFTPError`` naming what the host said when the become user's
    server could not be started (a password sudo wanted, no sftp-server).
    """
    if become is None:
        return await conn.start_sftp_client()
    writer, reader, errors = await conn.open_session(
        command=become.wrap("", _RUN_SFTP_SERVER), encoding=None
    )
    preamble = "".join(line + "\n" for line in become.password_line())
    if preamble:
        writer.write(preamble.encode("utf-8", errors="surrogateescape"))
    try:
        return await start_sftp_client(
            conn, asyncio.get_running_loop(), "strict", reader, writer, "utf-8", "strict",
            MIN_SFTP_VERSION,
        )  # fmt: skip
    except (asyncssh.Error, OSError, asyncio.IncompleteReadError) as exc:
        said = b""
        with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
            async with asyncio.timeout(_STDERR_WAIT):
                said = await errors.read(_STDERR_SHOWN)
        writer.close()
        reason = said.decode("utf-8", errors="replace").strip().splitlines()
        detail = reason[-1] if reason else str(exc) or type(exc).__name__
        raise asyncssh.SFTPFailure(
            f"cannot become {become.user} with {become.method} for the transfer: {detail}"
        ) from exc


async def start_script(
    conn: asyncssh.SSHClientConnection, script: str, become: Become | None
) -> tuple[asyncssh.SSHClientProcess[bytes], bytes]:
    """Start ``script`` as the login user or the become user; what to write first on stdin."""
    if become is None:
        return await conn.create_process(script, encoding=None), b""
    process = await conn.create_process(become.wrap("", script), encoding=None)
    preamble = "".join(line + "\n" for line in become.password_line())
    return process, preamble.encode("utf-8", errors="surrogateescape")
