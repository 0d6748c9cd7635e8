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

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from herd.core.events import (
    BatchStarted,
    Event,
    HostFinished,
    HostStarted,
    OperationFinished,
    OperationStarted,
    Sink,
)
from herd.core.model import BatchResult, Host, HostResult, Status
from herd.errors import Interrupted
from herd.operation.fanout import HostSlot, fanout, stop_signals
from herd.operation.rollout import Threshold, split_batches

__all__ = ["HostWork", "PerHost", "Plan", "Resources", "drive", "run_operation", "skipped"]

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
    batches: tuple[int, ...] = ()  # rollout batch sizes (they add up to the hosts); () one batch
    batch_pause: float = 0.0  # seconds between batches
    max_fail: Threshold | None = None  # more hosts not ok than this: no further host starts

    def batches_of(self, hosts: Sequence[T]) -> list[list[T]]:
        """``hosts`` in their rollout batches, in order (one batch when there are none)."""
        return split_batches(hosts, self.batches or (len(hosts),))


@dataclass(frozen=True, slots=True)
class HostWork:
    """What the driver hands each host's work: its fork slot, and where its events go."""

    slot: HostSlot
    emit: Callable[[Event], None]
    wants_output: bool  # whether any sink reads HostOutput: if not, don't make them


PerHost = Callable[[Host, HostWork], Awaitable[HostResult]]
# What the per-host work needs running around the whole batch (worker processes, gateways).
Resources = Callable[[], AbstractAsyncContextManager[object]]


async def drive(
    plan: Plan,
    hosts: Sequence[Host],
    per_host: PerHost,
    sink: Sink,
    *,
    resources: Resources | None = None,
) -> BatchResult:
    """Run ``per_host`` over ``hosts``, batch after batch; every host ends as an event.

    Hosts a crossed ``--max-fail`` or an interruption keeps from starting finish
    ``skipped`` with the reason. ``resources`` is what the per-host work needs for
    the whole batch (transfer workers), entered around it.
    """
    rollout = _Rollout(plan, sink)
    batches = plan.batches_of(hosts)
    async with resources() if resources else contextlib.nullcontext():
        for index, group in enumerate(batches, 1):
            if rollout.stop_reason or rollout.threshold_reason():
                rollout.skip(group, index)
                continue
            if len(batches) > 1:
                sink.handle(BatchStarted(index, len(batches), tuple(h.name for h in group)))
            numbered = index if len(batches) > 1 else 0

            async def one(host: Host, slot: HostSlot, batch: int = numbered) -> HostResult:
                reason = rollout.threshold_reason()
                if reason:
                    return skipped(host, reason, batch)
                sink.handle(HostStarted(host.name, batch))
                result = await per_host(host, HostWork(slot, sink.handle, sink.wants_output))
                return replace(result, batch=batch) if batch else result

            part = await fanout(group, one, plan.forks, rollout.finished)
            if part.interrupted:
                rollout.interrupted(part.stop_signal, index)
            elif index < len(batches) and plan.batch_pause > 0:
                await rollout.pause(plan.batch_pause, index + 1)
    return rollout.batch


def skipped(host: Host, reason: str, batch: int = 0) -> HostResult:
    """The result of a host never started, and why."""
    return HostResult(host.name, host.address, Status.SKIPPED, error=reason, batch=batch)


class _Rollout:
    """The whole operation's count of hosts not ok, and whether it may go on."""

    def __init__(self, plan: Plan, sink: Sink) -> None:
        self.batch = BatchResult()
        self._plan = plan
        self._sink = sink
        self._not_ok = 0
        self.stop_reason = ""

    def finished(self, result: HostResult) -> None:
        self.batch.add(result)
        if not result.ok and result.status is not Status.SKIPPED:
            self._not_ok += 1
        self._sink.handle(HostFinished(result))

    def threshold_reason(self) -> str:
        limit = self._plan.max_fail
        if limit is not None and limit.crossed(self._not_ok):
            hosts = f"{self._not_ok} host{'s' if self._not_ok != 1 else ''}"
            self.stop_reason = f"not started: {hosts} failed, more than --max-fail {limit.text}"
        return self.stop_reason

    def interrupted(self, signum: int, index: int) -> None:
        self.batch.interrupt(signum)
        if index < len(self._plan.batches):
            self.stop_reason = f"not started: interrupted before batch {index + 1}"

    def skip(self, hosts: Sequence[Host], index: int) -> None:
        number = index if len(self._plan.batches) > 1 else 0
        for host in hosts:
            self.finished(skipped(host, self.stop_reason, number))

    async def pause(self, seconds: float, next_index: int) -> None:
        """Wait between batches; Ctrl-C, SIGTERM or SIGHUP here stops before the next."""
        sleeping = asyncio.ensure_future(asyncio.sleep(seconds))

        def interrupt(signum: int) -> None:
            self.batch.interrupt(signum)
            self.stop_reason = f"not started: interrupted before batch {next_index}"
            sleeping.cancel()

        with stop_signals(interrupt), contextlib.suppress(asyncio.CancelledError):
            await sleeping


def run_operation(
    plan: Plan,
    hosts: Sequence[Host],
    per_host: PerHost,
    sink: Sink,
    *,
    run_loop: LoopRunner[BatchResult],
    resources: Resources | None = None,
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
