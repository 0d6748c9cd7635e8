"""Carry a run, push or pull on worker processes, one per CPU core.

One Python process does the key exchanges and the encryption for every host on
one core: at some 8 ms of CPU per host a run tops out near 125 new hosts a
second, and a push of a big file to many hosts is bound by that core, where
``scp`` run in parallel spreads over all of them. So herd hands the hosts of a
run, push or pull to worker processes (``python -m herd.hosts.worker``):

- the main process keeps everything else: the plan (walked and hashed once),
  the fan-out and its forks, the output, the progress bar and the operation log;
- each host goes to the least busy worker, which connects, runs or transfers
  and sends back the host's result, its output as it arrives (when a sink
  wants it), and the bytes for the progress bar as they move;
- the job (the command or what to send or fetch, how to connect, the ``-k`` and
  ``-K`` passwords too) reaches a worker over its stdin, never its argv or
  environment; so does each host, with the inventory variables that decide how
  it is reached and become;
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
least ``HOSTS_PER_WORKER`` hosts (``RUN_HOSTS_PER_WORKER`` for a run, whose
hosts cost far less than a transfer's), and for a push only when it moves at
least ``WORKER_MIN_BYTES`` in all (``worker_count``).

Everything between herd and a worker is one JSON line: the operation's own
events (``herd.core.events``: a host's ``host_finished`` result, its
``bytes_expected`` and ``bytes_moved``) and a few control messages, each a
``{"control": ...}`` object naming its host: ``job`` (the whole job, as plain
data: ``herd.core.plain``), ``host`` (and whether its output is wanted),
``cancel`` and ``stepped_in`` go to a worker; ``cancelled``, ``step_out`` and
``step_in`` come back. Nothing is unpickled: a worker that goes wrong can send bad data, never code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from herd.core.events import Event, EventError, HostFinished, decode
from herd.core.model import Host, HostResult, Status
from herd.core.plain import plain, typed
from herd.hosts.connect import Connector
from herd.hosts.options import ConnectOptions, host_for_worker
from herd.hosts.remote import RunJob
from herd.hosts.transfer import HostJob, PullJob, PushJob, TransferJob
from herd.hosts.transfer_plan import requests_per_host
from herd.operation.driver import HostWork, Resources
from herd.operation.fanout import HostSlot

__all__ = [
    "FILE_COST_BYTES",
    "HOSTS_PER_WORKER",
    "RUN_HOSTS_PER_WORKER",
    "WORKER_MIN_BYTES",
    "Carrier",
    "Job",
    "WorkerJob",
    "Workers",
    "absolute",
    "carried",
    "carriers",
    "control",
    "host_for_worker",
    "push_payload",
    "read_line",
    "sized",
    "worker_count",
]

HOSTS_PER_WORKER = 4  # fewer hosts than this per core: the transfer stays in herd's process
# A run's host costs some 4-8 ms of herd's CPU (its key exchange, mostly), 1.35 times that
# on a worker (the messages), and a worker costs 0.26 s of CPU to start (bench/scale.py):
# with fewer hosts than this per core, the run ends sooner in herd's own process.
RUN_HOSTS_PER_WORKER = 100
# Less work than this in all (a push of a few config files) takes about as long as
# starting the workers: it stays in herd's process too. A file costs its bytes plus
# its round trips (open, write, attributes, hash, rename): about 256 KiB's worth.
WORKER_MIN_BYTES = 256 * 1024 * 1024
FILE_COST_BYTES = 256 * 1024
_CANCEL_GRACE = 10.0  # seconds a cancelled host gets to remove its temporary files
_EXIT_GRACE = 10.0  # seconds a worker gets to exit once its work is done
# A line may carry a host's whole result (its file list): far longer than asyncio's 64 KiB.
_LINE_LIMIT = 256 * 1024 * 1024


Job = TransferJob | RunJob  # what workers carry: a push, a pull or a run


@dataclass(frozen=True, slots=True)
class WorkerJob:
    """Everything a worker needs before its first host."""

    job: Job
    connect: ConnectOptions


def control(kind: str, **fields: Any) -> bytes:
    """One control message, as the line that carries it."""
    return json.dumps({"control": kind, **fields}, separators=(",", ":")).encode() + b"\n"


async def read_line(reader: _Lines) -> bytes | None:
    """The next line from a peer, or None at the end of the pipe."""
    line = await reader.readline()
    return line if line.endswith(b"\n") else None


def job_data(job: WorkerJob) -> dict[str, Any]:
    """The job as the ``job`` control message carries it."""
    return {"job": plain(job.job), "connect": plain(job.connect)}


def absolute(job: TransferJob) -> TransferJob:
    """The job with its local paths made absolute, for a process in another directory (the
    agent): the files a push sends, the directory a pull fills."""
    if isinstance(job, PullJob):
        return replace(job, dest_dir=job.dest_dir.absolute())
    sources = tuple(
        replace(tree, files=tuple(replace(f, path=f.path.absolute()) for f in tree.files))
        for tree in job.plan.sources
    )
    return replace(job, plan=replace(job.plan, sources=sources))


def job_from(data: dict[str, Any]) -> WorkerJob:
    """The job a ``job`` control message carries (PlainError if it is not one)."""
    return WorkerJob(typed(Job, data["job"]), typed(ConnectOptions, data["connect"]))


def worker_count(
    requested: int | None,
    hosts: int,
    payload: int | None = None,
    *,
    per_worker: int = HOSTS_PER_WORKER,
) -> int:
    """How many workers: as asked, else one per core when each gets ``per_worker`` hosts
    or more (0: none).

    ``payload`` is the work of the whole operation in bytes, when known beforehand
    (a push: see ``push_payload``).
    """
    if requested is not None:
        return max(0, min(requested, hosts))
    if payload is not None and payload < WORKER_MIN_BYTES:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = min(cores or 1, hosts // per_worker)
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
    slot: HostSlot  # its fork slot in the main process
    emit: Callable[[Event], None]  # where its bytes moved go
    outside: bool = False  # the slot was given away while the host waits for a TCP answer
    stepping: asyncio.Task[None] | None = None  # waiting here to take a slot again


class _Pipe(Protocol):
    """Where a carrier's lines go: a worker's stdin, a gateway's SSH channel."""

    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: ...


