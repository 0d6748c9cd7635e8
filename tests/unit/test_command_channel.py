"""A command's channel read as its data arrives: the mark first, then output in order,
and nothing a host sends held without bound."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncssh
import pytest

from herd.core.events import HostOutput
from herd.hosts.command import Streams
from herd.hosts.command_channel import MARK_LINE_LIMIT, CommandChannel
from herd.hosts.remote_stop import Mark
from herd.hosts.sshlib import run_loop

STDERR = asyncssh.EXTENDED_DATA_STDERR
STDOUT = None


def _channel() -> tuple[CommandChannel, Streams, list[tuple[str, bytes]]]:
    streams = Streams(1024 * 1024)
    events: list[tuple[str, bytes]] = []

    def emit(event: HostOutput) -> None:
        events.append((event.stream, event.data))

    return CommandChannel("web01", streams, emit), streams, events


def _run(
    play: Callable[[CommandChannel], None],
) -> tuple[Mark | None, Streams, list[tuple[str, bytes]]]:
    async def main() -> tuple[Mark | None, Streams, list[tuple[str, bytes]]]:
        channel, streams, events = _channel()
        play(channel)
        async with asyncio.timeout(5):
            mark = await channel.mark()
        return mark, streams, events

    return run_loop(main)


def test_the_mark_is_read_and_removed_and_the_output_follows_in_order() -> None:
    def play(channel: CommandChannel) -> None:
        channel.data_received(b"motd\n", STDOUT)  # a login shell's, before the mark line ends
        channel.data_received(b"banner herd-pid:", STDERR)
        channel.data_received(b"4242\nfirst error\n", STDERR)
        channel.data_received(b"out\n", STDOUT)
        channel.data_received(b"second error\n", STDERR)

    mark, streams, events = _run(play)
    assert mark == Mark(4242, group=True)
    assert events == [
        ("stderr", b"banner "),
        ("stdout", b"motd\n"),
        ("stderr", b"first error\n"),
        ("stdout", b"out\n"),
        ("stderr", b"second error\n"),
    ]
    assert streams.stdout.result().data == b"motd\nout\n"
    assert streams.stderr.result().data == b"banner first error\nsecond error\n"


def test_a_first_line_without_a_mark_is_output() -> None:
    mark, _, events = _run(lambda c: c.data_received(b"sh: no such shell\n", STDERR))
    assert mark is None
    assert events == [("stderr", b"sh: no such shell\n")]


@pytest.mark.parametrize("stream", [STDERR, STDOUT])
def test_a_host_that_never_ends_the_mark_line_gets_no_mark_and_loses_no_output(
    stream: asyncssh.DataType,
) -> None:
    flood = b"x" * (MARK_LINE_LIMIT + 1)

    def play(channel: CommandChannel) -> None:
        channel.data_received(b"herd-pid:7", STDERR)  # and never a newline
        channel.data_received(flood, stream)

    mark, streams, _ = _run(play)
    assert mark is None
    both = streams.stdout.result().data + streams.stderr.result().data
    assert len(both) == len(b"herd-pid:7") + len(flood)


def test_a_channel_that_ends_before_its_mark_line_ends_has_none() -> None:
    def play(channel: CommandChannel) -> None:
        channel.data_received(b"herd-pid:", STDERR)
        channel.eof_received()

    mark, _, events = _run(play)
    assert mark is None
    assert events == [("stderr", b"herd-pid:")]


def test_a_lost_connection_is_raised_to_whoever_waits_for_the_end() -> None:
    async def main() -> Mark | None:
        channel, _, _ = _channel()
        channel.connection_lost(asyncssh.ConnectionLost("gone"))
        async with asyncio.timeout(5):
            mark = await channel.mark()
            with pytest.raises(asyncssh.ConnectionLost):
                await channel.ended()
            await channel.writable()  # a writer waiting for room is let go
        return mark

    assert run_loop(main) is None


def test_input_waits_while_the_channel_is_full() -> None:
    async def main() -> bool:
        channel, _, _ = _channel()
        channel.pause_writing()
        waiting = asyncio.create_task(channel.writable())
        await asyncio.sleep(0.01)
        blocked = not waiting.done()
        channel.resume_writing()
        async with asyncio.timeout(5):
            await waiting
        return blocked

    assert run_loop(main)
