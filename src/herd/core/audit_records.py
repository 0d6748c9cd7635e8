"""The operation log's records as herd reads them back: who, what, and each host's result.

Shared by the store (``herd.core.audit``), its queries and its exports; a record
whose process died while it was running reads back as ``interrupted``.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

from herd.core.model import FileRecord, HostResult, OperationStatus, Output, Status

__all__ = [
    "INTERRUPTED",
    "OP_COLUMNS",
    "RUNNING",
    "HostRecord",
    "OperationRecord",
    "Operator",
    "PruneResult",
    "host_result_from_row",
    "host_row",
    "operation_from_row",
    "pid_alive",
]

RUNNING = OperationStatus.RUNNING.value
INTERRUPTED = OperationStatus.INTERRUPTED.value


@dataclass(frozen=True, slots=True)
class Operator:
    """Who ran an operation: the OS user, the sudo caller, a declared operator, the machine."""

    user: str
    sudo_user: str | None
    operator: str | None
    controller: str

    @classmethod
    def current(cls) -> Operator:
        return cls(
            user=getpass.getuser(),
            sudo_user=os.environ.get("SUDO_USER") or None,
            operator=os.environ.get("HERD_OPERATOR") or None,
            controller=socket.gethostname(),
        )

    @property
    def name(self) -> str:
        """The person to name in a table: the declared operator, else the sudo caller."""
        return self.operator or self.sudo_user or self.user

    @property
    def describe(self) -> str:
        """Everything known about the person, in one phrase: ``alice (sudo root) on ctl1``."""
        extra = [f"as {self.user}" if self.user != self.name else ""]
        if self.sudo_user and self.sudo_user != self.name:
            extra.append(f"sudo from {self.sudo_user}")
        shown = ", ".join(e for e in extra if e)
        return f"{self.name}{f' ({shown})' if shown else ''} on {self.controller}"


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """One operation as read back from the log."""

    id: int
    kind: str
    started: float
    ended: float | None
    status: str
    exit_code: int | None
    operator: Operator
    argv: list[str]
    pattern: str | None
    hosts: list[str]
    command: str | None
    pid: int
    seq: int | None
    prev_hash: str | None
    hash: str | None
    detail: dict[str, Any] | None = None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def sealed(self) -> bool:
        return self.seq is not None


@dataclass(frozen=True, slots=True)
class HostRecord:
    """One host's result within an operation, as read back from the log."""

    op_id: int
    result: HostResult


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What ``prune`` removed, and the checkpoint that keeps the chain verifiable."""

    operations: int
    host_results: int
    cut_seq: int
    cut_hash: str
    record_id: int | None  # the prune record sealed into the chain (None if nothing removed)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


OP_COLUMNS = (
    "id, kind, started, ended, status, exit_code, user, sudo_user, operator, controller,"
    " pid, argv, pattern, hosts, command, seq, prev_hash, hash, detail"
)


def operation_from_row(row: Any) -> OperationRecord:
    """An ``OperationRecord`` from a row of ``OP_COLUMNS``; a dead running one reads interrupted."""
    (op_id, kind, started, ended, status, exit_code, user, sudo_user, operator, controller,
     pid, argv, pattern, hosts, command, seq, prev_hash, hash_, detail) = row  # fmt: skip
    who = Operator(str(user), _opt(sudo_user), _opt(operator), str(controller))
    if status == RUNNING and controller == socket.gethostname() and not pid_alive(int(pid)):
        status = INTERRUPTED
    return OperationRecord(
        id=int(op_id),
        kind=str(kind),
        started=float(started),
        ended=None if ended is None else float(ended),
        status=str(status),
        exit_code=None if exit_code is None else int(exit_code),
        operator=who,
        argv=json.loads(str(argv)),
        pattern=_opt(pattern),
        hosts=json.loads(str(hosts)),
        command=_opt(command),
        pid=int(pid),
        seq=None if seq is None else int(seq),
        prev_hash=_opt(prev_hash),
        hash=_opt(hash_),
        detail=None if detail is None else json.loads(str(detail)),
    )


def host_result_from_row(row: Any) -> HostResult:
    """A ``HostResult`` from a row of ``RESULT_COLUMNS``."""
    (host, address, status, exit_status, duration, error,
     out, out_total, out_sha, err, err_total, err_sha, files) = row  # fmt: skip
    return HostResult(
        host=str(host),
        address=str(address),
        status=Status(status),
        exit_status=None if exit_status is None else int(exit_status),
        stdout=Output(bytes(out), int(out_total), str(out_sha)),
        stderr=Output(bytes(err), int(err_total), str(err_sha)),
        duration=float(duration),
        error=str(error),
        files=tuple(FileRecord(p, s, h, k) for p, s, h, k in json.loads(str(files))),
    )


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def host_row(op_id: int, r: HostResult) -> tuple[object, ...]:
    files = [[f.path, f.size, f.sha256, f.skipped] for f in r.files]
    return (
        op_id, r.host, r.address, r.status.value, r.exit_status, float(r.duration), r.error,
        r.stdout.data, r.stdout.total, r.stdout.sha256,
        r.stderr.data, r.stderr.total, r.stderr.sha256,
        json.dumps(files, ensure_ascii=False),
    )  # fmt: skip
