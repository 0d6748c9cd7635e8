"""Ansible's pattern language over an inventory, plus ``@failed`` and ``@ok`` from the log.

A pattern is terms joined by ``:`` or ``,``: names, globs (``web*``), regexes
(``~web\\d+``), each optionally subscripted (``web[0]``, ``web[1:3]``,
``web[-1]``) and prefixed by ``&`` (intersection) or ``!`` (exclusion). As
Ansible does, unions apply first, then intersections, then exclusions,
wherever they are written, and a pattern of only ``&``/``!`` terms starts
from ``all``. herd is stricter in one way: a plain name that is neither a
group nor a host is an error with a suggestion, not a silent empty match,
because a typo in ``!web03`` would otherwise run on web03. A bracket that
is not a subscript of a known name is read as a host range (``web[01-03]``).
An IPv6 address between commas is one term (``2001:db8::1,2001:db8::2``).

``fold_reader`` tells ``herd.core.hostset.fold`` how this engine reads a
term, so that every host set herd prints folded is a pattern selecting
exactly those hosts when pasted back.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from herd.core.hostset import FoldReader, expand, split_outside_brackets
from herd.errors import NoHostsMatched, PatternError


class HostUniverse(Protocol):
    """What the pattern engine needs of an inventory (``herd.inventory.graph.HostUniverse``)."""

    @property
    def group_names(self) -> list[str]: ...

    @property
    def host_names(self) -> list[str]: ...

    def has_host(self, name: str) -> bool: ...

    def has_group(self, name: str) -> bool: ...

    def members(self, group: str) -> list[str]: ...

    def position(self, name: str) -> int: ...


__all__ = ["HostUniverse", "fold_reader", "select_names", "split_pattern"]

# (operation id or None for the last one, ok) -> the hosts that were ok, or were not
RecordedHosts = Callable[[int | None, bool], list[str]]

# Ansible's PATTERN_WITH_SUBSCRIPT: name[3], name[-1], name[1:4], name[2:]; plus name[:3],
# which Ansible's documentation shows but its code reads as a glob matching nothing.
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*)|()(:)([0-9]+))\]$")
_FAILED = re.compile(r"^@(?:(\d+):)?(failed|ok)$")
_OPERATION = re.compile(r"^[&!]?@\d+$")
_GLOB_CHARS = frozenset("*?[")
_LOCALHOST = ("localhost", "127.0.0.1", "::1")


def split_pattern(pattern: str) -> list[str]:
    """The terms of a pattern: split at ``,`` and ``:`` outside brackets.

    An IPv6 address between commas (or alone) stays one term, as in Ansible,
    which splits a pattern holding a comma at its commas only.
    """
    terms: list[str] = []
    for part in split_outside_brackets(pattern.strip(), ","):
        if _is_ipv6(part.lstrip("&!")):
            terms.append(part)
            continue
        first = len(terms)
        for term in split_outside_brackets(part, ":"):
            if term in ("failed", "ok") and len(terms) > first and _OPERATION.match(terms[-1]):
                terms[-1] += f":{term}"  # @ID:failed and @ID:ok are one term
            else:
                terms.append(term)
    return terms


def _is_ipv6(text: str) -> bool:
    if text.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _ordered(terms: list[str]) -> list[str]:
    unions = [t for t in terms if t[0] not in "&!"]
    intersections = [t for t in terms if t[0] == "&"]
    exclusions = [t for t in terms if t[0] == "!"]
    return (unions or ["all"]) + intersections + exclusions


def select_names(
    inventory: HostUniverse,
    pattern: str,
    limit: str | None,
    failed: RecordedHosts | None,
) -> list[str]:
    """Host names ``pattern`` and ``limit`` select, in inventory order; see the module doc."""
    matcher = _Matcher(inventory, failed)
    names = matcher.evaluate(_terms(pattern, "pattern"))
    if limit is not None:
        allowed = set(matcher.evaluate(_limit_terms(limit)))
        names = [name for name in names if name in allowed]
    if not names:
        where = f" within --limit {limit!r}" if limit is not None else ""
        raise NoHostsMatched(f"pattern {pattern!r} matched no host{where}")
    return sorted(names, key=inventory.position)


def _terms(pattern: str, what: str) -> list[str]:
    terms = split_pattern(pattern)
    for term in terms:
        if term in ("&", "!"):
            raise PatternError(f"{what} {pattern!r}: {term!r} needs a name after it")
    if not terms:
        raise PatternError(f"empty {what}: name a group, a host, a glob like 'web*', or 'all'")
    return terms


def _limit_terms(limit: str) -> list[str]:
    """``--limit`` terms; ``@FILE`` (not ``@failed``) reads one pattern per line from FILE."""
    terms: list[str] = []
    for term in _terms(limit, "--limit"):
        if term.startswith("@") and not _FAILED.match(term):
            path = Path(term[1:]).expanduser()
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise PatternError(f"--limit {term}: cannot read {path}: {exc.strerror}") from None
            terms.extend(line.strip() for line in lines if line.strip())
        else:
            terms.append(term)
    if not terms:
        raise PatternError(f"--limit {limit!r} names no host")
    return terms


class _Matcher:
    """Evaluates terms against one inventory, caching each term's match."""

    def __init__(self, inventory: HostUniverse, failed: RecordedHosts | None) -> None:
        self.inventory = inventory
        self.failed = failed
        self.cache: dict[str, list[str]] = {}
        self._by_length: dict[int, tuple[list[str], list[str]]] | None = None

    def evaluate(self, terms: list[str]) -> list[str]:
        hosts: dict[str, None] = {}
        for term in _ordered(terms):
            if term[0] == "!":
                excluded = set(self.match(term[1:]))
                hosts = {h: None for h in hosts if h not in excluded}
            elif term[0] == "&":
                kept = set(self.match(term[1:]))
                hosts = {h: None for h in hosts if h in kept}
            elif self.inventory.has_host(term):
                hosts[term] = None
            else:
                hosts.update(dict.fromkeys(self.match(term)))
        return list(hosts)

    def match(self, term: str) -> list[str]:
        if not term:
            raise PatternError("'&' or '!' needs a name after it")
        found = self.cache.get(term)
        if found is None:
            found = self.cache[term] = self._match(term)
        return found

    def _match(self, term: str) -> list[str]:
        failed = _FAILED.match(term)
        if failed:
            return self._recorded(term, failed.group(1), ok=failed.group(2) == "ok")
        if term[0] == "~":
            return list(dict.fromkeys(self._regex(term)))
        subscript = self._subscript(term)
        if subscript:
            # as Ansible: the subscript indexes the matches before duplicates go
            hosts = _apply_subscript(term, self._enumerate(subscript.group(1)), subscript)
            return list(dict.fromkeys(hosts))
        if _is_range(term):
            return self._range(term)
        return list(dict.fromkeys(self._enumerate(term)))

    def reads_as_range(self, term: str) -> bool:
        """Whether the term ``term`` is read as a host range, as ``evaluate`` and ``_match`` go.

        Not a host's own name, not ``@failed``, a regex or a subscript of a known name.
        """
        return not (
            self.inventory.has_host(term)
            or _FAILED.match(term)
            or term[0] in "~&!"
            or self._subscript(term)
        ) and _is_range(term)

    def _subscript(self, term: str) -> re.Match[str] | None:
        """``term`` as Ansible's subscript of a known name (``web[0:2]``), or None."""
        subscript = _SUBSCRIPT.match(term)
        return subscript if subscript and self._known(subscript.group(1)) else None

    def _known(self, expression: str) -> bool:
        """Whether ``expression`` names or globs any group or host (even an empty group)."""
        inventory = self.inventory
        if _GLOB_CHARS.isdisjoint(expression):
            return inventory.has_group(expression) or inventory.has_host(expression)
        matcher = re.compile(fnmatch.translate(expression)).match
        groups, hosts = self._candidates(expression)
        return any(matcher(g) for g in groups) or any(matcher(h) for h in hosts)

    def _candidates(self, glob: str) -> tuple[list[str], list[str]]:
        """The groups and hosts ``glob`` could match, in order: those of its length if fixed.

        Without a ``*`` a glob matches names of one length only; looking them up
        by length keeps many globs such as ``rack[1-2]-node`` (a pasted fold's
        ``rack[1-2]-node[01-04]`` is a subscript of one) from each reading every
        name of a big inventory.
        """
        length = _glob_length(glob)
        if length is None:
            return self.inventory.group_names, self.inventory.host_names
        if self._by_length is None:
            by_length: dict[int, tuple[list[str], list[str]]] = {}
            for group in self.inventory.group_names:
                by_length.setdefault(len(group), ([], []))[0].append(group)
            for host in self.inventory.host_names:
                by_length.setdefault(len(host), ([], []))[1].append(host)
            self._by_length = by_length
        return self._by_length.get(length, ([], []))

    def _enumerate(self, expression: str) -> list[str]:
        """Ansible's ``_enumerate_matches``: matching groups' hosts, then matching hosts.

        Duplicates stay (a subscript indexes them, as in Ansible); callers drop them.
        """
        inventory = self.inventory
        results: list[str] = []
        is_glob = not _GLOB_CHARS.isdisjoint(expression)
        if is_glob:
            matcher = re.compile(fnmatch.translate(expression)).match
            group_names, host_names = self._candidates(expression)
            groups = [g for g in group_names if matcher(g)]
        else:
            groups = [expression] if inventory.has_group(expression) else []
        for group in groups:
            results.extend(inventory.members(group))
        if not groups or is_glob or "." in expression:
            if is_glob:
                results.extend(h for h in host_names if matcher(h))
            elif inventory.has_host(expression):
                results.append(expression)
        if not results and expression in _LOCALHOST:
            results.append(expression)  # Ansible's implicit localhost
        if not results and not groups and not is_glob:
            raise PatternError(_unknown(expression, inventory))
        return results

    def _regex(self, term: str) -> list[str]:
        try:
            matcher = re.compile(term[1:]).match
        except re.error as exc:
            raise PatternError(
                f"pattern {term!r} is not a valid regular expression: {exc}"
            ) from None
        inventory = self.inventory
        results: list[str] = []
        for group in inventory.group_names:
            if matcher(group):
                results.extend(inventory.members(group))
        results.extend(h for h in inventory.host_names if matcher(h))
        return results

    def _range(self, term: str) -> list[str]:
        names = expand(term)
        for name in names:
            if not self.inventory.has_host(name):
                raise PatternError(f"host range {term!r}: {_unknown(name, self.inventory)}")
        return names

    def _recorded(self, term: str, op_id: str | None, *, ok: bool) -> list[str]:
        if self.failed is None:
            raise PatternError(f"{term} needs the operation log, which is not available here")
        names = self.failed(int(op_id) if op_id else None, ok)
        return [name for name in names if self.inventory.has_host(name)]


