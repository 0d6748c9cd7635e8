"""The built inventory: the group tree, each group's hosts, and each host's resolved variables.

Variables follow Ansible's precedence: the groups of a host (with all their
ancestors) are applied in order of depth, then ``ansible_group_priority``,
then name, so a child group beats its parent and, among siblings, the later
name wins; then ``group_vars/`` files in the same order; then the host's own
variables; then its ``host_vars/`` files; then the extra variables (``-e``),
above everything. Hosts are resolved on first use and cached, so selecting ten
hosts out of ten thousand resolves ten. A host whose variables hold a Jinja
template is rendered (``herd.inventory.rendering``); the others never load Jinja.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from herd.core.model import Host
from herd.errors import InventoryError, PatternError
from herd.inventory.data import GroupData, HostData
from herd.inventory.variables import (
    SSH_ARGS,
    Resolved,
    check_rendered,
    connection_fields,
    contains_template,
    merge_levels,
)

if TYPE_CHECKING:
    from herd.inventory.rendering import GroupsView
    from herd.inventory.templating import Templates

__all__ = ["Group", "Inventory"]

LOCALHOST_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class Group:
    """One group as ``herd groups`` shows it."""

    name: str
    hosts: tuple[str, ...]  # direct members, in file order
    children: tuple[str, ...]
    parents: tuple[str, ...]
    depth: int  # longest distance from ``all``
    vars: Mapping[str, object]


class Inventory:
    """Hosts and groups from every source, built and checked; see ``select`` for patterns."""

    def __init__(
        self,
        groups: dict[str, GroupData],
        hosts: dict[str, HostData],
        parents: dict[str, list[str]],
        depth: dict[str, int],
        sources: tuple[str, ...],
        *,
        extra_vars: Mapping[str, object] | None = None,
    ) -> None:
        self.sources = sources
        self.extra_vars: Mapping[str, object] = MappingProxyType(dict(extra_vars or {}))
        self._extra_templated = _templated(self.extra_vars)
        self._groups = groups
        self._hosts = hosts
        self._parents = parents
        self._depth = depth
        self._order = {name: index for index, name in enumerate(hosts)}
        self._priority = {name: g.priority for name, g in groups.items()}
        self._resolved: dict[str, Host] = {}
        self._members: dict[str, list[str]] = {}
        self._ancestors: dict[str, frozenset[str]] = {}
        self._chains: dict[tuple[str, ...], tuple[tuple[str, ...], Resolved, bool]] = {}
        self._group_views: dict[str, Group] | None = None
        self._templates: Templates | None = None
        self._groups_view: GroupsView | None = None

    # -- names -------------------------------------------------------------

    @property
    def host_names(self) -> list[str]:
        """Every host, in the order it was first declared."""
        return list(self._hosts)

    @property
    def group_names(self) -> list[str]:
        """Every group, ``all`` and ``ungrouped`` first, then in the order first declared."""
        return list(self._groups)

    def has_host(self, name: str) -> bool:
        return name in self._hosts

    def has_group(self, name: str) -> bool:
        return name in self._groups

    def position(self, host: str) -> int:
        """A host's place in inventory order (implicit hosts come last)."""
        return self._order.get(host, len(self._order))

    # -- groups ------------------------------------------------------------

    @property
    def groups(self) -> Mapping[str, Group]:
        """Every group by name, in declaration order."""
        if self._group_views is None:
            self._group_views = {
                name: Group(
                    name=name,
                    hosts=tuple(g.hosts),
                    children=tuple(g.children),
                    parents=tuple(self._parents[name]),
                    depth=self._depth[name],
                    vars=MappingProxyType(merge_levels([g.vars, g.file_vars])),
                )
                for name, g in self._groups.items()
            }
        return MappingProxyType(self._group_views)

    def tree(self) -> list[tuple[int, Group]]:
        """The group tree from ``all`` down, as (indent level, group); shared subgroups repeat."""
        rows: list[tuple[int, Group]] = []
        views = self.groups

        def walk(name: str, level: int) -> None:
            rows.append((level, views[name]))
            for child in views[name].children:
                walk(child, level + 1)

        walk("all", 0)
        return rows

    def members(self, group: str) -> list[str]:
        """A group's hosts in the order subscripts index them, as Ansible lists them.

        Its own hosts in file order, then its subgroups' level by level, each level
        in declaration order (Ansible leaves the order below the first level to
        chance; herd keeps it stable).
        """
        found = self._members.get(group)
        if found is None:
            seen: dict[str, None] = {}
            level = [group]
            visited = {group}
            while level:
                following: list[str] = []
                for name in level:
                    seen.update(self._groups[name].hosts)
                    for child in self._groups[name].children:
                        if child not in visited:
                            visited.add(child)
                            following.append(child)
                level = following
            found = self._members[group] = list(seen)
        return found

    def ancestors(self, group: str) -> frozenset[str]:
        """``group`` and every group above it, up to ``all``."""
        found = self._ancestors.get(group)
        if found is None:
            result = {group}
            for parent in self._parents[group]:
                result |= self.ancestors(parent)
            found = self._ancestors[group] = frozenset(result)
        return found

    # -- hosts -------------------------------------------------------------

    def host(self, name: str) -> Host:
        """The host called ``name`` with its variables resolved (Ansible precedence).

        Raises ``PatternError`` for a name the inventory does not hold.
        """
        found = self._resolved.get(name)
        if found is None:
            data = self._hosts.get(name)
            if data is not None:
                found = self._resolve(data)
            elif name in LOCALHOST_NAMES:
                found = self._implicit_localhost(name)
            else:
                raise PatternError(f"no host named {name!r} in the inventory")
            self._resolved[name] = found
        return found

    def _group_chain(self, direct: tuple[str, ...]) -> tuple[tuple[str, ...], Resolved, bool]:
        """A group set's groups, their merged variables, and whether any value is a template."""
        chain = self._chains.get(direct)
        if chain is None:
            every: set[str] = {"all"}
            for group in direct:
                every |= self.ancestors(group)
            ordered = sorted(every, key=self._group_sort_key)
            levels: list[Mapping[str, object]] = [self._groups[g].vars for g in ordered]
            levels += [self._groups[g].file_vars for g in ordered]
            names = tuple(sorted(g for g in every if g != "all"))
            merged = Resolved().apply(levels)
            chain = self._chains[direct] = (names, merged, _templated(merged.values))
        return chain

    def _group_sort_key(self, group: str) -> tuple[int, int, str]:
        return self._depth[group], self._priority[group], group

    def _resolve(self, data: HostData) -> Host:
        group_names, group_vars, templated = self._group_chain(tuple(data.groups))
        resolved = group_vars.copy().apply([data.vars, data.file_vars, self.extra_vars])
        own = data.vars or data.file_vars  # most hosts of a big inventory have none
        if templated or self._extra_templated or (own and _templated(data.vars, data.file_vars)):
            return self._rendered(data.name, group_names, resolved)
        return _make_host(data.name, group_names, resolved)

    def _implicit_localhost(self, name: str) -> Host:
        """Ansible's implicit localhost: named in a pattern, not in the inventory, run locally."""
        all_group = self._groups["all"]
        resolved = Resolved().apply([all_group.vars, all_group.file_vars])
        if "connection" not in resolved.chosen:
            resolved.apply([{"ansible_connection": "local"}])
        resolved.apply([self.extra_vars])
        if _templated(resolved.values):
            return self._rendered(name, (), resolved)
        return _make_host(name, (), resolved)

    def _rendered(self, name: str, groups: tuple[str, ...], resolved: Resolved) -> Host:
        """A host whose variables hold templates: its connection variables rendered and checked."""
        from herd.inventory.rendering import GroupsView, HostScope, RenderedVars, host_magic
        from herd.inventory.templating import Templates

        if self._templates is None:
            self._templates = Templates()
            self._groups_view = GroupsView(self.group_names, self.members)
        magic: dict[str, object] = {
            key: value
            for key, value in host_magic(name, groups).items()
            if key not in self.extra_vars  # -e beats these, as in Ansible
        }
        magic["groups"] = self._groups_view
        scope = HostScope(name, resolved.values, magic, self._templates)
        used = {*resolved.chosen.values(), *(key for key in SSH_ARGS if key in resolved.values)}
        rendered = Resolved({key: scope.value(key) for key in used}, dict(resolved.chosen))
        for key in resolved.chosen.values():
            problem = check_rendered(key, rendered.values[key])
            if problem is not None:
                raw = resolved.values[key]
                source = f" (rendered from {raw!r})" if contains_template(raw) else ""
                given = " (given with -e)" if key in self.extra_vars else ""
                raise InventoryError(f"host {name!r}: {problem}{source}{given}")
        fields = connection_fields(name, rendered)
        return Host(name=name, groups=groups, vars=RenderedVars(scope), **fields)  # type: ignore[arg-type]

    # -- patterns ----------------------------------------------------------

    def select(
        self,
        pattern: str,
        *,
        limit: str | None = None,
        failed: Callable[[int | None, bool], list[str]] | None = None,
    ) -> list[Host]:
        """The hosts ``pattern`` (and ``limit``) match, in inventory order, without duplicates.

        Raises ``PatternError`` for a malformed pattern or an unknown group or host
        (with the closest known names), ``NoHostsMatched`` when nothing matches.
        ``@failed``, ``@ok`` and their ``@ID:`` forms ask ``failed(ID or None, ok)``.
        """
        from herd.inventory.patterns import select_names

        return [self.host(name) for name in select_names(self, pattern, limit, failed)]


def _templated(*levels: Mapping[str, object]) -> bool:
    """Whether any value of ``levels`` holds a Jinja template."""
    return any(contains_template(value) for level in levels for value in level.values())


def _make_host(name: str, groups: tuple[str, ...], resolved: Resolved) -> Host:
    fields = connection_fields(name, resolved)
    return Host(name=name, groups=groups, vars=MappingProxyType(resolved.values), **fields)  # type: ignore[arg-type]
