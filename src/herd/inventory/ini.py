"""Ansible's INI inventory format, read as Ansible reads it.

``[group]`` sections list hosts (``name key=value ...``, ranges allowed),
``[group:children]`` lists subgroups, ``[group:vars]`` sets ``key = value``.
Hosts before the first section are ungrouped. Values are Python literals where
they parse as one (``22`` is a number, ``[1, 2]`` a list), text otherwise. As in
Ansible, a ``:vars`` or ``:children`` section may only name groups that this
file defines somewhere.
"""

from __future__ import annotations

import ast
import re
import shlex
import warnings

from herd.core.hostset import expand
from herd.errors import InventoryError, PatternError
from herd.inventory.data import InventoryData, Origin

__all__ = ["looks_like_ini", "parse_host_pattern", "parse_value", "read_ini"]

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:[#;].*)?$")
_BRACKETED_PORT = re.compile(r"^\[([^\]]+)\]:(\d+)$")
_COMMENT = ("#", ";")


def looks_like_ini(text: str) -> bool:
    """Whether the first meaningful line of ``text`` is an INI section header."""
    for raw in text.splitlines():
        line = raw.strip()
        if line and line[0] not in _COMMENT:
            return bool(_SECTION.match(line))
    return False


def parse_value(text: str) -> object:
    """An INI value as Ansible reads it: a Python literal if it is one, else the text."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _plain(value)


def _plain(value: object) -> object:
    if isinstance(value, tuple | list | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if value is Ellipsis:
        return "..."
    if isinstance(value, complex):
        return str(value)
    return value


def parse_host_pattern(token: str, path: str, line: int | None) -> tuple[list[str], int | None]:
    """The host names a host entry stands for, and the port written after it (``web:2222``)."""
    name, port = token, None
    bracketed = _BRACKETED_PORT.match(token)
    if bracketed:
        name, port = bracketed.group(1), int(bracketed.group(2))
    elif token.count(":") and not _is_ipv6(token):
        head, _, tail = token.rpartition(":")
        if tail.isdigit() and head.count("[") == head.count("]"):
            name, port = head, int(tail)
        elif not tail and "[" not in head:
            raise InventoryError(
                f"host {token!r} ends in ':' (reserved for a port, as in {head}:22)",
                path=path,
                line=line,
            )
    if name.strip() == "---":
        raise InventoryError(
            "'---' is not a host name (is this a YAML file?)", path=path, line=line
        )
    if _is_ipv6(name) or "[" not in name:
        return [name], port
    try:
        return expand(name), port
    except PatternError as exc:
        raise InventoryError(str(exc), path=path, line=line) from None


def _is_ipv6(name: str) -> bool:
    return name.count(":") >= 2 and "[" not in name


def read_ini(text: str, path: str, data: InventoryData) -> None:
    """Read an INI inventory into ``data``; errors name ``path`` and the line."""
    reader = _IniReader(path, data)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line and line[0] not in _COMMENT:
            reader.line(line, Origin(path, number))
    reader.finish()


class _IniReader:
    """The state of one INI file being read: the current section and the pending groups."""

    def __init__(self, path: str, data: InventoryData) -> None:
        self.path = path
        self.data = data
        self.group = "ungrouped"
        self.state = "hosts"
        # groups named by [x:vars] or [x:children] before they are defined: (state, line, parents)
        self.pending: dict[str, tuple[str, int, list[str]]] = {}

    def fail(self, message: str, origin: Origin) -> InventoryError:
        return InventoryError(message, path=self.path, line=origin.line)

    def line(self, line: str, origin: Origin) -> None:
        section = _SECTION.match(line)
        if section:
            self.section(section.group(1), section.group(2) or "hosts", origin)
        elif line.startswith("[") and line.endswith("]"):
            raise self.fail(f"invalid section {line!r}: no spaces, one ':' at most", origin)
        elif self.state == "hosts":
            _read_host_line(line, self.group, origin, self.data)
        elif self.state == "vars":
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise self.fail(f"expected key=value, got {line!r}", origin)
            group = self.data.groups[self.group]
            self.data.set_group_var(group, key.strip(), parse_value(value.strip()), origin)
        else:
            self.child(line, origin)

    def section(self, group: str, tag: str, origin: Origin) -> None:
        if tag not in ("hosts", "children", "vars"):
            raise self.fail(
                f"section [{group}:{tag}] has unknown type {tag!r} "
                "(use [group], [group:children] or [group:vars])",
                origin,
            )
        self.group, self.state = group, tag
        if group not in self.data.groups and tag == "vars":
            self.pending.setdefault(group, ("vars", origin.line or 0, []))
        self.data.group(group, origin)
        if group in self.pending and tag != "vars":
            self.settle(group, origin)

    def child(self, line: str, origin: Origin) -> None:
        match = _GROUP_NAME.match(line)
        if not match:
            raise self.fail(f"expected a group name, got {line!r}", origin)
        child = match.group(1)
        if child in self.data.groups:
            self.data.add_child(self.group, child, origin)
        elif child in self.pending:
            self.pending[child][2].append(self.group)
        else:
            self.pending[child] = ("children", origin.line or 0, [self.group])

    def settle(self, group: str, origin: Origin) -> None:
        """A pending group is now defined: attach it to the parents that named it."""
        kind, _, parents = self.pending.pop(group)
        if kind != "children":
            return
        for parent in parents:
            self.data.add_child(parent, group, origin)
            if parent in self.pending and self.pending[parent][0] == "children":
                self.settle(parent, origin)

    def finish(self) -> None:
        for name, (kind, number, parents) in self.pending.items():
            where = Origin(self.path, number)
            if kind == "vars":
                raise self.fail(
                    f"section [{name}:vars] is for group {name!r}, which is not defined", where
                )
            raise self.fail(
                f"section [{parents[-1]}:children] names group {name!r}, which is not defined",
                where,
            )


def _read_host_line(line: str, group: str, origin: Origin, data: InventoryData) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise InventoryError(
            f"cannot read host line {line!r}: {exc}", path=origin.path, line=origin.line
        ) from None
    if not tokens:
        return
    names, port = parse_host_pattern(tokens[0], origin.path, origin.line)
    variables: list[tuple[str, object]] = []
    for token in tokens[1:]:
        key, sep, text = token.partition("=")
        if not sep or not key:
            raise InventoryError(
                f"expected key=value after the host name, got {token!r}",
                path=origin.path,
                line=origin.line,
            )
        variables.append((key, parse_value(text)))
    if port is not None:
        variables.insert(0, ("ansible_port", port))
    for host in data.add_hosts(names, group, origin):
        for key, value in variables:
            data.set_host_var(host, key, value, origin)
