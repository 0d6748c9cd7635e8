"""A worker: ``python -m herd.hosts.worker``, started by ``herd.hosts.workers.Workers``.

It reads its job and then hosts from stdin, runs each host's run, push or pull
on its own event loop (the same per-host work as in herd's own process) and
writes each host's events to stdout: its output as it arrives (when the main
process wants it), its bytes moved (in batches) and its result; see
``herd.hosts.workers`` for the messages. Anything else that would go to stdout
goes to stderr, so nothing can break the message stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from herd.core.events import BytesExpected, BytesMoved, Event, HostFinished, encode
from herd.core.model import Host
from herd.core.plain import typed
from herd.errors import SourceError
from herd.hosts.connect import Connector
from herd.hosts.gateway_cache import check_cache, remove_cache
from herd.hosts.gateways import Gateways
from herd.hosts.remote import RunJob
from herd.hosts.sshlib import run_loop
from herd.hosts.transfer import HostJob
from herd.hosts.workers import WorkerJob, control, job_from, read_line
from herd.operation.driver import HostWork
from herd.operation.fanout import error_result

__all__ = ["main"]

_PROGRESS_SECONDS = 0.1  # how often bytes moved go to the main process
Send = Callable[[bytes], None]


class _Outgoing:
    """A host's events to the main process: bytes expected and moved in batches, the rest now."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: dict[str, list[int]] = {}

    def handle(self, event: Event) -> None:
        """Bytes are batched; any other event (a run's output) goes to the main process now."""
        if isinstance(event, BytesExpected):
            self._pending.setdefault(event.host, [0, 0])[0] += event.nbytes
        elif isinstance(event, BytesMoved):
            self._pending.setdefault(event.host, [0, 0])[1] += event.nbytes
        else:
            self._send(encode(event).encode() + b"\n")

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, {}
            for host, (expected, moved) in pending.items():
                if expected:
                    self._send(encode(BytesExpected(host, expected)).encode() + b"\n")
                if moved:
                    self._send(encode(BytesMoved(host, moved)).encode() + b"\n")

    async def flush_often(self) -> None:
        while True:
            await asyncio.sleep(_PROGRESS_SECONDS)
            self.flush()


class _RemoteSlot:
    """The host's fork slot, which lives in the main process: stepping out and in are messages."""

    def __init__(self, host: str, send: Send, stepped_in: dict[str, asyncio.Future[None]]) -> None:
        self._host = host
        self._send = send
        self._stepped_in = stepped_in

    def step_out(self) -> bool:
        self._send(control("step_out", host=self._host))
        return True

    async def step_in(self) -> None:
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stepped_in[self._host] = answer
        self._send(control("step_in", host=self._host))
        try:
            await answer
        finally:
            self._stepped_in.pop(self._host, None)


class _Hosts:
    """The hosts this worker runs, by name."""

    def __init__(self, setup: WorkerJob, send: Send, known_hosts: list[str]) -> None:
        self._send = send
        self.progress = _Outgoing(send)
        connector = Connector(setup.connect)
        direct: HostJob = setup.job.per_host(connector)
        # a host with a ``via`` goes on through the gateways named (this is a gateway)
        self.gateways = Gateways(setup.job, connector, direct, known_hosts=known_hosts)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.stepped_in: dict[str, asyncio.Future[None]] = {}

    def handle(self, message: dict[str, Any]) -> None:
        kind = message["control"]
        if kind == "host":
            host = typed(Host, message["host"])
            wants_output = bool(message.get("wants_output", False))
            via = tuple(typed(Host, g) for g in message.get("via", ()))
            task = asyncio.get_running_loop().create_task(self._one(host, via, wants_output))
            self._tasks[host.name] = task
            task.add_done_callback(lambda _: self._tasks.pop(host.name, None))
        elif kind == "cancel" and message["host"] in self._tasks:
            self._tasks[message["host"]].cancel()
        elif kind == "stepped_in":
            answer = self.stepped_in.get(message["host"])
            if answer is not None and not answer.done():
                answer.set_result(None)

    async def _one(self, host: Host, via: tuple[Host, ...], wants_output: bool) -> None:
        slot = _RemoteSlot(host.name, self._send, self.stepped_in)
        started = time.monotonic()
        try:
            work = HostWork(slot, self.progress.handle, wants_output)
            result = await self.gateways.carry(host, via, work)
        except asyncio.CancelledError:
            self.progress.flush()
            self._send(control("cancelled", host=host.name))
            return  # this task's own end: nothing above it waits for the cancellation
        except Exception as exc:  # a surprise on one host is that host's error, as in-process
            result = error_result(host, exc, started)
        self.progress.flush()
        self._send(encode(HostFinished(result)).encode() + b"\n")

    async def finish(self) -> None:
        """The main process is done or gone: cancel what is left and wait for its cleanup."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.gateways.close()
        self.progress.flush()


async def _serve(messages_out: int) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    stdin = os.fdopen(0, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    stdout = os.fdopen(messages_out, "wb", buffering=0)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, stdout)

    def send(line: bytes) -> None:
        if not transport.is_closing():
            transport.write(line)

    first = await read_line(reader)
    if first is None:
        return
    data = json.loads(first)
    setup = job_from(data)
    known_hosts = data.get("known_hosts")  # a gateway checks keys against herd's lines
    cache = data.get("cache")  # a gateway's transfer: its files there, to check and remove
    try:
        if cache is not None:
            if isinstance(setup.job, RunJob):
                raise SourceError("a gateway cache came with a run")
            await asyncio.to_thread(check_cache, setup.job, str(cache))
        await _carry(setup, reader, send, known_hosts)
    finally:
        if cache is not None:
            remove_cache(str(cache))
        transport.close()


async def _carry(
    setup: WorkerJob, reader: asyncio.StreamReader, send: Send, known_hosts: list[str] | None
) -> None:
    """Carry hosts as the lines from the main process say, until it closes them."""
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="herd-gateway-") as scratch:
        if known_hosts is not None:
            path = Path(scratch) / "known_hosts"
            path.write_text("".join(f"{line}\n" for line in known_hosts), encoding="utf-8")
            setup = replace(setup, connect=replace(setup.connect, known_hosts=path))
        hosts = _Hosts(setup, send, known_hosts or [])
        flusher = loop.create_task(hosts.progress.flush_often())
        try:
            while (line := await read_line(reader)) is not None:
                hosts.handle(json.loads(line))
            await hosts.finish()
        finally:
            flusher.cancel()


def main(label: str = "worker") -> int:
    """Serve one main process (herd's, or a gateway's herd's) over stdin and stdout."""
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
        print(f"herd: {label}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
