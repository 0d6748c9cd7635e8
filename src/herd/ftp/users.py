"""FTP users in SQLite: argon2id password hashes, homes, quotas, permissions, usage.

The server calls ``UserStore`` from many handler threads at once, and
``herd ftp user`` changes the same file from another process: one SQLite
connection per store guarded by a lock, in WAL mode, so a lock or a new
password takes effect on the running server's next login. Passwords are never
stored nor logged; a successful verification is remembered for a few minutes as
a keyed hash (HMAC with a per-process random key), so a burst of logins does not
pay argon2 every time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final, Literal

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from herd.core.sizes import format_size as format_bytes
from herd.core.sizes import parse_size
from herd.core.sqlite_wal import use_wal
from herd.errors import ConfigError, FtpError

__all__ = [
    "KEEP",
    "PERMISSIONS",
    "READ_ONLY",
    "FtpUser",
    "UserStore",
    "check_user_name",
    "format_size",
    "parse_permissions",
    "parse_quota",
]

PERMISSIONS: Final = ("list", "read", "write", "append", "delete", "rename", "mkdir", "rmdir")
READ_ONLY: Final = frozenset({"list", "read"})

# OWASP's minimum for argon2id: 19 MiB, two passes, one lane.
ARGON2_MEMORY_KIB: Final = 19456
ARGON2_TIME_COST: Final = 2
ARGON2_PARALLELISM: Final = 1

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._@-]{0,63}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name     TEXT PRIMARY KEY,
    hash     TEXT NOT NULL,
    home     TEXT NOT NULL,
    quota    INTEGER,
    perms    TEXT NOT NULL,
    locked   INTEGER NOT NULL DEFAULT 0,
    used     INTEGER NOT NULL DEFAULT 0,
    created  REAL NOT NULL,
    require_tls INTEGER NOT NULL DEFAULT 0
);
"""
# Columns added after the first release, with their definitions (added on open when missing).
_ADDED_COLUMNS = {"require_tls": "INTEGER NOT NULL DEFAULT 0"}


class _Keep(Enum):
    """Marks an attribute ``UserStore.set`` leaves as it is (None means unlimited quota)."""

    KEEP = "keep"


KEEP: Final = _Keep.KEEP


@dataclass(frozen=True)
class FtpUser:
    """One virtual FTP user: where their files live, how much they may store, what they may do."""

    name: str
    home: Path
    quota: int | None  # bytes; None = unlimited
    perms: frozenset[str]
    locked: bool
    require_tls: bool = False  # log in only over TLS (FTPS), with protected data connections

    @property
    def read_only(self) -> bool:
        return self.perms <= READ_ONLY


@dataclass(frozen=True, slots=True)
class _Verified:
    """A remembered successful login: keyed hash of name+password, the hash it matched, expiry."""

    mac: bytes
    stored_hash: str
    expires: float


