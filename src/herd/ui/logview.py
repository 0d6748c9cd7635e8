"""The operation log on a terminal: the operations table, one operation whole, verify's verdict."""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable, Mapping, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from herd.core.audit import OperationRecord
from herd.core.audit_chain import ChainReport
from herd.core.hostset import fold
from herd.core.results import HostResult, Output, Status

__all__ = ["operations_table", "render_operation", "render_verify", "status_text"]

_STATUS_STYLE = {
    "ok": "green",
    "failed": "red",
    "error": "red",
    "interrupted": "yellow",
    "running": "cyan",
}


def status_text(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, "red"))


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _took(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def what_it_did(record: OperationRecord) -> str:
    """The command, or for transfers the files, in one short line."""
    text = record.command or shlex.join(record.argv[1:])
    return " ".join(text.split())


def operations_table(
    records: Sequence[OperationRecord], counts: Mapping[int, tuple[int, int]]
) -> Table:
    """Operations newest first: who did what, where, when, and with what result."""
    rows: list[list[str]] = []
    for record in records:
        ok, not_ok = counts.get(record.id, (0, 0))
        not_ok += max(0, len(record.hosts) - ok - not_ok)
        rows.append([
            str(record.id), _when(record.started)[:16], record.operator.name, record.kind,
            record.pattern or "", what_it_did(record), str(ok), str(not_ok),
            _took(record.duration), record.status,
        ])  # fmt: skip
    table = Table(box=None, pad_edge=False, header_style="bold")
    for index, name in enumerate(_COLUMNS):
        widest = max([len(name), *(len(row[index]) for row in rows)])
        table.add_column(
            name,
            justify="right" if name in _NUMERIC else "left",
            no_wrap=True,
            overflow="ellipsis",
            # Only the free-text columns give way on a narrow terminal.
            min_width=min(widest, 12) if name in ("TARGET", "COMMAND / FILES") else widest,
        )
    for row in rows:
        cells: list[str | Text] = [*row]
        cells[7] = Text(row[7], style="red" if row[7] != "0" else "")
        cells[9] = status_text(row[9])
        table.add_row(*cells)
    return table


_COLUMNS = ("ID", "TIME", "USER", "KIND", "TARGET", "COMMAND / FILES", "OK", "NOT OK", "TOOK",
            "STATUS")  # fmt: skip
_NUMERIC = {"ID", "OK", "NOT OK", "TOOK"}


def _field(console: Console, name: str, value: str | Text) -> None:
    line = Text(f"{name + ':':<12}", style="bold")
    line.append(value if isinstance(value, Text) else Text(value))
    console.print(line, soft_wrap=True, highlight=False)


def _render_header(console: Console, record: OperationRecord) -> None:
    who = record.operator
    status = status_text(record.status)
    if record.exit_code is not None:
        status.append(f" (exit {record.exit_code})")
    _field(console, "operation", f"{record.id}  {record.kind}")
    _field(console, "status", status)
    ended = _when(record.ended) if record.ended is not None else "-"
    _field(console, "time", f"{_when(record.started)} to {ended} ({_took(record.duration)})")
    identity = f"{who.user}" + (f", sudo from {who.sudo_user}" if who.sudo_user else "")
    identity += f", operator {who.operator}" if who.operator else ""
    _field(console, "user", f"{identity} on {who.controller} (pid {record.pid})")
    _field(console, "argv", shlex.join(record.argv))
    if record.pattern is not None:
        _field(console, "pattern", record.pattern)
    if record.command:
        _field(console, "command", record.command)
    if record.hosts:
        _field(console, "hosts", f"{fold(record.hosts)} ({len(record.hosts)})")
    seal = f"seq {record.seq}, hash {record.hash}" if record.seq else "not sealed yet"
    _field(console, "chain", seal)


def _stream(console: Console, name: str, output: Output, style: str) -> None:
    if not output.total:
        return
    note = f"{name} ({output.total} bytes, sha256 {output.sha256[:16]}"
    note += f"; first {len(output.data)} kept)" if output.truncated else ")"
    console.print(Text(f"  {note}", style="dim"), soft_wrap=True, highlight=False)
    for line in output.text.splitlines():
        console.print(Text(f"    {line}", style=style), soft_wrap=True, highlight=False)


def _render_host(console: Console, result: HostResult) -> None:
    head = Text(result.host, style="bold")
    head.append(f" ({result.address})  ")
    head.append(status_text(result.status.value))
    if result.exit_status is not None:
        head.append(f"  exit {result.exit_status}")
    head.append(f"  {_took(result.duration)}")
    if result.error:
        head.append(f"  {result.error}", style="red")
    console.print(head, soft_wrap=True, highlight=False)
    _stream(console, "stdout", result.stdout, "")
    _stream(console, "stderr", result.stderr, "red")
    for f in result.files:
        mark = "  (already there)" if f.skipped else ""
        console.print(
            Text(f"  file {f.path}  {f.size} bytes  sha256 {f.sha256}{mark}"),
            soft_wrap=True,
            highlight=False,
        )


def render_operation(
    console: Console,
    record: OperationRecord,
    results: Iterable[HostResult],
    *,
    gather: bool = False,
    missing: Sequence[str] = (),
) -> None:
    """One operation whole: who, what, where, then each host (or identical hosts gathered)."""
    _render_header(console, record)
    results = list(results)
    console.print()
    if gather:
        from herd.ui.gather import render_gathered  # with the inventory: only when asked

        render_gathered(console, results)
        for result in results:
            for f in result.files:
                console.print(
                    Text(f"{result.host}: file {f.path} {f.size} bytes sha256 {f.sha256}")
                )
    else:
        for result in results:
            _render_host(console, result)
    if missing:
        note = f"{fold(missing)} ({len(missing)}): no result recorded"
        if record.status != Status.OK.value:
            note += f" (the operation is {record.status})"
        console.print(Text(note, style="yellow"), soft_wrap=True, highlight=False)


def render_verify(console: Console, report: ChainReport) -> None:
    """``ok N records`` with the head to anchor elsewhere, or the first problem found."""
    if report.ok:
        head = f"head seq {report.head_seq} hash {report.head_hash}" if report.records else ""
        console.print(f"ok {report.records} records" + (f" ({head})" if head else ""))
    else:
        console.print(Text(f"TAMPERED: {report.problem}", style="bold red"), soft_wrap=True)
    if report.first_seq > 1 and report.ok:
        console.print(f"the chain starts at seq {report.first_seq}, after a prune checkpoint")
    if report.running:
        ids = ", ".join(str(i) for i in report.running)
        console.print(f"not sealed yet (still running): {ids}")
