"""The builtin engine: one asyncssh process serving every host, no sshd needed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncssh
import pytest

from herd.errors import LabError
from herd.lab import LabHost, ProcessState
from herd.lab.processes import descendants

from .conftest import Fleet, start_fleet
from .test_lab_fleet import connect, processes_mentioning

pytestmark = pytest.mark.system


@pytest.fixture(scope="module")
def builtin_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One builtin fleet shared by the tests that leave it as they found it."""
    fleet = start_fleet(tmp_path_factory.mktemp("builtin"), 3, engine="builtin")
    try:
        yield fleet
    finally:
        fleet.down()


def test_every_builtin_host_shows_its_own_key_and_runs_in_its_own_home(
    builtin_fleet: Fleet,
) -> None:
    fleet = builtin_fleet
    assert fleet.engine == "builtin"
    assert len({h.pid for h in fleet.hosts}) == 1  # one process for the whole fleet

    async def probe(host: LabHost) -> tuple[str, str]:
        async with await connect(fleet, host) as conn:
            key = conn.get_server_host_key()
            assert key is not None
            command = 'pwd; echo "$HOME"; echo "$HERD_LAB_HOST"'
            done = await conn.run(command, check=True, timeout=10)
        return key.get_fingerprint("sha256"), str(done.stdout)

    async def probe_all() -> list[tuple[str, str]]:
        return await asyncio.gather(*(probe(h) for h in fleet.hosts))

    for host, (fingerprint, out) in zip(fleet.hosts, asyncio.run(probe_all()), strict=True):
        assert fingerprint == host.fingerprint
        home = fleet.files.home(host.name)
        assert out.splitlines() == [str(home), str(home), host.name]
    assert [s for _, s in fleet.status()] == [ProcessState.RUNNING] * 3


def test_builtin_passes_exit_status_stdout_stderr_and_stdin_through(
    builtin_fleet: Fleet,
) -> None:
    async def run() -> tuple[asyncssh.SSHCompletedProcess, asyncssh.SSHCompletedProcess]:
        async with await connect(builtin_fleet, builtin_fleet.host("web01")) as conn:
            failed = await conn.run("echo out; echo err >&2; exit 7", timeout=10)
            piped = await conn.run("wc -c; head -c 1000000 /dev/zero", input="x" * 5000, timeout=10)
        return failed, piped

    failed, piped = asyncio.run(run())
    assert (failed.exit_status, failed.stdout, failed.stderr) == (7, "out\n", "err\n")
    out = str(piped.stdout)
    assert out.startswith("5000\n")
    assert len(out) == len("5000\n") + 1_000_000
    assert piped.exit_status == 0


def test_builtin_sftp_is_rooted_in_the_host_directory(builtin_fleet: Fleet, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text("hello\n")

    async def transfer() -> list[str]:
        conn = await connect(builtin_fleet, builtin_fleet.host("db01"))
        async with conn, conn.start_sftp_client() as sftp:
            await sftp.put(str(source), "notes.txt")
            await sftp.put(str(source), "/../../escape.txt")
            return sorted(await sftp.listdir("/"))

    assert asyncio.run(transfer()) == [".", "..", "escape.txt", "notes.txt"]
    home = builtin_fleet.files.home("db01")
    assert (home / "notes.txt").read_text() == "hello\n"
    assert (home / "escape.txt").exists()  # "/../.." stayed inside the root
    assert not (builtin_fleet.dir / "hosts" / "escape.txt").exists()


def test_builtin_refuses_a_client_key_it_does_not_know(builtin_fleet: Fleet) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    host = builtin_fleet.host("web01")

    async def attempt() -> None:
        await asyncssh.connect(
            host.address,
            host.port,
            username=builtin_fleet.user,
            client_keys=[stranger],
            known_hosts=str(builtin_fleet.known_hosts),
            agent_path=None,
            config=None,
            connect_timeout=10,
        )

    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(attempt())


def test_builtin_lab_down_stops_the_server_and_its_commands(
    make_fleet: Callable[..., Fleet],
) -> None:
    builtin_fleet = make_fleet(2, engine="builtin")
    with pytest.raises(LabError, match="only an openssh lab"):
        builtin_fleet.stop("web01")

    async def down_during_a_command() -> None:
        async with await connect(builtin_fleet, builtin_fleet.host("db01")) as conn:
            session = await conn.create_process("sleep 30")
            await asyncio.sleep(0.3)
            assert await asyncio.to_thread(builtin_fleet.down)
            await asyncio.wait_for(session.wait_closed(), 10)

    asyncio.run(down_during_a_command())
    assert processes_mentioning(str(builtin_fleet.dir)) == []


def test_builtin_kills_a_command_whose_client_went_away(builtin_fleet: Fleet) -> None:
    server = builtin_fleet.state.server_pid
    assert server is not None

    def sleepers() -> list[int]:
        found = []
        for pid in descendants([server]):
            try:
                if b"31.5" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                continue
        return found

    async def leave_a_command_running() -> None:
        async with await connect(builtin_fleet, builtin_fleet.host("web01")) as conn:
            await conn.create_process("sleep 31.5; echo never")
            for _ in range(100):
                if sleepers():
                    break
                await asyncio.sleep(0.05)
            assert sleepers()

    asyncio.run(leave_a_command_running())
    for _ in range(100):
        if not sleepers():
            break
        time.sleep(0.05)
    assert sleepers() == []


def test_builtin_passes_a_client_signal_to_the_command(builtin_fleet: Fleet) -> None:
    async def interrupt() -> int | None:
        async with await connect(builtin_fleet, builtin_fleet.host("web01")) as conn:
            process = await conn.create_process("sleep 30")
            await asyncio.sleep(0.3)
            process.send_signal("TERM")
            done = await asyncio.wait_for(process.wait(), 10)
            return done.exit_status

    assert asyncio.run(interrupt()) == 128 + 15


def test_hosts_beyond_254_listen_on_the_next_loopback_block(
    make_fleet: Callable[..., Fleet],
) -> None:
    fleet = make_fleet(255, groups="node=255", engine="builtin")
    host = fleet.host("node255")
    assert host.address == "127.0.2.1"

    async def probe() -> str:
        async with await connect(fleet, host) as conn:
            key = conn.get_server_host_key()
            assert key is not None
            return key.get_fingerprint("sha256")

    assert asyncio.run(probe()) == host.fingerprint
