"""The openssh lab fleet: real sshd processes, one per host, reachable with strict host keys."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest

from herd.errors import LabError
from herd.lab import Lab, LabHost, ProcessState

from .conftest import Fleet, need_sshd

pytestmark = pytest.mark.system

# The ancestry of the shell that runs the command: lets a test see which sshd served it.
ANCESTRY = 'p=$$; while [ "$p" -gt 1 ]; do echo "$p"; read -r _ _ _ p _ < /proc/$p/stat; done'


async def connect(fleet: Fleet, host: LabHost, timeout: float = 10) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        host.address,
        host.port,
        username=fleet.user,
        client_keys=[str(fleet.client_key)],
        known_hosts=str(fleet.known_hosts),
        agent_path=None,
        config=None,
        connect_timeout=timeout,
    )


async def host_evidence(fleet: Fleet, host: LabHost) -> tuple[str, list[int], str]:
    """The host key fingerprint the host showed, its shell's ancestry, and $SHLVL.

    Also checks the command learns its lab host's name from $HERD_LAB_HOST.
    """
    async with await connect(fleet, host) as conn:
        key = conn.get_server_host_key()
        assert key is not None
        command = ANCESTRY + '; echo "SHLVL=$SHLVL"; echo "HERD_LAB_HOST=$HERD_LAB_HOST"'
        done = await conn.run(command, check=True, timeout=10)
    lines = str(done.stdout).split()
    pids = [int(line) for line in lines if line.isdigit()]
    assert lines[-1] == f"HERD_LAB_HOST={host.name}"  # every lab host shares one hostname
    return key.get_fingerprint("sha256"), pids, lines[-2]


def test_every_fleet_host_is_its_own_sshd_with_the_key_known_hosts_holds(
    lab_fleet: Fleet,
) -> None:
    hosts = lab_fleet.hosts
    assert [h.name for h in hosts] == [
        *(f"web0{i}" for i in range(1, 5)),
        "db01",
        "db02",
        "cache01",
        "cache02",
    ]
    assert [h.address for h in hosts] == [f"127.0.1.{i}" for i in range(1, 9)]

    async def gather() -> list[tuple[str, list[int], str]]:
        return await asyncio.gather(*(host_evidence(lab_fleet, h) for h in hosts))

    evidence = asyncio.run(gather())
    fingerprints = [fingerprint for fingerprint, _, _ in evidence]
    assert fingerprints == [h.fingerprint for h in hosts]  # strict checking passed with these
    assert len(set(fingerprints)) == len(hosts)
    assert len({h.pid for h in hosts}) == len(hosts)
    for host, (_, ancestry, shlvl) in zip(hosts, evidence, strict=True):
        assert host.pid in ancestry, f"{host.name}: not served by sshd {host.pid}"
        cmdline = Path(f"/proc/{host.pid}/cmdline").read_bytes()
        assert b"sshd" in cmdline
        assert shlvl == "SHLVL=2"  # bash saw a parent shell: no ~/.bashrc for commands


def test_fleet_inventory_names_every_host_with_the_lab_keys(lab_fleet: Fleet) -> None:
    import yaml

    document = yaml.safe_load(lab_fleet.inventory.read_text())
    common = document["all"]["vars"]
    assert common["ansible_port"] == lab_fleet.port
    assert common["ansible_ssh_private_key_file"] == str(lab_fleet.client_key)
    assert common["known_hosts"] == str(lab_fleet.known_hosts)
    children = document["all"]["children"]
    assert sorted(children) == ["cache", "db", "web"]
    assert children["web"]["hosts"]["web03"] == {"ansible_host": "127.0.1.3"}


def test_a_stopped_host_refuses_connections_until_restarted(
    make_fleet: Callable[..., Fleet],
) -> None:
    fleet = make_fleet(2)
    old_pid = fleet.host("db01").pid
    fleet.stop("db01")
    assert {h.name: s for h, s in fleet.status()}["db01"] is ProcessState.GONE

    with pytest.raises(ConnectionRefusedError):
        asyncio.run(connect(fleet, fleet.host("db01")))
    new_pid = fleet.restart("db01")
    assert new_pid != old_pid
    fingerprint, ancestry, _ = asyncio.run(host_evidence(fleet, fleet.host("db01")))
    assert new_pid in ancestry
    assert fingerprint == fleet.host("db01").fingerprint


def test_a_frozen_host_hangs_in_the_handshake_until_thawed(
    make_fleet: Callable[..., Fleet],
) -> None:
    fleet = make_fleet(2)
    fleet.freeze("web01")
    assert {h.name: s for h, s in fleet.status()}["web01"] is ProcessState.FROZEN
    with pytest.raises((asyncio.TimeoutError, asyncssh.Error)):
        asyncio.run(connect(fleet, fleet.host("web01"), timeout=1))
    fleet.thaw("web01")
    fingerprint, _, _ = asyncio.run(host_evidence(fleet, fleet.host("web01")))
    assert fingerprint == fleet.host("web01").fingerprint


def test_a_regenerated_host_key_fails_strict_checking(make_fleet: Callable[..., Fleet]) -> None:
    fleet = make_fleet(2, groups="web=2")
    old = fleet.host("web02").fingerprint
    new = fleet.regenerate_host_key("web02")
    assert new != old
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(connect(fleet, fleet.host("web02")))
    # the other host is untouched
    fingerprint, _, _ = asyncio.run(host_evidence(fleet, fleet.host("web01")))
    assert fingerprint == fleet.host("web01").fingerprint


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


def test_down_stops_every_sshd_and_open_session_of_the_lab(
    make_fleet: Callable[..., Fleet],
) -> None:
    fleet = make_fleet(3)
    pids = {h.pid for h in fleet.hosts}

    async def down_while_a_session_runs() -> None:
        async with await connect(fleet, fleet.host("web01")) as conn:
            session = await conn.create_process("sleep 30")
            await asyncio.sleep(0.2)
            stopped = await asyncio.to_thread(fleet.down)
            assert set(stopped) == pids
            await asyncio.wait_for(session.wait_closed(), 10)

    asyncio.run(down_while_a_session_runs())
    assert processes_mentioning(str(fleet.dir)) == []
    assert not fleet.files.state.exists()


def test_a_host_that_cannot_bind_fails_lab_up_and_leaves_nothing_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_sshd()
    # another program grabs web02's address after the pre-flight check passed
    monkeypatch.setattr("herd.lab.fleet._check_ports_free", lambda hosts: None)
    with socket.socket() as taken:
        taken.bind(("127.0.1.2", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LabError, match=r"web02 \(127\.0\.1\.2:\d+\) did not start: .*in use"):
            Lab.up(tmp_path, 3, engine="openssh", groups=[("web", 3)], port=port)
    assert processes_mentioning(str(tmp_path)) == []
    assert not (tmp_path / "lab.json").exists()
