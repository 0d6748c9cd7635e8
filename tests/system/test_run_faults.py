"""``herd run`` against a real OpenSSH fleet with broken hosts, a huge output, and Ctrl-C.

Each test runs the real CLI in a subprocess (as an operator would), so the
time bounds, the exit codes, the memory and SIGINT are the real ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from herd.core.audit import AuditLog

from .conftest import ENGINES, Fleet, both_engines

pytestmark = pytest.mark.system

HERD = [sys.executable, "-m", "herd"]


def herd(
    home: Path, inventory: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HERD, "--home", str(home), "-i", str(inventory), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# The fault tests run in herd's own process, and again with the hosts carried by two
# worker processes (``--workers 2``): both must behave the same.
CARRIERS = pytest.mark.parametrize(
    "carried", [(), ("--workers", "2")], ids=["in-process", "workers"]
)


def rows(stdout: str) -> dict[str, dict[str, object]]:
    return {row["host"]: row for row in map(json.loads, stdout.splitlines())}


def with_user(fleet: Fleet, host: str, user: str, target: Path) -> Path:
    """A copy of the fleet's inventory where ``host`` logs in as ``user``."""
    document = yaml.safe_load(fleet.inventory.read_text())
    for group in document["all"]["children"].values():
        if host in group["hosts"]:
            group["hosts"][host]["ansible_user"] = user
    target.write_text(yaml.safe_dump(document))
    return target


@CARRIERS
@pytest.mark.parametrize("engine", ENGINES)
def test_broken_hosts_each_get_their_own_status_and_reason_and_the_rest_answer(
    make_fleet: Callable[..., Fleet], tmp_path: Path, engine: str, carried: tuple[str, ...]
) -> None:
    fleet = make_fleet(8, engine=engine)
    fleet.stop("web02")
    fleet.stop("db02")
    fleet.freeze("web03")
    new_key = fleet.regenerate_host_key("cache01")
    inventory = with_user(fleet, "web04", "nobody-herd-test", tmp_path / "inventory.yml")
    started = time.monotonic()
    done = herd(
        tmp_path / "home", inventory, "run", "all", "--connect-timeout", "3", "--json",
        *carried, "--", "echo hello from $(hostname)",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    fleet.thaw("web03")
    assert done.returncode == 1, done.stderr
    by_host = rows(done.stdout)
    assert sorted(by_host) == sorted(fleet.names())
    for name in ("web01", "db01", "cache02"):
        assert by_host[name]["status"] == "ok"
        assert str(by_host[name]["stdout"]).startswith("hello from ")
    assert (by_host["web02"]["status"], by_host["web02"]["error"]) == (
        "unreachable",
        "connection refused",
    )
    assert by_host["db02"]["error"] == "connection refused"
    assert (by_host["web03"]["status"], by_host["web03"]["error"]) == (
        "unreachable",
        "no SSH banner within 3 s",
    )
    assert by_host["cache01"]["status"] == "hostkey_mismatch"
    assert str(by_host["cache01"]["error"]).startswith(f"host key for cache01 changed: {new_key}")
    assert (by_host["web04"]["status"], by_host["web04"]["error"]) == (
        "auth_failed",
        "authentication failed for user nobody-herd-test",
    )
    # connect timeout (3 s) + the command + process start-up, never per host
    assert elapsed < 10, elapsed
    assert "8 hosts: 3 ok, 4 unreachable, 1 auth_failed, 1 hostkey_mismatch" not in done.stderr
    assert "8 hosts: 3 ok, 3 unreachable, 1 auth_failed, 1 hostkey_mismatch" in done.stderr


@CARRIERS
@both_engines
def test_a_command_past_its_timeout_is_stopped_on_the_host(
    lab_fleet: Fleet, tmp_path: Path, carried: tuple[str, ...]
) -> None:
    marker = f"herd-timeout-{os.getpid()}-{time.monotonic_ns()}"
    started = time.monotonic()
    done = herd(
        tmp_path / "home", lab_fleet.inventory, "run", "web01,web02", "-t", "1", "--json",
        *carried, "--env", f"{MARK}={marker}", "--", "sleep 60; echo done",
    )  # fmt: skip
    assert time.monotonic() - started < 10
    assert done.returncode == 1
    for row in rows(done.stdout).values():
        assert (row["status"], row["error"]) == (
            "timeout",
            "command still running after 1 s: stopped",
        )
    assert wait_unmarked(marker) == {}  # the shell and the sleep it started


@both_engines
def test_a_timed_out_command_that_ignores_term_is_killed_after_a_grace(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    marker = f"herd-stubborn-{os.getpid()}-{time.monotonic_ns()}"
    done = herd(
        tmp_path / "home", lab_fleet.inventory, "run", "db01", "-t", "1", "--json",
        "--env", f"{MARK}={marker}", "--", "trap '' TERM; sh -c 'trap \"\" TERM; sleep 60'; :",
    )  # fmt: skip
    assert rows(done.stdout)["db01"]["status"] == "timeout"
    assert wait_unmarked(marker) == {}


MARK = "HERD_TEST_MARK"  # --env MARK=marker: the command and all it starts carry the marker


def marked(marker: str, but: int | None = None) -> dict[int, str]:
    """Processes with ``marker`` in their command line or environment, but ``but``.

    A command's children inherit its environment, so a marker given with
    ``--env`` finds everything a command started, whatever each runs now. Each
    PID comes with the lab host it runs on (HERD_LAB_HOST), '' if none.
    """
    found: dict[int, str] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(pid) != but and (
            marker.encode() in cmdline or f"{MARK}={marker}".encode() in environ
        ):
            host = [v.partition(b"=")[2] for v in environ if v.startswith(b"HERD_LAB_HOST=")]
            found[int(pid)] = host[0].decode() if host else ""
    return found


def wait_unmarked(marker: str, wait: float = 10) -> dict[int, str]:
    """The marked processes left once they are gone, or ``wait`` seconds have passed."""
    deadline = time.monotonic() + wait
    while (left := marked(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(pid))
    return found


# Linux carries a process's peak RSS across exec, so a child forked from this (large)
# pytest process would report pytest's size. A small Python forks herd instead and
# reports its children's peak.
_PEAK_RSS_OF_CHILD = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:], stderr=subprocess.DEVNULL)\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
)


