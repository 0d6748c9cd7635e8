"""``herd run`` through gateways (``herd_gateway``), on the real OpenSSH fleet.

The gateways are lab hosts too: herd logs in to one, runs ``herd gateway``
there (this checkout's, with a HOME of its own, see ``_gateway_home``), and the
gateway logs in to its hosts with its own keys. Each command appends to a file
per lab host, so a host run twice would show.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from herd.core.audit import AuditLog

from .conftest import Fleet
from .test_run_faults import HERD, MARK, herd, marked, rows, wait_unmarked

pytestmark = [pytest.mark.system, pytest.mark.timeout(120)]

_GATEWAY_MARK = "HERD_GATEWAY_TEST"  # in each gateway's environment: which one it is


def _gateway_home(fleet: Fleet, tmp_path: Path, *, keys: bool = True) -> Path:
    """The gateways' HOME: an ssh config naming a host herd cannot name, and their own key
    (else they have only the agent herd forwards)."""
    home = tmp_path / "gateway-home"
    (home / ".ssh").mkdir(parents=True)
    own_key = f"Host *\n  IdentityFile {fleet.client_key}\n" if keys else ""
    (home / ".ssh" / "config").write_text(
        f"Host herd-hidden-db02\n  HostName {fleet.host('db02').address}\n{own_key}"
    )
    return home


def _inventory(
    fleet: Fleet,
    tmp_path: Path,
    gateways: dict[str, str],
    *,
    hidden: str | None = None,
    marker: str = "",
    keys: bool = True,
) -> Path:
    """The fleet's inventory, with ``herd_gateway`` set per group or host as ``gateways`` says.

    ``hidden``: add host hidden01, whose address only the gateways' ssh config
    knows, behind that gateway.
    """
    document = yaml.safe_load(fleet.inventory.read_text())
    home = _gateway_home(fleet, tmp_path, keys=keys)
    command = (
        f"HOME={shlex.quote(str(home))} {_GATEWAY_MARK}={marker}-$HERD_LAB_HOST"
        f" {shlex.quote(sys.executable)} -m herd gateway"
    )
    document["all"]["vars"]["herd_gateway_command"] = command
    children = document["all"]["children"]
    for name, gateway in gateways.items():
        if name in children:
            children[name].setdefault("vars", {})["herd_gateway"] = gateway
            continue
        for group in children.values():
            if name in group["hosts"]:
                group["hosts"][name] = {**(group["hosts"][name] or {}), "herd_gateway": gateway}
    if hidden is not None:
        entry = {"ansible_host": "herd-hidden-db02", "herd_gateway": hidden}
        children["hidden"] = {"hosts": {"hidden01": entry}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def _counting(runs: Path, then: str = "") -> str:
    """A command that appends its lab host's name to ``runs``, then does ``then``."""
    return f"echo $HERD_LAB_HOST >> {shlex.quote(str(runs))}; {then} echo on $HERD_LAB_HOST"


def _runs(runs: Path) -> list[str]:
    return sorted(runs.read_text().split()) if runs.exists() else []


