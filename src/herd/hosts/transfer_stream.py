"""The local side of a push: each block read from disk once and handed to every host.

Hosts ask for blocks (file, index) as they write; a block another host already
read comes from a shared cache, so the disk is read once however many hosts
there are. The cache holds at most ``budget`` bytes (least recently used go
first): a host that falls far behind the others reads its blocks again from
the file (the page cache, usually) instead of making the others wait or the
memory grow. Concurrent requests for one block share a single read.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from herd.hosts.transfer_plan import DEFAULT_CACHE_BUDGET, LocalFile

__all__ = ["DEFAULT_CACHE_BUDGET", "BlockSource", "SourceChanged", "StreamStats"]


class SourceChanged(OSError):
    """A local file changed size while it was being sent."""


@dataclass(slots=True)
class StreamStats:
    """What the reader did: disk reads and bytes, and the cache's high-water mark."""

    reads: int = 0
    bytes_read: int = 0
    peak_cached: int = 0


def _read_block(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def _retrieve(reading: asyncio.Future[bytes]) -> None:
    """Mark a failed read's error as seen: every host that wanted it may have gone."""
    if not reading.cancelled():
        reading.exception()


class BlockSource:
    """Blocks of local files, read once and shared by every host within a memory budget."""

    def __init__(self, block_size: int, budget: int = DEFAULT_CACHE_BUDGET) -> None:
        if block_size <= 0:
            raise ValueError("block_size must be positive")
        self.block_size = block_size
        self.budget = budget
        self.stats = StreamStats()
        self._cache: OrderedDict[tuple[Path, int], bytes] = OrderedDict()
        self._cached = 0
        self._pending: dict[tuple[Path, int], asyncio.Future[bytes]] = {}  # reads under way

    def blocks(self, file: LocalFile) -> int:
        """How many blocks ``file`` has (an empty file has none)."""
        return -(-file.size // self.block_size)

    def block_length(self, file: LocalFile, index: int) -> int:
        """How many bytes block ``index`` of ``file`` holds (the last may be short)."""
        return min(self.block_size, file.size - index * self.block_size)

    async def block(self, file: LocalFile, index: int) -> bytes:
        """Block ``index`` of ``file``; raises ``SourceChanged`` if the file is now shorter."""
        key = (file.path, index)
        data = self._cache.get(key)
        if data is not None:
            self._cache.move_to_end(key)
            return data
        reading = self._pending.get(key)
        if reading is None:
            # the read belongs to the source, not to the host that asked first: a host
            # cancelled midway (its connection died) must not fail the others waiting
            reading = asyncio.ensure_future(self._fetch(key, file, index))
            reading.add_done_callback(_retrieve)
            self._pending[key] = reading
        return await asyncio.shield(reading)

    async def _fetch(self, key: tuple[Path, int], file: LocalFile, index: int) -> bytes:
        try:
            data = await self._read(file, index)
        finally:
            del self._pending[key]
        self._remember(key, data)
        return data

    async def _read(self, file: LocalFile, index: int) -> bytes:
        want = self.block_length(file, index)
        data = await asyncio.to_thread(_read_block, file.path, index * self.block_size, want)
        self.stats.reads += 1
        self.stats.bytes_read += len(data)
        if len(data) != want:
            raise SourceChanged(f"{file.path}: changed size while being sent")
        return data

    def _remember(self, key: tuple[Path, int], data: bytes) -> None:
        if len(data) > self.budget:
            return
        self._cache[key] = data
        self._cached += len(data)
        while self._cached > self.budget:
            _, old = self._cache.popitem(last=False)
            self._cached -= len(old)
        self.stats.peak_cached = max(self.stats.peak_cached, self._cached)
