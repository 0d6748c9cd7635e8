"""FTP benchmark: herd's server side by side with pyftpdlib (threaded and async) in one run.

Run on demand, never in the test suite (``make bench`` installs pyftpdlib and psutil):

    .venv/bin/python bench/ftp.py --servers herd,pyftpdlib-threaded --size-mib 512
    .venv/bin/python bench/ftp.py --parts transfers --clients curl,lftp --repeats 5
    .venv/bin/python bench/ftp.py --parts tls --pyftpdlib-tls-python /tmp/tlsvenv/bin/python
    .venv/bin/python bench/ftp.py --quick         # a scaled-down smoke run

Each server runs in its own process on 127.0.0.1 (port 0), so its RSS and CPU
are its own; the clients are threads spread over a few client processes,
bounded. All servers are up at once and measured in turns, so a change in the
machine's load hits them alike; figures are printed as ratios herd/pyftpdlib
from the same run. What is measured (issues 7, 16 and 19):

- RETR and STOR of a large generated file, by ftplib (sendfile for STOR), by
  curl and by lftp (C clients: a Python client can be the bottleneck): MB/s,
  median of ``--repeats`` runs, and the server's CPU seconds per GiB moved.
  curl's and lftp's STOR replace the file of their previous run; "STOR new"
  writes a new name each run (removed after the timing), as ftplib's does.
  The two differ on a virtual machine that hands freed memory back to its
  host (Firecracker's free page reporting, ``/sys/module/page_reporting``):
  herd writes a replacement beside the old file and renames it into place, so
  its pages come from memory the host took back, while pyftpdlib truncates the
  old file first and refills the pages it has just freed (and loses the old
  file if the upload fails);
- N concurrent clients each doing login, LIST, RETR of 10 KB, QUIT: wall time,
  failures and server CPU per session, at 200, 500 and 1000 (the last three
  times for herd, target zero failures);
- server RSS with many idle logged-in clients (KB per connection, target < 20);
- login CPU per session: argon2id verification cold, and with the login cache;
- ``--parts tls``: the same transfers over TLS (PROT P) and a burst of TLS
  logins (handshakes per second, failures), herd against pyftpdlib's
  TLS_FTPHandler, which needs pyOpenSSL: that cannot live in herd's venv
  (pyOpenSSL pins an older cryptography), so it runs under the Python of
  ``.venv-pyftpdlib-tls`` (``make bench`` builds it from its own lock), or the
  one given with ``--pyftpdlib-tls-python``.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ftp_clients import (
    BIG_FILE,
    CLIENT_TIMEOUT,
    PASSWORD,
    SMALL_FILE,
    TOOLS,
    USER,
    client_worker,
    delete,
    one_session,
    python_retr,
    python_stor,
    raise_open_files_limit,
)

SERVERS = ("herd", "herd-nolog", "pyftpdlib-threaded", "pyftpdlib-async")
# TLS servers, measured with --parts tls: herd's, and pyftpdlib's TLS_FTPHandler (threaded),
# run by the Python of the venv `make bench` builds for it (see the module docstring).
TLS_SERVERS = ("herd-tls", "pyftpdlib-tls")
PEER_TLS_PYTHON = Path(__file__).resolve().parent.parent / ".venv-pyftpdlib-tls" / "bin" / "python"
BACKLOG = 4096  # every server's listen backlog (the kernel caps it at net.core.somaxconn)


def serve_herd(root: Path, home: Path, port_file: Path, *, log: bool, tls: bool = False) -> None:
    from herd.ftp.events import NullSink

    try:
        from herd.ftp.recorder import AuditSink
    except ImportError:  # herd before the recorder module (--before-src)
        from herd.ftp.events import AuditSink  # type: ignore[attr-defined,no-redef]
    from herd.ftp.server import FtpServer
    from herd.ftp.settings import FtpSettings
    from herd.ftp.users import UserStore

    users = UserStore(home / "ftp-users.db")
    if users.get(USER) is None:
        users.add(USER, PASSWORD, home=root)
    settings = FtpSettings(
        listen=(("127.0.0.1", 0),),
        max_connections=10_000,
        max_connections_per_address=10_000,
        listen_backlog=BACKLOG,
        login_failure_delay=0.0,
        **(tls_settings(home) if tls else {}),
    )
    # herd-nolog: the same server without the operation log, to show what the log costs.
    events = AuditSink(home / "operations.db") if log else NullSink()
    server = FtpServer(settings, users, events)
    _host, port = server.addresses[0]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = threading.Thread(target=server.serve_forever, daemon=True)
    worker.start()
    port_file.write_text(str(port))
    stop.wait()
    server.shutdown(1.0)
    if isinstance(events, AuditSink):
        events.close()


def tls_settings(home: Path) -> dict[str, object]:
    cert, key = home.parent / "tls" / "ftp-cert.pem", home.parent / "tls" / "ftp-key.pem"
    return {"tls_cert": cert, "tls_key": key, "require_tls": True}


def serve_pyftpdlib(kind: str, root: Path, port_file: Path) -> None:
    import logging

    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer, ThreadedFTPServer

    logging.disable(logging.CRITICAL)
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm="elradfmwMT")
    handler = type("BenchHandler", (FTPHandler,), {"authorizer": authorizer})
    if kind == "pyftpdlib-tls":
        from pyftpdlib.handlers import TLS_FTPHandler

        tls = root.parent / "tls"
        handler = type(
            "BenchTlsHandler",
            (TLS_FTPHandler,),
            {"authorizer": authorizer, "certfile": str(tls / "ftp-cert.pem"),
             "keyfile": str(tls / "ftp-key.pem"), "tls_control_required": True,
             "tls_data_required": True},
        )  # fmt: skip
    server_class = FTPServer if kind == "pyftpdlib-async" else ThreadedFTPServer
    # The same listen backlog as herd's (its default of 100 drops connections in a burst
    # of 1,000, and a session that timed out costs nothing: CPU per session would flatter it).
    server = server_class(("127.0.0.1", 0), handler, backlog=BACKLOG)
    server.max_cons = 0  # pyftpdlib: 0 = no limit
    server.max_cons_per_ip = 0
    port_file.write_text(str(server.address[1]))
    server.serve_forever()  # ended by SIGTERM's default action


def server_main(kind: str, root: Path, home: Path, port_file: Path) -> None:
    raise_open_files_limit()
    if kind.startswith("herd"):
        serve_herd(root, home, port_file, log=kind != "herd-nolog", tls=kind == "herd-tls")
    else:
        serve_pyftpdlib(kind, root, port_file)


@dataclass
class RunningServer:
    kind: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def tls(self) -> bool:
        return self.kind in TLS_SERVERS

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.process.pid)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)


@contextlib.contextmanager
def running_server(
    kind: str, root: Path, workdir: Path, python: str = sys.executable, src: str | None = None
) -> Iterator[RunningServer]:
    home = workdir / f"home-{kind}"
    home.mkdir(exist_ok=True)
    port_file = workdir / f"port-{kind}"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        [python, __file__, "--serve", kind, str(root), str(home), str(port_file)],
        env={**os.environ, "PYTHONPATH": src} if src else None,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} server did not start")
            time.sleep(0.05)
        yield RunningServer(kind, process, int(port_file.read_text()))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class Transfer:
    """One direction measured: seconds per run (median taken) and server CPU seconds per run."""

    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def mbps(self, size: int) -> float:
        return size / statistics.median(self.seconds) / 1e6 if self.seconds else 0.0

    def cpu_per_gib(self, size: int) -> float:
        return statistics.median(self.cpu) / (size / (1 << 30)) if self.cpu else 0.0


@dataclass
class Figures:
    """One server's results."""

    transfers: dict[str, Transfer] = field(default_factory=dict)  # "python RETR" ...
    rounds: dict[int, list[Round]] = field(default_factory=dict)
    idle_kb: float = 0.0
    idle_held: int = 0


