"""Carry a push or pull on worker processes, one per CPU core.

One Python process encrypts for every host on one core: a push of a big file
to many hosts is bound by that core, where ``scp`` run in parallel spreads
over all of them. So herd hands the hosts of a push or pull to worker
processes (``python -m herd.hosts.worker``):

- the main process keeps everything else: the plan (walked and hashed once),
  the fan-out and its forks, the output, the progress bar and the operation log;
- each host goes to the least busy worker, which connects, transfers and sends
  back the host's result, and the bytes for the progress bar as they move;
- the job (what to send or fetch, how to connect, the ``-k`` password too)
  reaches a worker over its stdin, never its argv or environment;
- Ctrl-C is the main process's (so are SIGTERM and SIGHUP): workers ignore them
  and cancel a host when
  told, cleaning up its temporary files as herd does in its own process; a
  worker whose main process is gone (its stdin closes) cancels its hosts and exits;
- a worker that dies takes only its own hosts with it, each with an error
  naming the worker's exit.

A host waiting for a TCP answer steps out of its fork slot in the main process
as it does in-process (see ``herd.hosts.fanout``), through a message.

Workers start in about a third of a second and cost some 40 MB each, so by
default herd uses them only where they pay: up to one per core, each with at
least ``HOSTS_PER_WORKER`` hosts, and for a push only when it moves at least
``WORKER_MIN_BYTES`` in all (``worker_count``).

Messages are pickled tuples behind a 4-byte length, between herd and the
children it started: ``("job", WorkerJob)``, ``("host", seq, Host)``,
``("cancel", seq)`` and ``("stepped_in", seq)`` go to a worker;
``("progress", {host: (expected, moved)})``, ``("result", seq, HostResult)``,
``("cancelled", seq)``, ``("step_out", seq)`` and ``("step_in", seq)`` come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from herd.core.model import Host, HostResult, Status
from herd.hosts.command import OutputSink
from herd.hosts.connect import ConnectOptions
from herd.hosts.fanout import HostSlot, current_slot
from herd.hosts.transfer import TransferJob
from herd.hosts.transfer_plan import TransferProgress

__all__ = [
    "FILE_COST_BYTES",
    "HOSTS_PER_WORKER",
    "WORKER_MIN_BYTES",
    "TransferWorkers",
    "WorkerJob",
    "pack",
    "push_payload",
    "unpack",
    "worker_count",
]

HOSTS_PER_WORKER = 4  # fewer hosts than this per core: the transfer stays in herd's process
# Less work than this in all (a push of a few config files) takes about as long as
# starting the workers: it stays in herd's process too. A file costs its bytes plus
# its round trips (open, write, attributes, hash, rename): about 256 KiB's worth.
WORKER_MIN_BYTES = 256 * 1024 * 1024
FILE_COST_BYTES = 256 * 1024
_CANCEL_GRACE = 10.0  # seconds a cancelled host gets to remove its temporary files
_EXIT_GRACE = 10.0  # seconds a worker gets to exit once its work is done


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """Everything a worker needs before its first host."""

    job: TransferJob
    connect: ConnectOptions


def pack(*message: Any) -> bytes:
    """One message, framed for the pipe."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(4, "big") + body


