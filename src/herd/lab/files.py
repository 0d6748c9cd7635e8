"""Where a lab keeps its files, and the inventory and known_hosts it writes for herd.

DIR/lab.json          the state: engine, port, hosts and PIDs (see state.py)
DIR/inventory.yml     Ansible YAML inventory of the fleet
DIR/known_hosts       every host's key, for strict host-key checking
DIR/client_key(.pub)  the key herd logs in with
DIR/authorized_keys   the client key, as every host accepts it
DIR/hosts/NAME/       a host's own files: host key, sshd config, PID file,
                      log; for the builtin engine also its HOME and SFTP root
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml

from herd.lab.plan import PlannedHost

__all__ = ["LabFiles", "inventory_document"]


@dataclass(frozen=True, slots=True)
class LabFiles:
    """The paths of one lab directory."""

    dir: Path

    @property
    def state(self) -> Path:
        return self.dir / "lab.json"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.yml"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def client_key(self) -> Path:
        return self.dir / "client_key"

    @property
    def authorized_keys(self) -> Path:
        return self.dir / "authorized_keys"

    @property
    def builtin_pid(self) -> Path:
        return self.dir / "builtin.pid"

    @property
    def builtin_log(self) -> Path:
        return self.dir / "builtin.log"

    def host_dir(self, name: str) -> Path:
        return self.dir / "hosts" / name

    def host_key(self, name: str) -> Path:
        return self.host_dir(name) / "ssh_host_ed25519_key"

    def sshd_config(self, name: str) -> Path:
        return self.host_dir(name) / "sshd_config"

    def pid_file(self, name: str) -> Path:
        return self.host_dir(name) / "sshd.pid"

    def log_file(self, name: str) -> Path:
        return self.host_dir(name) / "sshd.log"

    def home(self, name: str) -> Path:
        """The builtin engine's HOME, working directory and SFTP root for one host."""
        return self.host_dir(name) / "home"


def inventory_document(files: LabFiles, hosts: list[PlannedHost], user: str) -> str:
    """The fleet as an Ansible YAML inventory; common settings sit once under ``all: vars``.

    ``known_hosts`` is herd's own variable; ``ansible_ssh_common_args`` gives
    Ansible itself the same strict host-key checking against the lab's file.
    """
    port = hosts[0].port
    children: dict[str, dict[str, dict[str, dict[str, object]]]] = {}
    for host in hosts:
        group = children.setdefault(host.group, {"hosts": {}})
        entry: dict[str, object] = {"ansible_host": host.address}
        if host.port != port:
            entry["ansible_port"] = host.port
        group["hosts"][host.name] = entry
    known_hosts = str(files.known_hosts)
    document = {
        "all": {
            "vars": {
                "ansible_port": port,
                "ansible_user": user,
                "ansible_ssh_private_key_file": str(files.client_key),
                "known_hosts": known_hosts,
                "ansible_ssh_common_args": (
                    f"-o UserKnownHostsFile={shlex.quote(known_hosts)} -o StrictHostKeyChecking=yes"
                ),
            },
            "children": children,
        }
    }
    header = "# Written by `herd lab up`; `herd lab down` stops these hosts.\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
