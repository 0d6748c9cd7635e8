"""Ansible's YAML inventory format: groups with ``hosts``, ``children`` and ``vars``.

Every top-level key is a group (usually ``all``); ``children`` nest groups to
any depth; host keys may hold ranges and a ``:port``. Files are read with
PyYAML's C loader when it is built in (ten times faster on big inventories);
line numbers for errors are looked up only when there is an error to report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from herd.errors import InventoryError
from herd.inventory.data import InventoryData, Origin, unprintable
from herd.inventory.ini import parse_host_pattern
from herd.inventory.variables import UnsafeText

__all__ = ["VAULTED", "YamlError", "line_of", "load_yaml", "read_yaml"]


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """yaml's safe loader (the C one when built in) that also reads Ansible's tags."""


def _unsafe(loader: Any, node: Any) -> object:
    return UnsafeText(loader.construct_scalar(node))


def _vault(loader: Any, node: Any) -> object:
    return VAULTED


VAULTED = "<ansible-vault encrypted>"
_Loader.add_constructor("!unsafe", _unsafe)
_Loader.add_constructor("!vault", _vault)
_SECTIONS = ("vars", "children", "hosts")


class YamlError(Exception):
    """A YAML syntax error with the line it was found on (1-based)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def load_yaml(text: str) -> object:
    """Parse YAML safely; a syntax error becomes ``YamlError`` with its line."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlError(problem, mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlError(str(exc).splitlines()[0], None) from None


def line_of(text: str, keys: Sequence[object]) -> int | None:
    """The line (1-based) of the value at ``keys`` in a YAML document, or of its nearest parent."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
                line = key_node.start_mark.line + 1
                node = value_node
                break
        else:
            break
    return line


class _Reader:
    """One YAML inventory file being read into the shared data."""

    def __init__(self, text: str, path: str, data: InventoryData) -> None:
        self.text = text
        self.path = path
        self.data = data
        self.origin = Origin(path, None)

    def fail(self, message: str, keys: Sequence[object]) -> InventoryError:
        return InventoryError(message, path=self.path, line=line_of(self.text, keys))

    def group(self, name: object, body: object, keys: list[object]) -> str:
        if not isinstance(name, str):
            raise self.fail(f"group name {name!r} must be text", keys)
        complaint = unprintable(name, "group")
        if complaint is not None:  # said here, where the line is known (build says it too)
            raise self.fail(complaint, keys)
        self.data.group(name, self.origin)
        if body is None:
            return name
        if not isinstance(body, dict):
            raise self.fail(
                f"group {name!r} must be a mapping of hosts/children/vars, "
                f"not {type(body).__name__}",
                keys,
            )
        for key in body:
            if key not in _SECTIONS:
                raise self.fail(
                    f"group {name!r} has key {key!r}; only hosts, children and vars are valid",
                    [*keys, key],
                )
        for section, value in body.items():  # in file order, as Ansible reads them
            self.section(name, section, value, [*keys, section])
        return name

    def section(self, name: str, section: str, value: object, where: list[object]) -> None:
        if isinstance(value, str):  # Ansible reads "hosts: web1" as one host
            value = {value: None}
        if value is None:
            return
        if not isinstance(value, dict):
            raise self.fail(
                f"{section} of group {name!r} must be a mapping, not {type(value).__name__}",
                where,
            )
        if section == "vars":
            for var, var_value in value.items():
                self.set_var(var, var_value, [*where, var], group_name=name)
        elif section == "children":
            for child, child_body in value.items():
                child_name = self.group(child, child_body, [*where, child])
                self.data.add_child(name, child_name, Origin(self.path, None, (*where, child)))
        else:
            for pattern, host_vars in value.items():
                self.hosts(name, pattern, host_vars, [*where, pattern])

    def hosts(self, group: str, pattern: object, host_vars: object, keys: list[object]) -> None:
        if not isinstance(pattern, str):
            raise self.fail(
                f"host {pattern!r} must be text (quote numbers, as in '{pattern}')", keys
            )
        complaint = unprintable(pattern)
        if complaint is not None:  # said here, where the line is known (build says it too)
            raise self.fail(complaint, keys)
        if host_vars is not None and not isinstance(host_vars, dict):
            raise self.fail(
                f"host {pattern!r} must map to its variables, not {type(host_vars).__name__}",
                keys,
            )
        try:
            names, port = parse_host_pattern(pattern, self.path, None)
        except InventoryError as exc:
            raise self.fail(str(exc).removeprefix(f"{self.path}: "), keys) from None
        declared = self.data.add_hosts(names, group, self.origin)
        if port is None and not host_vars:
            return
        for host in declared:
            if port is not None:
                self.data.set_host_var(host, "ansible_port", port, self.origin)
            for var, value in (host_vars or {}).items():
                self.set_var(var, value, [*keys, var], host_name=host.name)

    def set_var(
        self, var: object, value: object, keys: list[object], *, group_name: str = "",
        host_name: str = "",
    ) -> None:  # fmt: skip
        if not isinstance(var, str):
            raise self.fail(f"variable name {var!r} must be text", keys)
        try:
            if host_name:
                self.data.set_host_var(self.data.hosts[host_name], var, value, self.origin)
            else:
                self.data.set_group_var(self.data.groups[group_name], var, value, self.origin)
        except InventoryError as exc:
            raise self.fail(str(exc).removeprefix(f"{self.path}: "), keys) from None


def read_yaml(document: object, text: str, path: str, data: InventoryData) -> None:
    """Read a parsed YAML inventory into ``data``; errors name ``path`` and the line."""
    if document is None:
        return
    if not isinstance(document, dict):
        raise InventoryError(
            f"a YAML inventory is a mapping of groups, not {type(document).__name__}",
            path=path,
            line=1,
        )
    if "plugin" in document:
        raise InventoryError(
            "this is an Ansible inventory plugin configuration, which herd cannot run",
            path=path,
            line=line_of(text, ["plugin"]),
        )
    reader = _Reader(text, path, data)
    for name, body in document.items():
        reader.group(name, body, [name])
