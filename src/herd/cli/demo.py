"""``herd demo``: the guided tour a new user runs first.

It brings up a lab fleet on loopback addresses, then runs the real commands a
sysadmin would type (each shown as a ``$ herd ...`` line before its output):
the group tree, a gathered run on two groups, a run where one host times out,
a retry of ``@failed``, a push (and its re-run skipping everything), a pull
of each host's log, the operation log and its verification, and an FTP
session. Everything lives in a temporary herd home and lab directory, removed
at the end unless ``--keep`` is given.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

from herd.cli.context import AppContext, pass_app
from herd.errors import HerdError

__all__ = ["demo"]

_GROUPS = "web=3,db=2,cache=1"
_HOSTS = 6
_FTP_USER = "alice"


class Tour:
    """Runs the tour's commands in-process against one herd home and inventory."""

    def __init__(self, home: Path, inventory: Path, work: Path) -> None:
        self.home = home
        self.inventory = inventory
        self.work = work

    def say(self, text: str) -> None:
        click.echo()
        click.secho(f"== {text}", fg="cyan", bold=True)

    def herd(self, *args: str, inventory: bool = True, expect: Sequence[int] = (0,)) -> int:
        """Show and run one herd command; a code outside ``expect`` stops the tour."""
        from herd.cli.main import main

        shown = ["herd", *(["-i", "INVENTORY"] if inventory else []), *args]
        click.secho("$ " + shlex.join(shown), fg="green")
        full = ["--home", str(self.home)]
        if inventory:
            full += ["-i", str(self.inventory)]
        code = main([*full, *args])
        if code not in expect:
            raise HerdError(f"the tour stopped: `{shlex.join(shown)}` exited {code}")
        return code


@contextlib.contextmanager
def _lab(tour: Tour, lab_dir: Path, engine: str) -> Iterator[None]:
    from herd.lab import free_port

    port = free_port(_HOSTS)
    tour.say(f"A lab fleet: {_HOSTS} SSH hosts on 127.0.1.1-{_HOSTS}, each its own sshd")
    tour.herd(
        "lab", "up", str(_HOSTS), "--dir", str(lab_dir), "--engine", engine,
        "--groups", _GROUPS, "--port", str(port), inventory=False,
    )  # fmt: skip
    try:
        yield
    finally:
        tour.say("Bring the fleet down: exactly the processes the lab started")
        tour.herd("lab", "down", "--dir", str(lab_dir), inventory=False)


def _inventory_and_runs(tour: Tour) -> None:
    tour.say("The inventory: groups and hosts (Ansible's format; the lab wrote it)")
    tour.herd("groups")
    tour.herd("hosts", "web:db")
    tour.say("One command on two groups; identical outputs gathered under folded names")
    tour.herd("run", "web:db", "-b", "--", "uname -sr; id -un")
    tour.say("A run where one host hangs: db02 is stopped by the 2 s command timeout")
    hang = 'if [ "$HERD_LAB_HOST" = db02 ]; then sleep 30; fi; uptime -p 2>/dev/null || uptime'
    tour.herd("run", "all", "-t", "2", "--", hang, expect=(1,))
    tour.say("Retry exactly the hosts that were not ok last time: @failed")
    tour.herd("run", "@failed", "--", 'echo "$HERD_LAB_HOST is back"')


def _transfers(tour: Tour) -> None:
    site = tour.work / "site"
    (site / "conf").mkdir(parents=True)
    (site / "index.html").write_text("<h1>served by herd</h1>\n", encoding="utf-8")
    (site / "conf" / "app.conf").write_text("workers = 4\nlisten = 8080\n", encoding="utf-8")
    remote = f".herd-demo-{os.getpid()}"
    tour.say("Push a directory to the web group: atomic, sha256-verified, modes kept")
    tour.herd("push", "web", str(site), f"{remote}/{{host}}/", "--mkdir")
    tour.say("Push it again: every file is already there with the same hash, so none is sent")
    tour.herd("push", "web", str(site), f"{remote}/{{host}}/", "--mkdir")
    tour.say("Each host writes a log; pull them all back, one directory per host")
    job = f'echo "$(date -u +%FT%TZ) nightly job done on $HERD_LAB_HOST" >> {remote}/{{}}.log'
    tour.herd("run", "all", "--", f"mkdir -p {remote} && " + job.replace("{}", "$HERD_LAB_HOST"))
    pulled = tour.work / "pulled"
    tour.herd("pull", "all", f"{remote}/{{host}}.log", str(pulled))
    click.echo(f"{pulled}/")
    for path in sorted(p for p in pulled.rglob("*") if p.is_file()):
        click.echo(f"  {path.relative_to(pulled)}: {path.read_text(encoding='utf-8').strip()}")
    tour.herd("run", "all", "--", f"rm -rf {remote}")


