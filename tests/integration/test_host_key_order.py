"""Which host key herd asks a server for: OpenSSH's order on first contact, else what is known.

An asyncssh server on loopback holding an RSA and an ed25519 host key, as
many servers do; which one the connection used shows what herd asked for.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh
import pytest

from herd.core.model import Host
from herd.hosts.connect import ConnectOptions, Connector
from herd.hosts.hostkeys import HostKeyMode

RSA = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
ED25519 = asyncssh.generate_private_key("ssh-ed25519")


def used_key(tmp_path: Path, options: ConnectOptions, known: asyncssh.SSHKey | None = None) -> str:
    """The type of the host key a connection with ``options`` was given."""
    client = asyncssh.generate_private_key("ssh-ed25519")
    client.write_private_key(tmp_path / "id_client")
    known_hosts = tmp_path / "known_hosts"

    async def main() -> str:
        server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[RSA, ED25519],  # RSA first: a server's own preference is moot
            authorized_client_keys=asyncssh.import_authorized_keys(
                client.export_public_key().decode()
            ),
            process_factory=lambda process: process.exit(0),
        )
        port = server.sockets[0].getsockname()[1]
        if known is not None:
            known_hosts.write_text(f"[127.0.0.1]:{port} {known.export_public_key().decode()}")
        host = Host(
            name="router1",
            address="127.0.0.1",
            port=port,
            user="admin",
            identity_files=(str(tmp_path / "id_client"),),
            known_hosts=str(known_hosts),
        )
        try:
            conn = await Connector(options).connect(host)
            key = conn.get_server_host_key()
            conn.close()
            await conn.wait_closed()
        finally:
            server.close()
            await server.wait_closed()
        assert key is not None
        return str(key.get_algorithm())

    return asyncio.run(main())


@pytest.mark.parametrize("mode", [HostKeyMode.ACCEPT_NEW, HostKeyMode.OFF])
def test_a_host_met_for_the_first_time_is_asked_for_ed25519_first_as_openssh_does(
    tmp_path: Path, mode: HostKeyMode
) -> None:
    options = ConnectOptions(host_keys=mode, agent=False, ssh_config=())
    assert used_key(tmp_path, options) == "ssh-ed25519"
    if mode is HostKeyMode.ACCEPT_NEW:
        assert " ssh-ed25519 " in (tmp_path / "known_hosts").read_text()


def test_a_host_known_by_its_rsa_key_is_asked_for_that_key(tmp_path: Path) -> None:
    options = ConnectOptions(host_keys=HostKeyMode.STRICT, agent=False, ssh_config=())
    assert used_key(tmp_path, options, known=RSA) == "ssh-rsa"


def test_host_key_algorithms_in_the_ssh_options_are_followed(tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text("HostKeyAlgorithms rsa-sha2-512\n")
    options = ConnectOptions(host_keys=HostKeyMode.ACCEPT_NEW, agent=False, ssh_config=(config,))
    assert used_key(tmp_path, options) == "ssh-rsa"
