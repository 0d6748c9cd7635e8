"""The operation log's hash chain: a canonical encoding of each record, and its verification.

When a record joins the chain
-----------------------------
A record is written when its operation starts and is *sealed* when it ends:
in the same ``BEGIN IMMEDIATE`` transaction that stores its final status, it
takes the next sequence number ``seq`` and the hash of the chain head (the
previously sealed record), and its own hash is computed over a canonical
encoding of the record *and* of all its host results. Sealing at the end keeps
the chain linear although several herd processes write at once: operations
start in one order and end in another, and the write lock serialises the
sealing. After sealing a record never changes.

An operation whose process died (SIGKILL, power loss) stays unsealed with
status ``running``. The next writer on the same controller (any ``begin``) and
``herd log verify`` find such records, see that their process is gone, and seal
them as ``interrupted`` with the host results that were complete. Records still
running, or left by a process on another controller, are reported by ``verify``
as the unsealed tail: they are not covered by the chain until they end. (A
process is judged alive by its PID; should the PID be reused, the record stays
in the tail until that process ends too.)

What ``verify`` detects
-----------------------
An edited record or host result (its recomputed hash differs), a deleted record
(a gap in ``seq``, or a link to a hash that is not its predecessor's), reordered
records (a record chained after another than the one before it), deleted
records at the end (the chain head kept in ``meta`` is ahead of the last
record), and an unsealed record that claims to be finished. ``herd log prune``
cuts a prefix of the chain; the ``prune`` record it seals holds the sequence
number and hash of the last removed record (the checkpoint), so the remaining
chain still verifies from there. A chain kept in the same file cannot stop
someone who rewrites the whole file and recomputes every hash; the head hash
that ``verify`` prints (and that each syslog summary carries) is what an
operator anchors elsewhere to catch that.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herd.errors import AuditError

__all__ = [
    "CHAIN_COLUMNS",
    "GENESIS",
    "RESULT_COLUMNS",
    "ChainReport",
    "chain_head",
    "record_hash",
    "results_digest",
    "seal",
    "store_head",
    "verify_chain",
]

GENESIS = "0" * 64  # the prev_hash of the first record ever sealed
_DOMAIN = b"herd-operation-v1\n"

# The columns of a host result, in the order the canonical encoding reads them.
RESULT_COLUMNS = (
    "host, address, status, exit_status, duration, error, stdout, stdout_total,"
    " stdout_sha256, stderr, stderr_total, stderr_sha256, files"
)
# The columns of an operation that its hash covers (with its results digest and prev_hash).
CHAIN_COLUMNS = (
    "id, kind, started, ended, status, exit_code, user, sudo_user, operator, controller,"
    " pid, argv, pattern, hosts, command, detail"
)


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _result_bytes(row: Sequence[Any]) -> bytes:
    """One host result as bytes: its fields, then its two output blobs whole.

    ``row`` holds ``RESULT_COLUMNS`` in order (and may carry more columns after them).
    """
    out, err = row[6], row[9]
    if type(out) is not bytes or type(err) is not bytes:  # only a hand-edited row
        out, err = _as_bytes(out), _as_bytes(err)
    fields = (*row[:6], row[7], row[8], row[10], row[11], row[12], len(out), len(err))
    return b"".join((ascii(fields).encode(), b"\n", out, err))


def results_digest(rows: Iterable[Sequence[Any]]) -> str:
    """The sha256 over an operation's host results, each row as ``RESULT_COLUMNS`` reads it.

    Rows must come sorted by host, so the digest does not depend on the order in
    which hosts finished.
    """
    digest = hashlib.sha256()
    for row in rows:
        digest.update(_result_bytes(row))
    return digest.hexdigest()


def record_hash(row: Sequence[Any], results_sha: str, prev_hash: str) -> str:
    """The hash of one sealed record: ``CHAIN_COLUMNS``, its results digest and prev_hash.

    The canonical encoding is Python's ``ascii()`` of a tuple of str, int, float
    and None: stable across Python versions (non-ASCII escaped, floats in their
    shortest round-trip form), and several times faster than JSON, which matters
    when ``verify`` walks millions of host results.
    """
    values = (*row, results_sha, prev_hash)
    return hashlib.sha256(_DOMAIN + ascii(values).encode()).hexdigest()


def _all_digests(db: sqlite3.Connection) -> dict[int, str]:
    """Every operation's results digest, in one pass over host_results in (op_id, host) order."""
    digests: dict[int, str] = {}
    current: int | None = None
    digest = hashlib.sha256()
    for row in db.execute(f"SELECT {RESULT_COLUMNS}, op_id FROM host_results ORDER BY op_id, host"):
        if row[13] != current:
            if current is not None:
                digests[current] = digest.hexdigest()
            current, digest = row[13], hashlib.sha256()
        digest.update(_result_bytes(row))
    if current is not None:
        digests[current] = digest.hexdigest()
    return digests


