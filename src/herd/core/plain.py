"""Frozen dataclasses to plain JSON values and back, by their type hints.

What crosses a process boundary (a job handed to a transfer worker, a plan
handed to the agent or a gateway) is herd's own frozen dataclasses. ``plain``
turns one into JSON-able values (dicts, lists, strings, numbers) and ``typed``
builds it back from them, guided by the field types: ``Path``, enums, tuples,
``X | None``, mappings and nested dataclasses. A union of several dataclasses
is told apart by the class name each one carries. Nothing is executed while
reading, unlike pickle: a peer can send bad data, never code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from enum import Enum
from pathlib import PurePath
from typing import Any, Literal, TypeVar

__all__ = ["PlainError", "plain", "typed"]

T = TypeVar("T")
_CLASS = "__class__"


class PlainError(ValueError):
    """Data that does not fit the type it should be read as."""


def plain(value: object) -> Any:
    """``value`` as JSON-able data (dataclasses become dicts naming their class)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {_CLASS: type(value).__name__, **data}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise PlainError(f"{type(value).__name__} has no plain form")


def typed(hint: Any, data: object) -> Any:
    """Build a value of type ``hint`` from ``plain`` data; PlainError if it does not fit."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _union(args, data)
    if origin is Literal:
        if data not in args:
            raise PlainError(f"{data!r} is not one of {args}")
        return data
    if origin in (tuple, list, dict, Mapping):
        return _container(origin, args, data)
    return _scalar(hint, data)


def _container(origin: Any, args: tuple[Any, ...], data: object) -> Any:
    if origin in (dict, Mapping):
        if not isinstance(data, dict):
            raise PlainError(f"expected a mapping, got {type(data).__name__}")
        value_hint = args[1] if len(args) == 2 else Any
        return {str(key): typed(value_hint, item) for key, item in data.items()}
    if not isinstance(data, list):
        raise PlainError(f"expected a list, got {type(data).__name__}")
    if origin is list:
        return [typed(args[0] if args else Any, item) for item in data]
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(typed(args[0], item) for item in data)
    return tuple(typed(item_hint, item) for item_hint, item in zip(args, data, strict=True))


def _union(options: tuple[Any, ...], data: object) -> Any:
    if data is None and type(None) in options:
        return None
    choices = [o for o in options if o is not type(None)]
    if isinstance(data, dict) and _CLASS in data:
        for choice in choices:
            if isinstance(choice, type) and choice.__name__ == data[_CLASS]:
                return _dataclass(choice, data)
    if len(choices) == 1:
        return typed(choices[0], data)
    for choice in choices:  # scalars: the first type that takes the value as it is
        try:
            return typed(choice, data)
        except PlainError:
            continue
    raise PlainError(f"{data!r} fits none of {choices}")


def _scalar(hint: Any, data: object) -> Any:
    if hint is Any or hint is object:
        return data
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, data)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(data)
        except ValueError as exc:
            raise PlainError(str(exc)) from None
    if isinstance(hint, type) and issubclass(hint, PurePath):
        if not isinstance(data, str):
            raise PlainError(f"expected a path, got {type(data).__name__}")
        return hint(data)
    if hint is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if (
        isinstance(hint, type)
        and isinstance(data, hint)
        and not (isinstance(data, bool) and hint is not bool)
    ):
        return data
    raise PlainError(f"expected {getattr(hint, '__name__', hint)}, got {data!r}")


def _dataclass(cls: type[T], data: object) -> T:
    if not isinstance(data, dict):
        raise PlainError(f"expected a {cls.__name__}, got {type(data).__name__}")
    values: dict[str, Any] = {}
    for name, hint in _init_hints(cls):
        if name in data:
            values[name] = typed(hint, data[name])
    try:
        return cls(**values)
    except TypeError as exc:
        raise PlainError(f"{cls.__name__}: {exc}") from None


# Each dataclass's init fields and their resolved types: resolving the annotations is
# most of the cost of reading a host, and a class's never change.
_INIT_HINTS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _init_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    found = _INIT_HINTS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)
        found = _INIT_HINTS[cls] = tuple((f.name, hints[f.name]) for f in fields if f.init)
    return found