class _Lines(Protocol):
    """Where a carrier's lines come from."""

    async def readline(self) -> bytes: ...


class Carrier(ABC):
    """Another process carrying hosts for this one, as this one sees it: a worker, or a
    gateway over SSH. Its hosts in flight, and the lines to and from it.

    A subclass says how the carrier ended (``ended``) and how to stop one that talks
    nonsense (``kill``); every host it still had then gets ``lost_status`` and the reason.
    """

    lost_status = Status.ERROR

    def __init__(self, stdin: _Pipe, stdout: _Lines) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._away: dict[str, _Away] = {}  # by host name: unique in one operation
        self.gone: str | None = None  # why the carrier can take no more hosts, once it ended
        self._reader = asyncio.create_task(self._read())

    @property
    def active(self) -> int:
        return len(self._away)

    def send(self, line: bytes) -> None:
        if not self._stdin.is_closing():
            self._stdin.write(line)

    async def run(self, host: Host, work: HostWork, **fields: Any) -> HostResult:
        """``host``'s result from this carrier; cancelling it cancels the host there.

        ``fields`` go with the host's message (a gateway's ``via``).
        """
        if self.gone is not None:
            return HostResult(host.name, host.address, self.lost_status, error=self.gone)
        answer = asyncio.get_running_loop().create_future()
        away = _Away(host, answer, work.slot, work.emit)
        self._away[host.name] = away
        host_line = plain(host_for_worker(host))
        self.send(control("host", host=host_line, wants_output=work.wants_output, **fields))
        try:
            result = await asyncio.shield(away.answer)
        except asyncio.CancelledError:
            self.send(control("cancel", host=host.name))
            await asyncio.wait({away.answer}, timeout=_CANCEL_GRACE)  # its temp files go first
            raise
        finally:
            del self._away[host.name]
            if away.stepping is not None:
                away.stepping.cancel()  # a done host must not take a fork slot afterwards
        if result is None:  # cancelled there without being asked: the carrier is stopping
            raise asyncio.CancelledError
        return result

    async def _read(self) -> None:
        try:
            while (line := await read_line(self._stdout)) is not None:
                self._dispatch(line)
        except (EventError, ValueError, KeyError) as exc:
            self._orphan(self.kill(exc))
            return
        except (OSError, asyncssh.Error):
            pass  # the connection broke: the carrier is lost
        self._orphan(await self.ended())

    @abstractmethod
    def kill(self, exc: Exception) -> str:
        """Stop a carrier that sent what herd cannot read; the reason its hosts get."""

    @abstractmethod
    async def ended(self) -> str:
        """Why the carrier's lines stopped, for the hosts it still had."""

    def _dispatch(self, line: bytes) -> None:
        message = json.loads(line)
        kind = message.get("control") if isinstance(message, dict) else None
        if kind is None:
            event = decode(line)
            name = event.result.host if isinstance(event, HostFinished) else event.host  # type: ignore[union-attr]
            away = self._away.get(name)
            if away is None:
                return  # a host already ended here (cancelled, or its carrier gone)
            if isinstance(event, HostFinished):
                if not away.answer.done():
                    away.answer.set_result(event.result)
            else:
                away.emit(event)
            return
        away = self._away.get(message["host"])
        if away is None:
            return
        if kind == "cancelled" and not away.answer.done():
            away.answer.set_result(None)
        elif kind == "step_out":
            away.outside = away.slot.step_out()
        elif kind == "step_in":
            away.stepping = asyncio.get_running_loop().create_task(self._step_in(away))

    async def _step_in(self, away: _Away) -> None:
        if away.outside:
            away.outside = False
            await away.slot.step_in()
        away.stepping = None
        self.send(control("stepped_in", host=away.host.name))

    def _orphan(self, reason: str) -> None:
        """The carrier is gone: every host it still had gets ``lost_status`` and the reason."""
        self.gone = reason
        for away in self._away.values():
            if not away.answer.done():
                host = away.host
                away.answer.set_result(
                    HostResult(host.name, host.address, self.lost_status, error=reason)
                )


