"""BatchedWrites: the packets of one loop turn leave in one write, in order, and nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from asyncssh.channel import SSHChannel
from asyncssh.constants import MSG_CHANNEL_DATA, MSG_IGNORE
from asyncssh.logging import SSHLogger
from asyncssh.packet import String

from herd.hosts.sshlib import run_loop
from herd.hosts.wire import BatchedWrites, batch_writes, skip_ignore_packets, skip_packet_logs


async def _pair() -> tuple[Any, socket.socket]:
    ours, theirs = socket.socketpair()
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, sock=ours)
    return transport, theirs


def _read_all(sock: socket.socket, size: int) -> bytes:
    sock.settimeout(5)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


class _CountingWrites:
    """The real transport, counting the writes that reach it."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.writes = 0

    def writelines(self, lines: list[bytes]) -> None:
        self.writes += 1
        self.transport.writelines(lines)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def test_writes_of_one_turn_go_out_together_and_in_order() -> None:
    async def main() -> tuple[bytes, int]:
        transport, peer = await _pair()
        real = _CountingWrites(transport)

        class Conn:
            _transport: Any = real

        conn = Conn()
        batch_writes(conn)
        assert isinstance(conn._transport, BatchedWrites)
        for n in range(50):
            conn._transport.write(bytes([n]) * 1000)
        await asyncio.sleep(0)  # one loop turn
        received = await asyncio.to_thread(_read_all, peer, 50_000)
        transport.close()
        peer.close()
        return received, real.writes

    received, writes = run_loop(main)
    assert received == b"".join(bytes([n]) * 1000 for n in range(50))
    assert writes == 1


def test_close_writes_what_is_gathered_and_abort_drops_it() -> None:
    async def main() -> tuple[bytes, bytes]:
        transport, peer = await _pair()
        batched = BatchedWrites(transport)
        batched.write(b"last words")
        batched.close()  # before the loop turns: still sent
        closed = await asyncio.to_thread(_read_all, peer, 100)
        peer.close()

        transport, peer = await _pair()
        batched = BatchedWrites(transport)
        batched.write(b"never sent")
        batched.abort()
        await asyncio.sleep(0.01)
        aborted = await asyncio.to_thread(_read_all, peer, 100)
        peer.close()
        return closed, aborted

    closed, aborted = run_loop(main)
    assert closed == b"last words"
    assert aborted == b""


def test_a_connection_without_a_writable_transport_is_left_alone() -> None:
    class Conn:
        _transport = None

    conn = Conn()
    batch_writes(conn)
    assert conn._transport is None


@contextlib.contextmanager
def _asyncssh_logs_at(level: int) -> Iterator[None]:
    """asyncssh's logger at ``level`` for the block, as --debug or a caller would set it."""
    logger = logging.getLogger("asyncssh")
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


class _Logs:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log_sent_packet(self, *args: object) -> None:
        self.lines.append("sent")

    def log_received_packet(self, *args: object) -> None:
        self.lines.append("received")


def test_packet_logs_are_skipped_only_when_nobody_could_read_them() -> None:
    quiet = _Logs()
    skip_packet_logs(quiet)
    quiet.log_sent_packet(1, 2, b"x")
    quiet.log_received_packet(1, 2, b"x")
    assert quiet.lines == []

    with _asyncssh_logs_at(logging.DEBUG):
        traced = _Logs()
        skip_packet_logs(traced)
        traced.log_sent_packet(1, 2, b"x")
    assert traced.lines == ["sent"]


class _ChannelLike:
    """What SSHChannel's packet logging calls on itself, recorded."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _log_packet(self, msg: str, *args: object) -> None:
        self.lines.append(msg)


def test_channels_format_packet_logs_only_when_asyncssh_shows_debug_lines() -> None:
    skip_packet_logs(_Logs())  # the first connection quiets every channel
    quiet = _ChannelLike()
    SSHChannel.log_sent_packet(quiet, MSG_CHANNEL_DATA, None, b"x")  # type: ignore[arg-type]
    SSHChannel.log_received_packet(quiet, MSG_CHANNEL_DATA, None, b"x")  # type: ignore[arg-type]
    assert quiet.lines == []

    with _asyncssh_logs_at(logging.DEBUG):
        traced = _ChannelLike()
        SSHChannel.log_sent_packet(traced, MSG_CHANNEL_DATA, None, b"x")  # type: ignore[arg-type]
        SSHChannel.log_received_packet(traced, MSG_CHANNEL_DATA, None, b"x")  # type: ignore[arg-type]
    assert traced.lines == ["Sent", "Received"]


class _Counted:
    """A log argument that counts the times it is turned into text."""

    def __init__(self) -> None:
        self.times = 0

    def __str__(self) -> str:
        self.times += 1
        return "counted"


def test_asyncssh_turns_log_arguments_into_text_only_for_lines_it_shows() -> None:
    skip_packet_logs(_Logs())
    argument = _Counted()
    with _asyncssh_logs_at(logging.WARNING):
        SSHLogger().info("dropped: %s", [argument])
        SSHLogger().debug1("dropped: %s", [argument])
    assert argument.times == 0
    with _asyncssh_logs_at(logging.INFO):
        SSHLogger().info("shown: %s", [argument])
    assert argument.times == 1


class _Sender:
    """A connection's packet sending, recorded, with the cipher it negotiated."""

    def __init__(self, cipher: str) -> None:
        self.cipher = cipher
        self.sent: list[tuple[int, tuple[bytes, ...]]] = []

    def send_packet(self, pkttype: int, *args: bytes, handler: object = None) -> None:
        self.sent.append((pkttype, args))

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"send_cipher": self.cipher}.get(name, default) if self.cipher else default


@pytest.mark.parametrize(
    "cipher", ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes256-ctr"]
)
def test_empty_ignore_packets_are_not_sent_with_a_cipher_that_needs_none(cipher: str) -> None:
    conn = _Sender(cipher)
    skip_ignore_packets(conn)
    conn.send_packet(MSG_IGNORE, String(b""))
    conn.send_packet(MSG_CHANNEL_DATA, b"\0\0\0\1", String(b"data"))
    conn.send_packet(MSG_IGNORE, String(b"chosen by the caller"))
    assert conn.sent == [
        (MSG_CHANNEL_DATA, (b"\0\0\0\1", String(b"data"))),
        (MSG_IGNORE, (String(b"chosen by the caller"),)),
    ]


@pytest.mark.parametrize("cipher", ["aes128-cbc", "aes256-cbc", None])
def test_a_cbc_cipher_or_an_unknown_one_keeps_its_ignore_packets(cipher: str | None) -> None:
    conn = _Sender(cipher)  # type: ignore[arg-type]
    skip_ignore_packets(conn)
    conn.send_packet(MSG_IGNORE, String(b""))
    assert conn.sent == [(MSG_IGNORE, (String(b""),))]
