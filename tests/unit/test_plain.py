"""``plain`` and ``typed``: herd's dataclasses to JSON-able data and back, and what a
peer's bad data gets: a PlainError, never a value of the wrong type."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import pytest

from herd.core.plain import PlainError, plain, typed


class Mode(Enum):
    FAST = "fast"
    SAFE = "safe"


@dataclass(frozen=True)
class Leaf:
    name: str
    size: int = 0


@dataclass(frozen=True)
class Other:
    name: str


@dataclass(frozen=True)
class Node:
    """Every kind of field ``typed`` reads, and a class that names itself."""

    name: str
    ratio: float = 1.0
    flag: bool = False
    mode: Mode = Mode.SAFE
    where: Path | None = None
    kind: Literal["file", "dir"] = "file"
    tags: tuple[str, ...] = ()
    pair: tuple[int, str] = (0, "")
    items: list[Leaf] = field(default_factory=list)
    extra: Mapping[str, object] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    either: Leaf | Other | None = None
    number_or_text: int | str = 0
    children: tuple[Node, ...] = ()
    anything: Any = None


def back(value: object, hint: Any) -> Any:
    return typed(hint, json.loads(json.dumps(plain(value))))


def test_every_kind_of_field_comes_back_as_it_went() -> None:
    node = Node(
        name="root",
        ratio=0.5,
        flag=True,
        mode=Mode.FAST,
        where=Path("/srv/app"),
        kind="dir",
        tags=("a", "b"),
        pair=(3, "x"),
        items=[Leaf("one", 1), Leaf("two")],
        extra={"k": [1, "v"], "n": None},
        counts={"a": 1},
        either=Other("o"),
        number_or_text="text",
        children=(Node("child", either=Leaf("l", 2), children=(Node("grandchild"),)),),
        anything={"free": ["form"]},
    )
    assert back(node, Node) == node
    assert back(node, Node | None) == node
    assert typed(Node | None, None) is None


def test_a_union_of_dataclasses_is_told_apart_by_the_name_each_carries() -> None:
    assert back(Leaf("x"), Leaf | Other) == Leaf("x")
    assert back(Other("x"), Leaf | Other) == Other("x")


def test_an_int_is_taken_for_a_float_but_a_bool_is_no_number() -> None:
    assert typed(Node, {"name": "n", "ratio": 2}).ratio == 2.0
    assert isinstance(typed(Node, {"name": "n", "ratio": 2}).ratio, float)
    with pytest.raises(PlainError, match="expected int"):
        typed(Leaf, {"name": "n", "size": True})
    with pytest.raises(PlainError, match="expected float"):
        typed(Node, {"name": "n", "ratio": False})


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ("root", "expected a Node, got str"),
        ({"ratio": 1.0}, "Node: .*name"),
        ({"name": 3}, "expected str, got 3"),
        ({"name": "n", "mode": "reckless"}, "'reckless' is not a valid Mode"),
        ({"name": "n", "where": 5}, "expected a path, got int"),
        ({"name": "n", "kind": "fifo"}, "'fifo' is not one of"),
        ({"name": "n", "tags": "abc"}, "expected a list, got str"),
        ({"name": "n", "tags": ["a", 1]}, "expected str, got 1"),
        ({"name": "n", "items": [{"name": "l", "size": "big"}]}, "expected int, got 'big'"),
        ({"name": "n", "extra": ["k"]}, "expected a mapping, got list"),
        ({"name": "n", "counts": {"a": "1"}}, "expected int, got '1'"),
        ({"name": "n", "either": 4}, "fits none of"),
        ({"name": "n", "number_or_text": 1.5}, "fits none of"),
        ({"name": "n", "children": [{"name": "c", "flag": "yes"}]}, "expected bool"),
    ],
)
def test_data_that_does_not_fit_is_refused(data: object, complaint: str) -> None:
    with pytest.raises(PlainError, match=complaint):
        typed(Node, data)


def test_a_fixed_tuple_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="zip"):
        typed(Node, {"name": "n", "pair": [1, "a", "extra"]})


def test_a_class_name_that_is_not_a_choice_is_read_as_the_choices_are() -> None:
    """A peer naming a class the field does not take gets no such object."""
    with pytest.raises(PlainError):
        typed(Leaf | None, {"__class__": "Node", "children": []})
    assert typed(Leaf | None, {"__class__": ["Leaf"], "name": "x"}) == Leaf("x")
