"""The operation log as plain data: dicts for ``--json``, JSON lines and CSV for export.

One shape everywhere: ``herd log --json``, ``herd log show --json`` and
``herd log export`` name the same fields the same way, and per-host fields
match DESIGN.md's ``--json`` keys (host, address, status, exit_status, stdout,
stderr, duration, error).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TextIO

from herd.core.audit import AuditLog, OperationRecord
from herd.core.model import HostResult

__all__ = [
    "CSV_FIELDS",
    "host_result_dict",
    "iso_time",
    "operation_dict",
    "write_csv",
    "write_jsonl",
]


def iso_time(stamp: float | None) -> str | None:
    """A timestamp as local ISO 8601 with its UTC offset, to the millisecond."""
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp).astimezone().isoformat(timespec="milliseconds")


def operation_dict(
    record: OperationRecord,
    counts: tuple[int, int] | None = None,
    results: Iterable[HostResult] | None = None,
) -> dict[str, Any]:
    """One operation as JSON-ready data; with ``results``, its hosts too."""
    data: dict[str, Any] = {
        "id": record.id,
        "kind": record.kind,
        "status": record.status,
        "exit_code": record.exit_code,
        "started": iso_time(record.started),
        "ended": iso_time(record.ended),
        "duration": None if record.duration is None else round(record.duration, 3),
        "user": record.operator.user,
        "sudo_user": record.operator.sudo_user,
        "operator": record.operator.operator,
        "controller": record.operator.controller,
        "pid": record.pid,
        "argv": record.argv,
        "pattern": record.pattern,
        "hosts": record.hosts,
        "command": record.command,
    }
    if counts is not None:
        ok, not_ok = counts
        data["ok"] = ok
        data["not_ok"] = not_ok + max(0, len(record.hosts) - ok - not_ok)
    if record.detail is not None:
        data["detail"] = record.detail
    data["seq"], data["hash"], data["prev_hash"] = record.seq, record.hash, record.prev_hash
    if results is not None:
        data["results"] = [host_result_dict(r) for r in results]
    return data


def host_result_dict(result: HostResult) -> dict[str, Any]:
    """One host's result: DESIGN.md's per-host keys, then sizes, hashes and files."""
    return {
        **result.json_fields(),
        "stdout_bytes": result.stdout.total,
        "stdout_sha256": result.stdout.sha256,
        "stdout_truncated": result.stdout.truncated,
        "stderr_bytes": result.stderr.total,
        "stderr_sha256": result.stderr.sha256,
        "stderr_truncated": result.stderr.truncated,
        "files": [
            {"path": f.path, "size": f.size, "sha256": f.sha256, "skipped": f.skipped}
            for f in result.files
        ],
    }


def write_jsonl(log: AuditLog, records: Iterable[OperationRecord], out: TextIO) -> int:
    """Write each operation with its host results as one JSON line; returns the count."""
    count = 0
    for record in records:
        results = log.host_results(record.id)
        ok = sum(1 for r in results if r.ok)
        line = operation_dict(record, (ok, len(results) - ok), results)
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
        count += 1
    return count


CSV_FIELDS = (
    "id", "kind", "status", "exit_code", "started", "ended", "user", "sudo_user", "operator",
    "controller", "pattern", "command", "argv", "seq", "hash",
    "host", "address", "host_status", "exit_status", "duration", "error",
    "stdout", "stdout_bytes", "stdout_sha256", "stderr", "stderr_bytes", "stderr_sha256", "files",
)  # fmt: skip


def write_csv(log: AuditLog, records: Iterable[OperationRecord], out: TextIO) -> int:
    """Write one CSV row per host result (one row for an operation without any); returns ops."""
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    count = 0
    for record in records:
        who = record.operator
        head = [
            record.id, record.kind, record.status, record.exit_code, iso_time(record.started),
            iso_time(record.ended), who.user, who.sudo_user or "", who.operator or "",
            who.controller, record.pattern or "", record.command or "", json.dumps(record.argv),
            record.seq, record.hash or "",
        ]  # fmt: skip
        results = log.host_results(record.id)
        for r in results:
            files = ";".join(f"{f.path}:{f.size}:{f.sha256}" for f in r.files)
            writer.writerow([
                *head, r.host, r.address, r.status.value, r.exit_status, r.duration, r.error,
                r.stdout.text, r.stdout.total, r.stdout.sha256,
                r.stderr.text, r.stderr.total, r.stderr.sha256, files,
            ])  # fmt: skip
        if not results:
            writer.writerow([*head] + [""] * (len(CSV_FIELDS) - len(head)))
        count += 1
    return count
