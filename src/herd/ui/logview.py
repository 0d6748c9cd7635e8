"""The operation log on a terminal: the operations table, one operation whole, verify's verdict.

Host sets are folded by the ``FoldReader`` the caller passes: the log is read
long after its runs, without their inventory, so ``herd log`` passes one that
no inventory can misread (``herd.inventory.patterns.fold_reader(None)``).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterable, Mapping, Sequence

from rich.console import Console
from rich.text import Text

from herd.core.audit import OperationRecord
from herd.core.audit_chain import ChainReport
from herd.core.hostset import FoldReader, fold
from herd.core.model import HostResult, Output, Status
from herd.core.secrets import mask_argv, mask_secrets

__all__ = ["render_operation", "render_operations", "render_verify", "status_text"]

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
    return " ".join(mask_secrets(text).split())  # records older than the masking too


# The command goes last: it is the one cell that can be long, and it never breaks alignment there.
_COLUMNS = ("ID", "TIME", "USER", "KIND", "TARGET", "OK", "NOT OK", "TOOK", "STATUS",
            "COMMAND / FILES")  # fmt: skip
_NUMERIC = {0, 5, 6, 7}
_TARGET, _NOT_OK, _STATUS, _COMMAND = 4, 6, 8, 9
_GAP = "  "


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def render_operations(
    console: Console,
    records: Sequence[OperationRecord],
    counts: Mapping[int, tuple[int, int]],
    reader: FoldReader,
) -> None:
    """Operations newest first, one line each: who did what, where, when, with what result.

    Plain aligned columns rather than a rich Table: ``herd log`` must answer in a
    blink, and laying out a Table costs more than the query on a long log.
    """
    rows: list[list[str]] = []
    for record in records:
        ok, not_ok = counts.get(record.id, (0, 0))
        not_ok += max(0, len(record.hosts) - ok - not_ok)
        rows.append([
            str(record.id), _when(record.started)[:16], record.operator.name, record.kind,
            record.pattern or fold(record.hosts, reader), str(ok), str(not_ok),
            _took(record.duration), record.status, what_it_did(record),
        ])  # fmt: skip
    widths = [max([len(name), *(len(row[i]) for row in rows)]) for i, name in enumerate(_COLUMNS)]
    widths[_TARGET] = min(widths[_TARGET], 24)
    if console.is_terminal:  # fit the screen; a pipe or a file gets whole commands
        fixed = sum(widths) - widths[_COMMAND] + len(_GAP) * (len(_COLUMNS) - 1)
        widths[_COMMAND] = max(15, min(widths[_COMMAND], console.width - fixed))

    def line(cells: Sequence[str], header: bool = False) -> Text:
        text = Text(style="bold" if header else "")
        for index, (cell, width) in enumerate(zip(cells, widths, strict=True)):
            shown = _fit(cell, width)
            shown = shown.rjust(width) if index in _NUMERIC else shown.ljust(width)
            if index == len(cells) - 1:
                shown = shown.rstrip()
            style = ""
            if not header and index == _STATUS:
                style = _STATUS_STYLE.get(cell, "red")
            elif not header and index == _NOT_OK and cell != "0":
                style = "red"
            text.append(shown, style=style)
            if index < len(cells) - 1:
                text.append(_GAP)
        return text

    console.print(line(_COLUMNS, header=True), soft_wrap=True, highlight=False)
    for row in rows:
        console.print(line(row), soft_wrap=True, highlight=False)


def _field(console: Console, name: str, value: str | Text) -> None:
    line = Text(f"{name + ':':<12}", style="bold")
    line.append(value if isinstance(value, Text) else Text(value))
    console.print(line, soft_wrap=True, highlight=False)


def _render_header(console: Console, record: OperationRecord, reader: FoldReader) -> None:
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
    _field(console, "argv", shlex.join(mask_argv(record.argv)))
    if record.pattern is not None:
        _field(console, "pattern", record.pattern)
    if record.command:
        _field(console, "command", mask_secrets(record.command))
    if record.hosts:
        _field(console, "hosts", f"{fold(record.hosts, reader)} ({len(record.hosts)})")
    detail = record.detail or {}
    if isinstance(detail.get("pick"), int):
        _field(console, "picked", f"{detail['pick']} at random among the hosts matched")
    batches = detail.get("batches")
    if isinstance(batches, list):
        for number, names in enumerate(batches, 1):
            _field(console, f"batch {number}", f"{fold(names, reader)} ({len(names)})")
    if detail.get("max_fail"):
        _field(console, "max-fail", str(detail["max_fail"]))
    via = detail.get("via")
    if isinstance(via, dict):  # the gateways that carried hosts (herd_gateway)
        for route, names in via.items():
            if isinstance(names, list):
                _field(console, "via", f"{route}: {fold(names, reader)} ({len(names)})")
    seal = f"seq {record.seq}, hash {record.hash}" if record.seq else "not sealed yet"
    _field(console, "chain", seal)


def _stream(console: Console, name: str, output: Output, style: str) -> None:
    if not output.total:
        return
    note = f"{name} ({output.total} bytes, sha256 {output.sha256[:16]}"
    note += f"; truncated: first {len(output.data)} kept)" if output.truncated else ")"
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
    reader: FoldReader,
    gather: bool = False,
    missing: Sequence[str] = (),
) -> None:
    """One operation whole: who, what, where, then each host (or identical hosts gathered)."""
    _render_header(console, record, reader)
    results = list(results)
    console.print()
    if gather:
        from herd.ui.gather import render_gathered  # with the inventory: only when asked

        render_gathered(console, results, reader)
        for result in results:
            for f in result.files:
                console.print(
                    Text(f"{result.host}: file {f.path} {f.size} bytes sha256 {f.sha256}")
                )
    else:
        for result in results:
            _render_host(console, result)
    if missing:
        note = f"{fold(missing, reader)} ({len(missing)}): no result recorded"
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
