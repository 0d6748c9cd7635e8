"""An upload's sha256, computed beside the transfer, one of two ways.

``FileDigest``, for an upload the kernel splices into its file
(``herd.ftp.spliced``): the bytes never pass through herd, so a helper thread
reads them back from the file behind the writer (from the page cache: they
were just written) and hashes them, at most ``_LAG`` chunks behind, so the wait
for the hash at the end stays short.

``UploadDigest``, for an upload received into buffers (TLS, ASCII mode): the
transfer thread receives into a buffer, writes it to the file and hands the
buffer to a helper thread that hashes it, then takes the next free buffer: the
hash of chunk n runs while chunk n+1 is received and written (hashlib and the
socket and file calls all release the GIL). A few buffers go round, so memory
stays bounded and nothing is copied for the hash.

Either way, uploads of up to 1 MiB are hashed inline: a thread would cost more
than it saves.
"""

from __future__ import annotations

import _thread
import hashlib
import os
import queue
import threading
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

__all__ = ["FileDigest", "UploadDigest"]

_INLINE = 1024 * 1024  # bytes hashed in the transfer thread before the helper starts
_BUFFERS = 3  # in rotation once the helper runs
_LAG = 16  # chunks the file's hash may fall behind its writer

_Job = TypeVar("_Job")


class _Digest(ABC, Generic[_Job]):
    """The sha256 and the helper thread that feeds it jobs in order.

    The helper is a bare thread that signals its end with a lock: ``Thread.join``
    from a bare transfer thread would leave a ``_DummyThread`` behind. After an
    error it still takes every job and hands it back (``_done``), so the
    transfer thread never waits for a helper that stopped; ``hexdigest()``
    raises the error.
    """

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._jobs: queue.SimpleQueue[_Job | None] | None = None
        self._finished: _thread.LockType | None = None
        self._error: BaseException | None = None

    @abstractmethod
    def _hash_job(self, job: _Job) -> None:
        """Take one job into the hash (on the helper thread, or inline)."""

    def _done(self, job: _Job) -> None:
        """The job is hashed (or skipped after an error): give back what it held."""

    def _queue(self, job: _Job) -> None:
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            self._finished = _thread.allocate_lock()
            self._finished.acquire()
            _thread.start_new_thread(self._run, (self._jobs, self._finished))
        self._jobs.put(job)

    def _run(self, jobs: queue.SimpleQueue[_Job | None], finished: _thread.LockType) -> None:
        try:
            while (job := jobs.get()) is not None:
                if self._error is None:
                    try:
                        self._hash_job(job)
                    except BaseException as exc:  # handed to the transfer thread
                        self._error = exc
                self._done(job)
        finally:
            finished.release()

    def close(self) -> None:
        """Stop the helper thread (after hashing what was queued)."""
        if self._jobs is not None and self._finished is not None:
            self._jobs.put(None)
            self._finished.acquire()
            self._jobs = self._finished = None

    def hexdigest(self) -> str:
        self.close()
        if self._error is not None:
            raise self._error
        return self._hash.hexdigest()


class UploadDigest(_Digest[tuple[bytearray, int]]):
    """Hands out receive buffers and hashes what was received in them.

    ``buffer()`` gives the buffer to receive into next; ``update(buffer, n)``
    takes its first ``n`` bytes into the hash and the buffer back.
    """

    def __init__(self, buffer_size: int) -> None:
        super().__init__()
        self._seen = 0
        self._size = buffer_size
        self._inline: bytearray | None = None
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()

    def buffer(self) -> bytearray:
        """The buffer to receive into next (may wait for the helper to free one)."""
        if self._jobs is None:
            if self._inline is None:
                self._inline = bytearray(self._size)
            return self._inline
        return self._free.get()

    def update(self, buffer: bytearray, count: int) -> None:
        """Hash ``buffer[:count]``; the buffer is the digest's again until ``buffer()``."""
        self._seen += count
        if self._jobs is None:
            if self._seen <= _INLINE:
                self._hash.update(memoryview(buffer)[:count])
                return
            for _ in range(_BUFFERS - 1):
                self._free.put(bytearray(self._size))
        self._queue((buffer, count))

    def _hash_job(self, job: tuple[bytearray, int]) -> None:
        buffer, count = job
        with memoryview(buffer) as view:
            self._hash.update(view[:count])

    def _done(self, job: tuple[bytearray, int]) -> None:
        self._free.put(job[0])


class FileDigest(_Digest[tuple[int, int]]):
    """The sha256 of what an upload wrote into its file from ``start`` on, read back.

    ``written(end)`` says the file now holds the upload up to ``end``; the bytes
    are hashed in order, by the helper thread once the upload passes ``_INLINE``.
    A file that shrinks under the hash (someone truncated it) is an error, raised
    by ``hexdigest()`` before the upload is put in place.
    """

    def __init__(self, fd: int, start: int, buffer_size: int) -> None:
        super().__init__()
        self._fd = fd
        self._start = start
        self._hashed = start  # the hash holds the file up to here (done, or queued)
        self._buffer = bytearray(buffer_size)
        self._room = threading.Semaphore(_LAG)

    def written(self, end: int) -> None:
        """The file holds the upload up to ``end``: hash it (may wait for the helper)."""
        if self._jobs is None and end - self._start <= _INLINE:
            if self._error is None:
                try:
                    self._hash_job((self._hashed, end))
                except OSError as exc:  # raised by hexdigest(), as the helper's are
                    self._error = exc
        else:
            self._room.acquire()
            self._queue((self._hashed, end))
        self._hashed = end

    def _hash_job(self, job: tuple[int, int]) -> None:
        position, end = job
        with memoryview(self._buffer) as view:
            while position < end:
                count = os.preadv(self._fd, [view[: min(len(view), end - position)]], position)
                if count == 0:
                    raise OSError(0, "the file shrank while its upload was hashed")
                self._hash.update(view[:count])
                position += count

    def _done(self, job: tuple[int, int]) -> None:
        self._room.release()