class _Worker(Carrier):
    """One worker process as the main process sees it."""

    def __init__(self, process: asyncio.subprocess.Process, label: str) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._label = label  # "transfer" or "run": what its errors name
        super().__init__(process.stdin, process.stdout)

    def kill(self, exc: Exception) -> str:
        self._process.kill()
        return f"{self._label} worker {self._process.pid} sent what herd cannot read: {exc}"

    async def ended(self) -> str:
        return self._exit_reason(await self._exit_code())

    async def _exit_code(self) -> int | None:
        try:
            async with asyncio.timeout(_EXIT_GRACE):
                return await self._process.wait()
        except TimeoutError:
            return None

    def _exit_reason(self, code: int | None) -> str:
        how = "exited" if code is None or code >= 0 else "was killed"
        detail = "" if code is None else f" ({code if code >= 0 else f'signal {-code}'})"
        pid, label = self._process.pid, self._label
        return f"{label} worker {pid} {how}{detail} during the {label}"

    async def stop(self) -> None:
        """Close its stdin (it exits when its hosts are done); kill it if it lingers."""
        stdin = self._process.stdin
        assert stdin is not None
        if not stdin.is_closing():
            stdin.close()
        try:
            async with asyncio.timeout(_EXIT_GRACE):
                await self._process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class Workers:
    """``count`` worker processes sharing the hosts of one run, push or pull.

    ``async with workers.running():`` around the fan-out, and ``per_host`` as
    its per-host work.
    """

    def __init__(
        self, job: Job, connect: ConnectOptions, count: int, *, debug: bool = False
    ) -> None:
        if count < 1:
            raise ValueError("Workers needs at least one worker")
        if not isinstance(job, RunJob):
            # the blocks kept for lagging hosts are a per-process cache: share the budget out
            options = replace(job.options, cache_budget=job.options.cache_budget // count)
            job = replace(job, options=options)
        self._label = "run" if isinstance(job, RunJob) else "transfer"
        self._job = WorkerJob(job, connect)
        self._argv = [sys.executable, "-m", "herd.hosts.worker", *(["--debug"] if debug else [])]
        self._count = count
        self._workers: list[_Worker] = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the workers, hand them the job, and stop them at the end."""
        try:
            job = control("job", **job_data(self._job))
            for _ in range(self._count):
                process = await asyncio.create_subprocess_exec(
                    *self._argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=_worker_environment(),
                    limit=_LINE_LIMIT,
                )
                worker = _Worker(process, self._label)
                worker.send(job)
                self._workers.append(worker)
            yield
        finally:
            await asyncio.gather(*(w.stop() for w in self._workers))
            self._workers.clear()

    async def per_host(self, host: Host, work: HostWork) -> HostResult:
        """Run ``host`` on the least busy worker still running."""
        if not self._workers:
            raise RuntimeError("Workers.per_host outside running()")
        worker = min(self._workers, key=lambda w: (w.gone is not None, w.active))
        return await worker.run(host, work)


def sized(
    job: TransferJob, hosts: Sequence[Host], *, forks: int, requested: int | None
) -> tuple[TransferJob, int]:
    """The job with its requests in flight per host sized, and how many workers carry it.

    Workers only where they pay (``worker_count``); each host's requests in flight
    are sized by how many hosts its process carries at once (``requests_per_host``).
    """
    over_ssh = sum(1 for h in hosts if not h.local)
    payload = None
    if isinstance(job, PushJob):
        payload = push_payload(job.plan.total_bytes, job.plan.file_count, over_ssh)
    count = worker_count(requested, over_ssh, payload)
    per_process = -(-min(forks, over_ssh) // max(1, count))
    requests = requests_per_host(per_process, job.options.block_size)
    return replace(job, options=replace(job.options, requests=requests)), count


def carriers(
    job: Job,
    connector: Connector,
    hosts: Sequence[Host],
    *,
    forks: int,
    requested: int | None,
    debug: bool = False,
) -> tuple[HostJob, Resources | None]:
    """The per-host work, in this process or on worker processes, and what it needs running."""
    if isinstance(job, RunJob):
        over_ssh = sum(1 for h in hosts if not h.local)
        count = worker_count(requested, over_ssh, per_worker=RUN_HOSTS_PER_WORKER)
        return carried(job, connector, count, debug)
    sized_job, count = sized(job, hosts, forks=forks, requested=requested)
    return carried(sized_job, connector, count, debug)


def carried(
    job: Job, connector: Connector, count: int, debug: bool = False
) -> tuple[HostJob, Resources | None]:
    """The per-host work on ``count`` worker processes, or in this process when 0."""
    if not count:
        return job.per_host(connector), None
    workers = Workers(job, connector.options, count, debug=debug)
    return workers.per_host, workers.running
