"""The operation log's writer runs off the event loop: a held write lock stalls it, not herd.

Another process takes the log's write lock (``BEGIN IMMEDIATE``) while a run is
streaming: herd's live lines keep arriving while the lock is held, and once it
is released every host's result is in the log.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from herd.core.audit import AuditLog

from .conftest import Fleet

pytestmark = pytest.mark.system

HOLD_SECONDS = 4.0


def test_a_held_write_lock_stalls_neither_the_live_lines_nor_loses_a_result(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    # db01 finishes at once, so its result waits to be written while the lock is held;
    # db02 keeps talking for four seconds
    command = (
        'case "$HERD_LAB_HOST" in db01) echo done;; '
        "*) for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.5; done;; esac"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "herd", "--home", str(home), "-i", str(lab_fleet.inventory),
         "run", "db", "--", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    arrived: list[tuple[float, str]] = []
    held: list[float] = []

    def hold_the_lock() -> None:
        db = sqlite3.connect(home / "operations.db", timeout=30, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            held.append(time.monotonic())
            time.sleep(HOLD_SECONDS)
            held.append(time.monotonic())
            db.execute("ROLLBACK")
        finally:
            db.close()

    locker: threading.Thread | None = None
    try:
        for line in process.stdout:
            arrived.append((time.monotonic(), line))
            if locker is None and "tick 1" in line:
                locker = threading.Thread(target=hold_the_lock)
                locker.start()
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if locker is not None:
            locker.join(30)
        errors = process.stderr.read() if process.stderr else ""
        process.stdout.close()
        if process.stderr:
            process.stderr.close()
    assert process.returncode == 0, errors
    assert len(held) == 2
    during = [line for when, line in arrived if held[0] < when < held[1]]
    assert sum("tick" in line for line in during) >= 4  # db02 kept talking meanwhile
    with AuditLog(home / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None and record.status == "ok"
        assert sorted(r.host for r in log.host_results(op_id)) == ["db01", "db02"]
