"""BatchedWrites: the packets of one loop turn leave in one write, in order, and nothing is lost."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from herd.hosts.sshlib import run_loop
from herd.hosts.wire import BatchedWrites, batch_writes, skip_packet_logs


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

    logger = logging.getLogger("asyncssh")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        traced = _Logs()
        skip_packet_logs(traced)
        traced.log_sent_packet(1, 2, b"x")
    finally:
        logger.setLevel(level)
    assert traced.lines == ["sent"]
