"""``herd run -k``: the SSH password is asked once on the terminal and goes nowhere else."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from herd.operation.agent_protocol import AgentFiles
from tests.agent_support import stop_agent

from .test_run_local import run_on_terminal

PASSWORD = "correct horse battery"


class PasswordServer(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return (username, password) == ("bob", PASSWORD)


def greet(process: asyncssh.SSHServerProcess[str]) -> None:
    process.stdout.write("hello\n")
    process.exit(0)


@pytest.fixture
def password_server(private_agent: AgentFiles) -> Iterator[int]:
    """An asyncssh server with password login on loopback, in a thread; yields its port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    port: list[int] = []
    servers: list[asyncssh.SSHAcceptor] = []

    async def start() -> None:
        server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
            server_factory=PasswordServer,
            process_factory=greet,
        )
        servers.append(server)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    ready.wait(10)
    try:
        yield port[0]
    finally:
        stop_agent(private_agent)  # first: its kept connections end before the server does

        async def stop() -> None:
            for server in servers:
                server.close()
                await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_ask_pass_prompts_once_for_all_hosts_and_never_records_the_password(
    tmp_path: Path, isolated_env: Path, password_server: int
) -> None:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "[db]\n"
        f"db1 ansible_host=127.0.0.1 ansible_port={password_server} ansible_user=bob\n"
        f"db2 ansible_host=127.0.0.1 ansible_port={password_server} ansible_user=bob\n"
    )
    (tmp_path / ".ssh").mkdir()
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "herd", "-i", str(inventory), "run", "all", "-k",
            "--host-keys", "accept-new", "--known-hosts", str(tmp_path / "known_hosts"),
            "-o", str(out), "--", "greet"]  # fmt: skip
    env = {**os.environ, "HERD_HOME": str(isolated_env), "HOME": str(tmp_path)}
    env.pop("SSH_AUTH_SOCK", None)
    code, screen = run_on_terminal(argv, f"{PASSWORD}\n".encode(), env, prompt=b"SSH password:")
    assert code == 0, screen
    assert screen.count("SSH password:") == 1
    assert PASSWORD not in screen  # not echoed
    assert (out / "db1.out").read_text() == "hello\n"
    assert (out / "db2.out").read_text() == "hello\n"
    for path in isolated_env.iterdir():
        assert PASSWORD.encode() not in path.read_bytes(), path
