"""The engine without a network: fan-out bounds, the command line sent, local runs."""

from __future__ import annotations

import asyncio
import ctypes.util
import hashlib
import os
import time
from pathlib import Path

import asyncssh
import pytest

from herd.core.model import Host, HostResult, Status
from herd.hosts.become import Become
from herd.hosts.command import RemoteCommand
from herd.hosts.connect import connection_lost
from herd.hosts.local import run_locally
from herd.hosts.sshlib import _find_library_without_forking, run_loop
from herd.operation.fanout import HostSlot, fanout

LOCAL = Host("here", "localhost", local=True)


def hosts(n: int) -> list[Host]:
    return [Host(f"h{i:03d}", f"10.0.0.{i}") for i in range(n)]


def ok(host: Host) -> HostResult:
    return HostResult(host.name, host.address, Status.OK, exit_status=0)


def test_fanout_never_runs_more_hosts_at_once_than_forks() -> None:
    running = 0
    peak = 0

    async def per_host(host: Host, slot: HostSlot) -> HostResult:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return ok(host)

    batch = asyncio.run(fanout(hosts(40), per_host, 7, handle_sigint=False))
    assert len(batch) == 40 and peak == 7 and not batch.interrupted


def test_fanout_streams_each_result_as_it_finishes() -> None:
    seen: list[str] = []

    def on_result(result: HostResult) -> None:
        seen.append(result.host)

    async def per_host(host: Host, slot: HostSlot) -> HostResult:
        await asyncio.sleep(0.05 if host.name == "h000" else 0)
        return ok(host)

    batch = asyncio.run(fanout(hosts(3), per_host, 10, on_result, handle_sigint=False))
    assert seen == ["h001", "h002", "h000"]
    assert [r.host for r in batch] == seen


def test_fanout_turns_a_crash_on_one_host_into_that_hosts_error() -> None:
    async def per_host(host: Host, slot: HostSlot) -> HostResult:
        if host.name == "h001":
            raise RuntimeError("surprise\nsecond line")
        return ok(host)

    batch = asyncio.run(fanout(hosts(3), per_host, 10, handle_sigint=False))
    failed = {r.host: r for r in batch.failed}
    assert list(failed) == ["h001"]
    assert failed["h001"].status is Status.ERROR
    assert failed["h001"].error == "RuntimeError: surprise"
    assert batch.exit_code == 1


def test_a_host_failing_with_several_errors_at_once_names_each_distinct_one() -> None:
    async def fail(error: Exception) -> None:
        raise error

    async def per_host(host: Host, slot: HostSlot) -> HostResult:
        async with asyncio.TaskGroup() as group:
            group.create_task(fail(ValueError("bad value")))
            group.create_task(fail(ValueError("bad value")))
            group.create_task(fail(OSError("disk gone")))
        return ok(host)

    (result,) = asyncio.run(fanout(hosts(1), per_host, 1, handle_sigint=False))
    assert result.error == "ValueError: bad value; OSError: disk gone"


def test_streams_lost_together_are_one_connection_lost_with_each_distinct_detail() -> None:
    lost = asyncssh.ConnectionLost("Connection lost")
    assert connection_lost(ExceptionGroup("streams", [lost, lost])) == "connection lost"
    reset = ConnectionResetError("reset by peer")
    both = ExceptionGroup("streams", [lost, ExceptionGroup("inner", [reset, reset])])
    assert connection_lost(both) == "connection lost: reset by peer"


def test_fanout_interrupted_by_sigint_returns_completed_hosts_marked_interrupted() -> None:
    hung_up: list[str] = []

    async def per_host(host: Host, slot: HostSlot) -> HostResult:
        if host.name != "h000":
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                hung_up.append(host.name)
                raise
        return ok(host)

    async def main() -> tuple[float, object]:
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, os.kill, os.getpid(), 2)
        started = time.monotonic()
        batch = await fanout(hosts(4), per_host, 10)
        return time.monotonic() - started, batch

    elapsed, batch = run_loop(main)
    assert elapsed < 5
    assert batch.interrupted and batch.exit_code == 130  # type: ignore[attr-defined]
    assert [r.host for r in batch] == ["h000"]  # type: ignore[attr-defined]
    assert sorted(hung_up) == ["h001", "h002", "h003"]


