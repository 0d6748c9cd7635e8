"""The Ansible filters herd renders inventory variables with, beside Jinja's own.

Each behaves as ansible-core's filter of the same name does on the values an
inventory holds (the test suite renders the same templates with ansible-core
and compares): ``bool``, ``ternary``, ``unique``, ``regex_replace``,
``regex_search``, ``regex_findall``, ``b64encode``, ``b64decode``, ``to_json``,
``to_nice_json``, ``to_yaml``, ``to_nice_yaml``, ``quote``, ``basename``,
``dirname`` and ``split`` (``default``/``d`` and ``mandatory`` are in
``herd.inventory.templating``, beside the undefined values they deal with).

Where ansible-core only warns (``bool`` of a value that is no boolean, which
it calls deprecated and coerces), herd refuses. Jinja's ``random`` is left out:
Ansible's differs from it, and a host's variables should not change from one
run to the next. Any other filter is an error, never a pass-through.
"""

from __future__ import annotations

import base64
import datetime
import json
import os.path
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml
from jinja2.filters import sync_do_unique

__all__ = ["ANSIBLE_FILTERS", "FilterError"]

_TRUE = frozenset({"yes", "on", "true", "1"})
_FALSE = frozenset({"no", "off", "false", "0"})


class FilterError(ValueError):
    """A filter refused its input; the message says why, in the filter's name."""


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def to_bool(value: object) -> bool:
    """``yes``/``on``/``true``/``1`` (any case, or as a number) are true; ``no``/``off``/... not."""
    probe = value.lower() if isinstance(value, str) else value
    if isinstance(value, int):
        probe = str(value).lower()
    if isinstance(probe, str) and probe in _TRUE:
        return True
    if isinstance(probe, str) and probe in _FALSE:
        return False
    raise FilterError(f"bool: {value!r} is not one of yes/no, on/off, true/false, 1/0")


def ternary(value: object, true_val: object, false_val: object, none_val: object = None) -> object:
    if value is None and none_val is not None:
        return none_val
    return true_val if value else false_val


def _unique(
    environment: Any, value: Iterable[object], case_sensitive: bool | None = None,
    attribute: str | int | None = None,
) -> list[object]:  # fmt: skip
    """Jinja's ``unique``; on unhashable items, Ansible's plain first-occurrence version."""
    try:
        return list(
            sync_do_unique(
                environment, value, case_sensitive=bool(case_sensitive), attribute=attribute
            )
        )
    except TypeError:
        if case_sensitive is False or attribute:
            raise
    kept: list[object] = []
    for item in value:
        if item not in kept:
            kept.append(item)
    return kept


_unique.jinja_pass_arg = sync_do_unique.jinja_pass_arg  # type: ignore[attr-defined]


def _flags(ignorecase: object, multiline: object) -> int:
    return (re.IGNORECASE if ignorecase else 0) | (re.MULTILINE if multiline else 0)


def regex_replace(  # noqa: PLR0917 (ansible-core's signature: templates pass these by position)
    value: object = "", pattern: str = "", replacement: str = "", ignorecase: bool = False,
    multiline: bool = False, count: int = 0, mandatory_count: int = 0,
) -> str:  # fmt: skip
    output, made = re.compile(pattern, _flags(ignorecase, multiline)).subn(
        replacement, _text(value), count=count
    )
    if mandatory_count and mandatory_count != made:
        raise FilterError(
            f"regex_replace: {pattern!r} should match {mandatory_count} times, not {made}"
        )
    return output


def regex_search(value: object, regex: str, *groups: str, **flags: object) -> object:
    wanted: list[str | int] = []
    for group in groups:
        named = re.match(r"\\g<(\S+)>", group)
        numbered = re.match(r"\\(\d+)", group)
        if named:
            wanted.append(named.group(1))
        elif numbered:
            wanted.append(int(numbered.group(1)))
        else:
            raise FilterError(f"regex_search: unknown argument {group!r}")
    found = re.search(regex, _text(value), _flags(flags.get("ignorecase"), flags.get("multiline")))
    if found is None:
        return None
    return [found.group(g) for g in wanted] if wanted else found.group()


def regex_findall(
    value: object, regex: str, multiline: bool = False, ignorecase: bool = False
) -> list[Any]:
    return re.findall(regex, _text(value), _flags(ignorecase, multiline))


def b64encode(string: object, encoding: str = "utf-8", urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(_text(string).encode(encoding, "surrogateescape")).decode("ascii")


def b64decode(string: object, encoding: str = "utf-8", urlsafe: bool = False) -> str:
    decode = base64.urlsafe_b64decode if urlsafe else base64.b64decode
    return decode(_text(string).encode("utf-8", "surrogateescape")).decode(
        encoding, "surrogateescape"
    )


def _json_default(value: object) -> object:
    if isinstance(value, datetime.date):  # datetime too
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def to_json(value: object, **options: Any) -> str:
    return json.dumps(value, default=_json_default, **options)


def to_nice_json(value: object, indent: int = 4, sort_keys: bool = True, **options: Any) -> str:
    options.pop("separators", None)
    return to_json(value, indent=indent, sort_keys=sort_keys, separators=(",", ": "), **options)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """ansible-core's dumper: libyaml's safe one when built in (it ends no scalar with '...')."""


_Dumper.add_multi_representer(str, yaml.SafeDumper.represent_str)
_Dumper.add_multi_representer(Mapping, yaml.SafeDumper.represent_dict)


def to_yaml(value: object, *_args: object, default_flow_style: bool | None = None,
            **options: Any) -> str:  # fmt: skip
    dumped: str = yaml.dump(
        value, Dumper=_Dumper, allow_unicode=True, default_flow_style=default_flow_style,
        **options,
    )  # fmt: skip
    return dumped


def to_nice_yaml(value: object, indent: int = 4, *_args: object,
                 default_flow_style: bool = False, **options: Any) -> str:  # fmt: skip
    return to_yaml(value, indent=indent, default_flow_style=default_flow_style, **options)


def quote(value: object) -> str:
    return shlex.quote("" if value is None else _text(value))


def split(value: str, sep: str | None = None, maxsplit: int = -1) -> list[str]:
    return value.split(sep, maxsplit)


ANSIBLE_FILTERS: dict[str, Callable[..., Any]] = {
    "bool": to_bool,
    "ternary": ternary,
    "unique": _unique,
    "regex_replace": regex_replace,
    "regex_search": regex_search,
    "regex_findall": regex_findall,
    "b64encode": b64encode,
    "b64decode": b64decode,
    "to_json": to_json,
    "to_nice_json": to_nice_json,
    "to_yaml": to_yaml,
    "to_nice_yaml": to_nice_yaml,
    "quote": quote,
    "basename": os.path.basename,
    "dirname": os.path.dirname,
    "split": split,
}
