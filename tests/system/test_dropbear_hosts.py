"""herd on Dropbear hosts with a BusyBox userland: what differed from OpenSSH, fixed.

The everyday and fault tests run on these hosts too (``@both_engines``); here
is what only minimal hosts show: a shell that leads no process group, a host
without setsid or without a hash tool, a server that crashes on an algorithm it
advertises; and a host dropping mid-run, on both servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import Fleet, both_engines
from .dropbear import DropbearFleet
from .test_run_faults import HERD, MARK, herd, marked, rows

pytestmark = pytest.mark.system


def test_a_host_without_setsid_says_a_timed_out_command_may_still_be_running(
    odd_hosts: DropbearFleet, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    plain = herd(home, odd_hosts.inventory, "run", "nosetsid", "--json", "--", "echo hi; exit 3")
    row = rows(plain.stdout)["nosetsid"]
    assert (row["stdout"], row["stderr"], row["exit_status"]) == ("hi\n", "", 3)
    marker = f"herd-nosetsid-{os.getpid()}-{time.monotonic_ns()}"
    done = herd(
        home, odd_hosts.inventory, "run", "nosetsid", "-t", "1", "--json",
        "--env", f"{MARK}={marker}", "--", "sleep 302; echo done",
    )  # fmt: skip
    left = marked(marker)
    try:
        row = rows(done.stdout)["nosetsid"]
        assert (row["status"], row["error"]) == (
            "timeout",
            "command still running after 1 s: the command may still be running"
            " (the host has no setsid, so herd could signal only its shell)",
        )
        assert set(left.values()) == {"nosetsid"}  # the sleep runs on, as herd said
    finally:
        for pid in left:  # the sleep this test started, by PID
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("mode", ["accept-new", "off"])
def test_first_contact_with_dropbear_hosts_connects_as_ssh_does(
    dropbear_fleet: DropbearFleet, tmp_path: Path, mode: str
) -> None:
    known = tmp_path / "known_hosts"  # no host in it yet
    first = herd(
        tmp_path / "home", dropbear_fleet.inventory, "run", "web", "--json",
        "--host-keys", mode, "--known-hosts", str(known), "--", "echo hi",
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert {row["stdout"] for row in rows(first.stdout).values()} == {"hi\n"}
    if mode == "accept-new":  # the keys recorded are the hosts' own: strict trusts them now
        assert known.read_text().count(" ssh-ed25519 ") == 4
        again = herd(
            tmp_path / "home", dropbear_fleet.inventory, "run", "web", "--json",
            "--host-keys", "strict", "--known-hosts", str(known), "--", "echo hi",
        )  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr


@both_engines
def test_a_host_that_drops_mid_run_is_unreachable_with_the_connection_lost(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    marker = f"herd-drop-{os.getpid()}-{time.monotonic_ns()}"
    command = 'case "$HERD_LAB_HOST" in cache01) echo fine;; *) sleep 60; echo late;; esac'
    argv = [*HERD, "--home", str(tmp_path / "home"), "-i", str(lab_fleet.inventory), "run",
            "cache", "--json", "--env", f"{MARK}={marker}", "--", command]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while "cache02" not in marked(marker, but=process.pid).values():
            time.sleep(0.05)  # the test's timeout bounds this
        lab_fleet.stop("cache02")  # its server and every session it serves: the link drops
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, err
    by_host = rows(out)
    assert by_host["cache01"]["status"] == "ok"
    assert by_host["cache02"]["status"] == "unreachable"
    # what the error adds, if anything: a host killed with bytes unread may reset the link
    assert str(by_host["cache02"]["error"]).startswith("connection lost")


def test_everyday_commands_work_on_hosts_without_sftp_a_hash_tool_or_setsid(
    odd_hosts: DropbearFleet, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    done = herd(home, odd_hosts.inventory, "run", "odd", "--json", "--", 'echo "$HERD_LAB_HOST"')
    assert done.returncode == 0, done.stderr
    assert {host: row["stdout"] for host, row in rows(done.stdout).items()} == {
        name: f"{name}\n" for name in odd_hosts.names()
    }
    gathered = herd(home, odd_hosts.inventory, "run", "odd", "-b", "--", "echo same")
    assert gathered.stdout.splitlines() == ["──── nohash,nosetsid,nosftp (3) ────", "same"]


def test_a_plain_file_is_pushed_and_pulled_on_a_host_without_a_hash_tool(
    odd_hosts: DropbearFleet, tmp_path: Path
) -> None:
    home, remote = tmp_path / "home", tmp_path / "remote"
    source = tmp_path / "app.conf"
    source.write_bytes(os.urandom(100_000))
    missing = herd(home, odd_hosts.inventory, "run", "nohash", "--", "command -v sha256sum")
    assert missing.returncode == 1  # what push and pull would verify with is not there
    pushed = herd(home, odd_hosts.inventory, "push", "nohash", str(source), f"{remote}/",
                  "--mkdir", "--json")  # fmt: skip
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert (remote / "app.conf").read_bytes() == source.read_bytes()
    pulled = herd(home, odd_hosts.inventory, "pull", "nohash", f"{remote}/app.conf",
                  str(tmp_path / "back"), "--json")  # fmt: skip
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    landed = tmp_path / "back" / "nohash" / remote.relative_to("/") / "app.conf"
    assert landed.read_bytes() == source.read_bytes()


def test_push_and_pull_fall_back_to_commands_on_a_host_without_an_sftp_server(
    odd_hosts: DropbearFleet, tmp_path: Path
) -> None:
    home, remote = tmp_path / "home", tmp_path / "remote"
    remote.mkdir()
    (remote / "app.conf").write_text("on the host\n")
    source = tmp_path / "new.conf"
    source.write_text("x = 1\n")
    pushed = herd(home, odd_hosts.inventory, "push", "nosftp:nohash", str(source), f"{remote}/",
                  "--json")  # fmt: skip
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert {row["status"] for row in rows(pushed.stdout).values()} == {"ok"}
    assert (remote / "new.conf").read_text() == "x = 1\n"
    pulled = herd(home, odd_hosts.inventory, "pull", "nosftp:nohash", f"{remote}/app.conf",
                  str(tmp_path / "back"), "--json")  # fmt: skip
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    for name in ("nosftp", "nohash"):
        landed = tmp_path / "back" / name / remote.relative_to("/") / "app.conf"
        assert landed.read_text() == "on the host\n"
    assert sorted(p.name for p in remote.iterdir()) == ["app.conf", "new.conf"]
    # with --become, herd looks for the server program itself, then falls back as that user
    source.write_text("x = 2\n")
    done = herd(home, odd_hosts.inventory, "push", "nosftp", str(source), f"{remote}/",
                "--become", "--json")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (remote / "new.conf").read_text() == "x = 2\n"
    # a fallback that cannot run either still names the missing server
    reason = "the host has no SFTP server (sh: doas: not found); over plain commands:"
    for verb, args in [
        ("push", [str(source), f"{remote}/"]),
        ("pull", [f"{remote}/app.conf", str(tmp_path / "doas")]),
    ]:
        done = herd(home, odd_hosts.inventory, verb, "nosftp", *args,
                    "--become", "--become-method", "doas", "--json")  # fmt: skip
        assert rows(done.stdout)["nosftp"]["error"] == f"{reason} sh: doas: not found"
    assert not (tmp_path / "doas" / "nosftp").exists()
