"""Expand and fold host ranges: ``web[01-12]`` <-> ``web01`` .. ``web12``.

Two range spellings are read, because operators bring both:

- Ansible's ``[start:end]`` and ``[start:end:step]``, numeric (``[01:20]``,
  zero padding kept) or single letters (``[a:f]``);
- ClusterShell's ``[01-20]``, ``[01-03,07]`` and ``[1-10/2]``.

A name may hold several brackets (``rack[1-2]-node[01-04]``, the first bracket
varies slowest) and a text may list several names separated by commas outside
brackets. ``fold`` writes ClusterShell's form back, so ``fold(expand(x))``
gives ``x`` for a folded ``x`` and ``nodeset -e`` reads it as herd does; given
a ``FoldReader`` (an inventory's pattern engine), it writes only terms that,
pasted back as a pattern, select exactly the names folded.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator
from itertools import product
from typing import Protocol

from herd.errors import PatternError

__all__ = [
    "MAX_EXPANSION",
    "FoldReader",
    "expand",
    "fold",
    "has_range",
    "sort_key",
    "split_outside_brackets",
]

MAX_EXPANSION = 1_000_000  # a typo like web[1:100000000] must fail, not eat the memory

_DIGITS = re.compile(r"([0-9]+)")
_LETTERS = string.ascii_letters


def has_range(text: str) -> bool:
    """Whether ``text`` holds a bracketed range to expand."""
    return "[" in text


def split_outside_brackets(text: str, separators: str = ",") -> list[str]:
    """Split ``text`` at any of ``separators`` that is not inside ``[...]``; drop empty parts."""
    parts: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(depth - 1, 0)
        elif depth == 0 and char in separators:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def expand(text: str) -> list[str]:
    """Every host name ``text`` stands for, in range order, without duplicates.

    Raises ``PatternError`` (one line, naming the range) for a malformed range:
    start after end, letters mixed with numbers, a zero step, unequal padding.
    """
    if "[" not in text and "]" not in text and "," not in text:
        return [text.strip()] if text.strip() else []
    names: list[str] = []
    for part in split_outside_brackets(text):
        names.extend(_expand_one(part))
        if len(names) > MAX_EXPANSION:
            raise PatternError(f"host range {text!r} gives more than {MAX_EXPANSION} names")
    return list(dict.fromkeys(names))


def _expand_one(name: str) -> list[str]:
    if "[" not in name and "]" not in name:
        return [name]
    texts: list[str] = []
    choices: list[list[str]] = []
    rest = name
    while True:
        opening = rest.find("[")
        if opening < 0:
            if "]" in rest:
                raise PatternError(f"host range {name!r} has a ']' without its '['")
            texts.append(rest)
            break
        closing = rest.find("]", opening)
        if closing < 0:
            raise PatternError(f"host range {name!r} has a '[' without its ']'")
        if "]" in rest[:opening]:
            raise PatternError(f"host range {name!r} has a ']' without its '['")
        texts.append(rest[:opening])
        choices.append(_expand_bracket(rest[opening + 1 : closing], name))
        rest = rest[closing + 1 :]
    total = 1
    for values in choices:
        total *= len(values)
    if total > MAX_EXPANSION:
        raise PatternError(f"host range {name!r} gives more than {MAX_EXPANSION} names")
    if len(choices) == 1:  # the common case, one bracket: no product needed
        head, tail = texts
        return [f"{head}{value}{tail}" for value in choices[0]]
    names: list[str] = []
    for combination in product(*choices):
        pieces = [texts[0]]
        for value, text in zip(combination, texts[1:], strict=True):
            pieces.append(value)
            pieces.append(text)
        names.append("".join(pieces))
    return names


def _expand_bracket(body: str, name: str) -> list[str]:
    """The values of one bracket: Ansible's ``a:b[:s]`` or ClusterShell's ``a-b/s,c``."""
    if not body.strip():
        raise PatternError(f"host range {name!r} has an empty '[]'")
    if ":" in body:
        bounds = body.split(":")
        if len(bounds) not in (2, 3):
            raise PatternError(f"host range {name!r}: write [start:end] or [start:end:step]")
        step = bounds[2] if len(bounds) == 3 else "1"
        return _sequence(bounds[0] or "0", bounds[1], step, name, equal_widths=True)
    values: list[str] = []
    for raw_item in body.split(","):
        item, _, step = raw_item.strip().partition("/")
        if not item:
            raise PatternError(f"host range {name!r} has an empty item in [{body}]")
        if "-" in item:
            start, _, end = item.partition("-")
            values.extend(_sequence(start, end, step or "1", name, equal_widths=False))
        elif step:
            raise PatternError(f"host range {name!r}: a step needs a range, as in [1-10/2]")
        else:
            _check_value(item, name)
            values.append(item)
    return values


def _is_letter(value: str) -> bool:
    return len(value) == 1 and value in _LETTERS


def _check_value(value: str, name: str) -> None:
    if not (value.isdigit() and value.isascii()) and not _is_letter(value):
        raise PatternError(f"host range {name!r}: {value!r} is neither a number nor a letter")


def _sequence(start: str, end: str, step: str, name: str, *, equal_widths: bool) -> list[str]:
    start, end, step = start.strip(), end.strip(), step.strip()
    if not end:
        raise PatternError(f"host range {name!r} has no end value")
    if not (step.isdigit() and step.isascii()) or int(step) == 0:
        raise PatternError(f"host range {name!r}: the step must be a positive number")
    stride = int(step)
    if start.isdigit() and end.isdigit() and start.isascii() and end.isascii():
        first, last = int(start), int(end)
        if first > last:
            raise PatternError(f"host range {name!r} starts after it ends ({start} > {end})")
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        if width and equal_widths and len(end) != width:
            raise PatternError(
                f"host range {name!r}: zero-padded start and end need the same width"
            )
        if width and not equal_widths and end.startswith("0") and len(end) != width:
            raise PatternError(
                f"host range {name!r}: zero-padded start and end need the same width"
            )
        if (last - first) // stride + 1 > MAX_EXPANSION:
            raise PatternError(f"host range {name!r} gives more than {MAX_EXPANSION} names")
        return [str(number).zfill(width) for number in range(first, last + 1, stride)]
    if _is_letter(start) and _is_letter(end):
        first, last = _LETTERS.index(start), _LETTERS.index(end)
        if first > last:
            raise PatternError(f"host range {name!r} starts after it ends ({start} > {end})")
        return list(_LETTERS[first : last + 1 : stride])
    if (start.isdigit() and _is_letter(end)) or (_is_letter(start) and end.isdigit()):
        raise PatternError(f"host range {name!r} mixes a letter and a number ({start}, {end})")
    raise PatternError(
        f"host range {name!r}: {start!r} to {end!r} is neither a number range nor a letter range"
    )


# ---------------------------------------------------------------------------
# folding


class FoldReader(Protocol):
    """Where a folded text is going to be pasted, and so which terms it may hold.

    ``fold`` asks it before writing a bracketed term: herd's pattern language
    reads ``web[03-04]`` as hosts 3 and 4 of a group ``web`` when one exists
    (Ansible's subscript), so a term that is a range in one inventory picks
    other hosts in another. ``herd.inventory.patterns.fold_reader`` gives the
    reader of an inventory, and a cautious one for no inventory at all.
    """

    def foldable(self, name: str) -> bool:
        """Whether ``name`` may be written inside a bracketed term (a host it knows)."""

    def reads_as_range(self, term: str) -> bool:
        """Whether ``term``, pasted alone, selects exactly the names it expands to."""

    def spell(self, name: str) -> str:
        """``name`` written as a term that selects it alone."""


def sort_key(name: str) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    """The order ``fold`` lists names in: by their text parts, then numerically.

    ``web9`` sorts before ``web10``; names that differ only in zero padding
    (``web1``, ``web01``) sort narrower first.
    """
    parts = _DIGITS.split(name)
    return tuple(parts[0::2]), tuple((int(n), len(n)) for n in parts[1::2])


def fold(names: Iterable[str], reader: FoldReader | None = None) -> str:
    """``names`` folded as ClusterShell's ``nodeset -f`` writes them: ``web[01-08,10],db1``.

    Names are grouped by their text around the numbers; each numeric position
    is folded, last position first, so a full product such as
    ``rack[1-2]-node[01-04]`` folds back into one term. Numbers are written in
    ClusterShell's runs, so the text reads the same in ``nodeset`` and clush:
    a zero-padded run ends where it outgrows its width (``node[01-99,100]``)
    and mixed padding keeps one run per padding (``web[1-3,01-03]``). Only
    names of letters, digits, ``.``, ``-`` and ``_`` go into brackets; others
    are written one by one. The result is the same whatever the order of
    ``names``, and ``fold(expand(x)) == x`` for a text ``x`` it folded without
    a reader.

    With a ``reader``, the text is also a pattern for it that selects exactly
    ``names``: a bracketed term the reader would read otherwise is written
    another way (``web0[3-4]``, then ``web[03,04]``, then name by name), and
    each name it may not fold is written as ``reader.spell`` gives it.
    """
    templates: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    terms: list[tuple[_SortKey, str]] = []
    for name in set(names):
        if _FOLDABLE.fullmatch(name) is None or (reader is not None and not reader.foldable(name)):
            terms.append((sort_key(name), name if reader is None else reader.spell(name)))
            continue
        parts = _DIGITS.split(name)
        templates.setdefault(tuple(parts[0::2]), set()).add(tuple(parts[1::2]))
    for texts, vectors in templates.items():
        for ranges in _fold_vectors(vectors):
            terms.extend(_write(texts, ranges, reader))
    terms.sort(key=lambda term: term[0])
    return ",".join(text for _, text in terms)


_SortKey = tuple[tuple[str, ...], tuple[tuple[int, int], ...]]
_FOLDABLE = re.compile(r"[A-Za-z0-9._-]+")


def _fold_vectors(vectors: set[tuple[str, ...]]) -> list[tuple[list[str], ...]]:
    """Fold digit vectors one position at a time, from the last to the first."""
    dims = len(next(iter(vectors)))
    if dims == 0:
        return [()]
    # items: (fixed values of the positions not folded yet, folded lists of the later ones)
    items: list[tuple[tuple[str, ...], tuple[list[str], ...]]] = [(v, ()) for v in vectors]
    for position in range(dims - 1, -1, -1):
        groups: dict[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], list[str]] = {}
        later_of: dict[tuple[tuple[str, ...], tuple[tuple[str, ...], ...]], tuple[list[str], ...]]
        later_of = {}
        for fixed, later in items:
            key = (fixed[:position], tuple(tuple(values) for values in later))
            groups.setdefault(key, []).append(fixed[position])
            later_of[key] = later
        items = [
            (key[0], (sorted(values, key=_clustershell_order), *later_of[key]))
            for key, values in groups.items()
        ]
    return [later for _, later in items]


def _value_key(value: str) -> tuple[int, int]:
    return int(value), len(value)


def _clustershell_order(value: str) -> tuple[int, str]:
    return len(value), value


def _write(
    texts: tuple[str, ...], ranges: tuple[list[str], ...], reader: FoldReader | None
) -> list[tuple[_SortKey, str]]:
    """One folded term, or what stands for it where the reader would misread it."""
    key: _SortKey = (texts, tuple(_value_key(values[0]) for values in ranges))
    runs = [_runs(values) for values in ranges]
    bodies = [
        values[0] if len(values) == 1 else f"[{_rangeset(r)}]"
        for values, r in zip(ranges, runs, strict=True)
    ]
    text = _join(texts, bodies)
    if reader is None or "[" not in text:
        return [(key, text)]
    for candidate in _rewrites(texts, ranges, runs, bodies):
        if reader.reads_as_range(candidate):
            return [(key, candidate)]
    return [(sort_key(name), reader.spell(name)) for name in expand(text)]


def _join(texts: tuple[str, ...], bodies: list[str]) -> str:
    pieces = [texts[0]]
    for body, text in zip(bodies, texts[1:], strict=True):
        pieces.append(body)
        pieces.append(text)
    return "".join(pieces)


def _rewrites(
    texts: tuple[str, ...],
    ranges: tuple[list[str], ...],
    runs: list[list[list[str]]],
    bodies: list[str],
) -> Iterator[str]:
    """The term as folded, then with its last bracket's common leading digits taken out
    (``web0[3-4]``), then with that bracket's last value apart (``web[03,04]``).

    The first is what ClusterShell writes; the others expand to the same names in
    herd and ClusterShell alike, and end in a bracket that is no Ansible subscript of
    the text before it (a list, or a range after digits that text does not end in).
    """
    yield _join(texts, bodies)
    last = max(i for i, values in enumerate(ranges) if len(values) > 1)
    values = ranges[last]
    common = _common_prefix(values)
    if common:
        suffixes = [value[len(common) :] for value in values]
        yield _join(texts, _replace(bodies, last, f"{common}[{_rangeset(_runs(suffixes))}]"))
    if len(runs[last]) == 1:
        *head, tail = runs[last][0]
        yield _join(texts, _replace(bodies, last, f"[{_rangeset([head])},{tail}]"))


def _replace(bodies: list[str], index: int, body: str) -> list[str]:
    return [*bodies[:index], body, *bodies[index + 1 :]]


def _common_prefix(values: list[str]) -> str:
    """The leading digits values of one width share, short of the last digit."""
    width = len(values[0])
    if any(len(value) != width for value in values):
        return ""
    first, last = min(values), max(values)
    size = 0
    while size < width - 1 and first[size] == last[size]:
        size += 1
    return first[:size]


def _rangeset(runs: list[list[str]]) -> str:
    """``[[01, 02, 03], [05]]`` -> ``01-03,05``."""
    return ",".join(run[0] if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def _runs(values: list[str]) -> list[list[str]]:
    """Runs of consecutive numbers as ClusterShell's RangeSet folds them.

    ``values`` come in ClusterShell's order, by length then value (``8 9 08 09 10``);
    a run of zero-padded values of width w goes on only with values of width w
    (``08-10``, and ``01-99,100``), a run of unpadded ones never takes a padded one.
    """
    runs: list[list[str]] = []
    run: list[str] = []
    last = -2
    width = 0  # of the current run if padded, else 0
    for value in values:
        number = int(value)
        padded = len(value) > 1 and value[0] == "0"
        if run and number == last + 1 and (len(value) == width if width else not padded):
            run.append(value)
        else:
            run = [value]
            runs.append(run)
            width = len(value) if padded else 0
        last = number
    return runs
