"""A transfer worker: ``python -m herd.hosts.worker``, started by ``TransferWorkers``.

It reads its job and then hosts from stdin, runs each host's push or pull on
its own event loop (the same per-host work as in herd's own process) and
writes each host's result and its bytes moved to stdout; see
``herd.hosts.workers`` for the messages. Anything else that would go to stdout
goes to stderr, so nothing can break the message stream.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from herd.core.model import Host
from herd.hosts.connect import Connector
from herd.hosts.fanout import error_result, use_slot
from herd.hosts.sshlib import run_loop
from herd.hosts.transfer import HostJob
from herd.hosts.workers import WorkerJob, pack, unpack

__all__ = ["main"]

_PROGRESS_SECONDS = 0.1  # how often bytes moved go to the main process
Send = Callable[..., None]


class _Progress:
    """Bytes expected and moved per host, sent to the main process in batches."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: dict[str, list[int]] = {}

    def expect(self, host: str, nbytes: int) -> None:
        self._pending.setdefault(host, [0, 0])[0] += nbytes

    def advance(self, host: str, nbytes: int) -> None:
        self._pending.setdefault(host, [0, 0])[1] += nbytes

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, {}
            self._send("progress", {name: tuple(counts) for name, counts in pending.items()})

    async def flush_often(self) -> None:
        while True:
            await asyncio.sleep(_PROGRESS_SECONDS)
            self.flush()


class _RemoteSlot:
    """The host's fork slot, which lives in the main process: stepping out and in are messages."""

    def __init__(self, seq: int, send: Send, stepped_in: dict[int, asyncio.Future[None]]) -> None:
        self._seq = seq
        self._send = send
        self._stepped_in = stepped_in

    def step_out(self) -> bool:
        self._send("step_out", self._seq)
        return True

    async def step_in(self) -> None:
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stepped_in[self._seq] = answer
        self._send("step_in", self._seq)
        try:
            await answer
        finally:
            self._stepped_in.pop(self._seq, None)


class _Hosts:
    """The hosts this worker runs, by the main process's sequence number."""

    def __init__(self, setup: WorkerJob, send: Send) -> None:
        self._send = send
        self.progress = _Progress(send)
        self._per_host: HostJob = setup.job.per_host(Connector(setup.connect), self.progress)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.stepped_in: dict[int, asyncio.Future[None]] = {}

    def handle(self, message: tuple[Any, ...]) -> None:
        kind, seq = message[0], message[1]
        if kind == "host":
            task = asyncio.get_running_loop().create_task(self._one(seq, message[2]))
            self._tasks[seq] = task
            task.add_done_callback(lambda _: self._tasks.pop(seq, None))
        elif kind == "cancel" and seq in self._tasks:
            self._tasks[seq].cancel()
        elif kind == "stepped_in":
            answer = self.stepped_in.get(seq)
            if answer is not None and not answer.done():
                answer.set_result(None)

    async def _one(self, seq: int, host: Host) -> None:
        use_slot(_RemoteSlot(seq, self._send, self.stepped_in))
        started = time.monotonic()
        try:
            result = await self._per_host(host, None)
        except asyncio.CancelledError:
            self.progress.flush()
            self._send("cancelled", seq)
            return  # this task's own end: nothing above it waits for the cancellation
        except Exception as exc:  # a surprise on one host is that host's error, as in-process
            result = error_result(host, exc, started)
        self.progress.flush()
        self._send("result", seq, result)

    async def finish(self) -> None:
        """The main process is done or gone: cancel what is left and wait for its cleanup."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.progress.flush()


async def _serve(messages_out: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    stdin = os.fdopen(0, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    stdout = os.fdopen(messages_out, "wb", buffering=0)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, stdout)

    def send(*message: Any) -> None:
        if not transport.is_closing():
            transport.write(pack(*message))

    first = await unpack(reader)
    if first is None:
        return
    hosts = _Hosts(first[1], send)
    flusher = loop.create_task(hosts.progress.flush_often())
    try:
        while (message := await unpack(reader)) is not None:
            hosts.handle(message)
        await hosts.finish()
    finally:
        flusher.cancel()
        transport.close()


def main() -> int:
    # Ctrl-C, SIGTERM and SIGHUP are the main process's to handle: it cancels this
    # worker's hosts, and if it dies instead, stdin closes and the worker cleans up.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    messages_out = os.dup(1)
    os.dup2(2, 1)  # a stray print must not land in the message stream
    try:
        run_loop(lambda: _serve(messages_out))
    except Exception as exc:
        if "--debug" in sys.argv:
            raise
        print(f"herd: transfer worker: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
