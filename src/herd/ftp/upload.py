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
from types import TracebackType

__all__ = ["FileDigest", "UploadDigest"]

_INLINE = 1024 * 1024  # bytes hashed in the transfer thread before the helper starts
_BUFFERS = 3  # in rotation once the helper runs
_LAG = 16  # chunks the file's hash may fall behind its writer


class UploadDigest:
    """Hands out receive buffers and hashes what was received in them.

    ``buffer()`` gives the buffer to receive into next; ``update(buffer, n)``
    takes its first ``n`` bytes into the hash and the buffer back. The helper
    is a bare thread that signals its end with a lock: ``Thread.join`` from a
    bare transfer thread would leave a ``_DummyThread`` behind.
    """

    def __init__(self, buffer_size: int) -> None:
        self._hash = hashlib.sha256()
        self._seen = 0
        self._size = buffer_size
        self._inline: bytearray | None = None
        self._jobs: queue.SimpleQueue[tuple[bytearray, int] | None] | None = None
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self._finished: _thread.LockType | None = None
        self._error: BaseException | None = None

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
            self._start()
        assert self._jobs is not None
        self._jobs.put((buffer, count))

    def _start(self) -> None:
        self._jobs = queue.SimpleQueue()
        for _ in range(_BUFFERS - 1):
            self._free.put(bytearray(self._size))
        self._finished = _thread.allocate_lock()
        self._finished.acquire()
        _thread.start_new_thread(self._run, (self._jobs, self._finished))

    def _run(
        self, jobs: queue.SimpleQueue[tuple[bytearray, int] | None], finished: _thread.LockType
    ) -> None:
        try:
            while (job := jobs.get()) is not None:
                buffer, count = job
                with memoryview(buffer) as view:
                    self._hash.update(view[:count])
                self._free.put(buffer)
        except BaseException as exc:  # handed to the transfer thread in hexdigest()
            self._error = exc
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


class FileDigest:
    """The sha256 of what an upload wrote into its file from ``start`` on, read back.

    ``written(end)`` says the file now holds the upload up to ``end``; the bytes
    are hashed in order, by a helper thread once the upload passes ``_INLINE``.
    A file that shrinks under the hash (someone truncated it) is an error, raised
    by ``hexdigest()`` before the upload is put in place.
    """

    def __init__(self, fd: int, start: int, buffer_size: int) -> None:
        self._fd = fd
        self._hashed = start  # the hash holds the file up to here (inline, or queued)
        self._start = start
        self._hash = hashlib.sha256()
        self._buffer = bytearray(buffer_size)
        self._ends: queue.SimpleQueue[int | None] | None = None
        self._room = threading.Semaphore(_LAG)
        self._finished: _thread.LockType | None = None
        self._error: BaseException | None = None

    def written(self, end: int) -> None:
        """The file holds the upload up to ``end``: hash it (may wait for the helper)."""
        if self._ends is None:
            if end - self._start <= _INLINE:
                self._read(self._hashed, end)
                self._hashed = end
                return
            self._ends = queue.SimpleQueue()
            self._finished = _thread.allocate_lock()
            self._finished.acquire()
            _thread.start_new_thread(self._run, (self._ends, self._hashed, self._finished))
        self._room.acquire()
        self._ends.put(end)

    def _read(self, position: int, end: int) -> None:
        with memoryview(self._buffer) as view:
            while position < end:
                count = os.preadv(self._fd, [view[: min(len(view), end - position)]], position)
                if count == 0:
                    raise OSError(0, "the file shrank while its upload was hashed")
                self._hash.update(view[:count])
                position += count

    def _run(
        self, ends: queue.SimpleQueue[int | None], position: int, finished: _thread.LockType
    ) -> None:
        try:
            while (end := ends.get()) is not None:
                if self._error is None:
                    try:
                        self._read(position, end)
                    except BaseException as exc:  # handed to the transfer thread
                        self._error = exc
                position = end
                self._room.release()  # after an error too: the writer never waits for nothing
        finally:
            finished.release()

    def close(self) -> None:
        """Stop the helper thread (after hashing what was written)."""
        if self._ends is not None and self._finished is not None:
            self._ends.put(None)
            self._finished.acquire()
            self._ends = self._finished = None

    def hexdigest(self) -> str:
        self.close()
        if self._error is not None:
            raise self._error
        return self._hash.hexdigest()

    def __enter__(self) -> FileDigest:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
