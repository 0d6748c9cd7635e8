"""The lab's processes: is a PID still the one we started, and stopping it for sure.

A PID in a state file may have been reused by an unrelated process since; every
signal goes only to a PID whose command line still names the lab's own file,
and to the processes it forked (sshd's per-connection children start their own
sessions, so a process group would miss them: we walk the parent links).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path

__all__ = ["ProcessState", "descendants", "process_state", "signal_tree", "terminate"]

_PROC = Path("/proc")


class ProcessState(StrEnum):
    """What a lab process is doing now."""

    RUNNING = "up"
    FROZEN = "frozen"  # stopped by SIGSTOP
    GONE = "down"


def _read_proc(pid: int, name: str) -> bytes | None:
    try:
        return (_PROC / str(pid) / name).read_bytes()
    except OSError:
        return None


def _stat_fields(stat: bytes) -> list[bytes]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces)."""
    return stat.rsplit(b")", 1)[-1].split()


def process_state(pid: int | None, marker: str) -> ProcessState:
    """The state of ``pid`` if its command line contains ``marker``, else GONE."""
    if pid is None or pid <= 0:
        return ProcessState.GONE
    if not (_PROC / "self").exists():  # no procfs: trust the PID
        try:
            os.kill(pid, 0)
        except OSError:
            return ProcessState.GONE
        return ProcessState.RUNNING
    cmdline = _read_proc(pid, "cmdline")
    stat = _read_proc(pid, "stat")
    if cmdline is None or stat is None or marker.encode() not in cmdline:
        return ProcessState.GONE
    state = _stat_fields(stat)[0]
    if state in (b"Z", b"X"):
        return ProcessState.GONE
    return ProcessState.FROZEN if state in (b"T", b"t") else ProcessState.RUNNING


def descendants(roots: Iterable[int]) -> list[int]:
    """Every process below ``roots``, found by following parent PIDs in /proc."""
    children: dict[int, list[int]] = {}
    try:
        entries = [entry.name for entry in _PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return []
    for name in entries:
        stat = _read_proc(int(name), "stat")
        if stat is not None:
            children.setdefault(int(_stat_fields(stat)[1]), []).append(int(name))
    found: list[int] = []
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _kill(pids: Iterable[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)


def signal_tree(pid: int, marker: str, signum: int) -> list[int]:
    """Send ``signum`` to ``pid`` and everything it forked, if ``pid`` is still ours.

    Returns the PIDs signalled (empty when ``pid`` is gone or someone else's).
    """
    if process_state(pid, marker) is ProcessState.GONE:
        return []
    tree = [pid, *descendants([pid])]
    _kill(tree, signum)
    return tree


def _wait_gone(pids: list[int], deadline: float) -> list[int]:
    """Wait until ``pids`` have exited (or are zombies); return those still alive."""
    pending = list(pids)
    while pending:
        pending = [pid for pid in pending if process_state(pid, "") is not ProcessState.GONE]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return pending


def terminate(processes: list[tuple[int, str]], timeout: float = 5.0) -> list[int]:
    """Stop every (pid, marker) still ours and all it forked: SIGTERM, then SIGKILL.

    Frozen processes get SIGCONT so they can act on SIGTERM. Returns the lab
    PIDs that were still running.
    """
    alive = [(p, m) for p, m in processes if process_state(p, m) is not ProcessState.GONE]
    tree = [*(pid for pid, _ in alive), *descendants(pid for pid, _ in alive)]
    _kill(tree, signal.SIGTERM)
    _kill(tree, signal.SIGCONT)
    left = _wait_gone(tree, time.monotonic() + timeout)
    if left:
        _kill(left, signal.SIGKILL)
        _wait_gone(left, time.monotonic() + timeout)
    return [pid for pid, _ in alive]
