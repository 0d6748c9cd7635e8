"""``herd ftp``: serve FTP, manage its users, and a client (ls, get, put, shell).

The client's password comes from ``$HERD_FTP_PASSWORD``, ``~/.netrc`` or a
hidden prompt, never from the command line. A refused server command exits 1,
bad usage exits 2 (DESIGN.md).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from herd.cli.context import AppContext, pass_app
from herd.cli.ftp_users import user
from herd.errors import UsageError
from herd.ftp.client import FtpClient, NoProgress, Transfer, TransferProgress
from herd.ftp.client_url import FtpUrl, parse_url, resolve_credentials

__all__ = ["ftp"]


@click.group("ftp")
def ftp() -> None:
    """The FTP server, its users, and an FTP client."""


ftp.add_command(user)


# -- the server ---------------------------------------------------------------------


@ftp.command("serve")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="FTP settings (TOML): listen addresses, passive ports, limits, anonymous root.",
)
@click.option(
    "--listen",
    multiple=True,
    metavar="HOST:PORT",
    help="Listen here instead (repeatable; [::1]:2121 for IPv6). Default 127.0.0.1:2121.",
)
@pass_app
def serve(app: AppContext, config_file: Path | None, listen: tuple[str, ...]) -> int:
    """Serve FTP (127.0.0.1:2121 by default) to the users in HOME; SIGTERM or Ctrl-C stops it."""
    from herd.cli.ftp_serve import run_server

    return run_server(app, config_file, listen)


# -- the client ---------------------------------------------------------------------

timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds to wait for the server at each step.",
)
resume_option = click.option(
    "-c", "--resume", is_flag=True, help="Continue a partial transfer instead of starting over."
)
verify_option = click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Check the file with the server's hash command afterwards.",
)


def _prompt(text: str) -> str:
    value: str = click.prompt(text, hide_input=True, err=True)
    return value


@contextmanager
def _session(url_text: str, timeout: float) -> Iterator[tuple[FtpClient, FtpUrl]]:
    url = parse_url(url_text)
    credentials = resolve_credentials(url, prompt=_prompt if sys.stdin.isatty() else None)
    with FtpClient(url, timeout=timeout) as client:
        client.login(credentials)
        yield client, url


def _progress() -> TransferProgress:
    from herd.ui.ftp_progress import TransferBar

    return TransferBar()


def _report(transfer: Transfer, arrow: str) -> None:
    check = transfer.describe()
    resumed = f", resumed at byte {transfer.resumed_from}" if transfer.resumed_from else ""
    if transfer.sent == 0 and transfer.resumed_from:
        resumed = ", already complete"
    click.echo(
        f"{transfer.remote} {arrow} {transfer.local}: {transfer.size} bytes"
        f" ({transfer.sent} transferred{resumed}; {check})"
    )


@ftp.command("ls")
@click.argument("url")
@timeout_option
def ls(url: str, timeout: float) -> int:
    """List the directory (or file) named by URL (ftp://user@host:port/path)."""
    with _session(url, timeout) as (client, parsed):
        for line in client.listing(parsed.path):
            click.echo(line)
    return 0


@ftp.command("get")
@click.argument("url")
@click.argument("local", required=False, type=click.Path(path_type=Path))
@resume_option
@verify_option
@timeout_option
def get(url: str, local: Path | None, resume: bool, verify: bool, timeout: float) -> int:
    """Download the file at URL into LOCAL (default: its name, here)."""
    parsed = parse_url(url)
    name = Path(parsed.path).name
    if not name:
        raise UsageError(f"{url}: names no file to download")
    target = local or Path(name)
    if target.is_dir():
        target /= name
    with _session(url, timeout) as (client, _):
        progress = _progress() if sys.stderr.isatty() else NoProgress()
        transfer = client.get(parsed.path, target, resume=resume, verify=verify, progress=progress)
    _report(transfer, "->")
    return 0


@ftp.command("put")
@click.argument("local", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("url")
@resume_option
@verify_option
@timeout_option
def put(local: Path, url: str, resume: bool, verify: bool, timeout: float) -> int:
    """Upload LOCAL to URL (a directory URL ending in / keeps the file's name)."""
    if not local.is_file():
        raise UsageError(f"{local}: no such local file")
    with _session(url, timeout) as (client, parsed):
        remote = parsed.path
        if not remote or remote.endswith("/") or client.is_directory(remote):
            remote = f"{remote.rstrip('/')}/{local.name}" if remote.strip("/") else local.name
        progress = _progress() if sys.stderr.isatty() else NoProgress()
        transfer = client.put(local, remote, resume=resume, verify=verify, progress=progress)
    _report(transfer, "<-")
    return 0


@ftp.command("shell")
@click.argument("url")
@timeout_option
def shell(url: str, timeout: float) -> int:
    """An FTP shell at URL: ls, cd, pwd, get, put, mkdir, rm, rename, quit (reads stdin too)."""
    from herd.ftp.client_shell import FtpShell

    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401 (importing it gives input() line editing)
    with _session(url, timeout) as (client, parsed):
        if parsed.path:
            client.cd(parsed.path)
        if interactive:
            click.echo(f"connected to {parsed.server} as {parsed.user or 'anonymous'}; try help")
        runner = FtpShell(
            client,
            stdin=sys.stdin,
            stdout=sys.stdout,
            interactive=interactive,
            progress=_progress if sys.stderr.isatty() else NoProgress,
        )
        return runner.run()
