"""Finding operations in the log: filters by host, kind, user, time, outcome and text.

Results come newest first and are read lazily from one SQLite cursor, so asking
for the last 20 operations touches only the newest rows, however long the log.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from herd.core.audit_records import (
    INTERRUPTED,
    OP_COLUMNS,
    RUNNING,
    OperationRecord,
    operation_from_row,
)
from herd.errors import UsageError

__all__ = ["LogFilter", "parse_when", "search"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_when(text: str, *, now: float | None = None) -> float:
    """A point in time from ``2h``/``3d``/``90m`` ago, a date ``2026-11-01``, or an ISO time.

    Dates and times without a zone are the local time of this machine.
    """
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        amount, unit = relative.groups()
        return (time.time() if now is None else now) - float(amount) * _UNITS[unit]
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time()).timestamp()
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise UsageError(
            f"{text!r} is not a time: use 2h, 3d, 2026-11-01 or 2026-11-01T14:30"
        ) from None


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which operations to list; every field left empty means 'any'."""

    host: str | None = None
    kinds: tuple[str, ...] = ()
    user: str | None = None
    since: float | None = None
    until: float | None = None
    failed: bool = False
    grep: str | None = None
    ids: tuple[int, ...] = field(default=())

    def where(self) -> tuple[str, list[object]]:
        """The SQL condition on ``operations o`` and its arguments."""
        terms: list[str] = []
        args: list[object] = []
        if self.ids:
            terms.append(f"o.id IN ({','.join('?' * len(self.ids))})")
            args.extend(self.ids)
        if self.host is not None:
            # The (host, op_id) index lists the operations that touched the host; one
            # interrupted before the host finished names it only in its target list, and
            # so does an FTP session (its entries are its actions; the client is its host).
            named = json.dumps(self.host, ensure_ascii=False)
            terms.append(
                "(o.id IN (SELECT op_id FROM host_results WHERE host = ?)"
                " OR ((o.status IN (?, ?) OR o.kind = 'ftp') AND instr(o.hosts, ?)))"
            )
            args.extend([self.host, RUNNING, INTERRUPTED, named])
        if self.kinds:
            terms.append(f"o.kind IN ({','.join('?' * len(self.kinds))})")
            args.extend(self.kinds)
        if self.user is not None:
            terms.append("(o.user = ? OR o.sudo_user = ? OR o.operator = ?)")
            args.extend([self.user] * 3)
        if self.since is not None:
            terms.append("o.started >= ?")
            args.append(self.since)
        if self.until is not None:
            terms.append("o.started < ?")
            args.append(self.until)
        if self.failed:
            terms.append("o.status != 'ok'")
        if self.grep:
            text, raw = self.grep, self.grep.encode()
            terms.append(
                "(instr(o.argv, ?) OR instr(coalesce(o.command, ''), ?)"
                " OR instr(coalesce(o.pattern, ''), ?) OR EXISTS (SELECT 1 FROM host_results h"
                " WHERE h.op_id = o.id AND (instr(h.stdout, ?) OR instr(h.stderr, ?)"
                " OR instr(h.files, ?) OR instr(h.error, ?))))"
            )
            args.extend([text, text, text, raw, raw, text, text])
        return (" AND ".join(terms) or "1"), args


def search(
    db: sqlite3.Connection, selected: LogFilter, *, limit: int | None = None
) -> Iterator[OperationRecord]:
    """Operations matching ``selected``, newest first, at most ``limit`` of them."""
    where, args = selected.where()
    rows = db.execute(
        f"SELECT {', '.join('o.' + c.strip() for c in OP_COLUMNS.split(','))}"
        f" FROM operations o WHERE {where} ORDER BY o.id DESC",
        args,
    )
    count = 0
    for row in rows:
        if limit is not None and count >= limit:
            break
        record = operation_from_row(row)
        # A running record whose process died reads as interrupted; a live one is not failed.
        if selected.failed and record.status == RUNNING:
            continue
        count += 1
        yield record