def _is_range(term: str) -> bool:
    """A bracket with ``:``, ``-`` or ``,`` and no other glob character reads as a range."""
    if "[" not in term or "*" in term or "?" in term or not any(c in term for c in ":-,"):
        return False
    try:
        return bool(expand(term))
    except PatternError:
        return False


def _glob_length(glob: str) -> int | None:
    """How many characters every name ``glob`` matches has, or None where a ``*`` varies it.

    Reads brackets as ``fnmatch.translate`` does: ``[!...]`` and ``[]...]`` open a
    set that ends at the next ``]``; a ``[`` with no ``]`` after it is itself.
    """
    length = 0
    index, size = 0, len(glob)
    while index < size:
        char = glob[index]
        index += 1
        if char == "*":
            return None
        if char == "[":
            end = index
            if end < size and glob[end] == "!":
                end += 1
            if end < size and glob[end] == "]":
                end += 1
            end = glob.find("]", end)
            if end >= 0:
                index = end + 1
        length += 1
    return length


def _apply_subscript(term: str, hosts: list[str], subscript: re.Match[str]) -> list[str]:
    """Ansible's subscripts: ``[i]`` one host (``[-1]`` the last), ``[a:b]`` a to b inclusive."""
    if not hosts:
        return hosts
    index, start, end = subscript.group(2, 3, 5)  # [x-y] reads as [x:y], as in Ansible
    if subscript.group(7):  # [:end]
        start, end = "0", subscript.group(8)
    if index is not None:
        position = int(index)
        if not -len(hosts) <= position < len(hosts):
            raise PatternError(
                f"pattern {term!r}: index {position} is outside its {len(hosts)} hosts"
            )
        return [hosts[position]]
    first = int(start)
    last = int(end) if end else len(hosts) - 1
    if last == 0:  # Ansible quirk kept for parity: [n:0] is the single host n
        if first >= len(hosts):
            raise PatternError(f"pattern {term!r}: index {first} is outside its {len(hosts)} hosts")
        return [hosts[first]]
    return hosts[first : last + 1]


