"""Safe rollouts on a real sshd fleet: batches, the failure threshold, skipped hosts, @failed,
the canary pick, scripts, and --diff."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.core.audit import AuditLog

from .conftest import Fleet

pytestmark = pytest.mark.system


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict], str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines() if line.startswith("{")], err


@pytest.mark.parametrize(("batch", "max_fail"), [("5,10", "2"), ("10%,20%", "5%")])
def test_a_rollout_stops_at_the_threshold_and_skips_the_rest_then_failed_finishes_it(
    make_fleet: Callable[..., Fleet],
    capsys: pytest.CaptureFixture[str],
    isolated_env: Path,
    batch: str,
    max_fail: str,
) -> None:
    fleet = make_fleet(30, groups="web=30")
    names = fleet.names()
    dead = names[5:8]  # in the second batch either way (5 or 3 hosts in the first)
    for name in dead:
        fleet.stop(name)
    inventory = str(fleet.inventory)
    code, rows, err = run(["-i", inventory, "run", "all", "--json", "--batch", batch,
                           "--max-fail", max_fail, "--connect-timeout", "5", "--", "true"],
                          capsys)  # fmt: skip
    assert code == 1
    statuses = Counter(row["status"] for row in rows)
    second = 10 if batch == "5,10" else 6  # 10% of 30 is 3 hosts, then 20% is 6
    first = 5 if batch == "5,10" else 3
    assert statuses == {
        "ok": first + second - 3,
        "unreachable": 3,
        "skipped": 30 - first - second,
    }, statuses
    skipped = [row for row in rows if row["status"] == "skipped"]
    assert all(row["error"].startswith("not started: 3 hosts failed, more than --max-fail")
               for row in skipped)  # fmt: skip
    assert {row["batch"] for row in rows if row["host"] in dead} == {2}
    assert "skipped (" in err and "batch 3" in err
    with AuditLog(isolated_env / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None and record.detail is not None
        assert [len(b) for b in record.detail["batches"]][:2] == [first, second]
    for name in dead:
        fleet.restart(name)
    code, rows, _ = run(["-i", inventory, "run", "@failed", "--json", "--", "true"], capsys)
    assert code == 0
    assert len(rows) == 3 + 30 - first - second  # the failed and the skipped, now done


def test_batches_run_in_order_one_after_the_other(
    lab_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code, rows, err = run(["-i", str(lab_fleet.inventory), "run", "all", "--json",
                           "--batch", "1,50%", "--", "date +%s.%N"], capsys)  # fmt: skip
    assert code == 0
    by_batch = [(row["batch"], row["host"]) for row in rows]
    assert [b for b, _ in by_batch] == sorted(b for b, _ in by_batch)  # batch 1, then 2, then 3
    assert Counter(b for b, _ in by_batch) == {1: 1, 2: 4, 3: 3}
    ends = {b: [float(r["stdout"]) for r in rows if r["batch"] == b] for b in (1, 2, 3)}
    assert max(ends[1]) < min(ends[2]) and max(ends[2]) < min(ends[3])
    assert err.index("batch 1 of 3") < err.index("batch 2 of 3") < err.index("batch 3 of 3")


def test_pick_runs_on_n_distinct_hosts_and_says_which(
    lab_fleet: Fleet, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    code, rows, err = run(["-i", str(lab_fleet.inventory), "run", "all", "--json", "--pick",
                           "3", "--", "true"], capsys)  # fmt: skip
    assert code == 0
    hosts = [row["host"] for row in rows]
    assert len(set(hosts)) == 3 and "herd: picked 3 of 8 hosts:" in err
    with AuditLog(isolated_env / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None and sorted(record.hosts) == sorted(hosts)
        assert record.detail == {"pick": 3}
    code, rows, _ = run(["-i", str(lab_fleet.inventory), "run", f"@{op_id}:ok", "--json",
                         "--", "true"], capsys)  # fmt: skip
    assert sorted(row["host"] for row in rows) == sorted(hosts)


def test_a_crlf_script_runs_with_its_arguments_and_is_gone_after(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "check.sh"
    script.write_bytes(b'#!/bin/sh\r\necho "$HERD_HOST got $# args: $1 / $2"\r\necho err >&2\r\n')
    private = tmp_path / "remote-tmp"
    private.mkdir()
    code, rows, _ = run(["-i", str(lab_fleet.inventory), "run", "db", "--json", "--env",
                         f"TMPDIR={private}", "--script", str(script), "--", "one", "two words"],
                        capsys)  # fmt: skip
    assert code == 0, rows
    assert {row["stdout"] for row in rows} == {
        "db01 got 2 args: one / two words\n",
        "db02 got 2 args: one / two words\n",
    }
    assert {row["stderr"] for row in rows} == {"err\n"}  # apart from stdout: no terminal
    assert list(private.iterdir()) == []


def test_the_script_is_removed_when_a_timeout_stops_it(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    script = tmp_path / "stubborn.sh"
    script.write_text("#!/bin/sh\ntrap '' TERM\nsleep 30\n")
    private = tmp_path / "remote-tmp"
    private.mkdir()
    argv = ["-i", str(lab_fleet.inventory), "run", "web01", "--json", "-t", "1",
            "--env", f"TMPDIR={private}", "--script", str(script)]  # fmt: skip
    code, rows, _ = run(argv, capsys)
    assert code == 1 and rows[0]["status"] == "timeout"
    assert list(private.iterdir()) == []
    with AuditLog(isolated_env / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None and record.command is not None
        assert record.command.startswith("--script stubborn.sh (sha256 ")


def test_diff_shows_the_odd_host_against_the_largest_group(
    lab_fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["-i", str(lab_fleet.inventory), "run", "web", "--diff", "--",
                 'echo same; [ "$HERD_HOST" = web03 ] && echo different; true'])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("──── web0[1-2,4] (3)") or lines[0].startswith("──── web")
    assert "same" in lines[1]
    assert "+different" in lines and " same" in lines
    assert any(line.startswith("--- ") for line in lines)