def _via(home: Path) -> dict[str, list[str]]:
    with AuditLog(home / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
        assert record is not None and record.detail is not None
        return {route: sorted(names) for route, names in record.detail["via"].items()}


def test_a_host_only_its_gateway_can_name_is_reached_through_it(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    inventory = _inventory(lab_fleet, tmp_path, {}, hidden="web01")
    home = tmp_path / "home"
    done = herd(home, inventory, "run", "hidden01:web02", "--json", "--", _counting(runs))
    assert done.returncode == 0, done.stderr
    by_host = rows(done.stdout)
    assert by_host["hidden01"]["status"] == "ok"
    assert by_host["hidden01"]["stdout"] == "on db02\n"  # the name led to db02
    assert _runs(runs) == ["db02", "web02"]
    assert _via(home) == {"web01": ["hidden01"]}
    shown = subprocess.run(
        [*HERD, "--home", str(home), "log", "show", "1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert "via" in shown.stdout and "web01: hidden01 (1)" in shown.stdout, shown.stdout
    # herd itself cannot name it: without the gateway, hidden01 is not reached at all
    direct = yaml.safe_load(inventory.read_text())
    del direct["all"]["children"]["hidden"]["hosts"]["hidden01"]["herd_gateway"]
    inventory.write_text(yaml.safe_dump(direct))
    alone = herd(home, inventory, "run", "hidden01", "--json", "--", _counting(runs))
    assert rows(alone.stdout)["hidden01"]["status"] == "unreachable"
    assert _runs(runs) == ["db02", "web02"]


def test_two_gateways_share_out_the_groups(lab_fleet: Fleet, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    inventory = _inventory(lab_fleet, tmp_path, {"db": "web01", "cache": "web02"})
    home = tmp_path / "home"
    done = herd(home, inventory, "run", "all", "--json", "--", _counting(runs))
    assert done.returncode == 0, done.stderr
    by_host = rows(done.stdout)
    assert sorted(by_host) == sorted(lab_fleet.names())
    for name, row in by_host.items():
        assert (row["status"], row["stdout"]) == ("ok", f"on {name}\n")
    assert _runs(runs) == sorted(lab_fleet.names())
    assert _via(home) == {"web01": ["db01", "db02"], "web02": ["cache01", "cache02"]}


def test_a_chain_of_two_gateways(lab_fleet: Fleet, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    gateways = {"web02": "web01", "cache": "web02", "db01": "web01"}
    inventory = _inventory(lab_fleet, tmp_path, gateways, hidden="web02")
    home = tmp_path / "home"
    done = herd(home, inventory, "run", "all", "--json", "--", _counting(runs))
    assert done.returncode == 0, done.stderr
    by_host = rows(done.stdout)
    assert {name: row["status"] for name, row in by_host.items()} == dict.fromkeys(
        [*lab_fleet.names(), "hidden01"], "ok"
    )
    assert by_host["hidden01"]["stdout"] == "on db02\n"
    assert _runs(runs) == sorted([*lab_fleet.names(), "db02"])
    assert _via(home) == {
        "web01": ["db01", "web02"],
        "web01 > web02": ["cache01", "cache02", "hidden01"],
    }


def test_a_gateway_logs_in_with_the_agent_herd_forwards(lab_fleet: Fleet, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    inventory = _inventory(lab_fleet, tmp_path, {"db": "web01"}, keys=False)
    socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with_agent = {**os.environ, "SSH_AUTH_SOCK": str(socket)}
        subprocess.run(["ssh-add", "-q", str(lab_fleet.client_key)], env=with_agent,
                       check=True, timeout=10, capture_output=True)  # fmt: skip
        run = [*HERD, "--home", str(tmp_path / "home"), "-i", str(inventory), "run", "db",
               "--json", "--", _counting(runs)]  # fmt: skip
        done = subprocess.run(
            run, env=with_agent, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        assert {n: r["status"] for n, r in rows(done.stdout).items()} == {
            "db01": "ok",
            "db02": "ok",
        }
        without = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        alone = subprocess.run(
            run, env=without, capture_output=True, text=True, timeout=60, check=False
        )
        statuses = {n: r["status"] for n, r in rows(alone.stdout).items()}
        assert statuses == {"db01": "auth_failed", "db02": "auth_failed"}  # no key there
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    assert _runs(runs) == ["db01", "db02"]


def _gateway_pids(marker: str, gateway: str) -> list[int]:
    """The ``herd gateway`` processes started for this test on ``gateway``."""
    wanted = f"{_GATEWAY_MARK}={marker}-{gateway}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ:
            found.append(int(pid))
    return found


def _marker(kind: str) -> str:
    """A word in the gateways' command line that finds this test's herd gateway processes."""
    return f"herd-gw-{kind}-{os.getpid()}-{time.monotonic_ns()}"


def _herd_started(tmp_path: Path, inventory: Path, *args: str) -> subprocess.Popen[str]:
    """``herd ARGS`` with this test's home and inventory, started in the background."""
    return subprocess.Popen(
        [*HERD, "--home", str(tmp_path / "home"), "-i", str(inventory), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_a_gateway_killed_mid_run_loses_its_hosts_and_nothing_runs_twice(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    marker = _marker("kill")
    inventory = _inventory(lab_fleet, tmp_path, {"db": "web01", "cache": "web02"}, marker=marker)
    slow = "case $HERD_LAB_HOST in db*) sleep 60;; esac;"
    process = _herd_started(
        tmp_path, inventory, "run", "all", "--json", "--env", f"{MARK}={marker}", "--",
        _counting(runs, slow),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            {"db01", "db02"} <= set(marked(marker, but=process.pid).values())
        ):
            time.sleep(0.1)  # both db hosts run their command, through web01
        killed = _gateway_pids(marker, "web01")
        assert killed, "no herd gateway process on web01"
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in marked(marker, but=process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # the db hosts' sleeps, whose gateway is gone
    assert process.returncode == 1, stderr
    by_host = rows(stdout)
    assert sorted(by_host) == sorted(lab_fleet.names())
    for name in ("db01", "db02"):
        assert by_host[name]["status"] == "unreachable"
        assert str(by_host[name]["error"]).startswith("gateway web01 lost after "), by_host[name]
    for name in sorted(set(lab_fleet.names()) - {"db01", "db02"}):
        assert by_host[name]["status"] == "ok", by_host[name]
    assert _runs(runs) == sorted(lab_fleet.names())  # each host once: nothing ran again


def test_ctrl_c_reaches_the_commands_behind_gateways(lab_fleet: Fleet, tmp_path: Path) -> None:
    marker = _marker("int")
    gateways = {"db": "web01", "web02": "web01", "cache": "web02"}  # cache: through both
    inventory = _inventory(lab_fleet, tmp_path, gateways, marker=marker)
    behind = {"db01", "db02", "web02", "cache01", "cache02"}
    process = _herd_started(
        tmp_path, inventory, "run", "db:web02:cache", "--json", "--env", f"{MARK}={marker}",
        "--", "sleep 60",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            behind <= set(marked(marker, but=process.pid).values())
        ):
            time.sleep(0.1)
        assert _gateway_pids(marker, "web01") and _gateway_pids(marker, "web02")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert rows(stdout) == {}
    assert wait_unmarked(marker) == {}  # the remote commands got a hangup
    for gateway in ("web01", "web02"):
        deadline = time.monotonic() + 10
        while _gateway_pids(marker, gateway) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gateway_pids(marker, gateway) == []  # and the gateways ended


def test_a_gateway_that_cannot_be_reached_or_started_says_why(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    inventory = _inventory(lab_fleet, tmp_path, {"db": "nogw", "cache": "web01"})
    document = yaml.safe_load(inventory.read_text())
    unused = "127.0.1.250"  # no lab host listens there: connection refused
    document["all"]["children"]["gateways"] = {"hosts": {"nogw": {"ansible_host": unused}}}
    document["all"]["children"]["web"]["hosts"]["web01"] = {
        "ansible_host": lab_fleet.host("web01").address,
        "herd_gateway_command": "no-such-herd-here gateway",
    }
    inventory.write_text(yaml.safe_dump(document))
    done = herd(tmp_path / "home", inventory, "run", "db:cache:web02", "--json", "--",
                _counting(runs))  # fmt: skip
    assert done.returncode == 1, done.stderr
    by_host = rows(done.stdout)
    for name in ("db01", "db02"):
        assert (by_host[name]["status"], by_host[name]["error"]) == (
            "unreachable",
            "gateway nogw: connection refused",
        )
    for name in ("cache01", "cache02"):
        assert by_host[name]["status"] == "unreachable"
        error = str(by_host[name]["error"])
        assert error.startswith("gateway web01 lost after ") and "not found" in error, error
    assert by_host["web02"]["status"] == "ok"
    assert _runs(runs) == ["web02"]


def test_stdin_refuses_hosts_behind_a_gateway(lab_fleet: Fleet, tmp_path: Path) -> None:
    inventory = _inventory(lab_fleet, tmp_path, {"db": "web01"})
    home = tmp_path / "home"
    source = tmp_path / "file"
    source.write_text("x")
    done = herd(home, inventory, "run", "db", "--stdin", str(source), "--", "cat")
    assert done.returncode == 2, done.stderr
    assert (
        done.stderr
        == "herd: error: db01: reached through a gateway, where --stdin does not go yet\n"
    )


def test_a_second_hop_killed_loses_only_the_hosts_behind_it(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    marker = _marker("hop")
    gateways = {"db": "web01", "web02": "web01", "cache": "web02"}
    inventory = _inventory(lab_fleet, tmp_path, gateways, marker=marker)
    slow = "case $HERD_LAB_HOST in cache*) sleep 60;; esac;"
    process = _herd_started(
        tmp_path, inventory, "run", "db:cache", "--json", "--env", f"{MARK}={marker}", "--",
        _counting(runs, slow),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            {"cache01", "cache02"} <= set(marked(marker, but=process.pid).values())
        ):
            time.sleep(0.1)  # both cache hosts run their command, through web01 and web02
        killed = _gateway_pids(marker, "web02")
        assert killed, "no herd gateway process on web02"
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in marked(marker, but=process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # the cache hosts' sleeps, whose gateway is gone
    assert process.returncode == 1, stderr
    by_host = rows(stdout)
    for name in ("cache01", "cache02"):
        assert by_host[name]["status"] == "unreachable"
        assert str(by_host[name]["error"]).startswith("gateway web02 lost after "), by_host[name]
    for name in ("db01", "db02"):
        assert by_host[name]["status"] == "ok", by_host[name]
    assert _runs(runs) == ["cache01", "cache02", "db01", "db02"]  # each once
