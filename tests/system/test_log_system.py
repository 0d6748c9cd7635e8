"""The operation log under real ``herd run`` processes on the OpenSSH fleet: kill, concurrency."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.core.audit import AuditLog

from .conftest import Fleet

pytestmark = pytest.mark.system

HERD = [sys.executable, "-m", "herd"]


def _host_line(fleet: Fleet, delays: dict[str, float]) -> str:
    """A command that ends after ``delays[host]`` seconds on those hosts, and hangs elsewhere."""
    cases = " ".join(
        f'*" {fleet.host(name).address} "*) sleep {delay}; echo done;;'
        for name, delay in delays.items()
    )
    return f'case "$SSH_CONNECTION" in {cases} *) sleep 60;; esac'


def _wait_for_results(db: Path, count: int, deadline: float) -> int:
    """The running operation's id once ``count`` host results are in the log."""
    while time.monotonic() < deadline:
        if db.exists():
            with AuditLog(db, check_writable=False, syslog=False) as log:
                op_id = log.last_operation_id()
                if op_id is not None and len(log.host_results(op_id)) >= count:
                    return op_id
        time.sleep(0.2)
    raise AssertionError(f"{count} host results never reached the log")


def test_sigkilled_herd_run_reads_back_interrupted_with_its_finished_hosts(
    lab_fleet: Fleet, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Results reach the log in batches at least a second apart (herd run's writer): the
    # last finished host comes 1.5 s after the others so that it is flushed, not pending.
    delays = dict.fromkeys(lab_fleet.names("web"), 0.0) | {"db01": 1.5, "db02": 3.0}
    command = _host_line(lab_fleet, delays)
    argv = [*HERD, "-i", str(lab_fleet.inventory), "run", "all", "-y", "--json", "--", command]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as child:
        try:
            op_id = _wait_for_results(isolated_env / "operations.db", 6, time.monotonic() + 30)
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
    assert main(["log", "show", str(op_id), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "interrupted"
    assert sorted(r["host"] for r in shown["results"]) == sorted(delays)
    assert sorted(shown["missing"]) == sorted(lab_fleet.names("cache"))
    assert main(["log", "--failed", "--json"]) == 0
    assert [r["id"] for r in map(json.loads, capsys.readouterr().out.splitlines())] == [op_id]
    # verify seals the dead operation into the chain, then finds the chain whole
    assert main(["log", "verify"]) == 0
    assert capsys.readouterr().out.startswith("ok 1 records")


def test_concurrent_herd_runs_are_all_recorded_and_chained(
    lab_fleet: Fleet, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*HERD, "-i", str(lab_fleet.inventory), "run", "all", "-y", "--json", "--", "echo hi"]
    runs = [
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(4)
    ]
    try:
        errors = [run.communicate(timeout=90)[1] for run in runs]
    finally:  # a failed run must not leave the others running into the next test
        for run in runs:
            run.kill()
            run.wait()
    assert [run.returncode for run in runs] == [0, 0, 0, 0], errors
    assert main(["log", "--host", "cache02", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == 4
    assert all((r["ok"], r["not_ok"], r["status"]) == (8, 0, "ok") for r in records)
    assert sorted(r["seq"] for r in records) == [1, 2, 3, 4]
    assert main(["log", "verify"]) == 0
    assert capsys.readouterr().out.startswith("ok 4 records")
