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
    FtpUser,
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


def _dir_option(command: Callable[..., int]) -> Callable[..., int]:
    """``--dir`` (the user's FTP root), and the old ``--home`` spelling, kept with a note.

    ``--home`` is also herd's global option (before the command); ``herd --home X ftp
    user add bob --home Y`` read as two different things.
    """
    command = click.option(
        "--home",
        "old_home",
        hidden=True,
        type=click.Path(path_type=Path, file_okay=False),
    )(command)
    return click.option(
        "--dir",
        "home",
        metavar="DIR",
        type=click.Path(path_type=Path, file_okay=False),
        help="The user's FTP root directory (created if missing).",
    )(command)


def _chosen_dir(home: Path | None, old_home: Path | None) -> Path | None:
    if old_home is None:
        return home
    click.echo(
        "herd: warning: `--home` after `ftp user` is deprecated: it names the user's"
        " directory, use --dir (herd's own --home goes before the command)",
        err=True,
    )
    if home is not None and home != old_home:
        raise UsageError("--dir and the deprecated --home name different directories: give one")
    return old_home


tls_option = click.option(
    "--require-tls/--no-require-tls",
    "require_tls",
    default=None,
    help="Log in only over TLS (FTPS), with protected data connections.",
)


@click.group("user")
def user() -> None:
    """Manage the FTP server's users (stored in HOME/ftp-users.db)."""


@user.command("add")
@click.argument("name")
@_dir_option
@quota_option
@perm_option
@read_only_option
@tls_option
@password_stdin
@pass_app
def add(  # noqa: PLR0917 (click passes one parameter per option)
    app: AppContext,
    name: str,
    home: Path | None,
    old_home: Path | None,
    quota: str | None,
    perm: str | None,
    read_only: bool,
    require_tls: bool | None,
    password_stdin: bool,
) -> int:
    """Add the FTP user NAME; the directory defaults to HOME/ftp/NAME."""
    home = _chosen_dir(home, old_home)
    check_user_name(name)
    perms = _perms(read_only, perm)
    if quota is not None:
        parse_quota(quota)  # refuse a bad size before asking for the password
    with _store(app) as store:
        if store.get(name) is not None:
            raise UsageError(f"FTP user {name} already exists (change it with `herd ftp user set`)")
        password = _read_password(password_stdin)
        if home is None:  # the homes herd keeps under its own home: 0700, like the rest
            (app.home / "ftp").mkdir(parents=True, exist_ok=True, mode=0o700)
            (app.home / "ftp").chmod(0o700)
        created = store.add(
            name,
            password,
            home=home or app.home / "ftp" / name,
            quota=None if quota is None else parse_quota(quota),
            perms=PERMISSIONS if perms is None else perms,
        )
        if require_tls:
            created = store.set(name, require_tls=True)
    click.echo(f"added FTP user {created.name}: {_describe(created)}")
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
@_dir_option
@quota_option
@perm_option
@read_only_option
@tls_option
@pass_app
def set_(  # noqa: PLR0917 (click passes one parameter per option)
    app: AppContext,
    name: str,
    home: Path | None,
    old_home: Path | None,
    quota: str | None,
    perm: str | None,
    read_only: bool,
    require_tls: bool | None,
) -> int:
    """Change NAME's directory, quota, permissions or TLS rule; what is not given stays."""
    home = _chosen_dir(home, old_home)
    perms = _perms(read_only, perm)
    if home is None and quota is None and perms is None and require_tls is None:
        raise UsageError(
            "nothing to change: give --dir, --quota, --perm, --read-only or --require-tls"
        )
    with _store(app) as store:
        if store.get(name) is None:
            raise UsageError(f"no FTP user {name}")
        limit = KEEP if quota is None else parse_quota(quota)
        changed = store.set(name, home=home, quota=limit, perms=perms, require_tls=require_tls)
    click.echo(f"changed FTP user {changed.name}: {_describe(changed)}")
    return 0


def _describe(account: FtpUser) -> str:
    permissions = ",".join(p for p in PERMISSIONS if p in account.perms)
    tls = ", TLS required" if account.require_tls else ""
    return (
        f"directory {account.home}, quota {format_size(account.quota)},"
        f" permissions {permissions}{tls}"
    )


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


@user.command("rescan")
@click.argument("name", required=False)
@pass_app
def rescan(app: AppContext, name: str | None) -> int:
    """Measure NAME's directory (default: every user's) again and record its usage.

    For files deleted or added behind the server's back. A running server also
    measures every home when it starts, and takes this figure at the user's next
    login once none of their sessions is open.
    """
    from herd.ftp.jail import Jail, PathRefused

    with _store(app) as store:
        chosen = [(u, used) for u, used in store.list() if name is None or u.name == name]
        if name is not None and not chosen:
            raise UsageError(f"no FTP user {name}")
        for account, recorded in chosen:
            try:
                measured = Jail(account.home).walk_size()
            except PathRefused:
                click.echo(f"{account.name}: directory {account.home} is missing; left as it was")
                continue
            store.set_usage(account.name, measured)
            click.echo(
                f"{account.name}: {format_size(measured)} in {account.home}"
                f" (was recorded as {format_size(recorded)})"
            )
    return 0
