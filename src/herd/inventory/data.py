"""What the inventory files said, gathered before anything is built.

The INI and YAML readers and the ``host_vars``/``group_vars`` reader all write
into one ``InventoryData``; only when every file has been read does
``herd.inventory.build`` check it (cycles, variable types) and make the
``Inventory``, so a bad file never leaves a half-loaded inventory behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from herd.inventory.variables import check_variable

__all__ = ["GroupData", "HostData", "InventoryData", "Origin", "unprintable"]

# C0, DEL and C1: a terminal shows such a name as another text (a newline makes two
# hosts of one in `herd hosts`, an escape recolours what follows), so no host set herd
# prints could be pasted back as the hosts it names
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def unprintable(name: str, kind: str = "host") -> str | None:
    """Why ``name`` cannot be a ``kind``'s name (a control character in it), or None."""
    found = _CONTROL.search(name)
    if found is None:
        return None
    return f"{kind} name {name!r} holds a control character ({found.group()!r})"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where something was written: a file and, when known, a line."""

    path: str
    line: int | None = None
    keys: tuple[object, ...] = ()  # in a YAML file: the keys leading to it, to find its line


@dataclass(slots=True)
class GroupData:
    """A group as declared: its direct hosts and children in file order, and its variables."""

    name: str
    origin: Origin
    hosts: dict[str, None] = field(default_factory=dict)
    children: dict[str, Origin] = field(default_factory=dict)
    vars: dict[str, object] = field(default_factory=dict)
    file_vars: dict[str, object] = field(default_factory=dict)  # from group_vars/
    priority: int = 1  # ansible_group_priority: among groups of one depth, higher wins


@dataclass(slots=True)
class HostData:
    """A host as declared: its variables (later declarations win) and where it first appeared."""

    name: str
    origin: Origin
    vars: dict[str, object] = field(default_factory=dict)
    file_vars: dict[str, object] = field(default_factory=dict)  # from host_vars/
    groups: dict[str, None] = field(default_factory=dict)


class InventoryData:
    """Groups and hosts from every source, in the order they were first declared."""

    def __init__(self) -> None:
        self.groups: dict[str, GroupData] = {}
        self.hosts: dict[str, HostData] = {}
        builtin = Origin("<built-in>")
        self.group("all", builtin)
        self.add_child("all", "ungrouped", builtin)

    def group(self, name: str, origin: Origin) -> GroupData:
        """The group called ``name``, created on first mention."""
        found = self.groups.get(name)
        if found is None:
            found = self.groups[name] = GroupData(name, origin)
        return found

    def add_host(self, name: str, group: str, origin: Origin) -> HostData:
        """Declare ``name`` as a member of ``group`` (``ungrouped`` for a bare host)."""
        host = self.hosts.get(name)
        if host is None:
            host = self.hosts[name] = HostData(name, origin)
        host.groups[group] = None
        self.group(group, origin).hosts[name] = None
        return host

    def add_hosts(self, names: list[str], group: str, origin: Origin) -> list[HostData]:
        """Declare the hosts of one range in one group: ``add_host`` without its per-call cost."""
        hosts = self.hosts
        declared: list[HostData] = []
        for name in names:
            host = hosts.get(name)
            if host is None:
                host = hosts[name] = HostData(name, origin)
            host.groups[group] = None
            declared.append(host)
        self.group(group, origin).hosts.update(dict.fromkeys(names))
        return declared

    def add_child(self, parent: str, child: str, origin: Origin) -> None:
        """Make ``child`` a subgroup of ``parent``; cycles are refused later, at build time."""
        self.group(child, origin)
        self.group(parent, origin).children.setdefault(child, origin)

    def set_host_var(self, host: HostData, key: str, value: object, origin: Origin) -> None:
        """Set a variable on a host, checking connection variables' types where they are set."""
        host.vars[key] = check_variable(key, value, origin.path, origin.line)

    def set_group_var(self, group: GroupData, key: str, value: object, origin: Origin) -> None:
        """Set a variable on a group, checking connection variables' types where they are set.

        ``ansible_group_priority`` is not a variable but the group's rank, as in Ansible.
        """
        checked = check_variable(key, value, origin.path, origin.line)
        if key == "ansible_group_priority":
            group.priority = int(str(checked))
        else:
            group.vars[key] = checked

    def set_file_var(self, kind: str, name: str, key: str, value: object, origin: Origin) -> None:
        """Set a variable from ``group_vars/`` or ``host_vars/`` (a level above the inline ones)."""
        target = self.groups[name] if kind == "group_vars" else self.hosts[name]
        target.file_vars[key] = check_variable(key, value, origin.path, origin.line)
