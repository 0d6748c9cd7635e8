"""Connection failures classified with a reason a person understands, against real servers.

An asyncssh server (and a silent TCP listener) on loopback inside the test
process; the OpenSSH fleet is exercised by the system tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh
import pytest

from herd.core.model import Host, Status
from herd.errors import SourceError
from herd.hosts.connect import ConnectOptions, Connector, HostFailure
from herd.hosts.hostkeys import HostKeyMode

USER = "bob"


class Server:
    def __init__(self, tmp: Path) -> None:
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key_path = tmp / "id_client"
        self.client_key.write_private_key(self.client_key_path)
        self.known_hosts = tmp / "known_hosts"
        self.port = 0
        self._server: asyncssh.SSHAcceptor | None = None

    async def start(self) -> None:
        authorized = asyncssh.import_authorized_keys(self.client_key.export_public_key().decode())
        self._server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[self.host_key],
            authorized_client_keys=authorized,
            process_factory=lambda process: process.exit(0),
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def trust(self, key: asyncssh.SSHKey | None = None) -> None:
        public = (key or self.host_key).export_public_key().decode().strip()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public}\n")

    def host(self, **changes: object) -> Host:
        fields: dict[str, object] = {
            "name": "web01",
            "address": "127.0.0.1",
            "port": self.port,
            "user": USER,
            "identity_files": (str(self.client_key_path),),
            "known_hosts": str(self.known_hosts),
        }
        fields.update(changes)
        return Host(**fields)  # type: ignore[arg-type]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def with_server(tmp_path: Path, body: Callable[[Server], Awaitable[None]]) -> None:
    """Run ``body`` against a fresh asyncssh server on loopback, then stop it."""

    async def main() -> None:
        running = Server(tmp_path)
        await running.start()
        try:
            await body(running)
        finally:
            await running.stop()

    asyncio.run(main())


async def failure_of(host: Host, **options: object) -> HostFailure:
    connector = Connector(ConnectOptions(agent=False, ssh_config=(), **options))  # type: ignore[arg-type]
    with pytest.raises(HostFailure) as caught:
        conn = await connector.connect(host)
        conn.close()
    return caught.value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_closed_port_is_unreachable_connection_refused(tmp_path: Path) -> None:
    async def main() -> None:
        host = Host("web09", "127.0.0.1", port=free_port(), known_hosts=str(tmp_path / "kh"))
        failure = await failure_of(host, connect_timeout=2.0)
        assert (failure.status, failure.reason) == (Status.UNREACHABLE, "connection refused")

    asyncio.run(main())


def test_host_that_accepts_but_never_speaks_is_no_ssh_banner_within_the_timeout(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)

        listener = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        try:
            host = Host("web05", "127.0.0.1", port=port, known_hosts=str(tmp_path / "kh"))
            started = asyncio.get_running_loop().time()
            failure = await failure_of(host, connect_timeout=0.5)
            assert asyncio.get_running_loop().time() - started < 3
            assert (failure.status, failure.reason) == (
                Status.UNREACHABLE,
                "no SSH banner within 0.5 s",
            )
        finally:
            for writer in accepted:
                writer.close()
            listener.close()
            await listener.wait_closed()

    asyncio.run(main())


def test_unknown_host_key_is_refused_in_strict_mode_naming_its_fingerprint(tmp_path: Path) -> None:
    async def body(server: Server) -> None:
        failure = await failure_of(server.host())
        fingerprint = server.host_key.get_fingerprint("sha256")
        assert failure.status is Status.HOSTKEY_UNKNOWN  # first contact, not an alarm
        assert failure.reason == (
            f"host key for web01 is unknown: {fingerprint} is not in {server.known_hosts}"
            " (trust it with --host-keys accept-new, or add it with ssh-keyscan)"
        )

    with_server(tmp_path, body)


def test_changed_host_key_is_a_mismatch_naming_the_new_fingerprint(tmp_path: Path) -> None:
    async def body(server: Server) -> None:
        server.trust(asyncssh.generate_private_key("ssh-ed25519"))
        for mode in (HostKeyMode.STRICT, HostKeyMode.ACCEPT_NEW):
            failure = await failure_of(server.host(), host_keys=mode)
            fingerprint = server.host_key.get_fingerprint("sha256")
            assert failure.status is Status.HOSTKEY_MISMATCH
            assert failure.reason.startswith(f"host key for web01 changed: {fingerprint} ")

    with_server(tmp_path, body)


def test_accept_new_records_an_unknown_key_which_strict_then_trusts(tmp_path: Path) -> None:
    async def body(server: Server) -> None:
        accepting = Connector(
            ConnectOptions(host_keys=HostKeyMode.ACCEPT_NEW, agent=False, ssh_config=())
        )
        (await accepting.connect(server.host())).close()
        assert f"[127.0.0.1]:{server.port} ssh-ed25519 " in server.known_hosts.read_text()
        strict = Connector(ConnectOptions(agent=False, ssh_config=()))
        (await strict.connect(server.host())).close()

    with_server(tmp_path, body)


def test_accept_new_makes_a_missing_ssh_directory_0700_as_openssh_does(tmp_path: Path) -> None:
    ssh_dir = tmp_path / "home" / ".ssh"

    async def body(server: Server) -> None:
        accepting = Connector(
            ConnectOptions(host_keys=HostKeyMode.ACCEPT_NEW, agent=False, ssh_config=())
        )
        old = os.umask(0o022)
        try:
            conn = await accepting.connect(server.host(known_hosts=str(ssh_dir / "known_hosts")))
        finally:
            os.umask(old)
        conn.close()
        assert (ssh_dir / "known_hosts").read_text().startswith(f"[127.0.0.1]:{server.port} ")

    with_server(tmp_path, body)
    assert ssh_dir.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o755  # only .ssh itself is private


def test_accept_new_hashes_the_name_when_the_ssh_config_says_hash_known_hosts(
    tmp_path: Path,
) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n    HashKnownHosts yes\n")

    async def body(server: Server) -> None:
        options = ConnectOptions(
            host_keys=HostKeyMode.ACCEPT_NEW, agent=False, ssh_config=(config,)
        )
        (await Connector(options).connect(server.host())).close()
        recorded = server.known_hosts.read_text()
        assert recorded.startswith("|1|") and "127.0.0.1" not in recorded
        strict = Connector(ConnectOptions(agent=False, ssh_config=(config,)))
        (await strict.connect(server.host())).close()  # the hashed entry is trusted

    with_server(tmp_path, body)


def test_host_keys_off_connects_to_any_key(tmp_path: Path) -> None:
    async def body(server: Server) -> None:
        connector = Connector(ConnectOptions(host_keys=HostKeyMode.OFF, agent=False))
        (await connector.connect(server.host())).close()

    with_server(tmp_path, body)


def test_refused_credentials_are_auth_failed_naming_the_user(tmp_path: Path) -> None:
    async def body(server: Server) -> None:
        server.trust()
        other = tmp_path / "id_other"
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(other)
        failure = await failure_of(server.host(identity_files=(str(other),)))
        assert (failure.status, failure.reason) == (
            Status.AUTH_FAILED,
            "authentication failed for user bob",
        )

    with_server(tmp_path, body)


def test_unreadable_key_file_is_bad_input_before_anything_connects(tmp_path: Path) -> None:
    broken = tmp_path / "id_broken"
    broken.write_text("not a key\n")
    connector = Connector(ConnectOptions())
    hosts = [Host("web01", "127.0.0.1", identity_files=(str(broken),))]
    with pytest.raises(SourceError, match=r"id_broken: cannot read the private key for web01"):
        connector.preload(hosts)
    missing = [Host("web02", "127.0.0.1", identity_files=(str(tmp_path / "nope"),))]
    with pytest.raises(SourceError, match=r"nope: cannot read the private key for web02"):
        connector.preload(missing)


class PasswordServer(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return (username, password) == (USER, "right horse")


def test_password_from_the_inventory_or_the_prompt_logs_in(tmp_path: Path) -> None:
    async def main() -> None:
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        server = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[host_key], server_factory=PasswordServer
        )
        port = server.sockets[0].getsockname()[1]
        try:
            plain = Host("db01", "127.0.0.1", port=port, user=USER)
            off = ConnectOptions(host_keys=HostKeyMode.OFF, agent=False, ssh_config=())
            with_inventory_password = Host(
                "db01", "127.0.0.1", port=port, user=USER, password="right horse"
            )
            (await Connector(off).connect(with_inventory_password)).close()
            prompted = ConnectOptions(
                host_keys=HostKeyMode.OFF, agent=False, ssh_config=(), password="right horse"
            )
            (await Connector(prompted).connect(plain)).close()
            wrong = ConnectOptions(
                host_keys=HostKeyMode.OFF, agent=False, ssh_config=(), password="wrong"
            )
            with pytest.raises(HostFailure, match="authentication failed for user bob"):
                (await Connector(wrong).connect(plain)).close()
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())


def unanswered_port(fillers: list[socket.socket]) -> tuple[socket.socket, int]:
    """A port whose accept queue is full: new connections get no answer, as a powered-off host."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    return listener, port


