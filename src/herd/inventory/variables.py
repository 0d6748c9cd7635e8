"""Connection variables: herd's names, their Ansible twins, their types, and secrets.

A connection variable is checked where it is written (so a wrong type names
that file and line) and read into ``Host``'s fields once the precedence chain
has picked its value. Where one level sets ``port`` and a more specific level
sets ``ansible_port``, the more specific level wins, whichever spelling it uses;
every variable is still shown as written, as Ansible shows it.

A value holding a Jinja template (``"{{ base }}.8"``) is checked once it is
rendered, for the host that uses it (``herd.inventory.rendering``).
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

from herd.core.paths import expanded
from herd.errors import InventoryError

__all__ = [
    "CONNECTION_FIELDS",
    "SECRET_VARIABLE",
    "SSH_ARGS",
    "KnowsSecrets",
    "Resolved",
    "UnsafeText",
    "check_rendered",
    "check_variable",
    "connection_fields",
    "contains_template",
    "is_template",
    "mask_secrets",
    "merge_levels",
]

# Host field -> the variable names that set it; herd's own name first (it wins within one level).
CONNECTION_FIELDS: dict[str, tuple[str, ...]] = {
    "address": ("address", "ansible_host", "ansible_ssh_host"),
    "port": ("port", "ansible_port", "ansible_ssh_port"),
    "user": ("user", "ansible_user", "ansible_ssh_user"),
    "identity_files": ("identity_file", "ansible_ssh_private_key_file", "ansible_private_key_file"),
    "password": ("password", "ansible_password", "ansible_ssh_pass"),
    "jump": ("jump",),
    "known_hosts": ("known_hosts",),
    "connect_timeout": ("connect_timeout", "ansible_ssh_timeout", "ansible_timeout"),
    "connection": ("ansible_connection",),
}
_FIELD_OF = {name: host_field for host_field, names in CONNECTION_FIELDS.items() for name in names}
_TWINS = {name: CONNECTION_FIELDS[_FIELD_OF[name]] for name in _FIELD_OF}
_CONNECTION_KEYS = frozenset(_FIELD_OF) | {"ansible_group_priority"}
# Ansible's extra ssh arguments, read for a ProxyJump when no jump is set
SSH_ARGS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")

SECRET_VARIABLE = re.compile(r"(^|_)(password|pass|passphrase|secret|token)$", re.IGNORECASE)
MASK = "********"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class UnsafeText(str):
    """Text marked ``!unsafe`` in YAML: Ansible never renders it as a template, nor does herd."""

    __slots__ = ()


def is_template(text: str) -> bool:
    """Whether Ansible would render ``text`` with Jinja: it holds ``{{``, ``{%`` or ``{#``."""
    return "{{" in text or "{%" in text or "{#" in text or text.startswith("#jinja2:")


def contains_template(value: object) -> bool:
    """Whether ``value`` is, or holds in a list or a mapping's values, a template to render.

    Only plain ``str`` counts: text marked ``!unsafe`` in YAML is a ``str`` subclass
    that Ansible never renders.
    """
    if type(value) is str:
        return is_template(value)
    if isinstance(value, list):
        return any(contains_template(item) for item in value)
    if isinstance(value, dict):
        return any(contains_template(item) for item in value.values())
    return False


def check_variable(key: str, value: object, path: str, line: int | None) -> object:
    """``value`` unchanged if ``key`` may hold it; an ``InventoryError`` at path:line if not.

    A template is let through: its rendered value is checked per host (``check_rendered``).
    """
    if key not in _CONNECTION_KEYS or (key in _FIELD_OF and contains_template(value)):
        return value  # ansible_group_priority is read at load time, as by ansible-core
    problem = _problem(_FIELD_OF.get(key, key), value)
    if problem is not None:
        raise InventoryError(f"{key} must be {problem}, not {value!r}", path=path, line=line)
    return value


def check_rendered(key: str, value: object) -> str | None:
    """What is wrong with the rendered ``value`` of connection variable ``key``, or None."""
    if key not in _CONNECTION_KEYS:
        return None
    problem = _problem(_FIELD_OF.get(key, key), value)
    return None if problem is None else f"{key} must be {problem}, not {value!r}"


def _port_ok(value: object) -> bool:
    port = _as_int(value)
    return port is not None and 0 < port < 65536


def _seconds_ok(value: object) -> bool:
    seconds = _as_float(value)
    return seconds is not None and seconds > 0


def _files_ok(value: object) -> bool:
    files = value if isinstance(value, list) else [value]
    return bool(files) and all(isinstance(f, str) and f for f in files)


def _text_ok(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _text_or_number_ok(value: object) -> bool:
    return _text_ok(value) or _is_number(value)


# Host field -> (check, what the value should have been)
_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "port": (_port_ok, "a port number (1-65535)"),
    "ansible_group_priority": (lambda v: _as_int(v) is not None, "a whole number"),
    "connect_timeout": (_seconds_ok, "a number of seconds above 0"),
    "identity_files": (_files_ok, "a file path or a list of file paths"),
    "address": (_text_or_number_ok, "a non-empty text"),
    "user": (_text_or_number_ok, "a non-empty text"),
    "password": (_text_or_number_ok, "a non-empty text"),
}


def _problem(host_field: str, value: object) -> str | None:
    """What ``value`` should have been for ``host_field``, or None when it is fine."""
    check, expected = _CHECKS.get(host_field, (_text_ok, "a non-empty text"))
    return None if check(value) else expected


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _as_float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


_RANK = {name: rank for names in CONNECTION_FIELDS.values() for rank, name in enumerate(names)}


class Resolved:
    """Variables merged level by level, remembering which spelling set each connection field.

    Every variable stays as Ansible would show it; ``chosen`` says, per Host field,
    the variable name whose value counts: the one from the most specific level,
    herd's own spelling first within a level.
    """

    __slots__ = ("chosen", "values")

    def __init__(
        self, values: dict[str, object] | None = None, chosen: dict[str, str] | None = None
    ) -> None:
        self.values: dict[str, object] = values if values is not None else {}
        self.chosen: dict[str, str] = chosen if chosen is not None else {}

    def copy(self) -> Resolved:
        return Resolved(dict(self.values), dict(self.chosen))

    def apply(self, levels: Iterable[Mapping[str, object]]) -> Resolved:
        """Apply ``levels`` in place, least specific first; returns self."""
        values, chosen = self.values, self.chosen
        for level in levels:
            if not level:
                continue
            values.update(level)
            for key in level.keys() & _FIELD_OF.keys():
                host_field = _FIELD_OF[key]
                current = chosen.get(host_field)
                if current is None or current not in level or _RANK[key] < _RANK[current]:
                    chosen[host_field] = key
        return self


def merge_levels(levels: Iterable[Mapping[str, object]]) -> dict[str, object]:
    """Variables of ``levels`` merged, least specific first (later levels win)."""
    return Resolved().apply(levels).values


def connection_fields(name: str, resolved: Resolved) -> dict[str, object]:
    """Host's connection fields from resolved variables (checked already, so conversions hold)."""
    picked = {field: resolved.values[key] for field, key in resolved.chosen.items()}
    address = picked.get("address")
    port = picked.get("port")
    timeout = picked.get("connect_timeout")
    files = picked.get("identity_files")
    connection = str(picked.get("connection", "ssh"))
    return {
        "address": str(address) if address is not None else name,
        "port": _as_int(port) if port is not None else None,
        "user": str(picked["user"]) if "user" in picked else None,
        "identity_files": tuple(
            str(expanded(str(f))) for f in (files if isinstance(files, list) else [files])
        )
        if files is not None
        else (),
        "password": str(picked["password"]) if "password" in picked else None,
        "jump": str(picked["jump"]) if "jump" in picked else _proxy_jump(resolved.values),
        "known_hosts": str(expanded(str(picked["known_hosts"])))
        if "known_hosts" in picked
        else None,
        "connect_timeout": _as_float(timeout) if timeout is not None else None,
        "local": connection == "local",
        "connection": connection,
    }


def _proxy_jump(values: Mapping[str, object]) -> str | None:
    """The bastion an Ansible inventory names in its SSH arguments (``-o ProxyJump=``, ``-J``).

    The arguments are split as the shell would, so ``-J`` inside another
    option's value (a path such as ``/tmp/x-Jy/known_hosts``) is not a jump.
    """
    for key in SSH_ARGS:
        args = values.get(key)
        if not isinstance(args, str):
            continue
        words = _words(args)
        for index, word in enumerate(words):
            following = words[index + 1] if index + 1 < len(words) else ""
            if word.startswith("-J"):
                return word[2:] or following or None
            if word.startswith("-o"):
                name, _, value = (word[2:] or following).replace("=", " ", 1).partition(" ")
                if name.lower() == "proxyjump" and value.strip():
                    return value.strip()
    return None


@functools.lru_cache(maxsize=64)
def _words(args: str) -> tuple[str, ...]:
    """``args`` split as the shell would (none if it cannot be): a fleet's hosts mostly share
    one group's SSH arguments, so each distinct string is split once."""
    try:
        return tuple(shlex.split(args))
    except ValueError:
        return ()


@runtime_checkable
class KnowsSecrets(Protocol):
    """Variables that know which of their values were rendered from a secret."""

    def from_secret(self, key: str) -> bool:
        """Whether the value of ``key`` was computed from a secret-named variable."""


def mask_secrets(variables: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``variables`` with passwords and other secrets replaced by a mask.

    A value rendered from a secret (``"{{ ansible_user }}:{{ ansible_password }}"``)
    is masked too, whatever its own name.
    """
    values = dict(variables)
    derived = variables.from_secret if isinstance(variables, KnowsSecrets) else None
    return {
        key: MASK
        if value is not None and (SECRET_VARIABLE.search(key) or (derived and derived(key)))
        else value
        for key, value in values.items()
    }
