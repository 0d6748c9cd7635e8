"""How the operation log scales: 100,000 operations and 2,000,000 host results.

Builds a log of that size (executemany in big transactions, the hash chain
synthesised in the same pass with the store's own encoding), then times
``herd log``, ``herd log --host H``, ``herd log show ID`` and ``herd log verify``
both as the query alone (in this process) and as the whole CLI process, end to
end. Figures are printed as ratios against the issue's targets (0.5 s per query,
30 s for verify) and against ``herd --version``, the cost of starting herd at
all, measured in the same run.

    .venv/bin/python bench/log_scale.py                      # the full size
    .venv/bin/python bench/log_scale.py --ops 10000          # scaled down
    .venv/bin/python bench/log_scale.py --keep /tmp/biglog   # reuse a built log
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from herd.core.audit import AuditLog
from herd.core.audit_chain import GENESIS, record_hash, results_digest
from herd.core.audit_query import LogFilter, search

HOSTS = [f"web{n:04d}" for n in range(1, 1801)] + [f"db{n:03d}" for n in range(1, 201)]
RARE_HOST = "legacy-ftp01"  # touched by one old operation only: the worst case for --host
COMMANDS = ["uptime", "df -h /", "systemctl is-active nginx", "apt-get -s upgrade", "cat /etc/motd"]
BATCH = 2000  # operations per transaction


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build(path: Path, ops: int, hosts_per_op: int) -> float:
    """Create a log of ``ops`` sealed operations with ``hosts_per_op`` results each."""
    AuditLog(path, syslog=False).close()  # the schema, exactly as herd creates it
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    rng = random.Random(6)
    started = time.perf_counter()
    t0 = time.time() - ops * 60.0  # one operation a minute, ending now
    prev = GENESIS
    empty = _sha(b"")
    op_cols = (
        "id, kind, started, ended, status, exit_code, user, sudo_user, operator, controller,"
        " pid, argv, pattern, hosts, command, detail, seq, prev_hash, results_sha, hash"
    )
    for first in range(1, ops + 1, BATCH):
        op_rows: list[tuple[object, ...]] = []
        host_rows: list[tuple[object, ...]] = []
        for op_id in range(first, min(first + BATCH, ops + 1)):
            start = rng.randrange(0, len(HOSTS) - hosts_per_op)
            hosts = sorted(HOSTS[start : start + hosts_per_op])
            if op_id == 7:
                hosts = sorted([*hosts[:-1], RARE_HOST])
            command = rng.choice(COMMANDS)
            results = []
            for host in hosts:
                failed = rng.random() < 0.02
                out = b"" if failed else f" {op_id % 24:02d}:17:01 up {op_id % 300} days\n".encode()
                err = f"{command}: failed on {host}\n".encode() if failed else b""
                results.append((
                    host, f"10.0.{hash(host) % 250}.{hash(host) % 200}",
                    "failed" if failed else "ok", 1 if failed else 0, 0.05 + rng.random(),
                    "", out, len(out), _sha(out) if out else empty,
                    err, len(err), _sha(err) if err else empty, "[]",
                ))  # fmt: skip
            digest = results_digest(results)
            began = t0 + op_id * 60.0
            not_ok = any(r[2] != "ok" for r in results)
            chained = (
                op_id, "run", began, began + 1.5, "failed" if not_ok else "ok", int(not_ok),
                "ops", None, None, "ctl1", 4242,
                json.dumps(["herd", "run", "web", "--", command], ensure_ascii=False), "web",
                json.dumps(hosts, ensure_ascii=False), command, None,
            )  # fmt: skip
            this = record_hash(chained, digest, prev)
            op_rows.append((*chained, op_id, prev, digest, this))
            host_rows.extend((op_id, *r) for r in results)
            prev = this
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO operations ({op_cols}) VALUES ({','.join('?' * 20)})", op_rows)
        db.executemany(f"INSERT INTO host_results VALUES ({','.join('?' * 14)})", host_rows)
        db.execute("COMMIT")
    db.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [("chain_seq", str(ops)), ("chain_hash", prev)],
    )
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("ANALYZE")
    db.close()
    return time.perf_counter() - started


def best_of(fn: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def cli_time(home: Path, *args: str, runs: int = 5) -> tuple[float, float]:
    """Median wall seconds and median CPU seconds (user+sys) of the whole herd process."""
    herd = Path(sys.executable).with_name("herd")
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        done = subprocess.run(
            [str(herd), "--home", str(home), *args], capture_output=True, check=False, timeout=900
        )
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode not in (0, 1):
            raise SystemExit(f"herd {' '.join(args)} failed: {done.stderr.decode()}")
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--hosts-per-op", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="home directory to build in (or reuse) and keep")
    args = parser.parse_args()

    home = args.keep or Path(tempfile.mkdtemp(prefix="herd-logbench-"))
    db = home / "operations.db"
    if not db.exists():
        home.mkdir(parents=True, exist_ok=True)
        took = build(db, args.ops, args.hosts_per_op)
        print(f"built {args.ops} operations x {args.hosts_per_op} hosts in {took:.1f}s")
    size = db.stat().st_size
    per_result = size / (args.ops * args.hosts_per_op)
    print(f"database size: {size / 1e6:.0f} MB ({per_result:.0f} B per host result)")

    busy_host = HOSTS[len(HOSTS) // 2]
    with AuditLog(db, check_writable=False, syslog=False) as log:
        conn = log.connection
        last = log.last_operation_id() or 1

        def table(selected: LogFilter) -> None:
            records = list(search(conn, selected, limit=20))
            log.host_counts([r.id for r in records])

        queries = {
            "log (20 newest)": lambda: table(LogFilter()),
            f"log --host {busy_host}": lambda: table(LogFilter(host=busy_host)),
            f"log --host {RARE_HOST} (1 old op)": lambda: table(LogFilter(host=RARE_HOST)),
            "log --failed --kind run": lambda: table(LogFilter(failed=True, kinds=("run",))),
            "log --user ops --since 1d": lambda: table(
                LogFilter(user="ops", since=time.time() - 86400)
            ),
            f"log show {last // 2}": lambda: (
                log.operation(last // 2),
                log.host_results(last // 2),
            ),
            "log --grep 'up 7 days' (recent hits)": lambda: table(LogFilter(grep="up 7 days")),
            "log --grep (no hit: full scan)": lambda: table(LogFilter(grep="no such text")),
        }
        print("\nquery alone (in process, best of 5)        seconds   x 0.5 s target")
        for name, fn in queries.items():
            runs = 1 if "full scan" in name else 5
            seconds = best_of(fn, runs)
            print(f"  {name:<40} {seconds:8.4f}   {seconds / 0.5:6.3f}")

    startup, startup_cpu = cli_time(home, "--version")
    print(
        f"\nreference: herd --version (start-up alone) {startup:.3f}s wall, {startup_cpu:.3f}s CPU"
    )
    print("CLI end to end (median of 5)             wall s  CPU s   wall x 0.5 s  CPU x 0.5 s"
          "  wall x --version")  # fmt: skip
    for cli_args in (["log"], ["log", "--host", busy_host], ["log", "--host", RARE_HOST],
                     ["log", "show", str(last // 2)]):  # fmt: skip
        wall, cpu = cli_time(home, *cli_args)
        label = "herd " + " ".join(cli_args)
        print(f"  {label:<38} {wall:6.3f} {cpu:6.3f}   {wall / 0.5:9.3f}  {cpu / 0.5:11.3f}"
              f"  {wall / startup:9.2f}")  # fmt: skip
    wall, cpu = cli_time(home, "log", "verify", runs=1)
    print(f"  {'herd log verify':<38} {wall:6.2f} {cpu:6.2f}   x 30 s target: wall {wall / 30:.3f},"
          f" CPU {cpu / 30:.3f}")  # fmt: skip
    with sqlite3.connect(db) as raw:
        t, c = time.perf_counter(), time.process_time()
        for _ in raw.execute("SELECT * FROM host_results ORDER BY op_id, host"):
            pass
        scan, scan_cpu = time.perf_counter() - t, time.process_time() - c
    raw.close()
    print(f"  reference: reading every host result {scan:.2f}s wall, {scan_cpu:.2f}s CPU;"
          f" verify / read: wall {wall / scan:.2f}, CPU {cpu / scan_cpu:.2f}")  # fmt: skip
    if args.keep is None:
        for name in os.listdir(home):
            (home / name).unlink()
        home.rmdir()


if __name__ == "__main__":
    main()
