"""Sizes as a sysadmin types and reads them: ``64K``, ``1.5M``, ``2G`` (binary units)."""

from __future__ import annotations

import math
import re

__all__ = ["format_size", "parse_size"]

_SIZE = re.compile(r"(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGTP]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


def parse_size(text: str) -> int | None:
    """``64K``, ``1.5M``, ``2GiB``, ``1048576`` -> bytes; None if ``text`` is not a size."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        return None
    size = float(match["number"]) * _UNITS[match["unit"].upper()]
    if not math.isfinite(size) or size > 1 << 62:
        return None
    return int(size)


def format_size(size: int) -> str:
    """Bytes as a person reads them: ``512 B``, ``1.5 MiB``."""
    value, unit = float(size), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