def test_variable_values_reach_the_shell_on_stdin_never_in_the_command_line() -> None:
    command = RemoteCommand("echo $A", env=(("A", "x y'z"), ("B", "")))
    assert "x y" not in command.script()
    assert command.preamble() == b"x y'z\n\n"


@pytest.mark.parametrize("name", ["web01", "a'b", "two words", "$(touch pwned)", "-n", "x\ny"])
def test_herd_host_is_the_hosts_name_set_in_the_command_line(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = Host(name, "localhost", local=True)
    command = RemoteCommand('printf "%s|" "$HERD_HOST"; ls', env=(("V", "v"),)).for_host(host)
    assert command.preamble() == b"v\n"  # only --env's values travel on stdin
    assert command.script().startswith("HERD_HOST=")
    monkeypatch.chdir(tmp_path)
    result = asyncio.run(run_locally(host, command))
    assert result.ok, result.stderr.text
    assert result.stdout.text == name + "|"  # intact, and nothing ran (ls lists nothing)


def test_a_plain_command_has_nothing_to_send_on_stdin() -> None:
    command = RemoteCommand("uptime").for_host(Host("web01", "192.0.2.1"))
    assert command.preamble() == b""  # no packet of its own for an empty stdin


def test_env_may_set_herd_host_otherwise() -> None:
    host = Host("web01", "localhost", local=True)
    command = RemoteCommand('echo "$HERD_HOST"', env=(("HERD_HOST", "other"),)).for_host(host)
    assert asyncio.run(run_locally(host, command)).stdout.text == "other\n"


def test_a_name_no_command_line_can_hold_is_read_from_stdin() -> None:
    command = RemoteCommand("true").for_host(Host("a\0b", "192.0.2.1"))
    assert "\0" not in command.script()
    assert command.preamble() == b"a\0b\n"


def test_sudo_without_a_password_never_waits_for_one() -> None:
    script = RemoteCommand("id -u", become=Become()).script()
    assert script.startswith("sudo -n -u root -- sh -c ") and "-S" not in script


def test_sudo_password_goes_first_on_stdin_and_never_in_the_command_line() -> None:
    command = RemoteCommand("cat", become=Become(password="s3cret"), env=(("V", "v"),))
    assert "s3cret" not in command.script()
    assert command.preamble() == b"s3cret\nv\n"
    assert "s3cret" not in repr(command)


@pytest.mark.parametrize(
    "value", ["plain", "two words", "back\\slash \\n not a newline", "line\nbreak\n", " x\t", ""]
)
def test_any_variable_value_arrives_intact(value: str) -> None:
    command = RemoteCommand('printf "%s|" "$V"', env=(("V", value),))
    result = asyncio.run(run_locally(LOCAL, command))
    assert result.ok, result.stderr.text
    assert result.stdout.text == value + "|"


FAKE_SUDO = """#!/bin/sh
# -S -p '' -v: check the password line on stdin; -n -u USER -- CMD...: run CMD once validated
if [ "$1" = "-S" ]; then
    IFS= read -r password
    [ "$password" = "s3cret" ] && touch "$FAKE_SUDO_DIR/validated" && exit 0
    echo "Sorry, try again." >&2; exit 1
fi
[ -e "$FAKE_SUDO_DIR/validated" ] || { echo "sudo: a password is required" >&2; exit 1; }
shift 4; exec "$@"
"""


def fake_sudo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = tmp_path / "sudo"
    tool.write_text(FAKE_SUDO)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SUDO_DIR", str(tmp_path))


def test_sudo_password_reaches_sudo_but_not_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_sudo(tmp_path, monkeypatch)
    feed = tmp_path / "feed"
    feed.write_bytes(b"data\n")
    command = RemoteCommand("cat", become=Become(password="s3cret"), stdin=feed)
    result = asyncio.run(run_locally(LOCAL, command))
    assert result.ok, result.stderr.text
    assert result.stdout.text == "data\n"


def test_wrong_sudo_password_fails_the_host_with_a_plain_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_sudo(tmp_path, monkeypatch)
    command = RemoteCommand("echo ran", become=Become(password="wrong"))
    result = asyncio.run(run_locally(LOCAL, command))
    assert result.status is Status.FAILED and result.stdout.text == ""
    assert "herd: sudo did not accept the password" in result.stderr.text


def test_local_host_runs_through_the_same_result_shape() -> None:
    command = RemoteCommand("echo out; echo err >&2; exit 3", env=(("V", "1"),))
    result = asyncio.run(run_locally(LOCAL, command))
    assert result.status is Status.FAILED and result.exit_status == 3
    assert result.stdout.text == "out\n" and result.stderr.text == "err\n"
    assert result.error == "command exited with status 3"


def test_local_host_feeds_stdin_and_exports_variables(tmp_path: Path) -> None:
    feed = tmp_path / "feed"
    feed.write_bytes(b"in\n")
    command = RemoteCommand('cat; echo "$V"', env=(("V", "two words"),), stdin=feed)
    result = asyncio.run(run_locally(LOCAL, command))
    assert result.ok and result.stdout.text == "in\ntwo words\n"


def test_local_command_past_its_timeout_is_stopped_with_its_children() -> None:
    marker = f"herd-test-{os.getpid()}-{time.monotonic_ns()}"
    command = RemoteCommand(f"sh -c 'sleep 30; echo {marker}' & wait", timeout=0.3)
    started = time.monotonic()
    result = asyncio.run(run_locally(LOCAL, command))
    assert time.monotonic() - started < 5
    assert result.status is Status.TIMEOUT
    assert result.error == "command still running after 0.3 s: stopped"
    survivors = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).find(marker) >= 0]
    assert survivors == []


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            return stream.read().decode(errors="replace")
    except OSError:
        return ""