def _private(path: Path) -> None:
    """The database 0600 (with its WAL files) in a 0700 directory, new or fixed on open.

    Password hashes are for the server's eyes only; a database an older herd left
    readable by others is tightened here.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(path.parent.stat().st_mode) != 0o700:
        path.parent.chmod(0o700)
    if not path.exists():
        path.touch(mode=0o600)
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(file.stat().st_mode) != 0o600:
                file.chmod(0o600)


def check_user_name(name: str) -> str:
    """Refuse names that would be awkward in paths, logs or the protocol."""
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"bad FTP user name {name!r}: use 1-64 letters, digits, '.', '_', '-', '@'"
            " (not starting with '.', '-' or '@')"
        )
    return name


def parse_quota(text: str) -> int | None:
    """``500M``, ``2G``, ``1.5T``, ``1048576`` -> bytes (binary units); ``none`` -> unlimited."""
    if text.strip().lower() in {"none", "unlimited"}:
        return None
    size = parse_size(text)
    if size is None:
        raise ConfigError(f"bad quota {text!r}: use a size like 500M, 2G, 1.5T, or 'none'")
    if size < 1:
        raise ConfigError(f"bad quota {text!r}: out of range")
    return size


def format_size(size: int | None) -> str:
    """Bytes as a sysadmin reads them: ``512 B``, ``1.5 MiB``; None -> ``unlimited``."""
    return "unlimited" if size is None else format_bytes(size)


def parse_permissions(text: str) -> frozenset[str]:
    """``list,read,write`` or ``all`` -> a permission set; unknown names are refused."""
    words = {w.strip().lower() for w in text.split(",") if w.strip()}
    if words == {"all"}:
        return frozenset(PERMISSIONS)
    unknown = sorted(words - set(PERMISSIONS))
    if unknown or not words:
        raise ConfigError(
            f"bad permissions {text!r}: choose from {','.join(PERMISSIONS)} (or 'all')"
        )
    return frozenset(words)


def _perms_text(perms: Iterable[str]) -> str:
    chosen = set(perms)
    return ",".join(p for p in PERMISSIONS if p in chosen)


class UserStore:
    """The FTP users database; thread-safe, shared by every handler thread of a server."""

    def __init__(self, path: Path, *, cache_seconds: float = 300.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._hasher = PasswordHasher(
            time_cost=ARGON2_TIME_COST,
            memory_cost=ARGON2_MEMORY_KIB,
            parallelism=ARGON2_PARALLELISM,
            type=Type.ID,
        )
        self._cache_seconds = cache_seconds
        self._cache_key = secrets.token_bytes(32)
        self._cache: dict[str, _Verified] = {}
        # Each argon2 verification holds 19 MiB and a core: a burst of a thousand logins
        # takes turns instead of allocating gigabytes, and re-checks the cache once in.
        self._verifiers = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))
        self._dummy_hash: str | None = None
        self._db = self._open(path)

    # -- opening -----------------------------------------------------------------

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        try:
            _private(path)
            db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise FtpError(f"{path}: cannot open the FTP users database: {exc}") from exc
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            use_wal(db)
            db.execute("PRAGMA synchronous = NORMAL")
            db.executescript(_SCHEMA)
            present = {row[1] for row in db.execute("PRAGMA table_info(users)")}
            for column, definition in _ADDED_COLUMNS.items():
                if column not in present:
                    with contextlib.suppress(sqlite3.OperationalError):  # another process won
                        db.execute(f"ALTER TABLE users ADD COLUMN {column} {definition}")
        except sqlite3.Error as exc:
            db.close()
            raise FtpError(f"{path}: cannot use the FTP users database: {exc}") from exc
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> UserStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise FtpError(f"{self.path}: cannot read the FTP users database: {exc}") from exc

    def _change(self, sql: str, args: tuple[object, ...]) -> int:
        """One write; returns the number of rows changed."""
        try:
            with self._lock:
                return self._db.execute(sql, args).rowcount
        except sqlite3.IntegrityError as exc:
            raise FtpError(f"{self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise FtpError(f"{self.path}: cannot write the FTP users database: {exc}") from exc

    # -- the server's side ----------------------------------------------------------

    def authenticate(self, name: str, password: str) -> FtpUser | None:
        """The user if the password is right and the account is not locked, else None.

        Unknown users are verified against a dummy hash so the time taken does not
        tell which names exist.
        """
        row = self._row(name)
        if row is None:
            with self._verifiers:
                self._verify(self._dummy(), password)
            return None
        user, stored_hash = row
        mac = self._mac(name, password)
        if self._remembered(name, mac, stored_hash):
            return None if user.locked else user
        with self._verifiers:
            if self._remembered(name, mac, stored_hash):
                return None if user.locked else user
            if not self._verify(stored_hash, password):
                return None
        self._cache[name] = _Verified(mac, stored_hash, time.monotonic() + self._cache_seconds)
        if self._hasher.check_needs_rehash(stored_hash):
            self._change(
                "UPDATE users SET hash = ? WHERE name = ? AND hash = ?",
                (self._hasher.hash(password), name, stored_hash),
            )
        return None if user.locked else user

    def get(self, name: str) -> FtpUser | None:
        row = self._row(name)
        return None if row is None else row[0]

    def requires_tls(self, name: str) -> bool:
        """Whether ``name`` may log in only over TLS (False for unknown names)."""
        if not name.isprintable() or not _NAME.fullmatch(name):
            return False
        rows = self._query("SELECT require_tls FROM users WHERE name = ?", (name,))
        return bool(rows and rows[0][0])

    def usage(self, name: str) -> int | None:
        """The bytes the user's files are known to take (persisted by the server)."""
        rows = self._query("SELECT used FROM users WHERE name = ?", (name,))
        return None if not rows else int(rows[0][0])

    def set_usage(self, name: str, used: int) -> None:
        self._change("UPDATE users SET used = ? WHERE name = ?", (max(0, used), name))

    # -- the administrator's side ---------------------------------------------------

    def add(
        self,
        name: str,
        password: str,
        *,
        home: Path,
        quota: int | None = None,
        perms: Iterable[str] = PERMISSIONS,
    ) -> FtpUser:
        """Create a user and their home directory; an existing name is refused."""
        check_user_name(name)
        self._check_password(password)
        home = home.expanduser().absolute()
        try:
            home.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as exc:
            raise FtpError(f"{home}: cannot create the home of {name}: {exc}") from exc
        if self.get(name) is not None:
            raise FtpError(f"FTP user {name} already exists")
        self._change(
            "INSERT INTO users (name, hash, home, quota, perms, created) VALUES (?, ?, ?, ?, ?, ?)",
            (name, self._hasher.hash(password), str(home), quota, _perms_text(perms), time.time()),
        )
        user = self.get(name)
        assert user is not None
        return user

    def set_password(self, name: str, password: str) -> None:
        self._check_password(password)
        self._must_change(
            "UPDATE users SET hash = ? WHERE name = ?", (self._hasher.hash(password), name), name
        )
        self._cache.pop(name, None)

    def delete(self, name: str) -> None:
        """Remove the user; their home directory and files are left in place."""
        self._must_change("DELETE FROM users WHERE name = ?", (name,), name)
        self._cache.pop(name, None)

    def set(
        self,
        name: str,
        *,
        home: Path | None = None,
        quota: int | Literal[_Keep.KEEP] | None = KEEP,
        perms: Iterable[str] | None = None,
        require_tls: bool | None = None,
    ) -> FtpUser:
        """Change a user's home, quota, permissions or TLS rule; what is not given stays."""
        user = self.get(name)
        if user is None:
            raise FtpError(f"no FTP user {name}")
        if home is not None:
            home = home.expanduser().absolute()
            try:
                home.mkdir(parents=True, exist_ok=True, mode=0o750)
            except OSError as exc:
                raise FtpError(f"{home}: cannot create the home of {name}: {exc}") from exc
        self._must_change(
            "UPDATE users SET home = ?, quota = ?, perms = ?, require_tls = ? WHERE name = ?",
            (
                str(home or user.home),
                user.quota if quota is KEEP else quota,
                _perms_text(user.perms if perms is None else perms),
                int(user.require_tls if require_tls is None else require_tls),
                name,
            ),
            name,
        )
        changed = self.get(name)
        assert changed is not None
        return changed

    def lock(self, name: str) -> None:
        self._must_change("UPDATE users SET locked = 1 WHERE name = ?", (name,), name)

    def unlock(self, name: str) -> None:
        self._must_change("UPDATE users SET locked = 0 WHERE name = ?", (name,), name)

    def list(self) -> list[tuple[FtpUser, int]]:
        """Every user with their recorded usage in bytes, by name."""
        rows = self._query(
            "SELECT name, home, quota, perms, locked, require_tls, used FROM users ORDER BY name"
        )
        return [(self._user(row[:6]), int(row[6])) for row in rows]

    # -- helpers ------------------------------------------------------------------

    def _must_change(self, sql: str, args: tuple[object, ...], name: str) -> None:
        if self._change(sql, args) == 0:
            raise FtpError(f"no FTP user {name}")

    def _row(self, name: str) -> tuple[FtpUser, str] | None:
        if not name.isprintable() or not _NAME.fullmatch(name):
            return None  # no such name can exist (and odd bytes never reach SQLite)
        rows = self._query(
            "SELECT name, home, quota, perms, locked, require_tls, hash FROM users WHERE name = ?",
            (name,),
        )
        if not rows:
            return None
        return self._user(rows[0][:6]), str(rows[0][6])

    @staticmethod
    def _user(row: tuple[Any, ...]) -> FtpUser:
        name, home, quota, perms, locked, require_tls = row
        return FtpUser(
            name=str(name),
            home=Path(str(home)),
            quota=None if quota is None else int(quota),
            perms=frozenset(p for p in str(perms).split(",") if p),
            locked=bool(locked),
            require_tls=bool(require_tls),
        )

    def _remembered(self, name: str, mac: bytes, stored_hash: str) -> bool:
        """Whether this name+password verified against this very hash a moment ago."""
        entry = self._cache.get(name)
        return (
            entry is not None
            and entry.stored_hash == stored_hash
            and entry.expires > time.monotonic()
            and hmac.compare_digest(entry.mac, mac)
        )

    def _mac(self, name: str, password: str) -> bytes:
        message = name.encode("utf-8", "surrogateescape") + b"\0"
        message += password.encode("utf-8", "surrogateescape")
        return hmac.new(self._cache_key, message, hashlib.sha256).digest()

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            # surrogateescape: a client may send bytes that are not UTF-8; they just fail.
            return self._hasher.verify(stored_hash, password.encode("utf-8", "surrogateescape"))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        return self._dummy_hash

    @staticmethod
    def _check_password(password: str) -> None:
        if not password:
            raise ConfigError("empty password refused")
        if any(c in password for c in "\r\n\0"):
            raise ConfigError("a password cannot contain line breaks or NUL")
