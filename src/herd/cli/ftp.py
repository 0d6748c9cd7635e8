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
from herd.ftp.client import FileProgress, FtpClient, NoFileProgress, Transfer
from herd.ftp.client_tls import TlsOptions
from herd.ftp.client_url import PASSWORD_ENV, FtpUrl, parse_url, resolve_credentials

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


@ftp.command("cert")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Directory for ftp-cert.pem and ftp-key.pem (created 0700 if missing).",
)
@click.option(
    "--name",
    "names",
    multiple=True,
    metavar="HOST",
    help="Host name or address clients use (repeatable); default this machine's name.",
)
def cert(out_dir: Path, names: tuple[str, ...]) -> int:
    """Write a self-signed certificate and key (0600) for FTPS, for a first setup."""
    import socket

    from herd.ftp.certificate import write_self_signed

    cert_path, key_path = write_self_signed(out_dir, list(names) or [socket.getfqdn()])
    click.echo(f"wrote {cert_path} and {key_path} (0600)")
    click.echo(f'FTP settings: tls_cert = "{cert_path.absolute()}"')
    click.echo(f'              tls_key = "{key_path.absolute()}"')
    click.echo(f"clients trust it with: --cacert {cert_path.absolute()}")
    return 0


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
cacert_option = click.option(
    "--cacert",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Trust the server's certificate if this CA (or the certificate itself) signed it;"
    " default: the system's CAs. For ftpes:// and ftps:// URLs.",
)
insecure_option = click.option(
    "--insecure",
    is_flag=True,
    help="Do not check the server's certificate (anyone in the path could read the password).",
)
# Every client command's help ends with where the password comes from.
PASSWORD_HELP = (
    f"The password comes from ${PASSWORD_ENV}, else ~/.netrc (the machine's login"
    " entry), else a hidden prompt on a terminal; never from the command line. URLs:"
    " ftp://user@host:port/path, ftpes://... for TLS (AUTH TLS), ftps://... for"
    " implicit TLS (port 990)."
)


def _prompt(text: str) -> str:
    value: str = click.prompt(text, hide_input=True, err=True)
    return value


def _tls(url: FtpUrl, cacert: Path | None, insecure: bool) -> TlsOptions:
    if (cacert or insecure) and not url.tls:
        raise UsageError(f"--cacert and --insecure are for ftpes:// or ftps:// URLs, not {url}")
    if insecure:
        click.echo(
            f"herd: warning: --insecure: the certificate of {url.server} is not checked;"
            " anyone in the path could read your password and files",
            err=True,
        )
    return TlsOptions(cafile=cacert, insecure=insecure)


@contextmanager
def _session(
    url_text: str, timeout: float, cacert: Path | None = None, insecure: bool = False
) -> Iterator[tuple[FtpClient, FtpUrl]]:
    url = parse_url(url_text)
    tls = _tls(url, cacert, insecure)
    credentials = resolve_credentials(url, prompt=_prompt if sys.stdin.isatty() else None)
    with FtpClient(url, timeout=timeout, tls=tls) as client:
        client.login(credentials)
        yield client, url


def _progress() -> FileProgress:
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


@ftp.command("ls", epilog=PASSWORD_HELP)
@click.argument("url")
@timeout_option
@cacert_option
@insecure_option
def ls(url: str, timeout: float, cacert: Path | None, insecure: bool) -> int:
    """List the directory (or file) named by URL (ftp://user@host:port/path)."""
    with _session(url, timeout, cacert, insecure) as (client, parsed):
        for line in client.listing(parsed.path):
            click.echo(line)
    return 0


@ftp.command("get", epilog=PASSWORD_HELP)
@click.argument("url")
@click.argument("local", required=False, type=click.Path(path_type=Path))
@resume_option
@verify_option
@timeout_option
@cacert_option
@insecure_option
def get(  # noqa: PLR0917 (click passes one parameter per option)
    url: str,
    local: Path | None,
    resume: bool,
    verify: bool,
    timeout: float,
    cacert: Path | None,
    insecure: bool,
) -> int:
    """Download the file at URL into LOCAL (default: its name, here)."""
    parsed = parse_url(url)
    name = Path(parsed.path).name
    if not name:
        raise UsageError(f"{url}: names no file to download")
    target = local or Path(name)
    if target.is_dir():
        target /= name
    with _session(url, timeout, cacert, insecure) as (client, _):
        progress = _progress() if sys.stderr.isatty() else NoFileProgress()
        transfer = client.get(parsed.path, target, resume=resume, verify=verify, progress=progress)
    _report(transfer, "->")
    return 0


@ftp.command("put", epilog=PASSWORD_HELP)
@click.argument("local", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("url")
@resume_option
@verify_option
@timeout_option
@cacert_option
@insecure_option
def put(  # noqa: PLR0917 (click passes one parameter per option)
    local: Path,
    url: str,
    resume: bool,
    verify: bool,
    timeout: float,
    cacert: Path | None,
    insecure: bool,
) -> int:
    """Upload LOCAL to URL (a directory URL ending in / keeps the file's name)."""
    if not local.is_file():
        raise UsageError(f"{local}: no such local file")
    with _session(url, timeout, cacert, insecure) as (client, parsed):
        remote = parsed.path
        if not remote or remote.endswith("/") or client.is_directory(remote):
            remote = f"{remote.rstrip('/')}/{local.name}" if remote.strip("/") else local.name
        progress = _progress() if sys.stderr.isatty() else NoFileProgress()
        transfer = client.put(local, remote, resume=resume, verify=verify, progress=progress)
    _report(transfer, "<-")
    return 0


@ftp.command("shell", epilog=PASSWORD_HELP)
@click.argument("url")
@timeout_option
@cacert_option
@insecure_option
def shell(url: str, timeout: float, cacert: Path | None, insecure: bool) -> int:
    """An FTP shell at URL: ls, cd, pwd, get, put, mkdir, rm, rename, quit (reads stdin too)."""
    from herd.ftp.client_shell import FtpShell

    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401 (importing it gives input() line editing)
    with _session(url, timeout, cacert, insecure) as (client, parsed):
        if parsed.path:
            client.cd(parsed.path)
        if interactive:
            click.echo(f"connected to {parsed.server} as {parsed.user or 'anonymous'}; try help")
        runner = FtpShell(
            client,
            stdin=sys.stdin,
            stdout=sys.stdout,
            interactive=interactive,
            progress=_progress if sys.stderr.isatty() else NoFileProgress,
        )
        return runner.run()
