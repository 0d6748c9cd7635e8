"""Lab process handling: only PIDs still running the lab's own command get signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.lab.processes import (
    ProcessState,
    descendants,
    process_state,
    signal_tree,
    terminate,
)

# A parent that forks a child, both named by a marker in the parent's command line.
PARENT = "import subprocess, sys, time; subprocess.Popen(['sleep', '30']); time.sleep(30)  # {}"


@pytest.fixture
def parent(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    marker = str(tmp_path / "marker")
    process = subprocess.Popen([sys.executable, "-c", PARENT.format(marker)])
    try:
        wait_for_child(process.pid)  # the parent runs our code: its command line is set
        yield process
    finally:
        for child in descendants([process.pid]):
            os.kill(child, signal.SIGKILL)
        process.kill()
        process.wait()


def wait_for_child(pid: int) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = descendants([pid])
        if children:
            return children[0]
        time.sleep(0.01)
    raise AssertionError("the child did not start")


def test_a_pid_whose_command_line_lacks_the_marker_counts_as_gone(
    parent: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    assert process_state(parent.pid, str(tmp_path / "marker")) is ProcessState.RUNNING
    assert process_state(parent.pid, str(tmp_path / "other")) is ProcessState.GONE
    assert process_state(None, "x") is ProcessState.GONE
    assert signal_tree(parent.pid, str(tmp_path / "other"), signal.SIGKILL) == []
    assert parent.poll() is None  # a reused PID is never signalled


def test_signal_tree_freezes_and_thaws_the_process_and_its_children(
    parent: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    marker = str(tmp_path / "marker")
    child = wait_for_child(parent.pid)
    assert set(signal_tree(parent.pid, marker, signal.SIGSTOP)) == {parent.pid, child}
    deadline = time.monotonic() + 5
    while process_state(parent.pid, marker) is not ProcessState.FROZEN:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    signal_tree(parent.pid, marker, signal.SIGCONT)
    deadline = time.monotonic() + 5
    while process_state(parent.pid, marker) is not ProcessState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_terminate_stops_a_frozen_process_and_everything_it_forked(
    parent: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    marker = str(tmp_path / "marker")
    child = wait_for_child(parent.pid)
    signal_tree(parent.pid, marker, signal.SIGSTOP)
    assert terminate([(parent.pid, marker)]) == [parent.pid]
    assert parent.wait(timeout=5) != 0
    assert process_state(child, "") is ProcessState.GONE
