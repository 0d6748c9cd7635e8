"""The start line and the stop command of remote commands, run by the real local shells.

Each shell a host may log in with (dash, bash, BusyBox sh) runs the line as an
SSH server would start it: not leading a process group (Dropbear), or leading
one (OpenSSH's sshd); with ``setsid`` on PATH, or without.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.hosts.remote_stop import Mark, parse_mark, start_line, stop_command

MARK = "HERD_TEST_MARK"


@pytest.fixture(params=["dash", "bash", "busybox"])
def shell(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The path of a login shell; BusyBox's is a link named sh, as on a device."""
    found = shutil.which(request.param)
    if found is None:
        pytest.skip(f"{request.param} is not installed")
    if request.param != "busybox":
        return found
    link = tmp_path / "bb" / "sh"
    link.parent.mkdir()
    link.symlink_to(found)
    return str(link)


@pytest.fixture
def no_setsid(tmp_path: Path) -> str:
    """A PATH with the usual tools but no setsid."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("sleep", "cat"):
        (tools / tool).symlink_to(shutil.which(tool) or tool)
    return str(tools)


def start(
    shell: str, script: str, *, leader: bool = False, path: str | None = None
) -> tuple[subprocess.Popen[bytes], Mark | None]:
    """Run the start line of ``script`` as a server would; return the shell and its mark."""
    env = {"SHELL": shell, "PATH": path or os.environ["PATH"], MARK: str(os.getpid())}
    process = subprocess.Popen(
        [shell, "-c", start_line(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=leader,
    )
    assert process.stderr is not None
    mark, before = parse_mark(process.stderr.readline())
    assert before == b""
    return process, mark


def marked_children(process: subprocess.Popen[bytes]) -> list[int]:
    """What the command started that still runs: processes carrying our marker, but the shell."""
    found = []
    tag = f"{MARK}={os.getpid()}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if tag in environ and int(pid) != process.pid and state != b"Z":
            found.append(int(pid))
    return found


def wait_for_children(process: subprocess.Popen[bytes]) -> None:
    while not marked_children(process):  # the test's timeout bounds this
        time.sleep(0.01)


@pytest.fixture
def reaper() -> Iterator[list[int]]:
    """PIDs a test left running on purpose, killed after it if it did not."""
    left: list[int] = []
    yield left
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def test_a_shell_leading_no_group_becomes_a_leader_in_place_keeping_stdin_and_status(
    shell: str,
) -> None:
    process, mark = start(shell, 'kill -0 -$$ && echo leads; read -r line; echo "$line"; exit 7')
    out, err = process.communicate(b"from stdin\n", timeout=10)
    assert mark == Mark(process.pid, group=True)  # the same PID: no fork, no extra process
    assert (out, err, process.returncode) == (b"leads\nfrom stdin\n", b"", 7)


def test_a_group_leader_runs_the_command_with_builtins_only(shell: str) -> None:
    process, mark = start(shell, "echo ran", leader=True, path="/nonexistent")
    out, err = process.communicate(timeout=10)
    assert mark == Mark(process.pid, group=True)
    assert (out, err, process.returncode) == (b"ran\n", b"", 0)


def test_a_signal_that_kills_the_command_is_the_shells_own(shell: str) -> None:
    process, mark = start(shell, "kill -KILL $$")
    process.communicate(timeout=10)
    assert mark is not None and mark.group
    assert process.returncode == -signal.SIGKILL


def test_without_setsid_the_mark_says_only_the_shell_can_be_stopped(
    shell: str, no_setsid: str
) -> None:
    process, mark = start(shell, "echo ran; exit 3", path=no_setsid)
    out, err = process.communicate(timeout=10)
    assert mark == Mark(process.pid, group=False)
    assert (out, err, process.returncode) == (b"ran\n", b"", 3)


def stop(shell: str, mark: Mark, signal_name: str) -> str:
    command = [shell, "-c", stop_command(mark, signal_name)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
    return done.stdout


def test_the_stop_command_signals_the_whole_group_and_says_so(shell: str) -> None:
    process, mark = start(shell, "sleep 60; echo done")
    assert mark is not None
    wait_for_children(process)
    assert stop(shell, mark, "HUP") == "herd-stop:group\n"
    process.communicate(timeout=10)  # the sleep closed the pipes it shared: it is gone too
    assert process.returncode == -signal.SIGHUP


def test_the_stop_command_says_when_the_command_is_already_gone(shell: str) -> None:
    process, mark = start(shell, "echo done")
    process.communicate(timeout=10)
    assert mark is not None
    assert stop(shell, mark, "HUP") == "herd-stop:gone\n"


def test_the_stop_command_says_when_it_could_signal_only_the_shell(
    shell: str, no_setsid: str, reaper: list[int]
) -> None:
    process, mark = start(shell, "sleep 60; echo done", path=no_setsid)
    assert mark is not None and not mark.group
    wait_for_children(process)
    assert stop(shell, mark, "HUP") == "herd-stop:shell\n"
    process.wait(timeout=10)
    left = marked_children(process)
    reaper.extend(left)
    assert left  # the sleep runs on, as herd reports
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    process.communicate(timeout=10)  # the pipes the sleep held
