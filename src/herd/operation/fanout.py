"""Run one coroutine per host, at most ``forks`` at a time, streaming results as they finish.

Structured concurrency: one ``TaskGroup``, a semaphore, and each host's own
timeouts inside ``per_host``. Ctrl-C (SIGINT), SIGTERM and SIGHUP cancel what
is still running — the per-host code hangs up its remote commands on
cancellation — and the batch comes back marked interrupted by that signal,
with the hosts that completed.

A host whose TCP connection is not answered (powered off, firewalled) steps
out of its slot while it waits (the slot is handed to the per-host work, which
hands it to the connector, as trio's limiters are passed, not discovered):
such hosts wait out
their connect timeouts side by side instead of holding the forks, so a run
ends within one connect timeout + the command timeout even when up to four
times ``forks`` of its hosts are dead that way (beyond that, in waves that
wide). A host that accepts the connection but hangs later keeps its slot:
on a busy controller healthy hosts answer slowly too, and letting them all
step out would multiply the handshakes in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from herd.core.model import BatchResult, Host, HostResult, Status

__all__ = [
    "PARKING_PER_FORK",
    "STOP_SIGNALS",
    "HostSlot",
    "ResultSink",
    "Slot",
    "error_result",
    "fanout",
    "leaf_errors",
    "stop_signals",
]

ResultSink = Callable[[HostResult], None]

PARKING_PER_FORK = 4  # hosts that may wait outside the forks for a TCP answer, per fork


@dataclass(slots=True)
class _Parking:
    """How many hosts wait outside the forks now, and how many may."""

    limit: int
    count: int = 0


class Slot:
    """One host's place among the forks; it may step out while it only waits for its peer.

    At most a few times ``forks`` hosts wait outside at once, so the
    connections in progress stay bounded even when many hosts are dead.
    """

    def __init__(self, gate: asyncio.Semaphore, parking: _Parking) -> None:
        self._gate = gate
        self._parking = parking
        self._outside = False
        self.held = False

    async def acquire(self) -> None:
        await self._gate.acquire()
        self.held = True

    def release(self) -> None:
        """Leave the fan-out (the host is done), from inside or outside the forks."""
        if self.held:
            self.held = False
            self._gate.release()
        if self._outside:
            self._outside = False
            self._parking.count -= 1

    def step_out(self) -> bool:
        """Give the slot to another host while this one only waits; False if too many wait."""
        if not self.held or self._parking.count >= self._parking.limit:
            return False
        self._parking.count += 1
        self._outside = True
        self.held = False
        self._gate.release()
        return True

    async def step_in(self) -> None:
        """Take a slot again after ``step_out``, to go on working on the host."""
        if self._outside:
            self._outside = False
            self._parking.count -= 1
        await self.acquire()


class HostSlot(Protocol):
    """What the connect code may do with a host's slot: a ``Slot``, or a worker's stand-in."""

    def step_out(self) -> bool: ...

    async def step_in(self) -> None: ...


def leaf_errors(exc: BaseException) -> list[BaseException]:
    """The errors inside ``exc``: itself, or every error of an exception group, nested or not."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_errors(inner)]
    return [exc]


def error_result(host: Host, exc: Exception, started: float) -> HostResult:
    """A host's result for a surprise on that host: its error, never the batch's failure.

    Every distinct error of an exception group is named, not the group's own summary.
    """
    reasons: list[str] = []
    for error in leaf_errors(exc):
        text = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
        if reason not in reasons:
            reasons.append(reason)
    return HostResult(
        host=host.name,
        address=host.address,
        status=Status.ERROR,
        duration=time.monotonic() - started,
        error="; ".join(reasons),
    )


async def fanout(
    hosts: Sequence[Host],
    per_host: Callable[[Host, HostSlot], Awaitable[HostResult]],
    forks: int,
    on_result: ResultSink | None = None,
    *,
    handle_sigint: bool = True,
) -> BatchResult:
    """Run ``per_host(host, slot)`` for every host; ``on_result`` sees each result as it finishes.

    A ``per_host`` that raises is reported as that host's ``error``, never as
    the batch's failure. With ``handle_sigint`` (on the main thread), Ctrl-C,
    SIGTERM and SIGHUP return the batch marked interrupted instead of raising.
    """
    batch = BatchResult()
    gate = asyncio.Semaphore(max(1, forks))
    parking = _Parking(PARKING_PER_FORK * max(1, forks))
    tasks: list[asyncio.Task[None]] = []

    def deliver(result: HostResult) -> None:
        batch.add(result)
        if on_result is not None:
            on_result(result)

    async def one(host: Host) -> None:
        slot = Slot(gate, parking)
        await slot.acquire()
        try:
            started = time.monotonic()
            try:
                result = await per_host(host, slot)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or a surprise on one host must not sink the batch
                result = error_result(host, exc, started)
        finally:
            slot.release()
        deliver(result)

    def interrupt(signum: int) -> None:
        batch.interrupt(signum)
        for task in tasks:
            task.cancel()

    try:
        with stop_signals(interrupt) if handle_sigint else contextlib.nullcontext():
            async with asyncio.TaskGroup() as group:
                tasks.extend(group.create_task(one(host)) for host in hosts)
    except asyncio.CancelledError:
        batch.interrupt()
        raise
    return batch


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_signals(interrupt: Callable[[int], None]) -> Iterator[None]:
    """Turn Ctrl-C, SIGTERM and SIGHUP into ``interrupt(signum)`` on the running loop.

    The handlers in place before (herd's own, or Python's) are put back after: the
    loop's removal would otherwise leave the default action, which kills at once.
    Off the main thread (no signal support) the signals keep their handlers.
    """
    loop = asyncio.get_running_loop()
    installed: list[tuple[signal.Signals, Any]] = []
    for signum in STOP_SIGNALS:
        previous = signal.getsignal(signum)
        try:
            loop.add_signal_handler(signum, interrupt, signum)
        except (RuntimeError, ValueError, NotImplementedError):
            continue
        installed.append((signum, previous))
    try:
        yield
    finally:
        for stopped, previous in installed:
            loop.remove_signal_handler(stopped)
            if previous is not None:
                signal.signal(stopped, previous)
