"""What happens in an operation, as typed events, and the one protocol every consumer has.

An operation (a run, a push, a pull, a shell line, an FTP session's actions) is
a stream of frozen events: it started, a rollout batch started, a host started,
a host wrote output, bytes were expected and moved, a host finished (its
``HostResult``; a host never started finishes ``skipped``, with the reason),
the operation finished. The live lines, ``-b``, ``--json``, ``-o``,
the progress bar, the summary and the operation log's recorder are all sinks
of the same stream (ClusterShell's ``EventHandler``, structlog's processors).

Events are plain data: each encodes to one JSON line and back (``encode``,
``decode``), so the same objects cross every boundary herd has (worker
processes, the agent's socket, a gateway's stdout) and nothing else travels.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from herd.core.model import FileRecord, HostResult, Output, Status

__all__ = [
    "BatchStarted",
    "BytesExpected",
    "BytesMoved",
    "Event",
    "EventError",
    "HostFinished",
    "HostOutput",
    "HostStarted",
    "OperationFinished",
    "OperationStarted",
    "Sink",
    "Sinks",
    "decode",
    "encode",
]

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True, slots=True)
class OperationStarted:
    """The operation begins: what it is and which hosts it targets, in order."""

    kind: str
    hosts: tuple[str, ...]
    op_id: int | None = None  # its number in the operation log (None: not recorded)
    pattern: str | None = None
    command: str | None = None


@dataclass(frozen=True, slots=True)
class HostStarted:
    """A host got its fork slot and its work begins."""

    host: str
    batch: int = 0  # the rollout batch it belongs to (0 when there are no batches)


@dataclass(frozen=True, slots=True)
class HostOutput:
    """Bytes a host's command wrote, as they arrived."""

    host: str
    stream: Stream
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class BytesExpected:
    """How many bytes a host's transfer will move (for the progress bar)."""

    host: str
    nbytes: int


@dataclass(frozen=True, slots=True)
class BytesMoved:
    """Bytes a host's transfer moved since the last such event."""

    host: str
    nbytes: int


@dataclass(frozen=True, slots=True)
class HostFinished:
    """A host is done: its result, whatever happened (``result.batch`` says which batch)."""

    result: HostResult


@dataclass(frozen=True, slots=True)
class BatchStarted:
    """A rollout batch begins: its number, how many there are, and its hosts."""

    index: int
    count: int
    hosts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OperationFinished:
    """The operation is over: its exit code, and the signal that stopped it, if any."""

    exit_code: int
    elapsed: float
    interrupted: bool = False
    stop_signal: int = 0


Event = (
    OperationStarted
    | HostStarted
    | HostOutput
    | BytesExpected
    | BytesMoved
    | HostFinished
    | BatchStarted
    | OperationFinished
)


class Sink(Protocol):
    """A consumer of an operation's events; it must be cheap (it runs on the event loop).

    ``wants_output`` says whether it needs ``HostOutput`` at all: when no sink
    does, hosts' output is not turned into events.
    """

    wants_output: bool

    def handle(self, event: Event) -> None: ...


class Sinks:
    """Several sinks as one, in order."""

    def __init__(self, sinks: Iterable[Sink]) -> None:
        self._sinks = tuple(sinks)
        self.wants_output = any(sink.wants_output for sink in self._sinks)

    def handle(self, event: Event) -> None:
        for sink in self._sinks:
            sink.handle(event)


class EventError(ValueError):
    """A line that is not one of herd's events (a broken worker, a foreign peer)."""


# -- one JSON line per event ---------------------------------------------------------------

_NAMES: dict[type[Any], str] = {
    OperationStarted: "operation_started",
    HostStarted: "host_started",
    HostOutput: "host_output",
    BytesExpected: "bytes_expected",
    BytesMoved: "bytes_moved",
    HostFinished: "host_finished",
    BatchStarted: "batch_started",
    OperationFinished: "operation_finished",
}


def encode(event: Event) -> str:
    """One JSON line (without the newline) that ``decode`` turns back into ``event``."""
    match event:
        case HostOutput(host, stream, data):
            body: dict[str, Any] = {"host": host, "stream": stream, "data": _b64(data)}
        case HostFinished(result):
            body = {"result": _result(result)}
        case BatchStarted(index, count, hosts):
            body = {"index": index, "count": count, "hosts": list(hosts)}
        case OperationStarted(kind, hosts, op_id, pattern, command):
            body = {"kind": kind, "hosts": list(hosts), "op_id": op_id, "pattern": pattern,
                    "command": command}  # fmt: skip
        case _:
            body = {name: getattr(event, name) for name in event.__slots__}
    return json.dumps({"event": _NAMES[type(event)], **body}, separators=(",", ":"))


def decode(line: str | bytes) -> Event:
    """The event a line from ``encode`` stands for; EventError for anything else."""
    try:
        body = json.loads(line)
        name = body.pop("event")
        build = _BUILDERS[name]
        return build(body)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EventError(f"not a herd event: {str(line)[:80]!r} ({exc})") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _output(output: Output) -> dict[str, Any]:
    return {"data": _b64(output.data), "total": output.total, "sha256": output.sha256}


def _result(result: HostResult) -> dict[str, Any]:
    return {
        "host": result.host,
        "address": result.address,
        "status": result.status.value,
        "exit_status": result.exit_status,
        "stdout": _output(result.stdout),
        "stderr": _output(result.stderr),
        "duration": result.duration,
        "error": result.error,
        "files": [[f.path, f.size, f.sha256, f.skipped] for f in result.files],
        "signal": result.signal,
        "batch": result.batch,
    }


def _read_output(body: Mapping[str, Any]) -> Output:
    return Output(base64.b64decode(body["data"]), int(body["total"]), str(body["sha256"]))


def _read_result(body: Mapping[str, Any]) -> HostResult:
    return HostResult(
        host=str(body["host"]),
        address=str(body["address"]),
        status=Status(body["status"]),
        exit_status=body["exit_status"],
        stdout=_read_output(body["stdout"]),
        stderr=_read_output(body["stderr"]),
        duration=float(body["duration"]),
        error=str(body["error"]),
        files=tuple(FileRecord(str(p), int(s), str(h), bool(k)) for p, s, h, k in body["files"]),
        signal=body["signal"],
        batch=int(body.get("batch", 0)),
    )


_BUILDERS: dict[str, Callable[[dict[str, Any]], Event]] = {
    "operation_started": lambda b: OperationStarted(
        kind=b["kind"],
        hosts=tuple(b["hosts"]),
        op_id=b["op_id"],
        pattern=b["pattern"],
        command=b["command"],
    ),
    "host_started": lambda b: HostStarted(host=b["host"], batch=int(b["batch"])),
    "host_output": lambda b: HostOutput(
        host=b["host"], stream=b["stream"], data=base64.b64decode(b["data"])
    ),
    "bytes_expected": lambda b: BytesExpected(host=b["host"], nbytes=int(b["nbytes"])),
    "bytes_moved": lambda b: BytesMoved(host=b["host"], nbytes=int(b["nbytes"])),
    "host_finished": lambda b: HostFinished(result=_read_result(b["result"])),
    "batch_started": lambda b: BatchStarted(
        index=int(b["index"]), count=int(b["count"]), hosts=tuple(b["hosts"])
    ),
    "operation_finished": lambda b: OperationFinished(
        exit_code=int(b["exit_code"]),
        elapsed=float(b["elapsed"]),
        interrupted=bool(b["interrupted"]),
        stop_signal=int(b["stop_signal"]),
    ),
}
