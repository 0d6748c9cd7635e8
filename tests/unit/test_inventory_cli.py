"""``herd hosts`` and ``herd groups``: tables, JSON lines, counts, limits, @failed, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.cli.targets import uses_failed
from herd.core.audit import AuditLog
from herd.core.model import HostResult, Status
from herd.core.paths import HerdPaths

DATA = Path(__file__).resolve().parents[1] / "data" / "inventories"
DOCS = str(DATA / "ansible_docs.ini")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_hosts_prints_a_table_of_name_address_port_user_groups(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "-i", DOCS, "hosts", "southwest")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["host", "address", "port", "user", "groups"]
    assert rows[0].split() == [
        "badwolf.example.com",
        "badwolf.example.com",
        "5309",
        "southwest,usa",
    ]
    assert rows[1].split()[0] == "localhost"


def test_hosts_json_is_one_clean_object_per_line_with_every_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "-i", DOCS, "hosts", "atlanta", "--json")
    assert code == 0
    assert err == ""
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["host"] for r in records] == ["host1", "host2"]
    assert records[0]["vars"] == {
        "http_port": 80,
        "maxRequestsPerChild": 808,
        "some_server": "foo.southeast.example.com",
        "halon_system_timeout": 30,
        "self_destruct_countdown": 60,
        "escape_pods": 2,
    }
    assert records[1]["groups"] == ["atlanta", "raleigh", "southeast", "usa"]


def test_hosts_json_masks_passwords(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "inv.ini"
    source.write_text("[db]\ndb1 ansible_password=hunter2 password=s3cret ansible_user=dba\n")
    code, out, _ = run(capsys, "-i", str(source), "hosts", "db1", "--json")
    assert code == 0
    assert "hunter2" not in out and "s3cret" not in out
    record = json.loads(out)
    assert record["vars"]["ansible_password"] == "********"
    assert record["vars"]["ansible_user"] == "dba"
    assert "password" not in record


def test_hosts_count_prints_only_the_number(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "-i", DOCS, "hosts", "northeast:!www0*", "--count") == (0, "41\n", "")


def test_hosts_limit_narrows_the_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-i", DOCS, "hosts", "prod", "--limit", "webservers", "--count")
    assert (code, out) == (0, "1\n")


def test_unknown_name_exits_2_with_one_line_and_a_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "-i", DOCS, "hosts", "webserver")
    assert code == 2
    assert out == ""
    assert err.startswith(
        "herd: error: no group or host named 'webserver'; did you mean 'webservers'"
    )
    assert len(err.splitlines()) == 1


def test_pattern_matching_nothing_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-i", DOCS, "hosts", "webservers:&dbservers")
    assert code == 1
    assert "matched no host" in err


def test_bad_inventory_exits_2_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "inv.ini"
    source.write_text("[web]\nweb1\nweb2 ansible_port=abc\n")
    code, _, err = run(capsys, "-i", str(source), "hosts", "all")
    assert code == 2
    assert err.startswith(f"herd: error: {source}:3: ansible_port must be a port number")
    assert len(err.splitlines()) == 1


def test_groups_prints_the_tree_with_counts_and_folded_ranges(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "-i", DOCS, "groups")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("all (67)")
    assert any("northeast (50)  www[01-50].example.com" in line for line in lines)
    southeast = next(i for i, line in enumerate(lines) if "southeast (3)" in line)
    assert "atlanta (2)  host[1-2]" in lines[southeast + 1]


def test_groups_json_gives_each_group_with_parents_children_and_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "-i", DOCS, "groups", "--json")
    assert code == 0
    groups = {g["group"]: g for g in map(json.loads, out.splitlines())}
    assert groups["usa"]["children"] == ["southeast", "northeast", "northwest", "southwest"]
    assert groups["usa"]["host_count"] == 61
    assert groups["atlanta"]["parents"] == ["southeast"]
    assert groups["atlanta"]["folded"] == "host[1-2]"
    assert groups["southeast"]["vars"]["escape_pods"] == 2


def test_failed_patterns_read_the_operation_log(
    isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with AuditLog(HerdPaths(isolated_env).audit_db) as log:
        op_id = log.begin("run", argv=["run"], hosts=["host1", "host2", "host3"], pattern="x")
        log.record_hosts(
            op_id,
            [
                HostResult("host1", "host1", Status.OK, exit_status=0),
                HostResult("host2", "host2", Status.FAILED, exit_status=1),
                HostResult("host3", "host3", Status.UNREACHABLE),
            ],
        )
        log.finish(op_id, status="failed", exit_code=1)
    assert run(capsys, "-i", DOCS, "hosts", "@failed", "--count") == (0, "2\n", "")
    code, out, _ = run(capsys, "-i", DOCS, "hosts", f"raleigh:&@{op_id}:failed", "--json")
    assert code == 0
    assert [json.loads(line)["host"] for line in out.splitlines()] == ["host2", "host3"]


def test_failed_with_an_empty_log_is_a_plain_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "-i", DOCS, "hosts", "@failed")
    assert code == 2
    assert "no operation recorded yet" in err


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("@failed", True),
        ("web:&@12:failed", True),
        ("!@failed", True),
        ("web,@3:failed,db", True),
        ("web", False),
        ("failed", False),
        (None, False),
    ],
)
def test_the_operation_log_is_opened_only_for_failed_patterns(
    pattern: str | None, expected: bool
) -> None:
    assert uses_failed(pattern) is expected
