"""The shared driver of a recorded operation on many hosts (run, push, pull).

The operation log is opened and the operation begun BEFORE anything connects
(herd refuses to run unrecorded unless ``--no-log``); host results are
recorded in batches (one transaction per 200 hosts, and a flusher writes
whatever waits once a second, so a killed herd loses at most a second of
results); the operation is finished as ok, failed or interrupted with its exit
code. Passwords never reach it: they are not in argv (prompted, then sent over
stdin) and not in results.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from herd.cli.context import AppContext
from herd.core.audit import AuditLog
from herd.core.model import BatchResult, Host, HostResult, Status
from herd.core.secrets import mask_argv, mask_secrets
from herd.errors import Interrupted
from herd.hosts.command import OutputSink
from herd.ui.render import Renderers

__all__ = ["BatchPlan", "Operation", "PerHost", "run_operation"]

PerHost = Callable[[Host, OutputSink | None], Awaitable[HostResult]]

# ansible_connection values herd runs: over SSH (Ansible's ssh/paramiko/smart) or locally
SPOKEN_CONNECTIONS = frozenset({"ssh", "paramiko", "smart", "local"})
_FLUSH_SECONDS = 1.0
_FLUSH_HOSTS = 200


class Operation:
    """One recorded operation: begin, record host results in batches, finish."""

    def __init__(
        self, app: AppContext, kind: str, *, no_log: bool = False, syslog: bool | None = None
    ) -> None:
        self.kind = kind
        self.op_id: int | None = None
        self._log: AuditLog | None = None if no_log else AuditLog(app.paths.audit_db, syslog=syslog)
        self._pending: list[HostResult] = []

    def begin(
        self,
        *,
        argv: Sequence[str],
        pattern: str | None,
        hosts: Sequence[Host],
        command: str | None,
    ) -> int | None:
        """Record that the operation starts (before the first connection)."""
        if self._log is not None:
            self.op_id = self._log.begin(
                self.kind,
                argv=mask_argv(argv),
                hosts=[h.name for h in hosts],
                pattern=pattern,
                command=None if command is None else mask_secrets(command),
            )
        return self.op_id

    def record(self, result: HostResult) -> None:
        """Queue one host's result; written with the next batch."""
        if self._log is None:
            return
        self._pending.append(result)
        if len(self._pending) >= _FLUSH_HOSTS:
            self.flush()

    async def flush_every_second(self) -> None:
        """Write finished hosts at least once a second, even when no further host finishes."""
        while True:
            await asyncio.sleep(_FLUSH_SECONDS)
            self.flush()

    def flush(self) -> None:
        if self._log is not None and self.op_id is not None and self._pending:
            pending, self._pending = self._pending, []
            self._log.record_hosts(self.op_id, pending)

    def finish(self, batch: BatchResult) -> None:
        """Write what is left and close the operation as ok, failed or interrupted."""
        if self._log is None or self.op_id is None:
            return
        self.flush()
        status = "interrupted" if batch.interrupted else "ok" if batch.exit_code == 0 else "failed"
        self._log.finish(self.op_id, status=status, exit_code=batch.exit_code)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """What ``run_operation`` needs besides the per-host work."""

    kind: str
    pattern: str | None
    command: str | None
    forks: int
    no_log: bool = False
    syslog: bool | None = None  # None: as the [log] syslog setting says


def run_operation(
    app: AppContext,
    plan: BatchPlan,
    hosts: Sequence[Host],
    per_host: PerHost,
    renderers: Renderers,
    *,
    on_begin: Callable[[int | None], None] | None = None,
    resources: Callable[[], AbstractAsyncContextManager[object]] | None = None,
) -> BatchResult:
    """Record, fan out over ``hosts``, render, and finish; returns the batch.

    ``resources`` is what ``per_host`` needs for the whole batch (transfer
    workers), entered on the event loop around the fan-out. A Ctrl-C during the
    batch returns it marked interrupted (exit code 130), recorded with the
    hosts that completed.
    """
    from herd.hosts.fanout import fanout
    from herd.hosts.sshlib import run_loop

    operation = Operation(app, plan.kind, no_log=plan.no_log, syslog=plan.syslog)
    try:
        op_id = operation.begin(
            argv=app.argv, pattern=plan.pattern, hosts=hosts, command=plan.command
        )
        if on_begin is not None:
            on_begin(op_id)
        emit = renderers.output if renderers.wants_output else None

        def on_result(result: HostResult) -> None:
            operation.record(result)
            renderers.result(result)

        async def work(host: Host) -> HostResult:
            if host.connection not in SPOKEN_CONNECTIONS:
                reason = f"ansible_connection={host.connection} is not something herd speaks"
                return HostResult(host.name, host.address, Status.ERROR, error=reason)
            return await per_host(host, emit)

        async def main() -> BatchResult:
            flusher = asyncio.create_task(operation.flush_every_second())
            try:
                async with resources() if resources else contextlib.nullcontext():
                    return await fanout(hosts, work, plan.forks, on_result)
            finally:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher

        started = time.monotonic()
        renderers.start(hosts)
        batch = BatchResult(interrupted=True)
        try:
            batch = run_loop(main)
        except KeyboardInterrupt:
            batch.interrupt(signal.SIGINT)  # Ctrl-C outside the fan-out's own handler
        except Interrupted as stop:
            batch.interrupt(stop.signum)  # SIGTERM or SIGHUP outside it
        finally:
            operation.finish(batch)
        renderers.finish(batch, time.monotonic() - started)
        return batch
    finally:
        operation.close()