_EMPTY_DIGEST = hashlib.sha256().hexdigest()


@dataclass(slots=True)
class ChainReport:
    """What ``verify`` found: the number of sealed records, the first problem, the tail."""

    records: int = 0
    problem: str | None = None
    head_seq: int = 0
    head_hash: str = GENESIS
    first_seq: int = 1
    running: list[int] = field(default_factory=list)  # unsealed, their process still alive

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(slots=True)
class _Entry:
    op_id: int
    seq: int
    prev_hash: str
    hash: str
    problem: str | None


def _walk(db: sqlite3.Connection) -> tuple[list[_Entry], dict[str, int], list[dict[str, Any]]]:
    """Every sealed record in seq order, with its own content checked; and the prune records."""
    entries: list[_Entry] = []
    position: dict[str, int] = {}
    prunes: list[dict[str, Any]] = []
    digests = _all_digests(db)
    rows = db.execute(
        f"SELECT seq, prev_hash, hash, results_sha, {CHAIN_COLUMNS} FROM operations"
        " WHERE seq IS NOT NULL ORDER BY seq"
    )
    for seq, prev_hash, stored_hash, stored_results, *chained in rows:
        op_id = int(chained[0])
        problem = None
        digest = digests.get(op_id, _EMPTY_DIGEST)
        if digest != stored_results:
            problem = f"operation {op_id} (seq {seq}): its host results were changed or deleted"
        elif record_hash(chained, digest, str(prev_hash)) != stored_hash:
            problem = f"operation {op_id} (seq {seq}) was edited after it was sealed"
        if chained[1] == "prune" and chained[15]:
            prunes.append(json.loads(str(chained[15])))
        position.setdefault(str(stored_hash), len(entries))
        entries.append(_Entry(op_id, int(seq), str(prev_hash), str(stored_hash), problem))
    return entries, position, prunes


def _start(entries: list[_Entry], prunes: list[dict[str, Any]]) -> tuple[str | None, str | None]:
    """The hash the first remaining record must link to, or the problem at the start."""
    first = entries[0]
    if first.seq == 1:
        return GENESIS, None
    for checkpoint in prunes:
        if checkpoint.get("cut_seq") == first.seq - 1:
            return str(checkpoint.get("cut_hash")), None
    return None, (
        f"records before operation {first.op_id} (seq 1 to {first.seq - 1}) were deleted:"
        " no prune checkpoint marks a cut there"
    )


def _link_problem(
    entries: list[_Entry], position: dict[str, int], index: int, expected: str
) -> str | None:
    entry = entries[index]
    before = entries[index - 1] if index else None
    if entry.prev_hash == expected:
        if before is not None and entry.seq != before.seq + 1:
            return f"operation {entry.op_id}: its seq was changed to {entry.seq}"
        return None
    where = position.get(entry.prev_hash)
    if where is not None and where != index - 1:
        other = entries[where]
        return (
            f"operation {entry.op_id} (seq {entry.seq}) is out of order: it was sealed after"
            f" operation {other.op_id}, which now sits at seq {other.seq}"
        )
    if before is not None and entry.seq > before.seq + 1:
        return (
            f"records deleted between operation {before.op_id} and operation {entry.op_id}"
            f" (seq {before.seq + 1} to {entry.seq - 1} missing)"
        )
    after = f"operation {before.op_id}" if before else "the prune checkpoint"
    return (
        f"operation {entry.op_id} (seq {entry.seq}) does not follow {after}:"
        " a record was deleted or replaced"
    )


