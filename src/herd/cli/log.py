"""``herd log``: search, show, verify, export and prune the operation log."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from herd.cli.context import AppContext, pass_app
from herd.core.audit import AuditLog
from herd.core.audit_export import operation_dict, write_csv, write_jsonl
from herd.core.audit_query import LogFilter, parse_when, search
from herd.errors import HerdError, UsageError

__all__ = ["log"]

KINDS = ("run", "push", "pull", "ftp", "prune")
F = TypeVar("F", bound=Callable[..., Any])


def _filter_options(func: F) -> F:
    """The filters shared by ``herd log`` and ``herd log export``."""
    options = [
        click.option("--host", metavar="HOST", help="Only operations that touched HOST."),
        click.option(
            "--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Only this kind."
        ),
        click.option(
            "--user", metavar="USER", help="Only operations by USER (OS, sudo or operator)."
        ),
        click.option(
            "--since", metavar="WHEN", help="Started at or after WHEN: 2h, 3d, 2026-11-01."
        ),
        click.option("--until", metavar="WHEN", help="Started before WHEN."),
        click.option("--failed", is_flag=True, help="Only operations that were not ok."),
        click.option("--grep", metavar="TEXT", help="TEXT in the command, paths or output."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _when(option: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_when(text)
    except UsageError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _make_filter(filters: dict[str, Any]) -> LogFilter:
    """The LogFilter of the options ``_filter_options`` added."""
    return LogFilter(
        host=filters["host"],
        kinds=filters["kinds"],
        user=filters["user"],
        since=_when("--since", filters["since"]),
        until=_when("--until", filters["until"]),
        failed=filters["failed"],
        grep=filters["grep"] or None,
    )


def _open(app: AppContext, *, writing: bool = False) -> AuditLog:
    if not writing:
        return AuditLog(app.paths.audit_db, check_writable=False)
    from herd.core.settings import load_settings

    target = load_settings(app.paths.settings_file).log.syslog_target()
    return AuditLog(app.paths.audit_db, syslog=target is not None, syslog_address=target)


@click.group(invoke_without_command=True)
@click.option("-n", "limit", type=click.IntRange(min=1), default=20, show_default=True,
              metavar="N", help="How many operations to list.")  # fmt: skip
@_filter_options
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one object per operation.")
@pass_app
@click.pass_context
def log(
    ctx: click.Context, app: AppContext, /, *, limit: int, as_json: bool, **filters: Any
) -> int:
    """The recent operations, newest first (subcommands: show, verify, export, prune)."""
    if ctx.invoked_subcommand is not None:
        return 0
    selected = _make_filter(filters)
    with _open(app) as oplog:
        records = list(search(oplog.connection, selected, limit=limit))
        counts = oplog.host_counts([r.id for r in records])
    if as_json:
        for record in records:
            line = operation_dict(record, counts.get(record.id, (0, 0)))
            click.echo(json.dumps(line, ensure_ascii=False))
        return 0
    from herd.inventory.patterns import fold_reader
    from herd.ui.console import make_console
    from herd.ui.logview import render_operations

    console = make_console()
    if not records:
        console.print("no operations match" if selected != LogFilter() else "no operations yet")
        return 0
    render_operations(console, records, counts, fold_reader(None))  # no inventory: see logview
    return 0


@log.command(short_help="One operation whole, host by host.")
@click.argument("op_id", metavar="ID", type=int)
@click.option("--host", metavar="HOST", help="Only this host's result.")
@click.option("--gather", "-b", is_flag=True, help="Fold hosts with identical results together.")
@click.option(
    "--json", "as_json", is_flag=True, help="One JSON object: the operation and its hosts."
)
@pass_app
def show(app: AppContext, op_id: int, host: str | None, gather: bool, as_json: bool) -> int:
    """One operation whole: argv, pattern, hosts, then each host's result."""
    with _open(app) as oplog:
        record = oplog.operation(op_id)
        if record is None:
            raise UsageError(f"{app.paths.audit_db}: no operation {op_id} in the log")
        results = oplog.host_results(op_id)
    done = {r.host for r in results}
    missing = [h for h in record.hosts if h not in done]
    if host is not None:
        if host not in done and host not in record.hosts:
            raise UsageError(f"operation {op_id} did not touch host {host}")
        results = [r for r in results if r.host == host]
        missing = [h for h in missing if h == host]
    if as_json:
        ok = sum(1 for r in results if r.ok)
        data = operation_dict(record, (ok, len(results) - ok), results)
        data["missing"] = missing
        click.echo(json.dumps(data, ensure_ascii=False))
        return 0
    from herd.inventory.patterns import fold_reader
    from herd.ui.console import make_console
    from herd.ui.logview import render_operation

    reader = fold_reader(None)  # the run's inventory is gone: fold so that none misreads it
    render_operation(make_console(), record, results, reader=reader, gather=gather, missing=missing)
    return 0


@log.command(short_help="Check the hash chain for edits and deletions.")
@pass_app
def verify(app: AppContext) -> int:
    """Walk the hash chain: exit 0 with `ok N records`, or 1 naming the first tampered record."""
    with _open(app) as oplog:
        report = oplog.verify()
    from herd.ui.console import make_console
    from herd.ui.logview import render_verify

    render_verify(make_console(), report)
    return 0 if report.ok else 1


@log.command(short_help="Export operations as JSON lines or CSV.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True,
              help="JSON lines (an operation a line) or CSV (a host a row).")  # fmt: skip
@_filter_options
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write to this file instead of stdout.")  # fmt: skip
@pass_app
def export(app: AppContext, /, *, fmt: str, output: Path | None, **filters: Any) -> int:
    """Export operations with their host results (newest first), to stdout or a file."""
    selected = _make_filter(filters)
    writer = write_jsonl if fmt == "jsonl" else write_csv
    with _open(app) as oplog:
        records = search(oplog.connection, selected)
        if output is None:
            writer(oplog, records, sys.stdout)
            return 0
        try:
            with output.open("w", encoding="utf-8", newline="") as out:
                count = writer(oplog, records, out)
        except OSError as exc:
            raise HerdError(f"{output}: cannot write the export: {exc.strerror}") from exc
    click.echo(f"exported {count} operations to {output}", err=True)
    return 0


@log.command(short_help="Remove old operations, keeping a checkpoint.")
@click.option("--before", "before", required=True, metavar="WHEN",
              help="Remove operations that started before WHEN (2026-01-01, 90d).")  # fmt: skip
@pass_app
def prune(app: AppContext, before: str) -> int:
    """Remove old operations; a checkpoint keeps the rest of the chain verifiable."""
    cutoff = _when("--before", before)
    assert cutoff is not None
    with _open(app, writing=True) as oplog:
        result = oplog.prune(cutoff, argv=app.argv or ("herd", "log", "prune", "--before", before))
    if result.record_id is None:
        click.echo("nothing to prune")
    else:
        click.echo(
            f"removed {result.operations} operations ({result.host_results} host results);"
            f" checkpoint: operation {result.record_id} holds seq {result.cut_seq}"
            f" hash {result.cut_hash}"
        )
    return 0
