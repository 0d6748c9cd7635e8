"""The FTP users store: argon2id hashes, the login cache, quotas, permissions, locking."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from herd.errors import ConfigError, FtpError
from herd.ftp.users import (
    PERMISSIONS,
    READ_ONLY,
    UserStore,
    check_user_name,
    format_size,
    parse_permissions,
    parse_quota,
)
from tests.processes import race


def in_threads(step: Callable[[], None], count: int) -> None:
    """Run ``step`` in ``count`` threads at once and wait for all of them."""
    threads = [threading.Thread(target=step) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[UserStore]:
    users = UserStore(tmp_path / "ftp-users.db")
    yield users
    users.close()


def test_added_user_logs_in_with_the_right_password_only(store: UserStore, tmp_path: Path) -> None:
    store.add("alice", "s3cret", home=tmp_path / "alice")
    user = store.authenticate("alice", "s3cret")
    assert user is not None
    assert user.name == "alice"
    assert user.home == tmp_path / "alice"
    assert user.home.is_dir()
    assert user.perms == frozenset(PERMISSIONS)
    assert store.authenticate("alice", "wrong") is None
    assert store.authenticate("nobody", "s3cret") is None


def test_password_is_stored_as_an_argon2id_hash_at_owasp_minimum(
    store: UserStore, tmp_path: Path
) -> None:
    store.add("alice", "s3cret-password", home=tmp_path / "alice")
    db = sqlite3.connect(store.path)
    (stored,) = db.execute("SELECT hash FROM users WHERE name = 'alice'").fetchone()
    db.close()
    assert stored.startswith("$argon2id$")
    assert "m=19456,t=2,p=1" in stored
    assert "s3cret-password" not in store.path.read_bytes().decode("latin-1")


def test_login_cache_skips_argon2_but_never_accepts_a_wrong_password(
    store: UserStore, tmp_path: Path
) -> None:
    store.add("alice", "s3cret", home=tmp_path / "alice")
    started = time.perf_counter()
    assert store.authenticate("alice", "s3cret") is not None
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(20):
        assert store.authenticate("alice", "s3cret") is not None
    cached = (time.perf_counter() - started) / 20
    assert cached < first
    assert store.authenticate("alice", "s3cret!") is None


def test_password_change_invalidates_the_cached_login(store: UserStore, tmp_path: Path) -> None:
    store.add("alice", "old-pass", home=tmp_path / "alice")
    assert store.authenticate("alice", "old-pass") is not None
    # another process (herd ftp user passwd) changes it behind the server's back
    other = UserStore(store.path)
    other.set_password("alice", "new-pass")
    other.close()
    assert store.authenticate("alice", "old-pass") is None
    assert store.authenticate("alice", "new-pass") is not None


def test_locked_user_is_refused_even_with_a_cached_login(store: UserStore, tmp_path: Path) -> None:
    store.add("alice", "s3cret", home=tmp_path / "alice")
    assert store.authenticate("alice", "s3cret") is not None
    store.lock("alice")
    assert store.authenticate("alice", "s3cret") is None
    user = store.get("alice")
    assert user is not None
    assert user.locked
    store.unlock("alice")
    assert store.authenticate("alice", "s3cret") is not None


def test_unknown_user_costs_an_argon2_verification_too(store: UserStore, tmp_path: Path) -> None:
    store.add("alice", "s3cret", home=tmp_path / "alice")
    store.authenticate("ghost", "x")  # builds the dummy hash once
    started = time.perf_counter()
    store.authenticate("ghost", "x")
    unknown = time.perf_counter() - started
    started = time.perf_counter()
    store.authenticate("alice", "wrong")
    known = time.perf_counter() - started
    assert unknown > known / 4


def test_existing_name_is_refused(store: UserStore, tmp_path: Path) -> None:
    store.add("alice", "s3cret", home=tmp_path / "alice")
    with pytest.raises(FtpError, match="already exists"):
        store.add("alice", "other", home=tmp_path / "a2")


def test_set_changes_only_what_is_given(store: UserStore, tmp_path: Path) -> None:
    store.add("bob", "pw", home=tmp_path / "bob", quota=1 << 30, perms=READ_ONLY)
    user = store.set("bob", perms=PERMISSIONS)
    assert user.quota == 1 << 30
    assert user.perms == frozenset(PERMISSIONS)
    user = store.set("bob", quota=None)
    assert user.quota is None
    user = store.set("bob", home=tmp_path / "elsewhere")
    assert user.home == tmp_path / "elsewhere"
    assert user.home.is_dir()
    assert user.perms == frozenset(PERMISSIONS)


def test_read_only_user_is_one_line(store: UserStore, tmp_path: Path) -> None:
    user = store.add("viewer", "pw", home=tmp_path / "v", perms=READ_ONLY)
    assert user.read_only
    assert user.perms == {"list", "read"}


def test_usage_persists_across_stores(store: UserStore, tmp_path: Path) -> None:
    store.add("alice", "pw", home=tmp_path / "alice", quota=1000)
    assert store.usage("alice") == 0
    store.set_usage("alice", 640)
    reopened = UserStore(store.path)
    assert reopened.usage("alice") == 640
    assert reopened.list()[0][1] == 640
    reopened.close()
    assert store.usage("nobody") is None


def test_delete_removes_the_user_but_keeps_the_files(store: UserStore, tmp_path: Path) -> None:
    store.add("alice", "pw", home=tmp_path / "alice")
    (tmp_path / "alice" / "keep.txt").write_text("x")
    store.delete("alice")
    assert store.get("alice") is None
    assert (tmp_path / "alice" / "keep.txt").exists()
    with pytest.raises(FtpError, match="no FTP user alice"):
        store.delete("alice")


def test_changes_to_a_missing_user_say_so(store: UserStore) -> None:
    for change in (store.lock, store.unlock, lambda n: store.set_password(n, "pw")):
        with pytest.raises(FtpError, match="no FTP user ghost"):
            change("ghost")
    with pytest.raises(FtpError, match="no FTP user ghost"):
        store.set("ghost", quota=None)


def test_concurrent_logins_from_many_threads_all_succeed(store: UserStore, tmp_path: Path) -> None:
    store.add("alice", "pw", home=tmp_path / "alice")
    results: list[bool] = []

    def login() -> None:
        results.append(store.authenticate("alice", "pw") is not None)

    in_threads(login, 16)
    assert results == [True] * 16


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500M", 500 << 20),
        ("2G", 2 << 30),
        ("1.5T", int(1.5 * (1 << 40))),
        ("2GiB", 2 << 30),
        ("1024", 1024),
        ("none", None),
        ("unlimited", None),
    ],
)
def test_quota_sizes_parse_in_binary_units(text: str, expected: int | None) -> None:
    assert parse_quota(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-5G", "0", "2X", "1e9"])
def test_bad_quota_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="bad quota"):
        parse_quota(text)


def test_sizes_format_for_people() -> None:
    assert format_size(None) == "unlimited"
    assert format_size(512) == "512 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(2 << 30) == "2.0 GiB"


def test_permissions_parse_and_refuse_unknown_words() -> None:
    assert parse_permissions("list, read") == READ_ONLY
    assert parse_permissions("all") == frozenset(PERMISSIONS)
    with pytest.raises(ConfigError, match="bad permissions"):
        parse_permissions("read,execute")


@pytest.mark.parametrize("name", ["", "-rf", ".hidden", "a/b", "a b", "x" * 65, "é"])
def test_awkward_user_names_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="bad FTP user name"):
        check_user_name(name)


def test_passwords_with_line_breaks_are_refused(store: UserStore, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        store.add("alice", "pw\r\nSITE", home=tmp_path / "alice")
    with pytest.raises(ConfigError):
        store.add("alice", "", home=tmp_path / "alice")


def test_login_burst_for_one_user_runs_argon2_only_a_few_times(
    store: UserStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.add("alice", "pw", home=tmp_path / "alice")
    calls: list[int] = []
    real_verify = store._verify

    def counting_verify(stored_hash: str, password: str) -> bool:
        calls.append(1)
        return real_verify(stored_hash, password)

    monkeypatch.setattr(store, "_verify", counting_verify)
    gate = threading.Barrier(32)
    results: list[bool] = []

    def login() -> None:
        gate.wait(timeout=10)
        results.append(store.authenticate("alice", "pw") is not None)

    in_threads(login, 32)
    assert results == [True] * 32
    assert len(calls) <= max(2, os.cpu_count() or 2)  # one per verification slot at most


def test_users_database_is_readable_by_its_owner_only(store: UserStore, tmp_path: Path) -> None:
    store.add("alice", "pw", home=tmp_path / "alice")
    assert store.path.stat().st_mode & 0o077 == 0


def test_password_bytes_that_are_not_utf8_fail_quietly(store: UserStore, tmp_path: Path) -> None:
    store.add("alice", "pw", home=tmp_path / "alice")
    assert store.authenticate("alice", "\udcff\udcfe") is None
    assert store.authenticate("ghost\udcff", "\udcff") is None
    assert store.authenticate("alice", "pw") is not None


def test_servers_and_admins_opening_a_new_database_at_once_all_get_it(tmp_path: Path) -> None:
    """Four processes race to create each of 40 new user databases (the WAL switch)."""
    failed = race(
        f"""
        from herd.ftp.users import UserStore
        for i in range(40):
            UserStore(pathlib.Path({str(tmp_path)!r}) / f"users{{i}}.db").close()
        """,
        tmp_path,
    )
    assert failed == []
