"""``herd log``: the table, its filters, ``show``, ``verify``, ``export`` and ``prune``."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.core.audit import AuditLog, Operator
from herd.core.audit_query import parse_when
from herd.core.model import FileRecord, HostResult, Output, Status
from herd.errors import UsageError

DAY = 86400.0


def _out(text: str) -> Output:
    data = text.encode()
    return Output(data, len(data), "0" * 64)


@pytest.fixture
def filled(isolated_env: Path) -> Path:
    """A log with runs, a push and an FTP event by different people at different times."""
    db = isolated_env / "operations.db"
    now = time.time()
    alice = Operator("alice", None, None, "ctl1")
    bob = Operator("root", "bob", None, "ctl1")
    shared = Operator("ops", None, "carol", "ctl2")
    with AuditLog(db) as log:
        op = log.begin(
            "run",
            argv=["herd", "run", "web", "--", "uptime"],
            hosts=["web01", "web02", "db1"],
            pattern="web:db",
            command="uptime",
            operator=alice,
            started=now - 3 * DAY,
        )
        log.record_hosts(op, [
            HostResult("web01", "127.0.1.1", Status.OK, 0, _out("up 3 days\n"), duration=0.2),
            HostResult("web02", "127.0.1.2", Status.OK, 0, _out("up 3 days\n"), duration=0.3),
            HostResult("db1", "127.0.1.3", Status.UNREACHABLE, error="connection refused"),
        ])  # fmt: skip
        log.finish(op, status="failed", exit_code=1, ended=now - 3 * DAY + 2)
        op = log.begin(
            "push",
            argv=["herd", "push", "db", "my.cnf", "/etc/mysql/"],
            hosts=["db1"],
            pattern="db",
            operator=bob,
            started=now - 2 * 3600,
        )
        log.record_hosts(
            op,
            [
                HostResult(
                    "db1",
                    "127.0.1.3",
                    Status.OK,
                    files=(FileRecord("/etc/mysql/my.cnf", 42, "ab" * 32),),
                )
            ],
        )
        log.finish(op, status="ok", exit_code=0, ended=now - 2 * 3600 + 1)
        log.record(
            "ftp",
            argv=["ftp", "STOR"],
            hosts=["127.0.0.1"],
            command="STOR /in/report.csv",
            operator=shared,
            results=[HostResult("127.0.0.1", "127.0.0.1", Status.OK)],
        )
    return db


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_log_table_lists_operations_newest_first_with_counts(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0][:3] == ["ID", "TIME", "USER"]
    assert [row[0] for row in rows[1:]] == ["3", "2", "1"]
    assert rows[1][3:5] == ["carol", "ftp"]
    assert rows[2][3] == "bob"  # sudo caller, not root
    assert rows[3][-5:] == ["2", "1", "2.0s", "failed", "uptime"]  # ok, not ok, took, status
    assert rows[1][5] == "127.0.0.1"  # an FTP event's target is the client's address


def test_log_n_limits_the_number_of_operations(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "-n", "1", "--json"]) == 0
    assert [r["id"] for r in _lines(capsys)] == [3]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--host", "db1"], [2, 1]),
        (["--host", "web02"], [1]),
        (["--kind", "push"], [2]),
        (["--kind", "push", "--kind", "ftp"], [3, 2]),
        (["--user", "alice"], [1]),
        (["--user", "bob"], [2]),
        (["--user", "carol"], [3]),
        (["--since", "1d"], [3, 2]),
        (["--until", "1d"], [1]),
        (["--failed"], [1]),
        (["--grep", "3 days"], [1]),
        (["--grep", "my.cnf"], [2]),
        (["--grep", "report.csv"], [3]),
        (["--grep", "refused"], [1]),
        (["--grep", "nowhere"], []),
    ],
)
def test_log_filters_select_the_matching_operations(
    filled: Path, capsys: pytest.CaptureFixture[str], options: list[str], expected: list[int]
) -> None:
    assert main(["log", "--json", *options]) == 0
    assert [r["id"] for r in _lines(capsys)] == expected


def test_log_json_names_who_what_where_and_the_outcome(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "--json", "--kind", "push"]) == 0
    (line,) = _lines(capsys)
    assert line["user"] == "root" and line["sudo_user"] == "bob"
    assert line["controller"] == "ctl1"
    assert (line["ok"], line["not_ok"], line["status"], line["exit_code"]) == (1, 0, "ok", 0)
    assert line["argv"] == ["herd", "push", "db", "my.cnf", "/etc/mysql/"]
    assert isinstance(line["hash"], str) and len(line["hash"]) == 64


def test_log_on_a_new_home_says_there_is_nothing_yet(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log"]) == 0
    assert capsys.readouterr().out.strip() == "no operations yet"


def test_log_bad_since_is_bad_usage(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "--since", "yesterday"]) == 2
    assert "--since: 'yesterday' is not a time" in capsys.readouterr().err


def test_show_prints_argv_pattern_hosts_and_each_host(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "show", "1"]) == 0
    out = capsys.readouterr().out
    assert "herd run web -- uptime" in out
    # no inventory at hand: web[01-02] could be a subscript of the group web, a list cannot
    assert "web:db" in out and "db1,web[01,02] (3)" in out
    assert "alice on ctl1" in out
    assert out.count("up 3 days") == 2
    assert "db1 (127.0.1.3)  unreachable" in out and "connection refused" in out


def test_show_gather_folds_identical_outputs_into_a_set_no_inventory_misreads(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "show", "1", "--gather"]) == 0
    out = capsys.readouterr().out
    assert out.count("up 3 days") == 1
    assert "web[01,02] (2)" in out


def test_show_host_narrows_to_one_host(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log", "show", "1", "--host", "web02", "--json"]) == 0
    (data,) = _lines(capsys)
    results = data["results"]
    assert isinstance(results, list) and [r["host"] for r in results] == ["web02"]


def test_show_lists_transferred_files_with_their_hashes(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "show", "2"]) == 0
    out = capsys.readouterr().out
    assert f"file /etc/mysql/my.cnf  42 bytes  sha256 {'ab' * 32}" in out
    assert "sudo from bob" in out


def test_show_json_has_the_operation_and_every_host(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "show", "1", "--json"]) == 0
    (data,) = _lines(capsys)
    assert data["hosts"] == ["web01", "web02", "db1"]
    results = data["results"]
    assert isinstance(results, list)
    assert [(r["host"], r["status"]) for r in results] == [
        ("web01", "ok"), ("web02", "ok"), ("db1", "unreachable"),
    ]  # fmt: skip
    assert results[0]["stdout"] == "up 3 days\n"


def test_show_unknown_id_or_host_is_bad_usage(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "show", "99"]) == 2
    assert "no operation 99 in the log" in capsys.readouterr().err
    assert main(["log", "show", "1", "--host", "mail1"]) == 2
    assert "did not touch host mail1" in capsys.readouterr().err


def test_verify_says_ok_with_the_record_count(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "verify"]) == 0
    assert capsys.readouterr().out.startswith("ok 3 records (head seq 3 hash ")


def test_verify_exits_1_naming_the_edited_record(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite3.connect(filled) as raw:
        raw.execute(
            "UPDATE host_results SET stdout = CAST('up 9 days' AS BLOB) WHERE host = 'web01'"
        )
    raw.close()
    assert main(["log", "verify"]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED: operation 1 (seq 1): its host results were changed or deleted" in out


def test_export_jsonl_to_a_file_has_every_operation_with_its_hosts(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "ops.jsonl"
    assert main(["log", "export", "-o", str(target)]) == 0
    assert "exported 3 operations" in capsys.readouterr().err
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["id"] for line in lines] == [3, 2, 1]
    assert [r["host"] for r in lines[2]["results"]] == ["web01", "web02", "db1"]


def test_export_csv_writes_one_row_per_host_and_honours_filters(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "export", "--format", "csv", "--kind", "run"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["id"], r["host"], r["host_status"]) for r in rows] == [
        ("1", "web01", "ok"), ("1", "web02", "ok"), ("1", "db1", "unreachable"),
    ]  # fmt: skip
    assert rows[0]["stdout"] == "up 3 days\n" and rows[0]["user"] == "alice"


def test_export_to_an_unwritable_path_is_one_line_error(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no-such-dir" / "ops.csv"
    assert main(["log", "export", "-o", str(target)]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith(f"herd: error: {target}: cannot write the export") and err.count("\n") == 1
    )


def test_prune_removes_old_operations_and_verify_still_passes(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", "prune", "--before", "1d"]) == 0
    assert capsys.readouterr().out.startswith("removed 1 operations (3 host results); checkpoint")
    assert main(["log", "--json"]) == 0
    lines = _lines(capsys)
    assert [(r["id"], r["kind"]) for r in lines] == [(4, "prune"), (3, "ftp"), (2, "push")]
    assert lines[0]["argv"] == ["herd", "log", "prune", "--before", "1d"]
    assert main(["log", "verify"]) == 0
    assert capsys.readouterr().out.startswith("ok 3 records")


def test_parse_when_reads_relative_times_dates_and_iso_times() -> None:
    now = 1_800_000_000.0
    assert parse_when("2h", now=now) == now - 7200
    assert parse_when("3d", now=now) == now - 3 * DAY
    assert parse_when("90m", now=now) == now - 5400
    assert parse_when("2026-11-01T00:00:00+00:00") == 1793491200.0
    assert parse_when("2026-11-01") == parse_when("2026-11-01T00:00:00")
    with pytest.raises(UsageError):
        parse_when("soon")