@both_engines
def test_fifty_megabytes_of_output_are_capped_in_memory_but_counted_whole(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    size = 50 * 1000 * 1000
    home = tmp_path / "home"
    out = tmp_path / "stdout.jsonl"
    with out.open("wb") as stdout:
        measured = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS_OF_CHILD, *HERD, "--home", str(home),
             "-i", str(lab_fleet.inventory), "run", "web01", "--json", "--",
             f"head -c {size} /dev/zero"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=True,
        )  # fmt: skip
    code, peak_kib = map(int, measured.stderr.split())
    assert code == 0
    assert peak_kib < 120 * 1024, f"peak RSS {peak_kib} KiB: output was not capped"
    row = rows(out.read_text())["web01"]
    assert len(str(row["stdout"])) == 64 * 1024
    with AuditLog(home / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        (recorded,) = log.host_results(op_id)
    assert recorded.stdout.total == size and len(recorded.stdout.data) == 64 * 1024


@CARRIERS
@both_engines
def test_ctrl_c_exits_130_and_records_the_run_interrupted_with_the_completed_hosts(
    lab_fleet: Fleet, tmp_path: Path, carried: tuple[str, ...]
) -> None:
    marker = f"herd-sigint-{os.getpid()}-{time.monotonic_ns()}"
    home = tmp_path / "home"
    quick = lab_fleet.host("web01").address
    command = f'case "$SSH_CONNECTION" in *" {quick} "*) echo quick;; *) sleep 60; echo late;; esac'
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("w") as out, err_path.open("w") as err:
        process = subprocess.Popen(
            [*HERD, "--home", str(home), "-i", str(lab_fleet.inventory), "run", "all", "--json",
             *carried, "--env", f"{MARK}={marker}", "--", command],
            stdout=out,
            stderr=err,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (
                '"host": "web01"' in out_path.read_text()
                and len(set(marked(marker, but=process.pid).values())) >= 7
            ):
                time.sleep(0.1)  # web01 is done and the seven slow hosts run the command
            process.send_signal(signal.SIGINT)
            process.wait(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    stdout, stderr = out_path.read_text(), err_path.read_text()
    assert process.returncode == 130, stderr
    assert list(rows(stdout)) == ["web01"]
    assert "(interrupted)" in stderr
    with AuditLog(home / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None
        assert (record.status, record.exit_code) == ("interrupted", 130)
        assert [r.host for r in log.host_results(op_id)] == ["web01"]
        assert sorted(log.failed_hosts(op_id)) == sorted(set(lab_fleet.names()) - {"web01"})
    assert wait_unmarked(marker) == {}  # the remote commands got a hangup
