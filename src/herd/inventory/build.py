"""Loading an inventory: read every source, check the whole, then build.

The checks that need all files at once live here: no host or group name holds a
control character; a group may not be its own ancestor; every group hangs under
``all``; hosts in no group are ``ungrouped``; each group's depth (its longest
distance from ``all``) orders variable precedence.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from pathlib import Path

from herd.errors import InventoryError
from herd.inventory.data import InventoryData, Origin, unprintable
from herd.inventory.graph import Inventory
from herd.inventory.sources import read_sources
from herd.inventory.yamlfile import line_of

__all__ = ["build", "load_inventory"]


def load_inventory(
    sources: Sequence[str], extra_vars: Mapping[str, object] | None = None
) -> Inventory:
    """The inventory from ``sources``: the ``-i`` values, else ``$HERD_INVENTORY``, ./inventory.yml.

    ``extra_vars`` (``-e``, see ``herd.inventory.extra_vars``) beat every other
    variable of every host. Raises ``InventoryError`` naming the file and line
    of the first problem; nothing is returned half-loaded.
    """
    # Loading makes tens of thousands of small objects and no reference cycles: the
    # cyclic collector would only rescan them (a quarter of the load time at 10,000 hosts).
    collecting = gc.isenabled()
    gc.disable()
    try:
        data = read_sources(sources)
        return build(data, tuple(sources), extra_vars)
    finally:
        if collecting:
            gc.enable()


def build(
    data: InventoryData,
    sources: tuple[str, ...] = (),
    extra_vars: Mapping[str, object] | None = None,
) -> Inventory:
    """Check ``data`` as a whole and turn it into an ``Inventory``."""
    _refuse_control_characters(data)
    _refuse_cycles(data)
    parents: dict[str, list[str]] = {name: [] for name in data.groups}
    for group in data.groups.values():
        for child in group.children:
            parents[child].append(group.name)
    builtin = Origin("<built-in>")
    for name in data.groups:
        if name != "all" and not parents[name]:
            data.add_child("all", name, builtin)
            parents[name].append("all")
    ungrouped = data.groups["ungrouped"]
    special = {"all", "ungrouped"}
    for host in data.hosts.values():
        groups = host.groups
        if "all" not in groups and "ungrouped" not in groups:
            continue  # the common case: grouped, and never listed as ungrouped
        grouped = not groups.keys() <= special
        if grouped and "ungrouped" in host.groups:
            del host.groups["ungrouped"]
            del ungrouped.hosts[host.name]
        elif not grouped and "ungrouped" not in host.groups:
            host.groups["ungrouped"] = None
            ungrouped.hosts[host.name] = None
    depth: dict[str, int] = {}
    for name in data.groups:
        _depth(name, parents, depth)
    return Inventory(data.groups, data.hosts, parents, depth, sources, extra_vars=extra_vars)


def _depth(name: str, parents: dict[str, list[str]], depth: dict[str, int]) -> int:
    found = depth.get(name)
    if found is None:
        found = max((_depth(p, parents, depth) + 1 for p in parents[name]), default=0)
        depth[name] = found
    return found


def _refuse_control_characters(data: InventoryData) -> None:
    """Raise ``InventoryError`` at the first host or group whose name holds a control
    character (one search over all the names: a large inventory pays next to nothing)."""
    for kind, named in (("host", data.hosts), ("group", data.groups)):
        if unprintable("".join(named), kind) is None:
            continue
        for name, declared in named.items():
            complaint = unprintable(name, kind)
            if complaint is not None:
                raise InventoryError(
                    complaint, path=declared.origin.path, line=_line(declared.origin)
                )


def _refuse_cycles(data: InventoryData) -> None:
    """Raise ``InventoryError`` at the edge that closes a loop of subgroups."""
    done: set[str] = set()
    for root in data.groups:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(data.groups[root].children)]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            if child == "all" or child in on_path:
                start = path[path.index(child) :] if child in on_path else ["all", *path]
                loop = [*start, child]
                origin = data.groups[path[-1]].children[child]
                raise InventoryError(
                    f"group {child!r} is its own ancestor: {' -> '.join(loop)}",
                    path=origin.path,
                    line=_line(origin),
                )
            if child not in done:
                path.append(child)
                on_path.add(child)
                stack.append(iter(data.groups[child].children))


def _line(origin: Origin) -> int | None:
    """The line of ``origin``, looked up in its YAML file when only the keys are known."""
    if origin.line is not None or not origin.keys:
        return origin.line
    try:
        text = Path(origin.path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return line_of(text, origin.keys)
