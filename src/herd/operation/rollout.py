"""Rolling a change out in waves: batch sizes, the failure threshold, the canary pick.

The rules, one sentence each:

- ``--batch 1,10%,50%``: the hosts go in batches of these sizes, each a count or a
  percentage of the targeted hosts (at least one host), the last size repeated
  until every host has had its batch; a batch starts when the previous has ended.
- ``--max-fail N`` (or ``N%`` of the targeted hosts): once more than that many
  hosts are not ok, counted over the whole operation, no further host starts;
  hosts already running finish, and the others are ``skipped``.
- ``--pick N``: the operation runs on N hosts chosen at random among those the
  pattern matched (a canary), and says which.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from herd.errors import UsageError

__all__ = ["Threshold", "batch_sizes", "pick", "split_batches"]

T = TypeVar("T")
_SIZE = re.compile(r"\s*(\d+)\s*(%?)\s*")


@dataclass(frozen=True, slots=True)
class _Size:
    number: int
    percent: bool

    def of(self, total: int) -> int:
        """Hosts this size stands for among ``total`` (a percentage is at least one host)."""
        return max(1, total * self.number // 100) if self.percent else self.number


def _size(text: str, option: str) -> _Size:
    match = _SIZE.fullmatch(text)
    if not match:
        raise UsageError(f"{option} {text!r}: give a count (5) or a percentage (10%)")
    number, percent = int(match[1]), bool(match[2])
    if number < (0 if option == "--max-fail" else 1) or (percent and number > 100):
        limits = "0 to 100%" if percent else "a count of 1 or more"
        raise UsageError(f"{option} {text!r}: out of range ({limits})")
    return _Size(number, percent)


def batch_sizes(spec: str, total: int) -> list[int]:
    """The size of each batch for ``total`` hosts; they add up to ``total`` exactly."""
    sizes = [_size(part, "--batch").of(total) for part in spec.split(",")]
    if not spec.strip() or not sizes:
        raise UsageError("--batch: give sizes such as 1,10%,50%")
    result: list[int] = []
    left = total
    while left > 0:
        size = min(sizes[min(len(result), len(sizes) - 1)], left)
        result.append(size)
        left -= size
    return result


def split_batches(items: Sequence[T], sizes: Sequence[int]) -> list[list[T]]:
    """``items`` cut into consecutive batches of ``sizes``, in order."""
    batches: list[list[T]] = []
    start = 0
    for size in sizes:
        batches.append(list(items[start : start + size]))
        start += size
    return batches


@dataclass(frozen=True, slots=True)
class Threshold:
    """``--max-fail``: how many hosts not ok the operation tolerates before it starts no more."""

    text: str  # as given: "2" or "10%"
    limit: float  # more not-ok hosts than this stop the rollout

    @classmethod
    def parse(cls, text: str, total: int) -> Threshold:
        size = _size(text, "--max-fail")
        limit = total * size.number / 100 if size.percent else float(size.number)
        return cls(text.strip(), limit)

    def crossed(self, not_ok: int) -> bool:
        return not_ok > self.limit


def pick(items: Sequence[T], count: int, rng: random.Random | None = None) -> list[T]:
    """``count`` of ``items`` chosen at random, kept in their order (all of them if fewer)."""
    if count < 1:
        raise UsageError(f"--pick {count}: pick at least one host")
    chosen = set((rng or random.SystemRandom()).sample(range(len(items)), min(count, len(items))))
    return [item for index, item in enumerate(items) if index in chosen]
