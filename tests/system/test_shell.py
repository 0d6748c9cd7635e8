"""``herd shell`` on a real OpenSSH fleet: through a pipe, and on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from herd.core.audit import AuditLog
from herd.core.audit_records import OperationRecord

from .conftest import Fleet
from .test_agent import wait_until

pytestmark = pytest.mark.system

HERD = [sys.executable, "-m", "herd"]


def piped(home: Path, fleet: Fleet, pattern: str, lines: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HERD, "--home", str(home), "-i", str(fleet.inventory), "shell", pattern],
        input=lines, capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip


def shell_operations(home: Path) -> list[OperationRecord]:
    with AuditLog(home / "operations.db", check_writable=False) as log:
        return list(reversed(log.operations(kind="shell")))


def test_piped_lines_run_on_the_current_hosts_edited_with_plus_and_minus(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    done = piped(home, lab_fleet, "web", "echo hi\n-web0[3:4]\n:hosts\n+db01\necho $HERD_HOST\n")
    assert done.returncode == 0, done.stderr
    assert "web0[1-4] (4) ────\nhi\n" in done.stdout  # gathered: -b
    assert "2 hosts: web0[1-2]\n" in done.stdout
    for name in ("web01", "web02", "db01"):
        assert f" {name} (1) ────\n{name}\n" in done.stdout
    recorded = shell_operations(home)
    assert [op.command for op in recorded] == ["echo hi", "echo $HERD_HOST"]
    assert [sorted(op.hosts) for op in recorded] == [
        ["web01", "web02", "web03", "web04"],
        ["db01", "web01", "web02"],
    ]
    assert {op.status for op in recorded} == {"ok"}


def test_an_unreachable_host_is_dropped_and_retry_brings_it_back(
    make_fleet: Callable[..., Fleet], tmp_path: Path
) -> None:
    fleet = make_fleet(3, "web=3")
    fleet.stop("web02")
    home = tmp_path / "home"
    done = piped(home, fleet, "all", "true\n:hosts\ntrue\n:retry\n:hosts\n")
    assert "dropped web02 (unreachable" in done.stderr
    assert "2 hosts: web[01,03]" in done.stdout
    assert "dropped (unreachable): web02" in done.stdout
    assert "3 hosts: web0[1-3]" in done.stdout
    assert [sorted(op.hosts) for op in shell_operations(home)] == [
        ["web01", "web02", "web03"],
        ["web01", "web03"],
    ]


def read_until(
    leader: int, screen: bytearray, wanted: bytes, bound: float = 60.0, since: int | None = None
) -> bool:
    """Read the terminal into ``screen`` until ``wanted`` appears after what was read before
    (or after offset ``since`` of it)."""
    start = len(screen) if since is None else since
    deadline = time.monotonic() + bound
    while wanted not in screen[start:]:
        if time.monotonic() > deadline:
            return False
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                return False
            if not chunk:
                return False
            screen += chunk
    return True


def test_ctrl_c_stops_the_line_on_every_host_and_returns_to_the_prompt(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    marks = tmp_path / "marks"
    marks.touch()
    marks.chmod(0o666)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        # setsid -c: the pty is herd's controlling terminal, so Ctrl-C reaches it as SIGINT
        ["setsid", "-c", *HERD, "--home", str(home), "-i", str(lab_fleet.inventory),
         "shell", "web"],
        stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    screen = bytearray()
    try:
        assert read_until(leader, screen, b"herd [4]> "), screen
        os.write(leader, f"echo $HERD_HOST >> {marks}; sleep {SLEEP}\n".encode())
        assert wait_until(lambda: len(marks.read_text().split()) == 4 and sleeping(SLEEP))
        os.write(leader, b"\x03")
        assert read_until(leader, screen, b"herd [4]> "), screen
        assert wait_until(lambda: not sleeping(SLEEP))  # stopped on every host
        os.write(leader, b":hosts\n")
        assert read_until(leader, screen, b"4 hosts: web0[1-4]"), screen
        # Ctrl-D only once readline holds the terminal again (its set-up may drop what came
        # before); the prompt may have come in the same read as the answer
        answered = screen.rindex(b"4 hosts: web0[1-4]")
        assert read_until(leader, screen, b"herd [4]> ", since=answered), screen
        os.write(leader, b"\x04")  # Ctrl-D ends the session
        assert process.wait(timeout=30) == 130  # the last line's: interrupted
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    (recorded,) = shell_operations(home)
    assert recorded.status == "interrupted"
    assert (home / "shell_history").read_text().count(f"sleep {SLEEP}") == 1


SLEEP = "60.4321"  # a sleep no other test runs


def sleeping(seconds: str) -> bool:
    """Whether a ``sleep SECONDS`` process runs on this machine (where the lab's hosts are)."""
    return sleepers(seconds) > 0


def sleepers(seconds: str) -> int:
    """How many ``sleep SECONDS`` processes run on this machine."""
    wanted = f"sleep\0{seconds}\0".encode()
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            count += entry.name.isdigit() and (entry / "cmdline").read_bytes() == wanted
        except OSError:
            continue
    return count
