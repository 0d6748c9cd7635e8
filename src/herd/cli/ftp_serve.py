"""``herd ftp serve``: run the FTP server until SIGTERM or Ctrl-C, then stop it gracefully.

The server runs in a thread while the main thread waits for a signal: a signal
handler cannot call ``shutdown`` itself (it would wait for the very loop it
interrupted). On the signal the server stops accepting, running transfers get
the grace period to finish, and the operation log writer drains its queue.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from herd.cli.context import AppContext
from herd.core.open_files import fit, open_now, raise_soft_limit
from herd.core.settings import merged
from herd.errors import ConfigError, FtpError
from herd.ftp.config import load_ftp_settings, parse_listen
from herd.ftp.recorder import AuditSink
from herd.ftp.server import FtpServer
from herd.ftp.settings import FtpSettings
from herd.ftp.users import UserStore

__all__ = ["run_server", "within_open_files"]

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# What one client holds open at most: its control connection, a passive listener,
# the data connection and the file it reads or writes.
_FILES_PER_CONNECTION = 4


def _settings(config_file: Path | None, listen: tuple[str, ...]) -> FtpSettings:
    settings = load_ftp_settings(config_file)
    if listen:
        try:
            addresses = tuple(parse_listen(a) for a in listen)
        except ValueError as exc:
            raise ConfigError(f"--listen: must be {exc}") from None
        settings = merged(settings, listen=addresses)
    return settings


def _url(host: str, port: int, scheme: str = "ftp") -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def within_open_files(settings: FtpSettings) -> FtpSettings:
    """``settings`` with ``max_connections`` lowered to what the open-files limit allows.

    The soft limit is raised to the hard one first; a lowered limit is said once.
    """
    limit = raise_soft_limit()
    found = fit(settings.max_connections, _FILES_PER_CONNECTION, limit=limit, in_use=open_now())
    if not found.lowered:
        return settings
    click.echo(
        f"warning: open files are limited to {limit} (ulimit -n, hard limit):"
        f" max_connections lowered from {settings.max_connections} to {found.count}",
        err=True,
    )
    return merged(settings, max_connections=found.count)


def run_server(app: AppContext, config_file: Path | None, listen: tuple[str, ...]) -> int:
    """Serve until told to stop; returns 0 after a clean shutdown."""
    settings = within_open_files(_settings(config_file, listen))
    users = UserStore(app.paths.ftp_users_db)
    from herd.core.settings import load_settings

    syslog = load_settings(app.paths.settings_file).log.syslog_target()
    events = AuditSink(app.paths.audit_db, syslog=syslog)
    try:
        try:
            server = FtpServer(settings, users, events)
        except OSError as exc:
            where = ", ".join(_url(h, p) for h, p in settings.listen)
            raise FtpError(f"cannot listen on {where}: {exc.strerror or exc}") from exc
        return _serve(server, settings, app)
    finally:
        events.close()
        users.close()


def _warnings(server: FtpServer, settings: FtpSettings) -> list[str]:
    """What an operator should know before clients arrive."""
    found: list[str] = []
    users = server.users
    if isinstance(users, UserStore) and not users.list() and settings.anonymous_root is None:
        found.append("no FTP users yet: nobody can log in (add one: herd ftp user add NAME)")
    exposed = [h for h, _ in settings.listen if not _loopback(h)]
    if exposed and not settings.tls:
        found.append(
            f"listening on {', '.join(exposed)}: FTP sends passwords and files in clear text"
            " (tls_cert, tls_key and require_tls set up FTPS; herd ftp cert writes a pair)"
        )
    elif exposed and not settings.require_tls:
        found.append(
            f"listening on {', '.join(exposed)}: logins in clear text are still allowed"
            " (require_tls = true refuses them)"
        )
    return found


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _serve(server: FtpServer, settings: FtpSettings, app: AppContext) -> int:
    stop = threading.Event()
    received: list[str] = []

    def on_signal(number: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(number).name)
        stop.set()

    previous = {number: signal.signal(number, on_signal) for number in _STOP_SIGNALS}
    worker = threading.Thread(target=server.serve_forever, name="ftp-serve", daemon=True)
    try:
        worker.start()
        for host, port in server.addresses:
            click.echo(f"serving FTP on {_url(host, port)}")
        for host, port in server.implicit_addresses:
            click.echo(f"serving FTPS (implicit TLS) on {_url(host, port, 'ftps')}")
        if settings.tls:
            rule = "required" if settings.require_tls else "offered"
            click.echo(f"TLS (AUTH TLS) {rule}; certificate {settings.tls_cert}")
        if settings.anonymous_root is not None:
            click.echo(f"anonymous read-only access to {settings.anonymous_root}")
        click.echo(f"users from {app.paths.ftp_users_db}; log in {app.paths.audit_db}")
        for warning in _warnings(server, settings):
            click.echo(f"warning: {warning}", err=True)
        sys.stdout.flush()  # a supervisor (or a test) sees the listen address at once
        while not stop.wait(0.5):
            if not worker.is_alive():
                raise FtpError("the FTP server stopped by itself (see the errors above)")
        click.echo(
            f"{received[0] if received else 'stop'}: closing; running transfers get"
            f" {settings.shutdown_grace:g}s to finish"
        )
        server.shutdown(settings.shutdown_grace)
        worker.join(timeout=settings.shutdown_grace + 10.0)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    click.echo("stopped")
    return 0
