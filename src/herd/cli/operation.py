"""Drive an operation from the command line: record it, hand it its sinks, run it.

The work itself is the operation layer's (``herd.operation``): this only
begins the record before anything connects (herd refuses to run what it cannot
record, unless ``--no-log``), puts the recorder among the renderers, and runs
the driver on herd's event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from herd.cli.context import AppContext
from herd.core.events import Sink, Sinks
from herd.core.model import BatchResult, Host
from herd.operation.driver import PerHost, Plan, Resources, run_operation

__all__ = ["drive"]


def drive(
    app: AppContext,
    plan: Plan,
    hosts: Sequence[Host],
    per_host: PerHost,
    renderers: Sequence[Sink],
    *,
    record: bool = True,
    syslog: str | None = None,
    detail: dict[str, Any] | None = None,
    resources: Resources | None = None,
) -> BatchResult:
    """Record (unless ``record`` is false), run ``per_host`` on every host, render; the batch.

    ``syslog`` is the socket the operation's one-line summary goes to, if any; the
    record keeps the rollout's batches and ``detail``.
    """
    from herd.hosts.sshlib import run_loop
    from herd.operation.recorder import Recorder

    recorder = None
    if record:
        recorder = Recorder.begin(
            app.paths.audit_db,
            plan.kind,
            argv=app.argv,
            pattern=plan.pattern,
            hosts=[h.name for h in hosts],
            command=plan.command,
            syslog=syslog,
            detail={**rollout_detail(plan, hosts), **(detail or {})} or None,
        )
        plan = replace(plan, op_id=recorder.op_id)
    sinks = Sinks([*([recorder] if recorder else []), *renderers])
    try:
        return run_operation(plan, hosts, per_host, sinks, run_loop=run_loop, resources=resources)
    finally:
        if recorder is not None:
            recorder.close()


def rollout_detail(plan: Plan, hosts: Sequence[Host]) -> dict[str, Any]:
    """What the log keeps of a rollout: its batches (host names) and its threshold."""
    detail: dict[str, Any] = {}
    if plan.batches:
        detail["batches"] = [[h.name for h in batch] for batch in plan.batches_of(hosts)]
    if plan.max_fail is not None:
        detail["max_fail"] = plan.max_fail.text
    return detail