def verify_chain(db: sqlite3.Connection, head: tuple[int, str]) -> ChainReport:
    """Walk the chain in seq order and report the first record edited, deleted or reordered.

    ``head`` is the chain head kept in ``meta`` (seq and hash of the last record sealed).
    """
    entries, position, prunes = _walk(db)
    report = ChainReport(records=len(entries))
    head_seq, head_hash = head
    if not entries:
        if head_seq > 0 and not any(p.get("cut_seq") == head_seq for p in prunes):
            report.problem = f"all {head_seq} sealed records were deleted"
        return report
    report.first_seq = entries[0].seq
    expected, report.problem = _start(entries, prunes)
    for index, entry in enumerate(entries):
        if report.problem is not None or expected is None:
            break
        report.problem = entry.problem or _link_problem(entries, position, index, expected)
        expected = entry.hash
    last = entries[-1]
    report.head_seq, report.head_hash = last.seq, last.hash
    if report.problem is None and head_seq > last.seq:
        report.problem = (
            f"the last {head_seq - last.seq} sealed record(s) were deleted"
            f" (the chain head is seq {head_seq}, the last record left is seq {last.seq})"
        )
    elif report.problem is None and (head_seq, head_hash) != (last.seq, last.hash):
        report.problem = f"the chain head in meta does not match operation {last.op_id}"
    return report


def chain_head(db: sqlite3.Connection) -> tuple[int, str]:
    values = dict(db.execute("SELECT key, value FROM meta WHERE key LIKE 'chain_%'").fetchall())
    return int(values.get("chain_seq", 0)), str(values.get("chain_hash", GENESIS))


def seal(
    db: sqlite3.Connection,
    path: Path,
    op_id: int,
    *,
    status: str,
    exit_code: int | None,
    ended: float | None,
    head: tuple[int, str] | None = None,
    fresh: bool = False,
) -> tuple[int, str]:
    """Complete an operation and chain it after the head; runs inside a write transaction.

    ``path`` names the log in errors. Returns the new head. With ``head`` given (a
    batch keeps the head in memory and writes it once, with ``store_head``), the
    head is neither read nor written here; ``fresh`` skips the check that the
    operation is there and open, for one just inserted in this transaction.
    """
    if not fresh:
        found = db.execute("SELECT seq FROM operations WHERE id = ?", (op_id,)).fetchone()
        if found is None:
            raise AuditError(f"{path}: no operation {op_id} in the log")
        if found[0] is not None:
            raise AuditError(f"{path}: operation {op_id} is already complete")
    db.execute(
        "UPDATE operations SET ended = ?, status = ?, exit_code = ? WHERE id = ?",
        (ended, status, exit_code, op_id),
    )
    head_seq, head_hash = chain_head(db) if head is None else head
    digest = results_digest(
        db.execute(
            f"SELECT {RESULT_COLUMNS} FROM host_results WHERE op_id = ? ORDER BY host", (op_id,)
        )
    )
    chained = db.execute(f"SELECT {CHAIN_COLUMNS} FROM operations WHERE id = ?", (op_id,))
    this_hash = record_hash(chained.fetchone(), digest, head_hash)
    db.execute(
        "UPDATE operations SET seq = ?, prev_hash = ?, results_sha = ?, hash = ? WHERE id = ?",
        (head_seq + 1, head_hash, digest, this_hash, op_id),
    )
    if head is None:
        store_head(db, (head_seq + 1, this_hash))
    return head_seq + 1, this_hash


def store_head(db: sqlite3.Connection, head: tuple[int, str]) -> None:
    """Write the chain head (seq, hash) into meta."""
    db.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [("chain_seq", str(head[0])), ("chain_hash", head[1])],
    )
