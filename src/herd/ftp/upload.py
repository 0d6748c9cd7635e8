"""An upload's sha256, computed beside the transfer without copying what was received.

The transfer thread receives into a buffer, writes it to the file and hands the
buffer to a helper thread that hashes it, then takes the next free buffer: the
hash of chunk n runs while chunk n+1 is received and written (hashlib and the
socket and file calls all release the GIL). A few buffers go round, so memory
stays bounded and nothing is copied for the hash. Uploads of up to 1 MiB are
hashed inline: a thread would cost more than it saves.
"""

from __future__ import annotations

import _thread
import hashlib
import queue

__all__ = ["UploadDigest"]

_INLINE = 1024 * 1024  # bytes hashed in the transfer thread before the helper starts
_BUFFERS = 3  # in rotation once the helper runs


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