@dataclass
class Round:
    clients: int
    wall: float
    failures: int
    reasons: dict[str, int] = field(default_factory=dict)
    server_cpu: float = 0.0


def concurrent_round(
    server: RunningServer, clients: int, processes: int, kind: str = "session"
) -> Round:
    per_process = [clients // processes + (i < clients % processes) for i in range(processes)]
    start_at = time.time() + 1.5
    cpu_before = server.cpu()
    context = multiprocessing.get_context("fork")
    with context.Pool(processes) as pool:
        pending = [
            pool.apply_async(client_worker, (server.port, count, start_at, server.tls, kind))
            for count in per_process
            if count
        ]
        outcomes = [o for p in pending for o in p.get(timeout=600)]
    wall = time.time() - start_at
    reasons: dict[str, int] = {}
    for outcome in outcomes:
        if outcome is not None:
            reasons[outcome] = reasons.get(outcome, 0) + 1
    return Round(clients, wall, sum(reasons.values()), reasons, server.cpu() - cpu_before)


def idle_rss(server: RunningServer, count: int) -> tuple[float, int]:
    """KB of server RSS per idle logged-in connection, and how many logged in."""
    time.sleep(0.5)
    before = server.rss()
    held: list[socket.socket] = []

    def open_one(_i: int) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=CLIENT_TIMEOUT)
            reader = sock.makefile("rb")
            for line in (None, f"USER {USER}\r\n", f"PASS {PASSWORD}\r\n"):
                if line is not None:
                    sock.sendall(line.encode())
                reply = reader.readline()
                while reply[3:4] == b"-":
                    reply = reader.readline()
            reader.close()
            if not reply.startswith(b"230"):
                sock.close()
                return None
        except OSError:
            return None
        return sock

    try:
        with ThreadPoolExecutor(max_workers=50) as pool:
            for sock in pool.map(open_one, range(count)):
                if sock is not None:
                    held.append(sock)
        time.sleep(2.0)
        after = server.rss()
    finally:
        for sock in held:
            sock.close()
    return (after - before) / 1024 / max(1, len(held)), len(held)