def _unknown(name: str, inventory: HostUniverse) -> str:
    known = inventory.group_names + inventory.host_names
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return f"no group or host named {name!r}{hint}"


# ---------------------------------------------------------------------------
# folding host sets into patterns


def fold_reader(inventory: HostUniverse | None) -> FoldReader:
    """How a folded host set pasted as a pattern is read: in ``inventory``, or in any.

    With an inventory, ``fold`` writes a pattern that selects exactly the names
    folded there: no bracket a subscript of a group or host (``web0[3-4]``
    where a group ``web`` exists), every name written so it selects itself.
    Without one (the operation log, read long after the run), no bracket ends
    a term in a subscript's shape at all (``web[01-11,12]``), and a name that
    is no term of its own in a pattern is written as a regex matching it alone.
    """
    return _AnyInventory() if inventory is None else _InventoryReader(inventory)


_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


class _InventoryReader:
    """herd's pattern engine over one inventory, as ``fold`` asks it."""

    def __init__(self, inventory: HostUniverse) -> None:
        self._inventory = inventory
        self._matcher = _Matcher(inventory, None)

    def foldable(self, name: str) -> bool:
        return self._inventory.has_host(name)

    def reads_as_range(self, term: str) -> bool:
        return self._matcher.reads_as_range(term)

    def spell(self, name: str) -> str:
        """The name itself where that selects it; for a host, else, a glob and its index.

        ``a,b`` cannot be written as itself (the comma splits it); ``a?b[0]``
        is the first host the glob ``a?b`` matches, in the order subscripts index.
        """
        if _stands_alone(name) and (
            self._inventory.has_host(name) or self._selects(name) == [name]
        ):
            return name
        glob = "".join(c if c in _PLAIN else "?" for c in name)
        if self._inventory.has_host(name) and glob != name:
            matches = self._matcher._enumerate(glob)
            term = f"{glob}[{matches.index(name)}]" if name in matches else name
            if self._selects(term) == [name]:
                return term
        return _regex_term(name)  # a name this inventory does not hold selects nothing here

    def _selects(self, term: str) -> list[str] | None:
        try:
            return self._matcher.evaluate([term])
        except PatternError:
            return None