def _operation_log(tour: Tour) -> None:
    tour.say("Every operation is in the operation log: who, what, where, with what result")
    tour.herd("log", "-n", "10", inventory=False)
    tour.say("One operation in full: the run where db02 timed out")
    from herd.core.audit import AuditLog

    with AuditLog(tour.home / "operations.db") as log:
        timed_out = next(op.id for op in log.operations(limit=20, kind="run") if op.exit_code == 1)
    tour.herd("log", "show", str(timed_out), "--gather", inventory=False)
    tour.say("The log is hash-chained: an edited or deleted record would be found here")
    tour.herd("log", "verify", inventory=False)


def _ftp_session(tour: Tour) -> None:
    from herd.ftp.recorder import AuditSink
    from herd.ftp.server import FtpServer
    from herd.ftp.settings import FtpSettings
    from herd.ftp.users import UserStore

    tour.say("The FTP server: a user jailed in a home with a quota, argon2id password")
    password = "demo-" + os.urandom(6).hex()
    users = UserStore(tour.home / "ftp-users.db")
    users.add(_FTP_USER, password, home=tour.work / "ftp" / _FTP_USER, quota=10 * 1024 * 1024)
    click.secho(f"$ herd ftp user add {_FTP_USER} --quota 10M", fg="green")
    events = AuditSink(tour.home / "operations.db")
    server = FtpServer(FtpSettings(listen=(("127.0.0.1", 0),)), users, events)
    server.start_in_thread()
    host, port = server.addresses[0]
    click.secho(f"$ herd ftp serve --listen {host}:{port}    (in the background)", fg="green")
    report = tour.work / "report.txt"
    report.write_text("uptime report\n" * 1000, encoding="utf-8")
    url = f"ftp://{_FTP_USER}@{host}:{port}"
    previous = os.environ.get("HERD_FTP_PASSWORD")
    os.environ["HERD_FTP_PASSWORD"] = password  # the client reads it; never argv
    try:
        tour.herd("ftp", "put", str(report), f"{url}/report.txt", inventory=False)
        tour.herd("ftp", "ls", f"{url}/", inventory=False)
        tour.herd("ftp", "get", f"{url}/report.txt", str(tour.work / "back.txt"),
                  inventory=False)  # fmt: skip
    finally:
        if previous is None:
            del os.environ["HERD_FTP_PASSWORD"]
        else:
            os.environ["HERD_FTP_PASSWORD"] = previous
        server.shutdown(2.0)
        server.server_close()
        events.close()
        users.close()
    tour.say("The FTP session is in the same operation log")
    tour.herd("log", "--kind", "ftp", inventory=False)


@click.command()
@click.option(
    "--engine",
    type=click.Choice(["auto", "openssh", "builtin"]),
    default="auto",
    show_default=True,
    help="The lab's SSH engine (auto: real sshd when installed).",
)
@click.option("--keep", is_flag=True, help="Keep the tour's directory (home, lab, files).")
@pass_app
def demo(app: AppContext, engine: str, keep: bool) -> int:
    """Bring up a lab fleet and take the tour: inventory, runs, transfers, log, FTP."""
    del app  # the tour uses a home of its own, so it never touches your operation log
    base = Path(tempfile.mkdtemp(prefix="herd-demo-"))
    click.secho(f"herd demo: working in {base}", bold=True)
    tour = Tour(home=base / "home", inventory=base / "lab" / "inventory.yml", work=base / "work")
    tour.work.mkdir(parents=True)
    try:
        with _lab(tour, base / "lab", engine):
            _inventory_and_runs(tour)
            _transfers(tour)
        _operation_log(tour)
        _ftp_session(tour)
    finally:
        if keep:
            click.echo(f"\nkept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    click.secho("\nThe tour is over. Next: `herd lab up 8`, then `herd --help`.", bold=True)
    return 0