def test_huge_output_is_capped_in_memory_but_counted_and_hashed_whole() -> None:
    size = 20 * 1024 * 1024
    command = RemoteCommand(f"head -c {size} /dev/zero", output_cap=64 * 1024)
    result = asyncio.run(run_locally(LOCAL, command))
    assert result.ok
    assert len(result.stdout.data) == 64 * 1024
    assert result.stdout.total == size and result.stdout.truncated
    assert result.stdout.sha256 == hashlib.sha256(b"\0" * size).hexdigest()


@pytest.mark.parametrize("name", ["c", "m", "nettle", "no-such-library-herd"])
def test_cheap_library_probe_agrees_with_ctypes(name: str) -> None:
    expected = ctypes.util.find_library(name)
    found = _find_library_without_forking(name)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        ctypes.CDLL(found)  # loads the same way asyncssh would


def test_a_slot_stepped_out_lets_another_host_work_and_the_parking_is_bounded() -> None:
    from herd.operation.fanout import Slot, _Parking

    async def main() -> None:
        gate, parking = asyncio.Semaphore(1), _Parking(limit=1)
        first, second, third = Slot(gate, parking), Slot(gate, parking), Slot(gate, parking)
        await first.acquire()
        assert first.step_out() and parking.count == 1
        await asyncio.wait_for(second.acquire(), 1)  # the freed fork is usable at once
        assert not second.step_out()  # parking is full: it keeps its slot
        second.release()
        await third.acquire()
        third.release()
        await first.step_in()
        assert first.held and parking.count == 0
        first.release()
        assert not gate.locked()
        await second.acquire()
        assert second.step_out()
        second.release()  # done while waiting outside: nothing leaks
        assert parking.count == 0 and not gate.locked()

    asyncio.run(main())
