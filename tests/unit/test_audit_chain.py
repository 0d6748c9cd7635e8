"""Tamper evidence: edits, deletions and reorderings made directly in the SQLite file are found."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from herd.core.audit import AuditLog
from herd.core.model import FileRecord, HostResult, Output, Status


def _fill(db: Path, count: int = 5) -> list[int]:
    """``count`` finished runs of three hosts each; returns their ids."""
    ids = []
    with AuditLog(db) as log:
        for n in range(count):
            op = log.begin(
                "run", argv=["herd", "run", "web", "--", f"echo {n}"], hosts=["a", "b", "c"]
            )
            log.record_hosts(
                op,
                [
                    HostResult(
                        "a", "127.0.1.1", Status.OK, 0, Output(f"out {n}\n".encode(), 6, "x")
                    ),
                    HostResult(
                        "b", "127.0.1.2", Status.FAILED, 3, stderr=Output(b"boom\n", 5, "y")
                    ),
                    HostResult("c", "127.0.1.3", Status.UNREACHABLE, error="connection refused"),
                ],
            )
            log.finish(op, status="failed", exit_code=1)
            ids.append(op)
    return ids


def _tamper(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as raw:
        for statement in statements:
            raw.execute(statement)
    raw.close()


def _verify(db: Path) -> tuple[bool, str | None, int]:
    with AuditLog(db) as log:
        report = log.verify()
    return report.ok, report.problem, report.records


def test_untouched_log_verifies_with_every_record_counted(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    _fill(db)
    assert _verify(db) == (True, None, 5)


def test_empty_log_verifies_as_zero_records(tmp_path: Path) -> None:
    assert _verify(tmp_path / "ops.db") == (True, None, 0)


def test_edited_stdout_is_reported_as_changed_host_results(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    ids = _fill(db)
    _tamper(db, f"UPDATE host_results SET stdout = X'00' WHERE op_id = {ids[2]} AND host = 'a'")
    ok, problem, _ = _verify(db)
    assert not ok
    assert problem == f"operation {ids[2]} (seq 3): its host results were changed or deleted"


def test_deleted_host_result_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    ids = _fill(db)
    _tamper(db, f"DELETE FROM host_results WHERE op_id = {ids[1]} AND host = 'b'")
    ok, problem, _ = _verify(db)
    assert not ok and problem is not None
    assert problem.startswith(f"operation {ids[1]} (seq 2): its host results")


def test_edited_record_field_is_reported_as_edited(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    ids = _fill(db)
    _tamper(db, f"UPDATE operations SET user = 'mallory' WHERE id = {ids[3]}")
    assert _verify(db)[1] == f"operation {ids[3]} (seq 4) was edited after it was sealed"


def test_deleted_record_is_reported_as_a_gap(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    ids = _fill(db)
    _tamper(
        db,
        f"DELETE FROM host_results WHERE op_id = {ids[2]}",
        f"DELETE FROM operations WHERE id = {ids[2]}",
    )
    ok, problem, _ = _verify(db)
    assert not ok
    assert problem == (
        f"records deleted between operation {ids[1]} and operation {ids[3]} (seq 3 to 3 missing)"
    )


def test_swapped_records_are_reported_as_out_of_order(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    ids = _fill(db)
    _tamper(
        db,
        f"UPDATE operations SET seq = -1 WHERE id = {ids[1]}",
        f"UPDATE operations SET seq = 2 WHERE id = {ids[2]}",
        f"UPDATE operations SET seq = 3 WHERE id = {ids[1]}",
    )
    ok, problem, _ = _verify(db)
    assert not ok and problem is not None
    assert problem.startswith(f"operation {ids[2]} (seq 2) is out of order")


def test_deleted_first_record_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    ids = _fill(db)
    _tamper(
        db,
        f"DELETE FROM host_results WHERE op_id = {ids[0]}",
        f"DELETE FROM operations WHERE id = {ids[0]}",
    )
    ok, problem, _ = _verify(db)
    assert not ok and problem is not None
    assert "seq 1 to 1" in problem and "deleted" in problem


def test_deleted_last_record_is_reported_from_the_chain_head(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    ids = _fill(db)
    _tamper(
        db,
        f"DELETE FROM host_results WHERE op_id = {ids[-1]}",
        f"DELETE FROM operations WHERE id = {ids[-1]}",
    )
    ok, problem, _ = _verify(db)
    assert not ok and problem is not None
    assert problem.startswith("the last 1 sealed record(s) were deleted")


def test_record_claiming_to_be_finished_without_a_seal_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    ids = _fill(db, 2)
    _tamper(
        db,
        "INSERT INTO operations (kind, started, status, user, controller, pid, argv, hosts)"
        " VALUES ('run', 1, 'ok', 'mallory', 'x', 1, '[]', '[]')",
    )
    ok, problem, _ = _verify(db)
    assert not ok and problem is not None
    assert problem.endswith("says ok but was never sealed into the chain")
    assert ids


def test_records_sealed_out_of_start_order_still_verify(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    with AuditLog(db) as log:
        first = log.begin("run", argv=["herd"], hosts=["a"])
        second = log.begin("push", argv=["herd"], hosts=["a"])
        log.record_hosts(
            second,
            [HostResult("a", "a", Status.OK, files=(FileRecord("/etc/motd", 10, "ab" * 32),))],
        )
        log.finish(second, status="ok", exit_code=0)
        log.finish(first, status="ok", exit_code=0)
        assert [log.operation(i).seq for i in (first, second)] == [2, 1]  # type: ignore[union-attr]
        assert log.verify().ok


def test_host_results_cannot_be_added_after_an_operation_is_sealed(tmp_path: Path) -> None:
    from herd.errors import AuditError

    with AuditLog(tmp_path / "ops.db") as log:
        op = log.begin("run", argv=["herd"], hosts=["a"])
        log.finish(op, status="ok", exit_code=0)
        with pytest.raises(AuditError, match="is complete"):
            log.record_hosts(op, [HostResult("a", "a", Status.OK)])


def test_prune_keeps_the_chain_verifiable_from_its_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    ids = _fill(db, 6)
    _tamper(db, f"UPDATE operations SET started = started - 86400 * 30 WHERE id <= {ids[3]}")
    # The edit above breaks the first four records, which prune then removes.
    with AuditLog(db) as log:
        pruned = log.prune(time.time() - 86400, argv=["herd", "log", "prune"])
        assert (pruned.operations, pruned.host_results, pruned.cut_seq) == (4, 12, 4)
        assert [r.id for r in log.operations()] == [pruned.record_id, ids[5], ids[4]]
        prune_record = log.operation(pruned.record_id or 0)
        assert prune_record is not None and prune_record.detail is not None
        assert prune_record.detail["cut_hash"] == pruned.cut_hash
        report = log.verify()
        assert (report.ok, report.records, report.first_seq) == (True, 3, 5)


def test_prune_with_nothing_old_enough_removes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    _fill(db, 2)
    with AuditLog(db) as log:
        pruned = log.prune(time.time() - 86400, argv=["herd"])
        assert (pruned.operations, pruned.record_id) == (0, None)
        assert log.verify().records == 2


def test_deleting_records_after_a_prune_without_its_checkpoint_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    ids = _fill(db, 4)
    with AuditLog(db) as log:
        pruned = log.prune(time.time() + 10, argv=["herd"])
    assert pruned.operations == 4
    _tamper(db, f"DELETE FROM operations WHERE id = {pruned.record_id}")
    ok, problem, _ = _verify(db)
    assert not ok and problem == "all 5 sealed records were deleted"
    assert ids


def test_a_second_prune_that_removes_the_first_checkpoint_still_verifies(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    _fill(db, 3)
    with AuditLog(db) as log:
        first = log.prune(time.time() + 10, argv=["herd"])
        more = _fill(db, 2)
        second = log.prune(time.time() + 10, argv=["herd"])
        assert (first.cut_seq, second.cut_seq, second.operations) == (3, 6, 3)
        report = log.verify()
        assert (report.ok, report.records, report.first_seq) == (True, 1, 7)
        assert more


def test_edited_prune_checkpoint_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    _fill(db, 3)
    with AuditLog(db) as log:
        pruned = log.prune(time.time() + 10, argv=["herd"])
    _tamper(
        db,
        "UPDATE operations SET detail = replace(detail, '\"cut_seq\": 3', '\"cut_seq\": 2')"
        f" WHERE id = {pruned.record_id}",
    )
    ok, problem, _ = _verify(db)
    assert not ok and problem is not None and "deleted" in problem