def test_unanswering_hosts_wait_out_their_timeout_side_by_side_not_in_waves_of_forks(
    tmp_path: Path,
) -> None:
    from herd.core.model import HostResult
    from herd.operation.fanout import HostSlot, fanout

    fillers: list[socket.socket] = []
    listener, port = unanswered_port(fillers)

    async def main() -> None:
        connector = Connector(ConnectOptions(connect_timeout=1.5, agent=False, ssh_config=()))
        hosts = [
            Host(f"off{i:02d}", "127.0.0.1", port=port, known_hosts=str(tmp_path / "kh"))
            for i in range(8)
        ]

        async def per_host(host: Host, slot: HostSlot) -> HostResult:
            try:
                (await connector.connect(host, slot)).close()
            except HostFailure as failure:
                return HostResult(host.name, host.address, failure.status, error=failure.reason)
            return HostResult(host.name, host.address, Status.OK)

        started = asyncio.get_running_loop().time()
        batch = await fanout(hosts, per_host, 2, handle_sigint=False)
        elapsed = asyncio.get_running_loop().time() - started
        assert {r.error for r in batch} == {"no TCP connection within 1.5 s"}
        assert len(batch) == 8
        # in waves of 2 forks this would take 4 x 1.5 s
        assert elapsed < 3.5, elapsed

    try:
        asyncio.run(main())
    finally:
        for sock in [*fillers, listener]:
            sock.close()
