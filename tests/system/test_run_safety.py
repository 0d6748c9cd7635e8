"""``herd run`` on real sshd: what a sysadmin would lose data, hosts or secrets to, fixed.

SIGTERM and SIGHUP stop like Ctrl-C; truncated output says so; a signal is named;
variables' values and the sudo password never appear in any command line; the
operation log is private and masks secrets; ``--stdin`` streams; sudo keeps the
target user's shell.
"""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from herd.core.audit import AuditLog

from .conftest import Fleet, both_engines
from .test_run_faults import MARK, _processes_with, herd, marked, rows, wait_unmarked

pytestmark = pytest.mark.system

HERD = [sys.executable, "-m", "herd"]


@both_engines
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_stop_remote_commands_record_and_summarise_like_ctrl_c(
    lab_fleet: Fleet, tmp_path: Path, stop: signal.Signals
) -> None:
    marker = f"herd-{stop.name}-{os.getpid()}-{time.monotonic_ns()}"
    home = tmp_path / "home"
    command = "sleep 60; echo done"
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"

    def remote() -> set[str]:
        return set(marked(marker, but=process.pid).values())  # the hosts running the command

    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(
            [*HERD, "--home", str(home), "-i", str(lab_fleet.inventory), "run", "db", "--json",
             "--env", f"{MARK}={marker}", "--", command],
            stdout=out,
            stderr=err,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(remote()) < 2:
                time.sleep(0.1)  # both hosts run the command
            assert len(remote()) == 2
            process.send_signal(stop)
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    stderr = err_path.read_text()
    assert process.returncode == 128 + stop, stderr
    assert "2 hosts: 2 not finished in" in stderr
    assert f"(interrupted by {stop.name})" in stderr
    with AuditLog(home / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None
        assert (record.status, record.exit_code) == ("interrupted", 128 + stop)
    assert wait_unmarked(marker) == {}  # the remote commands were stopped


@both_engines
def test_output_past_the_cap_says_it_was_cut_and_o_dir_keeps_it_whole(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    home, out_dir = tmp_path / "home", tmp_path / "out"
    command = "head -c 100000 /dev/zero | tr '\\0' x; echo e >&2"
    done = herd(home, lab_fleet.inventory, "run", "web01", "--json", "--output-cap", "1K",
                "-o", str(out_dir), "--", command)  # fmt: skip
    assert done.returncode == 0, done.stderr
    row = rows(done.stdout)["web01"]
    assert len(row["stdout"]) == 1024 and row["stdout_truncated"] is True  # type: ignore[arg-type]
    assert row["stdout_bytes"] == 100_000
    assert (row["stderr"], row["stderr_truncated"], row["stderr_bytes"]) == ("e\n", False, 2)
    assert (out_dir / "web01.out").stat().st_size == 100_000
    with AuditLog(home / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        (recorded,) = log.host_results(op_id)
    assert recorded.stdout.truncated and recorded.stdout.total == 100_000
    assert len(recorded.stdout.data) == 1024
    shown = subprocess.run(
        [*HERD, "--home", str(home), "log", "show", str(op_id)],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "stdout (100000 bytes" in shown.stdout and "truncated: first 1024 kept" in shown.stdout


@both_engines
def test_a_command_killed_by_a_signal_is_named_with_no_exit_status(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    done = herd(tmp_path / "home", lab_fleet.inventory, "run", "web02", "--json", "--",
                "kill -KILL $$")  # fmt: skip
    assert done.returncode == 1
    row = rows(done.stdout)["web02"]
    assert (row["status"], row["exit_status"], row["signal"]) == ("failed", None, "SIGKILL")
    assert row["error"] == "killed by SIGKILL"
    plain = herd(tmp_path / "home", lab_fleet.inventory, "run", "web02", "--", "kill -KILL $$")
    assert "web02  killed by SIGKILL" in plain.stderr and "-1" not in plain.stderr


@both_engines
def test_env_values_appear_in_no_command_line_and_secrets_are_masked_in_the_log(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    # the agent is started first: the child that starts it shows the client's own argv
    # (which holds the secret the operator typed) until it execs, which is no leak
    started = herd(home, lab_fleet.inventory, "run", "web03", "--", "true")
    assert started.returncode == 0, started.stderr
    secret, token = f"hunter2-{os.getpid()}", f"tok-{time.monotonic_ns()}"
    process = subprocess.Popen(
        [*HERD, "--home", str(home), "-i", str(lab_fleet.inventory), "run", "web03", "--json",
         "--env", f"DB_PASSWORD={secret}", "--env", "API_TOKEN",
         "--", 'sleep 2; printf "%s %s" "$DB_PASSWORD" "$API_TOKEN" | sha256sum'],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "API_TOKEN": token},
    )  # fmt: skip
    try:
        seen: list[int] = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            seen += [p for p in _processes_with(secret) if p != process.pid]
            seen += _processes_with(token)
            time.sleep(0.05)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert seen == []  # neither value in any process's argv, here or on the host
    assert process.returncode == 0, err
    want = hashlib.sha256(f"{secret} {token}".encode()).hexdigest()
    assert rows(out)["web03"]["stdout"] == f"{want}  -\n"
    database = home / "operations.db"
    for stored in home.glob("operations.db*"):
        assert (
            secret.encode() not in stored.read_bytes() and token.encode() not in stored.read_bytes()
        )
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600, stored
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    with AuditLog(database, check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None and "DB_PASSWORD=***" in record.argv


def test_an_existing_world_readable_log_and_home_are_made_private(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    assert herd(home, lab_fleet.inventory, "run", "web01", "--", "true").returncode == 0
    home.chmod(0o755)
    for stored in home.glob("operations.db*"):
        stored.chmod(0o644)
    assert herd(home, lab_fleet.inventory, "run", "web01", "--", "true").returncode == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in home.glob("operations.db*")}
    assert modes and set(modes.values()) == {0o600}, modes


@both_engines
def test_stdin_streams_the_same_bytes_to_every_host_from_a_file_or_a_pipe(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    feed = tmp_path / "feed"
    feed.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    from_file = herd(tmp_path / "home", lab_fleet.inventory, "run", "all", "--json",
                     "--stdin", str(feed), "--", "sha256sum | cut -c1-64")  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr
    assert {r["stdout"] for r in rows(from_file.stdout).values()} == {want + "\n"}
    piped = subprocess.run(
        [*HERD, "--home", str(tmp_path / "home"), "-i", str(lab_fleet.inventory), "run", "web",
         "--json", "--stdin", "-", "--", "sha256sum | cut -c1-64"],
        input=data, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert {r["stdout"] for r in rows(piped.stdout.decode()).values()} == {want + "\n"}


@both_engines
def test_a_command_that_never_reads_its_stdin_still_finishes(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    feed = tmp_path / "feed"
    feed.write_bytes(b"x" * (8 * 1024 * 1024))
    done = herd(tmp_path / "home", lab_fleet.inventory, "run", "db", "--json",
                "--stdin", str(feed), "--", "echo done")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {r["stdout"] for r in rows(done.stdout).values()} == {"done\n"}
