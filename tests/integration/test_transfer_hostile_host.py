"""A pull from a host whose SFTP server lies: its names cannot steer a write out of DEST_DIR/HOST.

Real sshd cannot send a file name holding ``/`` or ``..``, nor a relative
login directory, so this host is an asyncssh SFTP server made to: rooted in a
directory of its own, it answers ``realpath(".")`` with ``../../..`` and lists
hostile names beside the real files of every directory. It runs no commands
(exit 127, as a host without a hasher), so copies are checked by reading back.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from herd.core.model import Host, HostResult, Status
from herd.hosts.pull import pull_host
from herd.hosts.transfer_plan import NoProgress, TransferOptions

_HOSTILE_NAMES = (b"../../escaped", b"/etc/escaped", b"a/b", b"", b"nul\0byte")


class _LyingSFTP(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], root: bytes) -> None:
        super().__init__(chan, chroot=root)

    def realpath(self, path: bytes) -> bytes:
        if path == b".":
            return b"../../.."
        real = super().realpath(path)
        assert isinstance(real, bytes)
        return real

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        async for name in super().scandir(path):
            yield name
        attrs = asyncssh.SFTPAttrs(
            type=asyncssh.FILEXFER_TYPE_REGULAR, size=5, permissions=0o644, mtime=0
        )
        for hostile in _HOSTILE_NAMES:
            yield asyncssh.SFTPName(hostile, attrs=attrs)


class _AnyoneIn(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False  # no authentication: this host exists only for the test


async def _pull_from_liar(root: Path, sources: list[str], dest_dir: Path) -> HostResult:
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(
        _AnyoneIn,
        "127.0.0.1",
        0,
        server_host_keys=[key],
        process_factory=lambda process: process.exit(127),  # no shell: "no hasher"
        sftp_factory=lambda chan: _LyingSFTP(chan, os.fsencode(root)),
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncssh.connect(
            "127.0.0.1", port, username="herd", known_hosts=None, config=None, agent_path=None
        ) as conn:
            return await pull_host(
                conn,
                Host("liar", "127.0.0.1"),
                sources=sources,
                dest_dir=dest_dir,
                options=TransferOptions(stall_timeout=10),
                progress=NoProgress(),
            )
    finally:
        server.close()
        await server.wait_closed()


def written(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.timeout(30)
def test_hostile_names_and_a_relative_home_write_nothing_outside_the_host_directory(
    tmp_path: Path,
) -> None:
    host_root = tmp_path / "host"
    (host_root / "srv" / "conf").mkdir(parents=True)
    (host_root / "srv" / "app.conf").write_text("real\n")
    (host_root / "srv" / "conf" / "db.conf").write_text("db\n")
    (host_root / "x").mkdir()
    (host_root / "x" / "data.txt").write_text("relative\n")
    work = tmp_path / "work"
    dest_dir = work / "a" / "b" / "c" / "pulled"
    before = written(tmp_path)

    result = asyncio.run(_pull_from_liar(host_root, ["/srv", "x"], dest_dir))

    after = written(tmp_path) - before
    outside = {p for p in after if not p.startswith("work/a/b/c/pulled/liar")}
    assert outside == {"work", "work/a", "work/a/b", "work/a/b/c", "work/a/b/c/pulled"}
    assert (dest_dir / "liar" / "srv" / "app.conf").read_text() == "real\n"
    assert (dest_dir / "liar" / "srv" / "conf" / "db.conf").read_text() == "db\n"
    assert not list(dest_dir.rglob("*escaped*"))
    assert result.status is Status.ERROR
    assert "/srv: '../../escaped' is not a plain file name: not fetched" in result.error