def login_cpu(workdir: Path, logins: int) -> tuple[float, float]:
    """CPU ms per login with argon2id (cold) and through the login cache (warm)."""
    from herd.ftp.users import UserStore

    store = UserStore(workdir / "login-cpu.db", cache_seconds=0.0)
    store.add(USER, PASSWORD, home=workdir / "login-cpu-home")
    started = time.process_time()
    for _ in range(logins):
        assert store.authenticate(USER, PASSWORD) is not None
    cold = (time.process_time() - started) / logins * 1000
    store.close()
    cached = UserStore(workdir / "login-cpu.db")
    cached.authenticate(USER, PASSWORD)
    started = time.process_time()
    for _ in range(logins * 50):
        assert cached.authenticate(USER, PASSWORD) is not None
    warm = (time.process_time() - started) / (logins * 50) * 1000
    cached.close()
    return cold, warm


# -- the run --------------------------------------------------------------------------


def ratio(herd: float, other: float) -> str:
    return f"{herd / other:.2f}x" if other else "n/a"


def replace_cost(workdir: Path, size: int, runs: int = 7) -> tuple[float, float]:
    """This machine's CPU seconds per GiB (medians) to truncate a file and rewrite it, and
    to write a new one beside it and rename it into place.

    No FTP in it: on a VM that hands freed memory back to its host the first costs
    several times the second, which is what curl's replacing STOR then measures.
    """
    chunk = os.urandom(1 << 20)
    place = workdir / "replace-cost"
    place.mkdir()

    def write(path: Path, flags: int) -> float:
        started = time.process_time()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | flags, 0o600)
        try:
            for _ in range(size >> 20):
                os.write(fd, chunk)
        finally:
            os.close(fd)
        return time.process_time() - started

    truncating, beside = [], []
    for _ in range(runs):
        truncating.append(write(place / "a", os.O_TRUNC))
        time.sleep(0.5)  # as between two uploads
        beside.append(write(place / "b.tmp", os.O_EXCL))
        (place / "b.tmp").rename(place / "b")
        time.sleep(0.5)
    for name in ("a", "b"):
        (place / name).unlink()
    place.rmdir()
    per_gib = (1 << 30) / size
    return statistics.median(truncating) * per_gib, statistics.median(beside) * per_gib


def prepare_root(root: Path, big_size: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / SMALL_FILE).write_bytes(os.urandom(10 * 1024))
    for i in range(20):
        (root / f"file{i:02d}.txt").write_text(f"listing entry {i}\n")
    big = root / BIG_FILE
    # Random-looking but cheap: one random MiB repeated (no sparse shortcut on the server).
    block = os.urandom(1 << 20)
    with big.open("wb") as handle:
        for _ in range(big_size >> 20):
            handle.write(block)
    return big


