"""The lab's state file (DIR/lab.json): what runs, so another process can inspect or stop it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from herd.errors import LabError

__all__ = ["LabHost", "LabState", "read_state", "write_state"]

STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class LabHost:
    """One running lab host: where it listens, its group and the PID serving it."""

    name: str
    group: str
    address: str
    port: int
    pid: int | None
    fingerprint: str  # SHA256 of its host key, as written to known_hosts


@dataclass(frozen=True, slots=True)
class LabState:
    """A lab as it was brought up: engine, port, user, hosts; ``server_pid`` for builtin."""

    engine: str
    dir: str
    port: int
    user: str
    started: str
    hosts: tuple[LabHost, ...]
    server_pid: int | None = None

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"the lab in {self.dir} has no host {name!r}")

    def with_pid(self, name: str, pid: int | None) -> LabState:
        """A copy in which host ``name`` is served by ``pid``."""
        self.host(name)
        hosts = tuple(replace(h, pid=pid) if h.name == name else h for h in self.hosts)
        return replace(self, hosts=hosts)

    def with_fingerprint(self, name: str, fingerprint: str) -> LabState:
        self.host(name)
        hosts = tuple(
            replace(h, fingerprint=fingerprint) if h.name == name else h for h in self.hosts
        )
        return replace(self, hosts=hosts)


def write_state(path: Path, state: LabState) -> None:
    """Write the state atomically (a reader never sees half a file)."""
    data = asdict(state)
    data["version"] = STATE_VERSION
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)


def read_state(path: Path) -> LabState | None:
    """The state in ``path``, or None when no lab was brought up there."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"{path}: cannot read the lab state: {exc}") from exc
    try:
        version = data.pop("version", None)
        if version != STATE_VERSION:
            raise LabError(f"{path}: lab state version {version} is not supported")
        hosts = tuple(LabHost(**host) for host in data.pop("hosts"))
        return LabState(hosts=hosts, **data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise LabError(f"{path}: the lab state is damaged: {exc}") from exc
