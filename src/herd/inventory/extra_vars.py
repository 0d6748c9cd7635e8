"""``-e/--extra-vars``: Ansible's extra variables, read as ansible-core reads them.

Each ``-e`` is one of (in the order ansible-core tries them):

- ``@FILE``: a YAML (or JSON) file holding a mapping of variables;
- text starting with ``{`` or ``[``: inline YAML or JSON, a mapping;
- ``KEY=VALUE`` pairs, several to one ``-e`` separated by blanks, with quotes
  and backslash escapes as ansible-core reads them (``herd.inventory.kv``);
  values stay text, as in Ansible.

An empty ``-e`` is ignored; a later ``-e`` wins over an earlier one for the same
name (whole values, no deep merge). Extra variables are Ansible's highest
precedence: they beat every host and group variable. A template in one is
rendered per host like any inventory value (``herd.inventory.rendering``).

herd is stricter than ansible-core where ansible-core would silently do
something nobody meant: a name that is not a variable name is an error (Ansible
stores ``-e a-b=1`` under ``a-b``, where no template can reach it), and so is a
word without ``=`` (Ansible keeps it as ``_raw_params``). Because ``-e`` set the
command's environment in herd before, a ``KEY=VALUE`` whose KEY is all upper
case (``PATH``, ``DB_PASSWORD``) is refused too, pointing at ``--env``: Ansible
variable names are lower case by convention, environment names upper case.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from herd.errors import InventoryError, UsageError
from herd.inventory.kv import KvError, parse_kv
from herd.inventory.variables import check_variable
from herd.inventory.yamlfile import YamlError, line_of, load_yaml

__all__ = ["parse_extra_vars", "valid_variable_name"]

# Names Jinja reads as constants or operators, which no template could look up (as ansible-core).
_JINJA_KEYWORDS = frozenset({"true", "false", "none", "True", "False", "None", "not"})
# An environment variable's look: upper-case letters, digits and underscores, at least one letter.
_ENVIRONMENT_NAME = re.compile(r"[A-Z0-9_]*[A-Z][A-Z0-9_]*\Z")
_ENV_HINT = "for a command's environment use herd run --env NAME=VALUE"
_NAME_RULE = "letters, digits and _, not starting with a digit"


def valid_variable_name(name: object) -> bool:
    """Whether ansible-core accepts ``name`` as a variable name: ASCII identifier, no keyword."""
    return (
        isinstance(name, str)
        and name.isidentifier()
        and name.isascii()
        and name not in _JINJA_KEYWORDS
    )


def parse_extra_vars(options: Iterable[str]) -> dict[str, object]:
    """The variables of every ``-e`` option, merged in order (a later one wins).

    Raises ``UsageError`` (or ``InventoryError`` naming an ``@FILE`` and its line)
    for anything herd would not read exactly as ansible-core does.
    """
    merged: dict[str, object] = {}
    for option in options:
        if not option:
            continue
        if option.startswith("@"):
            merged.update(_from_file(option[1:]))
        elif option[0] in "/.":
            raise UsageError(
                f"-e {option}: a file of variables is written with @ in front: -e @{option}"
            )
        elif option[0] in "[{":
            merged.update(_from_inline(option))
        else:
            merged.update(_from_pairs(option))
    return merged


def _from_pairs(option: str) -> dict[str, object]:
    try:
        pairs, free = parse_kv(option)
    except KvError as exc:
        raise UsageError(f"-e {option!r}: {exc}") from None
    if free:
        word = free[0].strip()
        hint = f"use herd run --env {word}" if _ENVIRONMENT_NAME.match(word) else _ENV_HINT
        raise UsageError(
            f"-e {word!r}: expected KEY=VALUE, @FILE or inline JSON/YAML "
            f'({{"key": "value"}}); {hint}'
        )
    checked: dict[str, object] = {}
    for key, value in pairs.items():
        if _ENVIRONMENT_NAME.match(key):
            raise UsageError(
                f"-e {key}=...: -e sets Ansible variables, and an upper-case {key} looks like "
                f"a command's environment: use herd run --env {key}=VALUE"
            )
        if not valid_variable_name(key):
            raise UsageError(
                f"-e {key}=...: {key!r} is not a variable name ({_NAME_RULE}); {_ENV_HINT}"
            )
        checked[key] = check_variable(key, value, "-e", None)
    return checked


def _from_inline(option: str) -> dict[str, object]:
    try:
        document = load_yaml(option)
    except YamlError as exc:
        raise UsageError(f"-e {option!r}: not valid JSON or YAML: {exc}") from None
    if not isinstance(document, Mapping):
        raise UsageError(
            f'-e {option!r}: inline variables must be a mapping such as {{"key": "value"}},'
            f" not {type(document).__name__}"
        )
    return _checked(document, f"-e {option!r}", lambda _key: None)


def _from_file(name: str) -> dict[str, object]:
    path = Path(os.path.expandvars(name)).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryError(f"-e file is not UTF-8 text ({exc.reason})", path=name) from None
    except OSError as exc:
        raise InventoryError(f"cannot read this -e file: {exc.strerror}", path=name) from None
    if text.startswith("$ANSIBLE_VAULT"):
        raise InventoryError("encrypted with ansible-vault; herd cannot read it", path=name)
    try:
        document = load_yaml(text)
    except YamlError as exc:
        raise InventoryError(f"YAML syntax: {exc}", path=name, line=exc.line) from None
    if not isinstance(document, Mapping):
        kind = "nothing" if document is None else type(document).__name__
        raise InventoryError(
            f"an -e file holds a mapping of variables, not {kind}", path=name, line=1
        )
    return _checked(document, name, lambda key: line_of(text, [key]))


def _checked(
    document: Mapping[object, object], where: str, line: Callable[[object], int | None]
) -> dict[str, object]:
    """The variables of a parsed mapping, names and connection values checked.

    ``line(key)`` finds a key's line, asked only when there is an error to report.
    """
    checked: dict[str, object] = {}
    for key, value in document.items():
        if not valid_variable_name(key):
            raise InventoryError(
                f"{key!r} is not a variable name ({_NAME_RULE})",
                path=where,
                line=line(key),
            )
        name = str(key)
        try:
            checked[name] = check_variable(name, value, where, None)
        except InventoryError as exc:
            message = str(exc).removeprefix(f"{where}: ")
            raise InventoryError(message, path=where, line=line(key)) from None
    return checked
