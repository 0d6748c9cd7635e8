"""``herd ftp user``: add, passwd, del, list, set, lock, unlock through the real CLI."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.ftp.users import UserStore


def run(args: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(["ftp", "user", *args])


def store(home: Path) -> UserStore:
    return UserStore(home / "ftp-users.db")


def test_add_with_password_stdin_creates_user_with_default_home(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["add", "alice", "--quota", "2G", "--password-stdin"], monkeypatch, "pw1\n") == 0
    out = capsys.readouterr().out
    assert "added FTP user alice" in out
    assert "2.0 GiB" in out
    assert "pw1" not in out
    users = store(isolated_env)
    user = users.authenticate("alice", "pw1")
    users.close()
    assert user is not None
    assert user.home == isolated_env / "ftp" / "alice"
    assert user.home.is_dir()
    assert user.quota == 2 << 30


def test_add_read_only_user_with_own_home(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "pub"
    assert (
        run(
            ["add", "viewer", "--dir", str(home), "--read-only", "--password-stdin"],
            monkeypatch,
            "pw\n",
        )
        == 0
    )
    users = store(isolated_env)
    user = users.get("viewer")
    users.close()
    assert user is not None
    assert user.perms == {"list", "read"}
    assert user.home == home


def test_add_refuses_password_on_argv_and_without_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["add", "alice", "--password", "x"], monkeypatch) == 2
    assert run(["add", "alice"], monkeypatch) == 2
    assert "--password-stdin" in capsys.readouterr().err


def test_add_twice_is_bad_usage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["add", "alice", "--password-stdin"], monkeypatch, "pw\n") == 0
    assert run(["add", "alice", "--password-stdin"], monkeypatch, "pw\n") == 2
    err = capsys.readouterr().err
    assert "already exists" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "-x", "--password-stdin"], "No such option"),
        (["add", "a/b", "--password-stdin"], "bad FTP user name"),
        (["add", "bob", "--quota", "lots", "--password-stdin"], "bad quota"),
        (["add", "bob", "--perm", "read,fly", "--password-stdin"], "bad permissions"),
        (["add", "bob", "--perm", "read", "--read-only", "--password-stdin"], "give one"),
        (["add", "bob", "--password-stdin"], "stdin gave no password"),
    ],
)
def test_bad_user_options_exit_2_with_one_line(
    args: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(args, monkeypatch) == 2
    assert message in capsys.readouterr().err


def test_passwd_replaces_the_password(isolated_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(["add", "alice", "--password-stdin"], monkeypatch, "old\n") == 0
    assert run(["passwd", "alice", "--password-stdin"], monkeypatch, "new\n") == 0
    users = store(isolated_env)
    assert users.authenticate("alice", "old") is None
    assert users.authenticate("alice", "new") is not None
    users.close()
    assert run(["passwd", "ghost", "--password-stdin"], monkeypatch, "x\n") == 2


def test_set_lock_unlock_and_del(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["add", "alice", "--password-stdin"], monkeypatch, "pw\n") == 0
    assert run(["set", "alice", "--quota", "500M", "--perm", "list,read,write"], monkeypatch) == 0
    assert run(["set", "alice"], monkeypatch) == 2
    assert run(["lock", "alice"], monkeypatch) == 0
    users = store(isolated_env)
    user = users.get("alice")
    assert user is not None
    assert user.quota == 500 << 20
    assert user.perms == {"list", "read", "write"}
    assert users.authenticate("alice", "pw") is None
    users.close()
    assert run(["unlock", "alice"], monkeypatch) == 0
    users = store(isolated_env)
    assert users.authenticate("alice", "pw") is not None
    users.close()
    assert run(["del", "alice"], monkeypatch) == 0
    assert "files kept in" in capsys.readouterr().out
    assert run(["del", "alice"], monkeypatch) == 2
    assert run(["lock", "alice"], monkeypatch) == 2


def test_list_shows_usage_against_quota_in_human_sizes(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["list"], monkeypatch) == 0
    assert "no FTP users yet" in capsys.readouterr().out
    assert run(["add", "alice", "--quota", "1G", "--password-stdin"], monkeypatch, "pw\n") == 0
    assert run(["add", "bob", "--read-only", "--password-stdin"], monkeypatch, "pw\n") == 0
    users = store(isolated_env)
    users.set_usage("alice", 512 << 20)
    users.close()
    assert run(["lock", "bob"], monkeypatch) == 0
    capsys.readouterr()
    assert run(["list"], monkeypatch) == 0
    out = capsys.readouterr().out
    alice = next(line for line in out.splitlines() if line.startswith("alice"))
    bob = next(line for line in out.splitlines() if line.startswith("bob"))
    assert "512.0 MiB" in alice
    assert "1.0 GiB" in alice
    assert "50%" in alice
    assert "all" in alice
    assert "unlimited" in bob
    assert "read-only" in bob
    assert "locked" in bob


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_password_is_asked_twice_hidden_on_a_terminal(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[dict[str, object]] = []

    def fake_prompt(text: str, **options: object) -> str:
        asked.append({"text": text, **options})
        return "typed-secret"

    monkeypatch.setattr("herd.cli.ftp_users.click.prompt", fake_prompt)
    monkeypatch.setattr(sys, "stdin", _Terminal())
    assert main(["ftp", "user", "add", "alice"]) == 0
    assert asked[0]["hide_input"] is True
    assert asked[0]["confirmation_prompt"]
    users = store(isolated_env)
    assert users.authenticate("alice", "typed-secret") is not None
    users.close()


def test_the_old_home_spelling_still_works_with_a_deprecation_note(
    isolated_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = tmp_path / "old"
    assert run(["add", "bob", "--home", str(old), "--password-stdin"], monkeypatch, "pw\n") == 0
    assert "deprecated" in capsys.readouterr().err
    new = tmp_path / "new"
    assert run(["set", "bob", "--dir", str(new)], monkeypatch) == 0
    assert "deprecated" not in capsys.readouterr().err
    users = store(isolated_env)
    user = users.get("bob")
    users.close()
    assert user is not None and user.home == new
    assert run(["set", "bob", "--dir", str(new), "--home", str(old)], monkeypatch) == 2
    help_text = main(["ftp", "user", "add", "--help"])
    assert help_text == 0
    shown = capsys.readouterr().out
    assert "--dir" in shown and "--home" not in shown


def test_require_tls_is_set_per_user(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["add", "carol", "--require-tls", "--password-stdin"], monkeypatch, "pw\n") == 0
    assert "TLS required" in capsys.readouterr().out
    users = store(isolated_env)
    assert users.requires_tls("carol")
    users.close()
    assert run(["set", "carol", "--no-require-tls"], monkeypatch) == 0
    users = store(isolated_env)
    assert not users.requires_tls("carol")
    users.close()


def test_herds_ftp_files_are_0600_in_0700_directories_and_old_ones_are_fixed(
    isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stat

    assert run(["add", "dave", "--password-stdin"], monkeypatch, "pw\n") == 0
    database = isolated_env / "ftp-users.db"

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(database) == 0o600
    assert mode(isolated_env) == 0o700
    assert mode(isolated_env / "ftp") == 0o700
    for path in database.parent.glob("ftp-users.db*"):
        assert mode(path) == 0o600, path
    database.chmod(0o644)  # as an older herd (or a careless copy) left them
    isolated_env.chmod(0o755)
    assert run(["list"], monkeypatch) == 0
    assert mode(database) == 0o600
    assert mode(isolated_env) == 0o700
