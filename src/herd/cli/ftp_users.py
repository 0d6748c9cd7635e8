"""``herd ftp user ...``: add, change, lock and list the FTP server's virtual users.

Passwords come from a hidden prompt (asked twice) or, for scripts, from one
line of stdin with ``--password-stdin``: never from the command line, where
``ps`` and shell history would show them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from herd.cli.context import AppContext, pass_app
from herd.errors import UsageError
from herd.ftp.users import (
    KEEP,
    PERMISSIONS,
    READ_ONLY,
    UserStore,
    check_user_name,
    format_size,
    parse_permissions,
    parse_quota,
)

__all__ = ["user"]


@contextmanager
def _store(app: AppContext) -> Iterator[UserStore]:
    store = UserStore(app.paths.ftp_users_db)
    try:
        yield store
    finally:
        store.close()


def _read_password(from_stdin: bool) -> str:
    """One line of stdin, or a hidden prompt asked twice on a terminal."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise UsageError("--password-stdin: stdin gave no password")
        return password
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: pipe it with --password-stdin")
    value: str = click.prompt(
        "New FTP password", hide_input=True, confirmation_prompt="Repeat the password"
    )
    return value


def _perms(read_only: bool, perm: str | None) -> frozenset[str] | None:
    if read_only and perm:
        raise UsageError("--read-only and --perm say different things: give one")
    if read_only:
        return READ_ONLY
    return None if perm is None else parse_permissions(perm)


password_stdin = click.option(
    "--password-stdin", is_flag=True, help="Read the password from one line of stdin."
)
quota_option = click.option(
    "--quota",
    metavar="SIZE",
    help="Disk quota: 500M, 2G, 1.5T, or none (binary units).",
)
perm_option = click.option(
    "--perm",
    metavar="LIST",
    help=f"Comma-separated permissions from {','.join(PERMISSIONS)} (or all).",
)
read_only_option = click.option(
    "--read-only", is_flag=True, help="Only list and read (same as --perm list,read)."
)
home_option = click.option(
    "--home",
    "home",
    type=click.Path(path_type=Path, file_okay=False),
    help="The user's FTP root (created if missing).",
)


@click.group("user")
def user() -> None:
    """Manage the FTP server's users (stored in HOME/ftp-users.db)."""


@user.command("add")
@click.argument("name")
@home_option
@quota_option
@perm_option
@read_only_option
@password_stdin
@pass_app
def add(  # noqa: PLR0917 (click passes one parameter per option)
    app: AppContext,
    name: str,
    home: Path | None,
    quota: str | None,
    perm: str | None,
    read_only: bool,
    password_stdin: bool,
) -> int:
    """Add the FTP user NAME; the home defaults to HOME/ftp/NAME."""
    check_user_name(name)
    perms = _perms(read_only, perm)
    if quota is not None:
        parse_quota(quota)  # refuse a bad size before asking for the password
    with _store(app) as store:
        if store.get(name) is not None:
            raise UsageError(f"FTP user {name} already exists (change it with `herd ftp user set`)")
        password = _read_password(password_stdin)
        created = store.add(
            name,
            password,
            home=home or app.home / "ftp" / name,
            quota=None if quota is None else parse_quota(quota),
            perms=PERMISSIONS if perms is None else perms,
        )
    click.echo(
        f"added FTP user {created.name}: home {created.home}, quota {format_size(created.quota)},"
        f" permissions {','.join(p for p in PERMISSIONS if p in created.perms)}"
    )
    return 0


@user.command("passwd")
@click.argument("name")
@password_stdin
@pass_app
def passwd(app: AppContext, name: str, password_stdin: bool) -> int:
    """Set a new password for NAME (logins with the old one stop at once)."""
    with _store(app) as store:
        if store.get(name) is None:
            raise UsageError(f"no FTP user {name}")
        store.set_password(name, _read_password(password_stdin))
    click.echo(f"changed the password of FTP user {name}")
    return 0


@user.command("del")
@click.argument("name")
@pass_app
def delete(app: AppContext, name: str) -> int:
    """Remove NAME; their files stay in their home directory."""
    with _store(app) as store:
        found = store.get(name)
        if found is None:
            raise UsageError(f"no FTP user {name}")
        store.delete(name)
    click.echo(f"deleted FTP user {name} (files kept in {found.home})")
    return 0


@user.command("set")
@click.argument("name")
@home_option
@quota_option
@perm_option
@read_only_option
@pass_app
def set_(  # noqa: PLR0917 (click passes one parameter per option)
    app: AppContext,
    name: str,
    home: Path | None,
    quota: str | None,
    perm: str | None,
    read_only: bool,
) -> int:
    """Change NAME's home, quota or permissions; what is not given stays."""
    perms = _perms(read_only, perm)
    if home is None and quota is None and perms is None:
        raise UsageError("nothing to change: give --home, --quota, --perm or --read-only")
    with _store(app) as store:
        if store.get(name) is None:
            raise UsageError(f"no FTP user {name}")
        limit = KEEP if quota is None else parse_quota(quota)
        changed = store.set(name, home=home, quota=limit, perms=perms)
    click.echo(
        f"changed FTP user {changed.name}: home {changed.home}, quota {format_size(changed.quota)},"
        f" permissions {','.join(p for p in PERMISSIONS if p in changed.perms)}"
    )
    return 0


def _switch(verb: str, change: Callable[[UserStore, str], None]) -> Callable[..., int]:
    def command(app: AppContext, name: str) -> int:
        with _store(app) as store:
            if store.get(name) is None:
                raise UsageError(f"no FTP user {name}")
            change(store, name)
        click.echo(f"{verb} FTP user {name}")
        return 0

    return command


user.command("lock", help="Refuse NAME's logins until unlocked (files and settings stay).")(
    click.argument("name")(pass_app(_switch("locked", UserStore.lock)))
)
user.command("unlock", help="Allow NAME to log in again.")(
    click.argument("name")(pass_app(_switch("unlocked", UserStore.unlock)))
)


@user.command("list")
@pass_app
def list_(app: AppContext) -> int:
    """Every user with home, usage against quota, permissions and state."""
    from herd.ui.ftp_users import UserRow, render_users

    with _store(app) as store:
        users = store.list()
    rows = [
        UserRow(
            name=u.name,
            home=str(u.home),
            used=format_size(used),
            quota=format_size(u.quota),
            percent=None if u.quota is None else 100.0 * used / u.quota,
            perms="read-only"
            if u.perms == READ_ONLY
            else (
                "all"
                if u.perms == frozenset(PERMISSIONS)
                else ",".join(p for p in PERMISSIONS if p in u.perms)
            ),
            locked=u.locked,
        )
        for u, used in users
    ]
    render_users(rows)
    return 0
