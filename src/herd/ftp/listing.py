"""Listing formats: Unix ``ls -l`` lines for LIST and STAT, RFC 3659 facts for MLSD and MLST.

Times are UTC and month names English whatever the server's locale, so every
client parses them the same way.
"""

from __future__ import annotations

import calendar
import os
import stat
import time
from collections.abc import Iterable

__all__ = [
    "ALL_FACTS",
    "facts_line",
    "list_line",
    "list_lines",
    "mdtm",
    "parse_mdtm",
]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_SIX_MONTHS = 180 * 24 * 3600
ALL_FACTS = ("type", "size", "modify", "perm", "unique")


def mdtm(when: float) -> str:
    """RFC 3659 time-val: YYYYMMDDHHMMSS in UTC."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(when))


def parse_mdtm(text: str) -> float:
    """YYYYMMDDHHMMSS[.sss] in UTC -> seconds since the epoch; ValueError when malformed."""
    whole, _, fraction = text.partition(".")
    if len(whole) != 14 or not whole.isdigit() or (fraction and not fraction.isdigit()):
        raise ValueError(text)
    parsed = time.strptime(whole, "%Y%m%d%H%M%S")
    return calendar.timegm(parsed) + (float("0." + fraction) if fraction else 0.0)


def list_line(name: str, info: os.stat_result, owner: str, now: float) -> str:
    """One ``ls -l`` line: ``-rw-r--r-- 1 owner owner 1234 Jan 02 03:04 name``."""
    mode = stat.filemode(info.st_mode)
    when = time.gmtime(info.st_mtime)
    month = _MONTHS[when.tm_mon - 1]
    if abs(now - info.st_mtime) < _SIX_MONTHS:
        stamp = f"{month} {when.tm_mday:2d} {when.tm_hour:02d}:{when.tm_min:02d}"
    else:
        stamp = f"{month} {when.tm_mday:2d}  {when.tm_year}"
    return f"{mode} {info.st_nlink:3d} {owner:<8} {owner:<8} {info.st_size:>12d} {stamp} {name}"


def list_lines(entries: Iterable[tuple[str, os.stat_result]], owner: str) -> list[str]:
    now = time.time()
    return [list_line(name, info, owner, now) for name, info in entries]


def facts_line(
    name: str,
    info: os.stat_result,
    perms: frozenset[str],
    facts: Iterable[str] = ALL_FACTS,
    kind: str | None = None,
) -> str:
    """One RFC 3659 entry: ``type=file;size=12;modify=...;perm=r;unique=..; name``."""
    is_dir = stat.S_ISDIR(info.st_mode)
    values = {
        "type": kind
        or ("dir" if is_dir else "file" if stat.S_ISREG(info.st_mode) else "OS.unix=other"),
        "size": str(info.st_size),
        "modify": mdtm(info.st_mtime),
        "perm": _perm_fact(is_dir, perms),
        "unique": f"{info.st_dev:x}g{info.st_ino:x}",
    }
    chosen = "".join(f"{fact}={values[fact]};" for fact in facts if fact in values)
    return f"{chosen} {name}"


def _perm_fact(is_dir: bool, perms: frozenset[str]) -> str:
    """RFC 3659 section 7.5.5 letters from the user's permissions."""
    if is_dir:
        letters = [
            ("e", "list"),
            ("l", "list"),
            ("c", "write"),
            ("m", "mkdir"),
            ("p", "delete"),
            ("d", "rmdir"),
            ("f", "rename"),
        ]
    else:
        letters = [("r", "read"), ("w", "write"), ("a", "append"), ("d", "delete"), ("f", "rename")]
    return "".join(letter for letter, needed in letters if needed in perms)
