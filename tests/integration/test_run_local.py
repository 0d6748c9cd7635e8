"""``herd run`` through the CLI on ``ansible_connection=local`` hosts: no SSH needed.

Covers what does not depend on the transport: exit codes, the guard rail on a
real terminal (a pty), bad input, and the recorded operation.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.core.audit import AuditLog


def local_inventory(tmp_path: Path, count: int = 3) -> Path:
    lines = ["[here]"] + [f"node{i} ansible_connection=local" for i in range(1, count + 1)]
    path = tmp_path / "inventory.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_local_hosts_run_through_the_cli_with_the_same_json_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = local_inventory(tmp_path)
    code = main(["-i", str(inventory), "run", "all", "--json", "--", "echo hi; exit 0"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["host"] for r in rows) == ["node1", "node2", "node3"]
    assert {r["stdout"] for r in rows} == {"hi\n"}
    assert "3 hosts: 3 ok" in err


def test_any_host_not_ok_makes_exit_status_1_and_is_recorded_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    inventory = local_inventory(tmp_path, 2)
    assert main(["-i", str(inventory), "run", "node1", "--", "exit 4"]) == 1
    err = capsys.readouterr().err
    assert "    node1  command exited with status 4" in err
    with AuditLog(isolated_env / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None and (record.status, record.exit_code) == ("failed", 1)
        assert log.failed_hosts(op_id) == ["node1"]


def test_no_log_leaves_the_operation_log_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    inventory = local_inventory(tmp_path, 1)
    assert main(["-i", str(inventory), "run", "all", "--no-log", "--", "true"]) == 0
    capsys.readouterr()
    assert not (isolated_env / "operations.db").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["all", "--", " "], "empty command: give the command after --"),
        (["all", "--env", "1BAD=x", "--", "true"], "--env '1BAD=x': expected NAME=VALUE or NAME"),
        (["all", "--env", "HERD_UNSET_X", "--", "true"], "HERD_UNSET_X is not set in herd's"),
        (["all", "-b", "--json", "--", "true"], "--gather and --json are two output formats"),
        (["all", "--stdin", "/nonexistent/feed", "--", "cat"], "/nonexistent/feed: cannot read"),
        (["nosuchhost", "--", "true"], "nosuchhost"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    isolated_env: Path,
    args: list[str],
    message: str,
) -> None:
    inventory = local_inventory(tmp_path)
    assert main(["-i", str(inventory), "run", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (isolated_env / "operations.db").exists()


def run_on_terminal(
    argv: list[str], answer: bytes, env: dict[str, str], prompt: bytes = b"on all of them?"
) -> tuple[int, str]:
    """Run ``argv`` with a pty as its terminal, answer ``prompt``, return (exit code, screen)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        argv, stdin=follower, stdout=follower, stderr=follower, env=env, close_fds=True
    )
    os.close(follower)
    screen = b""
    answered = False
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the other side closed: the process is done
                    break
                if not chunk:
                    break
                screen += chunk
            if not answered and prompt in screen:
                os.write(leader, answer)
                answered = True
            if process.poll() is not None and not ready:
                break
        code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    return code, re.sub(r"\x1b\[[0-9;]*m", "", screen.decode(errors="replace"))


def test_guard_rail_asks_on_a_terminal_and_a_no_runs_nothing(
    tmp_path: Path, isolated_env: Path
) -> None:
    inventory = local_inventory(tmp_path, 3)
    marker = tmp_path / "ran"
    argv = [sys.executable, "-m", "herd", "-i", str(inventory), "run", "all",
            "--confirm-over", "2", "--", f"touch {marker}"]  # fmt: skip
    env = {**os.environ, "HERD_HOME": str(isolated_env)}
    code, screen = run_on_terminal(argv, b"n\n", env)
    assert code == 2, screen
    assert "'all' matches 3 hosts (more than 2)" in screen
    assert "not confirmed: nothing was done" in screen
    assert not marker.exists()
    code, screen = run_on_terminal(argv, b"y\n", env)
    assert code == 0, screen
    assert marker.exists()
    assert "3 hosts: 3 ok" in screen


def test_a_scripted_run_starts_lean_without_rich_and_without_forking_ldconfig(
    tmp_path: Path, isolated_env: Path
) -> None:
    inventory = local_inventory(tmp_path, 1)
    probe = (
        "import subprocess, sys\n"
        "forked = []\n"
        "original = subprocess.Popen.__init__\n"
        "def spy(self, args, *a, **k):\n"
        "    forked.append(args)\n"
        "    original(self, args, *a, **k)\n"
        "subprocess.Popen.__init__ = spy\n"
        "from herd.cli.main import main\n"
        f"code = main(['-i', {str(inventory)!r}, 'run', 'all', '--json', '--', 'true'])\n"
        "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'asyncssh'}),"
        " forked, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HERD_HOME": str(isolated_env)},
        check=False,
    )
    assert done.stderr.splitlines()[-1] == "0 ['asyncssh'] []"


def test_a_run_that_cannot_be_recorded_does_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = local_inventory(tmp_path, 1)
    home = tmp_path / "home"
    (home / "operations.db").mkdir(parents=True)  # where the log file should be: unusable
    marker = tmp_path / "ran"
    argv = ["--home", str(home), "-i", str(inventory), "run", "all", "--",
            f"touch {marker}"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("herd: error: ") and err.count("\n") == 1
    assert "operation log" in err
    assert not marker.exists()
    assert main([*argv[:-2], "--no-log", "--", f"touch {marker}"]) == 0
    assert marker.exists()


def test_progress_bar_is_drawn_on_a_terminal_while_results_are_gathered(
    tmp_path: Path, isolated_env: Path
) -> None:
    inventory = local_inventory(tmp_path, 2)
    argv = [sys.executable, "-m", "herd", "-i", str(inventory), "run", "all", "-b",
            "--", "sleep 1; echo done"]  # fmt: skip
    env = {**os.environ, "HERD_HOME": str(isolated_env)}
    code, screen = run_on_terminal(argv, b"", env, prompt=b"never asked")
    assert code == 0, screen
    assert "0/2" in screen and "running" in screen and "ETA" in screen
    assert "node[1-2] (2)" in screen and "done" in screen


def test_more_hosts_than_confirm_over_without_a_terminal_is_refused_not_run(
    tmp_path: Path, isolated_env: Path
) -> None:
    inventory = local_inventory(tmp_path, 3)
    marker = tmp_path / "ran"
    argv = [sys.executable, "-m", "herd", "-i", str(inventory), "run", "all",
            "--confirm-over", "2", "--", f"touch {marker}"]  # fmt: skip
    env = {**os.environ, "HERD_HOME": str(isolated_env)}
    done = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env,
        check=False, start_new_session=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        "herd: error: 'all' matches 3 hosts, more than 2, and there is no terminal to confirm"
        " on: pass -y (or raise --confirm-over); nothing was done\n"
    )
    assert not marker.exists()
    done = subprocess.run(
        [*argv[:-2], "-y", "--", f"touch {marker}"], stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert marker.exists()
