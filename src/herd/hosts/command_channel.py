"""One remote command's channel, read as its data arrives.

``herd.hosts.remote`` runs every command on a channel of its own. Its first
stderr line is the mark ``herd.hosts.remote_stop`` prints (the command's PID);
what follows goes into the command's capped streams and, live, out as
``HostOutput`` events. asyncssh's process streams would do the same through two
readers, a task for each and a buffer between; a command on a kept connection
costs the agent little else, so the channel's callbacks do it directly here.

Nothing a host sends is held without bound: the mark line is looked for in the
first ``MARK_LINE_LIMIT`` bytes of stderr, and stdout waits only while that line
is unfinished (at most as much again), so output keeps its order: what a login
shell printed before the mark comes first. Past either limit the line is output,
and there is no mark.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import asyncssh

from herd.core.events import HostOutput
from herd.hosts.command import OutputSink, Streams
from herd.hosts.remote_stop import Mark, parse_mark

__all__ = ["MARK_LINE_LIMIT", "CommandChannel"]

MARK_LINE_LIMIT = 64 * 1024  # bytes of stderr the mark line may take before it is output


class CommandChannel(asyncssh.SSHClientSession[bytes]):
    """The session of one command: its mark, its output, how it ended."""

    def __init__(self, host: str, streams: Streams, emit: OutputSink | None) -> None:
        self._host = host
        self._streams = streams
        self._emit = emit
        loop = asyncio.get_running_loop()
        self._first_line: bytearray | None = bytearray()  # stderr until the mark line ends
        self._early_stdout: list[bytes] = []  # stdout sent before it ended
        self._early_size = 0
        self.opened: asyncio.Future[None] = loop.create_future()  # the server took the channel
        self._mark: asyncio.Future[Mark | None] = loop.create_future()
        self._closed: asyncio.Future[None] = loop.create_future()
        self._error: Exception | None = None
        self._writable = asyncio.Event()
        self._writable.set()

    async def mark(self) -> Mark | None:
        """The mark the command printed first (None without one), once its line has ended."""
        return await self._mark

    async def ended(self) -> None:
        """Wait for the channel to close; raise what broke it, if the connection did."""
        await self._closed
        if self._error is not None:
            raise self._error

    async def writable(self) -> None:
        """Wait until the channel takes more input (or is closed: writing then fails)."""
        await self._writable.wait()

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self.opened.set_result(None)  # asyncssh sends the command only after this

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self._first_line is None:
            self._out("stderr" if datatype == asyncssh.EXTENDED_DATA_STDERR else "stdout", data)
        elif datatype != asyncssh.EXTENDED_DATA_STDERR:
            self._early_stdout.append(data)
            self._early_size += len(data)
            if self._early_size > MARK_LINE_LIMIT:  # a mark comes before any output
                self._end_first_line(bytes(self._first_line), whole=False)
        else:
            self._first_line += data
            end = self._first_line.find(b"\n") + 1
            if end:
                rest = bytes(self._first_line[end:])
                self._end_first_line(bytes(self._first_line[:end]))
                if rest:
                    self._out("stderr", rest)
            elif len(self._first_line) > MARK_LINE_LIMIT:
                self._end_first_line(bytes(self._first_line), whole=False)

    def eof_received(self) -> bool:
        self._end_first_line(bytes(self._first_line or b""))
        return True  # the server closes the channel once it has sent the exit status

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_first_line(bytes(self._first_line or b""))
        self._error = exc
        if not self._closed.done():
            self._closed.set_result(None)
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _end_first_line(self, line: bytes, *, whole: bool = True) -> None:
        """Take the mark from ``line``; one cut short by a limit has none (its PID may be
        cut short too, and stopping would signal another process)."""
        if self._first_line is None:
            return
        self._first_line = None
        mark, kept = parse_mark(line) if whole else (None, line)
        if kept:  # what a login shell printed first, if anything
            self._out("stderr", kept)
        for data in self._early_stdout:
            self._out("stdout", data)
        self._early_stdout.clear()
        self._mark.set_result(mark)

    def _out(self, stream: Literal["stdout", "stderr"], data: bytes) -> None:
        (self._streams.stdout if stream == "stdout" else self._streams.stderr).write(data)
        if self._emit is not None:
            self._emit(HostOutput(self._host, stream, data))
