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
from typing import cast

import asyncssh
from asyncssh.constants import OPEN_REQUEST_SESSION_FAILED
from asyncssh.sftp import MIN_SFTP_VERSION, start_sftp_client

from herd.hosts.become import Become

__all__ = ["SFTP_SERVERS", "NoSFTPServer", "open_sftp", "start_script"]

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
_NOT_FOUND = 127  # the shell's exit status for a command it cannot find
_STDERR_SHOWN = 400  # bytes of what sudo said, when the server did not start
_STDERR_WAIT = 2.0


class NoSFTPServer(asyncssh.SFTPFailure):
    """The host has no SFTP server: it refused the subsystem, or its program exited at once."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"the host has no SFTP server ({detail})")


async def open_sftp(
    conn: asyncssh.SSHClientConnection, become: Become | None
) -> asyncssh.SFTPClient:
    """An SFTP session as the login user, or as the user ``become`` names.

    Raises ``NoSFTPServer`` when the host refuses the sftp subsystem, or when the
    program behind it exits (its exit status comes back, the connection still up)
    before answering SFTP's first message: what the host said is the detail, such
    as Dropbear's ``sh: /usr/lib/sftp-server: not found``. A dropped connection is
    never taken for that. Raises ``asyncssh.SFTPError`` naming what the host said
    when the become user's server could not be started (a password sudo wanted).
    """
    if become is None:
        try:
            writer, reader, errors = await conn.open_session(subsystem="sftp", encoding=None)
        except asyncssh.ChannelOpenError as exc:
            if exc.code == OPEN_REQUEST_SESSION_FAILED:  # the channel opened, the request failed
                raise NoSFTPServer("it refused the sftp subsystem") from exc
            raise
    else:
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
                await writer.channel.wait_closed()  # its exit status comes before the close
        writer.close()
        reason = said.decode("utf-8", errors="replace").strip().splitlines()
        status = cast("asyncssh.SSHClientChannel[bytes]", writer.channel).get_exit_status()
        # the server program (or the shell starting it) exited before answering; under
        # become, only the "not found" of herd's own search for it says so
        exited = status is not None and status >= 0 and not conn.is_closed()
        if exited and (become is None or status == _NOT_FOUND):
            detail = reason[-1] if reason else f"its sftp subsystem exited with status {status}"
            raise NoSFTPServer(detail) from exc
        if become is None:
            raise
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
