"""A host without an SFTP server is named as such; a connection that drops never is.

The hosts are asyncssh servers on loopback whose sftp subsystem is each way a
real server can lack one: refused (OpenSSH without a ``Subsystem`` line), or
its program exiting at once with what the shell said (Dropbear without
``sftp-server``; the system tests run that one for real). The third drops
the whole connection instead: that is "connection lost", as before. These
hosts run no commands either, so the fallback over commands is refused too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest

from herd.core.model import Host, Status
from herd.hosts.pull import pull_host
from herd.hosts.remote_access import NoSFTPServer, open_sftp
from herd.hosts.sftp_ops import describe
from herd.hosts.transfer_plan import NoProgress, TransferOptions

Start = Callable[[asyncssh.SSHServerChannel[bytes]], None]


def _missing(chan: asyncssh.SSHServerChannel[bytes]) -> None:
    chan.write_stderr(b"sh: /usr/lib/sftp-server: not found\n")
    chan.exit(127)


def _silent(chan: asyncssh.SSHServerChannel[bytes]) -> None:
    chan.exit(1)


def _drop(chan: asyncssh.SSHServerChannel[bytes]) -> None:
    chan.get_extra_info("connection").abort()


class _Session(asyncssh.SSHServerSession[bytes]):
    def __init__(self, start: Start | None) -> None:
        self._start = start
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def subsystem_requested(self, subsystem: str) -> bool:
        return self._start is not None  # None: refused, as sshd without a Subsystem line

    def session_started(self) -> None:
        assert self._chan is not None and self._start is not None
        self._start(self._chan)


def _server(start: Start | None) -> type[asyncssh.SSHServer]:
    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return False

        def session_requested(self) -> _Session:
            return _Session(start)

    return Server


async def _against(start: Start | None, dest_dir: Path | None = None) -> str:
    """What opening SFTP (or a whole pull) on such a host fails with."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        _server(start), "127.0.0.1", 0, server_host_keys=[key], encoding=None, line_editor=False
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncssh.connect(
            "127.0.0.1", port, username="herd", known_hosts=None, config=None, agent_path=None
        ) as conn:
            if dest_dir is not None:
                result = await pull_host(
                    conn, Host("bare", "127.0.0.1"), sources=["/etc/hostname"],
                    dest_dir=dest_dir,
                    options=TransferOptions(stall_timeout=10), progress=NoProgress(),
                )  # fmt: skip
                assert result.status is Status.ERROR
                return result.error
            try:
                await open_sftp(conn, None)
            except (asyncssh.Error, OSError) as exc:
                kind = "no sftp" if isinstance(exc, NoSFTPServer) else "other"
                return f"{kind}: {describe(exc)}"
            raise AssertionError("SFTP started on a host without it")
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("start", "said"),
    [
        (None, "no sftp: the host has no SFTP server (it refused the sftp subsystem)"),
        (
            _missing,
            "no sftp: the host has no SFTP server (sh: /usr/lib/sftp-server: not found)",
        ),
        (_silent, "no sftp: the host has no SFTP server (its sftp subsystem exited with status 1)"),
    ],
)
def test_a_host_without_an_sftp_server_is_named_so(start: Start | None, said: str) -> None:
    assert asyncio.run(_against(start)) == said


@pytest.mark.timeout(30)
def test_a_connection_dropped_while_sftp_starts_is_not_taken_for_a_missing_server() -> None:
    said = asyncio.run(_against(_drop))
    assert said.startswith("other: connection lost"), said


@pytest.mark.timeout(30)
def test_a_pull_from_a_host_without_an_sftp_server_or_commands_says_so(tmp_path: Path) -> None:
    said = asyncio.run(_against(_missing, tmp_path / "pulled"))
    assert said == (  # the fallback over commands is refused too: both are named
        "the host has no SFTP server (sh: /usr/lib/sftp-server: not found);"
        " over plain commands: Session request failed"
    )
