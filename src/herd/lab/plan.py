"""Which hosts a lab has: their names, groups and loopback addresses.

Host k (counting from 1) listens on 127.0.1.k; beyond 254 hosts the next
octet moves on (127.0.2.1, ...), so up to 5000 hosts fit without touching
127.0.0.1. Names come from the groups in order: ``web=4,db=2`` gives
web01..web04 then db01..db02.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from herd.errors import LabError

__all__ = [
    "DEFAULT_PORT",
    "MAX_HOSTS",
    "OTHER_GROUP",
    "PlannedHost",
    "address_of",
    "default_groups",
    "parse_groups",
    "plan_hosts",
]

MAX_HOSTS = 5000
DEFAULT_PORT = 2222
OTHER_GROUP = "other"  # hosts beyond the total that --groups asks for
_GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True, slots=True)
class PlannedHost:
    """One lab host before it runs: name, group, address and port."""

    name: str
    group: str
    address: str
    port: int


def address_of(index: int) -> str:
    """The loopback address of host ``index`` (1-based): 127.0.1.1, ..., 127.0.2.1, ..."""
    if not 1 <= index <= MAX_HOSTS:
        raise LabError(f"host number {index} is outside 1..{MAX_HOSTS}")
    block, offset = divmod(index - 1, 254)
    return f"127.0.{block + 1}.{offset + 1}"


def default_groups(count: int) -> list[tuple[str, int]]:
    """Half the hosts in ``web``, a quarter in ``db``, the rest in ``cache`` (8 -> 4/2/2)."""
    web = (count + 1) // 2
    db = (count - web + 1) // 2
    cache = count - web - db
    return [(name, size) for name, size in (("web", web), ("db", db), ("cache", cache)) if size]


def parse_groups(spec: str) -> list[tuple[str, int]]:
    """Read ``web=4,db=2`` into ``[("web", 4), ("db", 2)]``; refuse anything else."""
    groups: list[tuple[str, int]] = []
    for item in (part.strip() for part in spec.split(",")):
        name, sep, size_text = item.partition("=")
        name = name.strip()
        if not sep or not _GROUP_NAME.match(name):
            raise LabError(f"--groups: {item!r} is not NAME=COUNT (e.g. web=4,db=2)")
        try:
            size = int(size_text)
        except ValueError:
            raise LabError(f"--groups: {item!r}: the count must be a whole number") from None
        if size < 1:
            raise LabError(f"--groups: {item!r}: a group needs at least one host")
        if name in (seen for seen, _ in groups):
            raise LabError(f"--groups: group {name!r} is named twice")
        groups.append((name, size))
    return groups


def plan_hosts(
    count: int, groups: list[tuple[str, int]] | None = None, port: int = DEFAULT_PORT
) -> list[PlannedHost]:
    """Name and place ``count`` hosts; hosts beyond the groups' total go in ``other``."""
    if not 1 <= count <= MAX_HOSTS:
        raise LabError(f"a lab has 1 to {MAX_HOSTS} hosts, not {count}")
    if not 1 <= port <= 65535:
        raise LabError(f"port {port} is outside 1..65535")
    layout = default_groups(count) if groups is None else list(groups)
    asked = sum(size for _, size in layout)
    if asked > count:
        raise LabError(f"--groups asks for {asked} hosts but the lab has {count}")
    if asked < count:
        if OTHER_GROUP in (name for name, _ in layout):
            raise LabError(f"--groups: {OTHER_GROUP!r} is reserved for the hosts beyond the groups")
        layout.append((OTHER_GROUP, count - asked))
    hosts: list[PlannedHost] = []
    for group, size in layout:
        width = max(2, len(str(size)))
        for number in range(1, size + 1):
            name = f"{group}{number:0{width}d}"
            hosts.append(PlannedHost(name, group, address_of(len(hosts) + 1), port))
    names = [host.name for host in hosts]
    if len(set(names)) != len(names):
        raise LabError("--groups: two groups give hosts the same name; rename one group")
    return hosts