async def unpack(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None at the end of the pipe."""
    try:
        header = await reader.readexactly(4)
        body = await reader.readexactly(int.from_bytes(header, "big"))
    except asyncio.IncompleteReadError:
        return None
    message: tuple[Any, ...] = pickle.loads(body)  # our own child, over our own pipe
    return message


def worker_count(requested: int | None, hosts: int, payload: int | None = None) -> int:
    """How many workers: as asked, else one per core when each gets a few hosts (0: none).

    ``payload`` is the work of the whole operation in bytes, when known beforehand
    (a push: see ``push_payload``).
    """
    if requested is not None:
        return max(0, min(requested, hosts))
    if payload is not None and payload < WORKER_MIN_BYTES:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = min(cores or 1, hosts // HOSTS_PER_WORKER)
    return count if count >= 2 else 0


def _worker_environment() -> dict[str, str]:
    """This environment, with herd importable from where this herd was imported."""
    package_root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (package_root, path)))}


def push_payload(total_bytes: int, files: int, hosts: int) -> int:
    """The work of pushing ``files`` (``total_bytes`` in all) to ``hosts``, in bytes."""
    return (total_bytes + files * FILE_COST_BYTES) * hosts


@dataclass(slots=True)
class _Away:
    """A host a worker carries, as the main process keeps track of it."""

    host: Host
    answer: asyncio.Future[HostResult | None]
    slot: HostSlot | None  # its fork slot in the main process
    outside: bool = False  # the slot was given away while the host waits for a TCP answer
    stepping: asyncio.Task[None] | None = None  # waiting here to take a slot again


class _Worker:
    """One worker process as the main process sees it: its hosts in flight and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process, progress: TransferProgress) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._progress = progress
        self._away: dict[int, _Away] = {}  # by the sequence number the worker knows it by
        self.gone: str | None = None  # why the worker can take no more hosts, once it exited
        self._reader = asyncio.create_task(self._read())

    @property
    def active(self) -> int:
        return len(self._away)

    def send(self, *message: Any) -> None:
        if not self._stdin.is_closing():
            self._stdin.write(pack(*message))

    async def run(self, seq: int, host: Host) -> HostResult:
        """``host``'s result from this worker; cancelling it cancels the host there."""
        if self.gone is not None:
            return HostResult(host.name, host.address, Status.ERROR, error=self.gone)
        away = _Away(host, asyncio.get_running_loop().create_future(), current_slot())
        self._away[seq] = away
        self.send("host", seq, replace(host, vars={}))  # how to reach it is all a worker needs
        try:
            result = await asyncio.shield(away.answer)
        except asyncio.CancelledError:
            self.send("cancel", seq)
            await asyncio.wait({away.answer}, timeout=_CANCEL_GRACE)  # its temp files go first
            raise
        finally:
            del self._away[seq]
            if away.stepping is not None:
                away.stepping.cancel()  # a done host must not take a fork slot afterwards
        if result is None:  # cancelled there without being asked: the worker is stopping
            raise asyncio.CancelledError
        return result

    async def _read(self) -> None:
        while (message := await unpack(self._stdout)) is not None:
            self._dispatch(message)
        self._orphan(await self._exit_code())

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "progress":
            for name, (expected, moved) in message[1].items():
                if expected:
                    self._progress.expect(name, expected)
                if moved:
                    self._progress.advance(name, moved)
            return
        away = self._away.get(message[1])
        if away is None:
            return  # a host already ended here (cancelled, or its worker gone)
        if kind in ("result", "cancelled") and not away.answer.done():
            away.answer.set_result(message[2] if kind == "result" else None)
        elif kind == "step_out":
            away.outside = away.slot is not None and away.slot.step_out()
        elif kind == "step_in":
            away.stepping = asyncio.get_running_loop().create_task(self._step_in(message[1], away))

    async def _step_in(self, seq: int, away: _Away) -> None:
        if away.slot is not None and away.outside:
            away.outside = False
            await away.slot.step_in()
        away.stepping = None
        self.send("stepped_in", seq)

    async def _exit_code(self) -> int | None:
        try:
            async with asyncio.timeout(_EXIT_GRACE):
                return await self._process.wait()
        except TimeoutError:
            return None

    def _orphan(self, code: int | None) -> None:
        """The worker is gone: every host it still had gets an error saying so."""
        how = "exited" if code is None or code >= 0 else "was killed"
        detail = "" if code is None else f" ({code if code >= 0 else f'signal {-code}'})"
        reason = f"transfer worker {self._process.pid} {how}{detail} during the transfer"
        self.gone = reason
        for away in self._away.values():
            if not away.answer.done():
                host = away.host
                away.answer.set_result(
                    HostResult(host.name, host.address, Status.ERROR, error=reason)
                )

    async def stop(self) -> None:
        """Close its stdin (it exits when its hosts are done); kill it if it lingers."""
        if not self._stdin.is_closing():
            self._stdin.close()
        try:
            async with asyncio.timeout(_EXIT_GRACE):
                await self._process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class TransferWorkers:
    """``count`` worker processes sharing the hosts of one push or pull.

    ``async with workers.running():`` around the fan-out, and ``per_host`` as
    its per-host work.
    """

    def __init__(
        self,
        job: TransferJob,
        connect: ConnectOptions,
        progress: TransferProgress,
        count: int,
        *,
        debug: bool = False,
    ) -> None:
        if count < 1:
            raise ValueError("TransferWorkers needs at least one worker")
        # the blocks kept for lagging hosts are a per-process cache: share the budget out
        options = replace(job.options, cache_budget=job.options.cache_budget // count)
        self._job = WorkerJob(replace(job, options=options), connect)
        self._argv = [sys.executable, "-m", "herd.hosts.worker", *(["--debug"] if debug else [])]
        self._progress = progress
        self._count = count
        self._workers: list[_Worker] = []
        self._seq = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the workers, hand them the job, and stop them at the end."""
        try:
            for _ in range(self._count):
                process = await asyncio.create_subprocess_exec(
                    *self._argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=_worker_environment(),
                )
                worker = _Worker(process, self._progress)
                worker.send("job", self._job)
                self._workers.append(worker)
            yield
        finally:
            await asyncio.gather(*(w.stop() for w in self._workers))
            self._workers.clear()

    async def per_host(self, host: Host, _emit: OutputSink | None) -> HostResult:
        """Run ``host`` on the least busy worker still running."""
        if not self._workers:
            raise RuntimeError("TransferWorkers.per_host outside running()")
        self._seq += 1
        worker = min(self._workers, key=lambda w: (w.gone is not None, w.active))
        return await worker.run(self._seq, host)
