"""AuditLog.batch(): many writes in one transaction, each still succeeding or failing alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd.core.audit import AuditLog
from herd.core.model import HostResult, Status
from herd.errors import AuditError


def _ok(host: str) -> HostResult:
    return HostResult(host=host, address=host, status=Status.OK)


def test_writes_in_a_batch_land_together_and_a_failed_one_alone_is_undone(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "operations.db") as log:
        done = log.record("ftp", argv=("herd",), hosts=["a"], results=[_ok("#1 LOGIN")])
        with log.batch():
            first = log.record("ftp", argv=("herd",), hosts=["b"], results=[_ok("#1 LOGIN")])
            running = log.begin("ftp", argv=("herd",), hosts=["c"])
            with pytest.raises(AuditError, match="is complete"):
                log.record_hosts(done, [_ok("#2 STOR /x")])  # sealed: refused, alone
            log.record_hosts(running, [_ok("#1 LOGIN"), _ok("#2 RETR /y")])
            log.finish(running, status="ok", exit_code=0)
        assert [r.host for r in log.host_results(done)] == ["#1 LOGIN"]
        assert log.operation(first) is not None
        assert [r.host for r in log.host_results(running)] == ["#1 LOGIN", "#2 RETR /y"]
        report = log.verify()
        assert report.ok and report.records == 3


def test_an_error_escaping_a_batch_undoes_all_of_it(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "operations.db") as log:
        with pytest.raises(RuntimeError), log.batch():
            log.record("ftp", argv=("herd",), hosts=["a"], results=[_ok("#1 LOGIN")])
            raise RuntimeError("the writer died mid-batch")
        assert log.operations() == []
        assert log.verify().ok


def test_a_batch_keeps_the_chain_head_itself_and_the_next_writer_continues_from_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "operations.db"
    with AuditLog(path) as log:
        with log.batch():
            sealed = log.record("ftp", argv=("herd",), hosts=["a"], results=[_ok("#1 LOGIN")])
            with pytest.raises(AuditError, match="already complete"):
                log.finish(sealed, status="ok", exit_code=0)  # refused alone, head unmoved
            running = log.begin("ftp", argv=("herd",), hosts=["b"])
            log.finish(running, status="failed", exit_code=1)
            log.record("ftp", argv=("herd",), hosts=["c"], results=[_ok("#1 LOGIN")])
        with log.batch():  # a second batch starts from the head the first one stored
            log.record("ftp", argv=("herd",), hosts=["d"], results=[_ok("#1 LOGIN")])
    with AuditLog(path) as other:  # another writer, outside any batch, reads it from the file
        last = other.record("run", argv=("herd",), hosts=["e"], results=[_ok("e")])
        record = other.operation(last)
        assert record is not None and record.seq == 5
        report = other.verify()
        assert report.ok and report.records == 5
