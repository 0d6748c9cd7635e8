"""Keep secrets out of what herd records and prints: argv, commands, URLs.

A variable whose name says it holds a secret (``DB_PASSWORD``, ``API_TOKEN``,
``AWS_SECRET_ACCESS_KEY``, ``PGPASS``: any name containing PASSWORD, PASS,
TOKEN, SECRET or KEY, in any case) keeps its name and loses its value,
wherever an assignment of it appears: ``--env DB_PASSWORD=hunter2``,
``-eTOKEN=x``, inside the command (``TOKEN='a b' ./deploy``), or as an entry
of inline JSON or YAML (``-e '{"ansible_password": "x"}'``). So does the
password of a URL (``ftp://alice:pw@host``). To pass a secret without it
appearing anywhere, use ``--env NAME`` (the value comes from herd's own
environment) instead of masking after the fact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MASK", "is_secret_name", "mask_argv", "mask_secrets"]

MASK = "***"

_SECRET_WORDS = re.compile(r"PASS|TOKEN|SECRET|KEY", re.IGNORECASE)
# NAME=VALUE, where VALUE is quoted or runs to whitespace or a shell operator
_ASSIGNMENT = re.compile(
    r"(?<![A-Za-z0-9_])(?P<name>[A-Za-z_][A-Za-z0-9_]*)="
    r"""(?P<value>"(?:[^"\\]|\\.)*"?|'[^']*'?|[^\s;&|'"]*)"""
)
# "NAME": VALUE or NAME: VALUE, an entry of inline JSON or YAML
_ENTRY = re.compile(
    r"""(?<![A-Za-z0-9_])(?P<head>(?P<quote>["']?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P=quote)\s*:\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"?|'[^']*'?|[^\s,}\]]+)"""
)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^/\s@]*(?=@)")


def is_secret_name(name: str) -> bool:
    """Whether a variable named ``name`` holds a secret, judging by its name."""
    return _SECRET_WORDS.search(name) is not None


def _masked(match: re.Match[str]) -> str:
    name, value = match["name"], match["value"]
    if is_secret_name(name):
        return f"{name}={MASK}" if value else match[0]
    # `--env=DB_PASSWORD=x`: the secret assignment is inside this one's value
    return f"{name}={mask_secrets(value)}"


def _masked_entry(match: re.Match[str]) -> str:
    return f"{match['head']}{MASK}" if is_secret_name(match["name"]) else match[0]


def mask_secrets(text: str) -> str:
    """``text`` with the values of secret-named variables and URL passwords masked."""
    if "=" not in text and ":" not in text:
        return text
    masked = _ASSIGNMENT.sub(_masked, text)
    if ":" in masked:
        masked = _URL_PASSWORD.sub(rf"\g<head>{MASK}", _ENTRY.sub(_masked_entry, masked))
    return masked


def mask_argv(argv: Iterable[str]) -> list[str]:
    """Each argument masked on its own (``-e`` and its ``NAME=VALUE`` are two arguments)."""
    return [mask_secrets(arg) for arg in argv]
