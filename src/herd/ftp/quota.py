"""Per-user disk quotas, shared by every session of a user on one server.

The live byte count of a user is kept in memory, one ``QuotaAccount`` per user
with its own lock, so several concurrent uploads by the same user are charged
chunk by chunk and can never together pass the limit. After each upload,
delete or rename the count is persisted with ``UserStore.set_usage`` so it
survives restarts; when the store knows no usage (None, or 0 for a home that
may hold files put there by other means) it is measured from disk once.

The rule for an upload that hits the limit: the transfer stops with 552 and

- a STOR (written to a temporary file) or STOU is removed entirely, so a
  failed upload never leaves a truncated file nor replaces a good one;
- an APPE or REST+STOR (written in place to resume) keeps the bytes that fit,
  so the client can resume once space is freed.

Replacing a file with STOR is charged for the new file while it uploads and
credited the old file's size when the new one is renamed into place.

What is on disk can change behind the server's back (an administrator deletes
files, restores a backup), so usage is measured again: for every user when the
server starts (in the background: the first logins do not wait), and by
``herd ftp user rescan``, whose figure a running server takes at the user's
next login once none of their sessions is open (the book forgets an account
when its last session ends). A measurement taken while uploads run counts what
they had written at that moment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

__all__ = ["QuotaAccount", "QuotaBook", "UsageStore"]


class UsageStore(Protocol):
    """Where usage is persisted (``herd.ftp.users.UserStore``)."""

    def usage(self, name: str) -> int | None: ...

    def set_usage(self, name: str, used: int) -> None: ...


class QuotaAccount:
    """One user's live usage against their limit (None = unlimited)."""

    def __init__(self, name: str, limit: int | None, used: int, store: UsageStore) -> None:
        self.name = name
        self.limit = limit
        self._used = used
        self._store = store
        self._lock = threading.Lock()
        self._persist_lock = threading.Lock()
        self._moved = 0  # net bytes charged minus credited, ever: a rescan's reference
        self.sessions = 0  # open sessions using this account (the book's to count)

    @property
    def used(self) -> int:
        return self._used

    @property
    def available(self) -> int | None:
        with self._lock:
            return None if self.limit is None else max(0, self.limit - self._used)

    def charge(self, size: int) -> int:
        """Reserve up to ``size`` bytes; returns how many fit (less than asked: over quota)."""
        with self._lock:
            granted = size if self.limit is None else max(0, min(size, self.limit - self._used))
            self._used += granted
            self._moved += granted
            return granted

    def credit(self, size: int) -> None:
        """Give back bytes freed by a delete, a replaced file or a removed partial upload."""
        if size <= 0:
            return
        with self._lock:
            self._used = max(0, self._used - size)
            self._moved -= size

    def remeasure(self, measure: Callable[[], int]) -> int:
        """Set usage to what ``measure`` finds on disk, keeping changes made meanwhile."""
        with self._lock:
            mark = self._moved
        measured = measure()
        with self._lock:
            self._used = max(0, measured + self._moved - mark)
            return self._used

    def persist(self) -> None:
        """Write the live count to the users database (after each change).

        One writer at a time, each reading the count when its turn comes: two
        sessions persisting at once can never leave the older count in the database.
        """
        with self._persist_lock:
            with self._lock:
                used = self._used
            self._store.set_usage(self.name, used)


class QuotaBook:
    """The quota accounts of one server, created on first use of each user."""

    def __init__(self, store: UsageStore) -> None:
        self._store = store
        self._accounts: dict[str, QuotaAccount] = {}
        self._lock = threading.Lock()

    def known(self, name: str, limit: int | None) -> QuotaAccount | None:
        """The user's account if one of their sessions holds it (no database, no disk)."""
        with self._lock:
            account = self._accounts.get(name)
            if account is not None:
                account.limit = limit  # the administrator may have changed it since
                account.sessions += 1
            return account

    def account(self, name: str, limit: int | None, measure: Callable[[], int]) -> QuotaAccount:
        """The user's account for one more session; ``measure`` sums their home if need be."""
        with self._lock:
            account = self._accounts.get(name)
            if account is None:
                known = self._store.usage(name)
                used = known if known else measure()
                account = QuotaAccount(name, limit, used, self._store)
                self._accounts[name] = account
                if used != known:
                    account.persist()
            else:
                account.limit = limit  # the administrator may have changed it since
            account.sessions += 1
            return account

    def release(self, account: QuotaAccount) -> None:
        """A session is done with ``account``; the last one out lets the book forget it."""
        with self._lock:
            account.sessions -= 1
            if account.sessions <= 0 and self._accounts.get(account.name) is account:
                del self._accounts[account.name]

    def rescan(self, name: str, limit: int | None, measure: Callable[[], int]) -> int:
        """Measure the user's home again and persist it; returns the new usage."""
        with self._lock:
            account = self._accounts.get(name)
        if account is None:
            used = max(0, measure())
            with self._lock:
                account = self._accounts.get(name)
            if account is None:  # still no session: the database is the only copy
                self._store.set_usage(name, used)
                return used
        used = account.remeasure(measure)
        account.persist()
        return used
