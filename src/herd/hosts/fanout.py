"""Run one coroutine per host, at most ``forks`` at a time, streaming results as they finish.

Structured concurrency: one ``TaskGroup``, a semaphore, and each host's own
timeouts inside ``per_host``. Ctrl-C (SIGINT) cancels what is still running —
the per-host code hangs up its remote commands on cancellation — and the batch
comes back marked interrupted with the hosts that completed.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Sequence

from herd.core.results import BatchResult, HostResult, Status
from herd.inventory.model import Host

__all__ = ["ResultSink", "fanout"]

ResultSink = Callable[[HostResult], None]


async def fanout(
    hosts: Sequence[Host],
    per_host: Callable[[Host], Awaitable[HostResult]],
    forks: int,
    on_result: ResultSink | None = None,
    *,
    handle_sigint: bool = True,
) -> BatchResult:
    """Run ``per_host`` for every host; ``on_result`` sees each result as it finishes.

    A ``per_host`` that raises is reported as that host's ``error``, never as
    the batch's failure. With ``handle_sigint`` (on the main thread), Ctrl-C
    returns the batch marked interrupted instead of raising.
    """
    batch = BatchResult()
    gate = asyncio.Semaphore(max(1, forks))
    tasks: list[asyncio.Task[None]] = []

    def deliver(result: HostResult) -> None:
        batch.add(result)
        if on_result is not None:
            on_result(result)

    async def one(host: Host) -> None:
        async with gate:
            started = time.monotonic()
            try:
                result = await per_host(host)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or a surprise on one host must not sink the batch
                text = str(exc).strip().splitlines()
                reason = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
                result = HostResult(
                    host=host.name,
                    address=host.address,
                    status=Status.ERROR,
                    duration=time.monotonic() - started,
                    error=reason,
                )
        deliver(result)

    def interrupt() -> None:
        batch.interrupted = True
        for task in tasks:
            task.cancel()

    loop = asyncio.get_running_loop()
    installed = False
    if handle_sigint:
        try:
            loop.add_signal_handler(signal.SIGINT, interrupt)
            installed = True
        except (RuntimeError, ValueError, NotImplementedError):
            installed = False  # not the main thread, or no signal support: Ctrl-C raises
    try:
        async with asyncio.TaskGroup() as group:
            tasks.extend(group.create_task(one(host)) for host in hosts)
    except asyncio.CancelledError:
        batch.interrupted = True
        raise
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)
    return batch
