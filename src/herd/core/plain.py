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
from collections.abc import Callable, Mapping
from enum import Enum
from functools import partial
from pathlib import PurePath
from typing import Any, Literal, TypeVar

__all__ = ["PlainError", "plain", "typed"]

T = TypeVar("T")
_CLASS = "__class__"


_AS_IS = frozenset({str, int, float, bool, type(None)})  # exactly these: not an enum of str
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # each dataclass's fields, in order


class PlainError(ValueError):
    """Data that does not fit the type it should be read as."""


def plain(value: object) -> Any:
    """``value`` as JSON-able data (dataclasses become dicts naming their class)."""
    kind = type(value)
    if kind in _AS_IS:
        return value
    names = _FIELD_NAMES.get(kind)
    if names is None and dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = _FIELD_NAMES[kind] = tuple(f.name for f in dataclasses.fields(value))
    if names is not None:
        data = {_CLASS: kind.__name__}
        for name in names:
            item = getattr(value, name)
            data[name] = item if type(item) in _AS_IS else plain(item)
        return data
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    return _leaf(value)


def _leaf(value: object) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, str | int | float | bool):
        return value
    raise PlainError(f"{type(value).__name__} has no plain form")


def typed(hint: Any, data: object) -> Any:
    """Build a value of type ``hint`` from ``plain`` data; PlainError if it does not fit."""
    return _reader(hint)(data)


# A reader per type hint, made once: working out what a hint means (its origin, its
# arguments, a class's resolved fields) was most of the cost of reading a host, and
# the agent reads every host of every command it serves.
Reader = Callable[[object], Any]
_READERS: dict[Any, Reader] = {}


def _reader(hint: Any) -> Reader:
    try:
        return _READERS[hint]
    except KeyError:
        reader = _READERS[hint] = _make_reader(hint)
        return reader
    except TypeError:  # an unhashable hint: made each time
        return _make_reader(hint)


def _make_reader(hint: Any) -> Reader:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _union(args)
    if origin is Literal:
        return partial(_literal, args)
    if origin in (dict, Mapping, list, tuple):
        return _container(origin, args)
    return _single(hint)


def _container(origin: Any, args: tuple[Any, ...]) -> Reader:
    if origin in (dict, Mapping):
        return partial(_mapping, _reader(args[1] if len(args) == 2 else Any))
    if origin is list:
        return partial(_list, _reader(args[0] if args else Any))
    if len(args) == 2 and args[1] is Ellipsis:
        return partial(_tuple, _reader(args[0]))
    return partial(_fixed_tuple, tuple(_reader(item) for item in args))


def _single(hint: Any) -> Reader:
    if hint is Any or hint is object:
        return _as_is
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return partial(_enum, hint)
    if isinstance(hint, type) and issubclass(hint, PurePath):
        return partial(_path, hint)
    return partial(_scalar, hint)


def _as_is(data: object) -> Any:
    return data


def _literal(allowed: tuple[Any, ...], data: object) -> Any:
    if data not in allowed:
        raise PlainError(f"{data!r} is not one of {allowed}")
    return data


def _mapping(value: Reader, data: object) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PlainError(f"expected a mapping, got {type(data).__name__}")
    return {str(key): value(item) for key, item in data.items()}


def _items(data: object) -> list[Any]:
    if not isinstance(data, list):
        raise PlainError(f"expected a list, got {type(data).__name__}")
    return data


def _list(item: Reader, data: object) -> list[Any]:
    return [item(one) for one in _items(data)]


def _tuple(item: Reader, data: object) -> tuple[Any, ...]:
    return tuple(item(one) for one in _items(data))


def _fixed_tuple(items: tuple[Reader, ...], data: object) -> tuple[Any, ...]:
    return tuple(read(one) for read, one in zip(items, _items(data), strict=True))


def _union(options: tuple[Any, ...]) -> Reader:
    takes_none = type(None) in options
    choices = [o for o in options if o is not type(None)]
    by_name: dict[str, type] = {}
    for choice in choices:  # a dataclass names itself; the first of a name wins
        if isinstance(choice, type) and dataclasses.is_dataclass(choice):
            by_name.setdefault(choice.__name__, choice)
    readers = [_reader(choice) for choice in choices]
    if len(readers) == 1 and not by_name:  # X | None, the most common: no names to look at
        only = readers[0]
        if not takes_none:
            return only
        return lambda data: None if data is None else only(data)

    def read(data: object) -> Any:
        if data is None and takes_none:
            return None
        if isinstance(data, dict) and isinstance(name := data.get(_CLASS), str):
            named = by_name.get(name)
            if named is not None:
                return _reader(named)(data)
        if len(readers) == 1:
            return readers[0](data)
        for reader in readers:  # scalars: the first type that takes the value as it is
            try:
                return reader(data)
            except PlainError:
                continue
        raise PlainError(f"{data!r} fits none of {choices}")

    return read


def _enum(cls: type[Enum], data: object) -> Any:
    try:
        return cls(data)
    except ValueError as exc:
        raise PlainError(str(exc)) from None


def _path(cls: type[PurePath], data: object) -> Any:
    if not isinstance(data, str):
        raise PlainError(f"expected a path, got {type(data).__name__}")
    return cls(data)


def _scalar(hint: Any, data: object) -> Any:
    if type(data) is hint:  # the common case: exactly the type (a bool is no int here)
        return data
    if hint is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if (
        isinstance(hint, type)
        and isinstance(data, hint)
        and not (isinstance(data, bool) and hint is not bool)
    ):
        return data
    raise PlainError(f"expected {getattr(hint, '__name__', hint)}, got {data!r}")


def _dataclass(cls: type[T]) -> Callable[[object], T]:
    fields: tuple[tuple[str, Reader], ...] | None = None

    def read(data: object) -> T:
        nonlocal fields
        if not isinstance(data, dict):
            raise PlainError(f"expected a {cls.__name__}, got {type(data).__name__}")
        if fields is None:  # on first use: the class's own fields may name it
            hints = typing.get_type_hints(cls)
            init = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
            fields = tuple((name, _reader(hints[name])) for name in init)
        values = {name: read_field(data[name]) for name, read_field in fields if name in data}
        try:
            return cls(**values)
        except TypeError as exc:
            raise PlainError(f"{cls.__name__}: {exc}") from None

    return read
