"""Ansible's ``key=value`` argument strings, read the way ansible-core reads them.

``-e 'user=deploy motd="hello there" url={{ base }}/x'`` is split at spaces
and newlines, except inside quotes or a Jinja ``{{ }}``/``{% %}``/``{# #}``
block; each piece has its backslash escapes decoded (``\\n``, ``\\t``,
``\\x41``, ``\\u00e9``, ``\\N{BULLET}``) and is cut at its first ``=`` that is
not escaped and not its first character; the key and the value are stripped of
surrounding blanks and one pair of matching quotes comes off the value. A
piece with no such ``=`` is returned as a free word: ansible-core would store
it as ``_raw_params``, herd's callers refuse it. The result is checked against
ansible-core's own ``parse_kv`` in the test suite.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

__all__ = ["KvError", "parse_kv", "split_args"]

_ESCAPE = re.compile(
    r"""\\U[0-9a-fA-F]{8}|\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\N\{[^}]+\}|\\[\\'"abfnrtv]"""
)
_BLOCKS = (("{{", "}}"), ("{%", "%}"), ("{#", "#}"))


class KvError(ValueError):
    """A ``key=value`` string that cannot be split: unbalanced quotes or blocks, bad escapes."""


@dataclass
class _Splitter:
    """The state while walking the space-separated tokens of an argument string."""

    pieces: list[str] = field(default_factory=list)
    quote: str | None = None
    depths: list[int] = field(default_factory=lambda: [0, 0, 0])

    def in_block(self) -> bool:
        return any(self.depths)

    def glue(self, token: str, spacer: str) -> None:
        """Add ``token`` to the piece being built (there is always one by now)."""
        self.pieces[-1] += spacer + token

    def requote(self, token: str) -> None:
        """Follow the quotes of ``token``: an unescaped quote opens, the same one closes."""
        previous = ""
        for char in token:
            if char in "\"'" and previous != "\\":
                if self.quote is None:
                    self.quote = char
                elif char == self.quote:
                    self.quote = None
            previous = char

    def take(self, token: str, first_on_line: bool) -> None:
        """Place one token: a new piece, or the continuation of a quoted or templated one."""
        was_quoted = self.quote is not None
        self.requote(token)
        quoted = self.quote is not None
        placed = False
        if quoted and not was_quoted and not self.in_block():
            self.pieces.append(token)
            placed = True
        elif self.in_block() or quoted or was_quoted:
            self.glue(token, "" if first_on_line else " ")
            placed = True
        for index, (opening, closing) in enumerate(_BLOCKS):
            before = self.depths[index]
            self.depths[index] = max(0, before + token.count(opening) - token.count(closing))
            if self.depths[index] != before and not placed:
                self.pieces.append(token)
                placed = True
        if not placed and token and not quoted and not self.in_block():
            self.pieces.append(token)


def split_args(text: str) -> list[str]:
    """Split ``text`` at blanks outside quotes and Jinja blocks, keeping what is inside intact.

    Raises ``KvError`` when a quote or a Jinja block is left open.
    """
    if not text:
        return []
    state = _Splitter()
    lines = text.split("\n")
    for number, line in enumerate(lines):
        continued = False
        for index, token in enumerate(line.split(" ")):
            if index and not token:  # a run of spaces: kept on the piece being built
                if not state.pieces:
                    state.pieces.append("")
                state.pieces[-1] += " "
            elif token == "\\" and state.quote is None:
                continued = True  # a backslash alone at the end: the line goes on
            else:
                state.take(token, first_on_line=index == 0)
        if number < len(lines) - 1 and not continued:
            if not state.pieces:
                state.pieces.append("")
            state.pieces[-1] += "\n"
    if state.quote is not None or state.in_block():
        raise KvError("unbalanced quotes or {{ }}/{% %}/{# #} block")
    return state.pieces


def _decode_escapes(text: str) -> str:
    def decode(match: re.Match[str]) -> str:
        try:
            return codecs.decode(match.group(0), "unicode-escape")
        except UnicodeDecodeError as exc:
            raise KvError(f"bad escape {match.group(0)!r}: {exc.reason}") from None

    return _ESCAPE.sub(decode, text)


def _unquote(text: str) -> str:
    """``text`` without one pair of matching outer quotes (unless the closing one is escaped)."""
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'" and text[-2] != "\\":
        return text[1:-1]
    return text


def _assignment_at(piece: str) -> int | None:
    """The index of the ``=`` that splits ``piece``: the first unescaped one after index 0."""
    position = piece.find("=", 1)
    while position != -1:
        if piece[position - 1] != "\\":
            return position
        position = piece.find("=", position + 1)
    return None


def parse_kv(text: str) -> tuple[dict[str, str], list[str]]:
    """The ``key=value`` pairs of ``text`` (a later key wins) and the free words left over."""
    pairs: dict[str, str] = {}
    free: list[str] = []
    for raw in split_args(text):
        piece = _decode_escapes(raw)
        position = _assignment_at(piece) if "=" in piece else None
        if position is None:
            free.append(piece.replace("\\=", "=") if "=" in piece else raw)
            continue
        pairs[piece[:position].strip()] = _unquote(piece[position + 1 :].strip())
    return pairs, free
