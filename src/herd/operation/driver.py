"""Drive one operation over many hosts: the plan, the per-host work, the events, the sinks.

The driver knows nothing of SSH, terminals or SQLite. It is handed a resolved
``Plan``, the hosts, the per-host work (the engine's coroutine) and the sinks,
and it turns what happens into events: the operation started, each host
started and finished (its ``HostResult``), the operation finished. The
per-host work gets a ``HostWork``: its fork slot (passed, not discovered) and
where to send its own events (output, bytes moved).

Ctrl-C, SIGTERM and SIGHUP during the fan-out return the batch marked
interrupted (the fan-out's own handlers); outside it (before the loop runs,
or after), they are caught here, so the sinks always see the operation end.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from herd.core.events import (
    Event,
    HostFinished,
    HostStarted,
    OperationFinished,
    OperationStarted,
    Sink,
)
from herd.core.model import BatchResult, Host, HostResult
from herd.errors import Interrupted
from herd.operation.fanout import HostSlot, fanout

__all__ = ["HostWork", "PerHost", "Plan", "drive", "run_operation"]

T = TypeVar("T")
LoopRunner = Callable[[Callable[[], Coroutine[Any, Any, T]]], T]


@dataclass(frozen=True, slots=True)
class Plan:
    """What an operation is, resolved before anything runs."""

    kind: str  # run, push, pull, shell
    forks: int
    pattern: str | None = None
    command: str | None = None
    op_id: int | None = None  # its number in the operation log, once begun there


@dataclass(frozen=True, slots=True)
class HostWork:
    """What the driver hands each host's work: its fork slot, and where its events go."""

    slot: HostSlot
    emit: Callable[[Event], None]
    wants_output: bool  # whether any sink reads HostOutput: if not, don't make them


PerHost = Callable[[Host, HostWork], Awaitable[HostResult]]


async def drive(
    plan: Plan,
    hosts: Sequence[Host],
    per_host: PerHost,
    sink: Sink,
    *,
    resources: Callable[[], AbstractAsyncContextManager[object]] | None = None,
) -> BatchResult:
    """Fan ``per_host`` out over ``hosts``, each host's start and result an event to ``sink``.

    ``resources`` is what the per-host work needs for the whole batch (transfer
    workers), entered around the fan-out.
    """

    async def one(host: Host, slot: HostSlot) -> HostResult:
        sink.handle(HostStarted(host.name))
        return await per_host(host, HostWork(slot, sink.handle, sink.wants_output))

    def finished(result: HostResult) -> None:
        sink.handle(HostFinished(result))

    async with resources() if resources else contextlib.nullcontext():
        return await fanout(hosts, one, plan.forks, finished)


def run_operation(
    plan: Plan,
    hosts: Sequence[Host],
    per_host: PerHost,
    sink: Sink,
    *,
    run_loop: LoopRunner[BatchResult],
    resources: Callable[[], AbstractAsyncContextManager[object]] | None = None,
) -> BatchResult:
    """The whole operation, from its first event to its last, on a loop ``run_loop`` makes.

    The sinks see ``OperationStarted`` first and ``OperationFinished`` last, whatever
    happens in between: an interruption outside the fan-out is recorded as one.
    """
    names = tuple(h.name for h in hosts)
    sink.handle(OperationStarted(plan.kind, names, plan.op_id, plan.pattern, plan.command))
    started = time.monotonic()
    batch = BatchResult(interrupted=True)
    try:
        batch = run_loop(lambda: drive(plan, hosts, per_host, sink, resources=resources))
    except KeyboardInterrupt:
        batch.interrupt(signal.SIGINT)  # Ctrl-C outside the fan-out's own handler
    except Interrupted as stop:
        batch.interrupt(stop.signum)  # SIGTERM or SIGHUP outside it
    finally:
        sink.handle(
            OperationFinished(
                exit_code=batch.exit_code,
                elapsed=time.monotonic() - started,
                interrupted=batch.interrupted,
                stop_signal=batch.stop_signal if batch.interrupted else 0,
            )
        )
    return batch