def fmt_round(r: Round) -> str:
    top = ", ".join(f"{k}: {v}" for k, v in sorted(r.reasons.items(), key=lambda kv: -kv[1])[:3])
    return (
        f"{r.clients:5d} clients  {r.wall:7.2f} s  failures {r.failures:4d}"
        f"  server CPU {r.server_cpu:6.2f} s ({r.server_cpu / r.clients * 1000:.2f} ms/session,"
        f" {per_success(r):.2f} per session that worked)" + (f"  ({top})" if top else "")
    )


def per_success(r: Round) -> float:
    """Server CPU ms per session that worked: a session that timed out did little work."""
    return r.server_cpu / max(1, r.clients - r.failures) * 1000


def measure_transfers(
    running: dict[str, RunningServer], big: Path, netrc: Path, clients: list[str], repeats: int
) -> dict[str, dict[str, Transfer]]:
    """Each server, each client, RETR then STOR, ``repeats`` times in turns (load hits all).

    The turn order flips every run: on this kind of VM an upload that follows another's
    delete refills memory just freed, one that does not pays the host to map it back.
    """
    size = big.stat().st_size
    found: dict[str, dict[str, Transfer]] = {k: {} for k in running}
    for client in clients:
        verbs = ("RETR", "STOR", "STOR new") if client in TOOLS else ("RETR", "STOR")
        for verb in verbs:
            for run in range(repeats):
                turns = list(running.items())
                for kind, server in turns if run % 2 == 0 else reversed(turns):
                    cpu = server.cpu()
                    name = f"upload-{client}-{run if verb == 'STOR new' else 'same'}.bin"
                    if client in TOOLS:
                        upload = None if verb == "RETR" else big
                        seconds = TOOLS[client](server.port, server.tls, netrc, upload, name)
                    elif verb == "RETR":
                        seconds = python_retr(server.port, server.tls, size)
                    else:
                        seconds = python_stor(server.port, server.tls, big)
                    row = found[kind].setdefault(f"{client} {verb}", Transfer())
                    row.seconds.append(seconds)
                    row.cpu.append(server.cpu() - cpu)
                    if verb == "STOR new":
                        delete(server.port, server.tls, name)
            for kind in running:
                row = found[kind][f"{client} {verb}"]
                print(
                    f"{kind:20s} {client:6s} {verb:8s} {row.mbps(size):8.1f} MB/s (median of"
                    f" {len(row.seconds)})  server CPU {row.cpu_per_gib(size):.2f} s/GiB",
                    flush=True,
                )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=4, metavar=("KIND", "ROOT", "HOME", "PORTFILE"))
    parser.add_argument("--quick", action="store_true", help="scaled down: 64 MiB, 100/200/300")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument(
        "--parts", default="transfers,rounds,idle", help="transfers,rounds,idle,tls (comma list)"
    )
    parser.add_argument(
        "--clients", default="python,curl", help="transfer clients: python,curl,lftp"
    )
    parser.add_argument("--workdir", help="where the files go (default /dev/shm, a tmpfs)")
    parser.add_argument(
        "--before-src",
        help="another herd's src/ (e.g. git archive of an older commit): adds a server"
        " 'herd-before' running it, for figures before and after in one run",
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per transfer (median)")
    parser.add_argument("--rounds", default="200,500,1000", help="concurrent clients per round")
    parser.add_argument("--last-round-repeats", type=int, default=3)
    parser.add_argument("--tls-burst", type=int, default=500, help="clients in the TLS burst")
    parser.add_argument(
        "--pyftpdlib-tls-python",
        default=str(PEER_TLS_PYTHON) if PEER_TLS_PYTHON.exists() else None,
        help="a Python with pyftpdlib, pyOpenSSL and psutil, to measure pyftpdlib's TLS handler"
        " (default: .venv-pyftpdlib-tls's, which `make bench` builds)",
    )
    args = parser.parse_args()
    if args.serve:
        kind, root, home, port_file = args.serve
        server_main(kind, Path(root), Path(home), Path(port_file))
        return 0

    limit = raise_open_files_limit()
    size_mib = 64 if args.quick else args.size_mib
    rounds = (100, 200, 300) if args.quick else tuple(int(n) for n in args.rounds.split(","))
    idle = 300 if args.quick else args.idle
    parts = set(args.parts.split(","))
    servers = [s for s in args.servers.split(",") if s]
    clients = [c for c in args.clients.split(",") if c]
    print(f"open files limit {limit}; {os.cpu_count()} CPUs; file {size_mib} MiB; parts {parts}")
    results: dict[str, Figures] = {s: Figures() for s in servers}
    shm = Path("/dev/shm")
    where = args.workdir or (str(shm) if shm.is_dir() else None)
    print(f"files in {where or tempfile.gettempdir()} (tmpfs /dev/shm when there: no disk in it)")
    with tempfile.TemporaryDirectory(prefix="herd-ftp-bench-", dir=where) as tmp:
        workdir = Path(tmp)
        root = workdir / "root"
        big = prepare_root(root, size_mib << 20)
        netrc = workdir / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
        netrc.chmod(0o600)
        if "rounds" in parts:
            cold, warm = login_cpu(workdir, 10)
            print(f"login CPU per session: argon2id {cold:.1f} ms cold, {warm:.3f} ms cached")
        # All servers up at once and every measurement taken in turns, so a change in the
        # machine's load hits them alike.
        with contextlib.ExitStack() as stack:
            if args.before_src:
                servers.insert(1, "herd-before")
                results["herd-before"] = Figures()
            running = {
                k: stack.enter_context(
                    running_server(
                        k, root, workdir, src=args.before_src if k == "herd-before" else None
                    )
                )
                for k in servers
            }
            if "transfers" in parts:
                truncating, beside = replace_cost(workdir, big.stat().st_size)
                print(
                    f"this machine, no FTP: truncate and rewrite {truncating:.2f} s/GiB of CPU,"
                    f" write beside and rename {beside:.2f} s/GiB ({beside / truncating:.2f}x;"
                    " see 'STOR new')",
                    flush=True,
                )
                measured = measure_transfers(running, big, netrc, clients, args.repeats)
                for kind, rows in measured.items():
                    results[kind].transfers = rows
            if "rounds" in parts:
                for server in running.values():  # cold starts (argon2 before the login cache
                    one_session(server.port)  # holds the password) are not the rounds' cost
                for clients_n in rounds:
                    again = args.last_round_repeats if clients_n == rounds[-1] else 1
                    for repeat in range(again):
                        for kind, server in running.items():
                            if repeat and not kind.startswith("herd"):
                                continue  # the last round runs several times for herd
                            result = concurrent_round(server, clients_n, args.processes)
                            results[kind].rounds.setdefault(clients_n, []).append(result)
                            print(f"{kind:20s} {fmt_round(result)}", flush=True)
                            time.sleep(1.0)
        if "idle" in parts:
            for kind in servers:
                # A fresh server process, so the figure is what idle sessions cost, not
                # what the load rounds left behind in the allocator.
                before = args.before_src if kind == "herd-before" else None
                with running_server(kind, root, workdir, src=before) as server:
                    row = results[kind]
                    row.idle_kb, row.idle_held = idle_rss(server, idle)
                    print(
                        f"{kind:20s} idle RSS: {row.idle_kb:.1f} KB per logged-in connection"
                        f" ({row.idle_held} held)"
                    )
        if parts & {"transfers", "rounds", "idle"}:
            print_summary(results, rounds, big.stat().st_size)
        if "tls" in parts:
            run_tls(workdir, root, big, netrc, clients, args)
    return 0


def run_tls(  # noqa: PLR0917 (the run's pieces, passed down from main)
    workdir: Path, root: Path, big: Path, netrc: Path, clients: list[str], args: Any
) -> None:
    """TLS RETR and STOR, and a burst of TLS logins: herd's server against pyftpdlib's."""
    from herd.ftp.certificate import write_self_signed

    write_self_signed(workdir / "tls", ["127.0.0.1"])
    python = args.pyftpdlib_tls_python
    kinds = ["herd-tls"] + (["pyftpdlib-tls"] if python else [])
    if not python:
        print("pyftpdlib-tls: left out (run `make bench`, or give --pyftpdlib-tls-python)")
    size = big.stat().st_size
    with contextlib.ExitStack() as stack:
        running = {
            k: stack.enter_context(
                running_server(k, root, workdir, python if k == "pyftpdlib-tls" else sys.executable)
            )
            for k in kinds
        }
        measured = measure_transfers(running, big, netrc, clients, args.repeats)
        bursts: dict[str, Round] = {}
        for kind, server in running.items():
            bursts[kind] = concurrent_round(server, args.tls_burst, args.processes, "login")
            burst = bursts[kind]
            print(
                f"{kind:20s} TLS login burst: {burst.clients} clients {burst.wall:.2f} s,"
                f" {burst.clients / burst.wall:.0f} handshakes/s, failures {burst.failures}"
                f", server CPU {burst.server_cpu / burst.clients * 1000:.1f} ms/login"
            )
    if "pyftpdlib-tls" in measured:
        print("\n== herd-tls / pyftpdlib-tls (MB/s and handshakes/s: >1 is better)")
        for name, row in measured["herd-tls"].items():
            theirs = measured["pyftpdlib-tls"][name]
            print(
                f"{name:14s} MB/s {ratio(row.mbps(size), theirs.mbps(size))}"
                f"  CPU/GiB {ratio(row.cpu_per_gib(size), theirs.cpu_per_gib(size))}"
            )
        mine, other = bursts["herd-tls"], bursts["pyftpdlib-tls"]
        print(
            f"logins/s     {ratio(mine.clients / mine.wall, other.clients / other.wall)}"
            f"  (failures herd {mine.failures}, pyftpdlib {other.failures})"
        )


def print_summary(results: dict[str, Figures], rounds: tuple[int, ...], size: int) -> None:
    for mine_name in ("herd", "herd-nolog", "herd-before"):
        herd = results.get(mine_name)
        if herd is None:
            continue
        print(f"\n== {mine_name} / pyftpdlib (MB/s: >1 is better; CPU, time, memory: <1 is)")
        others = ("pyftpdlib-threaded", "pyftpdlib-async")
        for other in (*others, "herd-before") if mine_name == "herd" else others:
            theirs = results.get(other)
            if theirs is not None:
                print_pair(herd, theirs, other, rounds, size)


def print_pair(
    herd: Figures, theirs: Figures, other: str, rounds: tuple[int, ...], size: int
) -> None:
    print(f"-- vs {other}")
    for name, row in herd.transfers.items():
        their = theirs.transfers.get(name)
        if their is not None:
            print(
                f"{name:14s} MB/s {ratio(row.mbps(size), their.mbps(size))}"
                f"  server CPU/GiB {ratio(row.cpu_per_gib(size), their.cpu_per_gib(size))}"
            )
    for clients in rounds:
        mine, their_rounds = herd.rounds.get(clients), theirs.rounds.get(clients)
        if not mine or not their_rounds:
            continue
        # Medians on both sides: herd-before runs the last round as often as herd does.
        best = min(r.wall for r in mine)
        cpu = statistics.median(r.server_cpu / r.clients for r in mine) * 1000
        their_cpu = statistics.median(r.server_cpu / r.clients for r in their_rounds) * 1000
        done = statistics.median(per_success(r) for r in mine)
        their_done = statistics.median(per_success(r) for r in their_rounds)
        print(
            f"{clients:4d} clients wall {ratio(best, min(r.wall for r in their_rounds))}"
            f"  CPU/session {ratio(cpu, their_cpu)} ({cpu:.2f} vs {their_cpu:.2f} ms)"
            f"  per session that worked {ratio(done, their_done)}"
            f"  (herd failures {[r.failures for r in mine]};"
            f" {other} failures {[r.failures for r in their_rounds]})"
        )
    if herd.idle_held and theirs.idle_held:
        print(
            f"idle KB/conn    {ratio(herd.idle_kb, theirs.idle_kb)}"
            f"  (herd {herd.idle_kb:.1f}, {other} {theirs.idle_kb:.1f})"
        )


if __name__ == "__main__":
    sys.exit(main())