class _AnyInventory:
    """What no inventory can misread: brackets no subscript, names one term each."""

    def foldable(self, name: str) -> bool:
        return True

    def reads_as_range(self, term: str) -> bool:
        return term[0] not in "~&!@" and not _SUBSCRIPT.match(term) and _is_range(term)

    def spell(self, name: str) -> str:
        """The name itself where it is read as a name in any inventory, else an exact regex.

        ``web*`` selects the host ``web*`` only where that host exists; elsewhere it
        is a glob, and ``~h1`` a regex, so they are written ``~web\\x2a\\Z``, ``~\\x7eh1\\Z``.
        """
        plain = _GLOB_CHARS.isdisjoint(name) and name[:1] != "~" and not _FAILED.match(name)
        return name if plain and _stands_alone(name) else _regex_term(name)


def _stands_alone(name: str) -> bool:
    """Whether ``name`` between commas in a pattern is one term, and no ``&``/``!`` one."""
    return name[:1] not in ("", "&", "!") and split_pattern(f"{name},") == [name]


def _regex_term(name: str) -> str:
    """``~a\\x2cb\\Z``: a regex matching ``name`` alone, with no character a pattern splits at."""
    return "~" + "".join(map(_regex_char, name)) + "\\Z"


def _regex_char(char: str) -> str:
    if char.isascii() and (char.isalnum() or char == "_"):
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
