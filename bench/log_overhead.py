"""What the operation log adds to a ``herd run``: the same run with logging on and off.

Brings up the lab's OpenSSH fleet (200 hosts by default), then alternates
``herd run all -- true`` and ``herd run all --no-log -- true`` (in turn first)
so both see the same machine load, and prints the median wall and CPU time of
each and their ratios (the issue's target: logging adds under 5%). It also times the log's own work
for one such run in this process (begin, record 200 results in batches of
200, finish with the hash-chain seal) as a second, load-independent figure.

    .venv/bin/python bench/log_overhead.py [--hosts 200] [--repeat 7]
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from herd.core.audit import AuditLog
from herd.core.model import HostResult, Output, Status
from herd.lab import Lab, free_port

BIN = Path(sys.executable).parent


def timed_run(home: Path, inventory: Path, *extra: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user+sys) of one whole ``herd run`` process."""
    argv = [str(BIN / "herd"), "--home", str(home), "-i", str(inventory), "run", "all", "-y",
            "--json", "--connect-timeout", "60", *extra, "--", "true"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False, timeout=300)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"herd run failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return took, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def log_work_alone(home: Path, hosts: int) -> float:
    """The log's own cost for one run of ``hosts`` hosts (what ``herd run`` asks of it)."""
    out = b"Linux lab 6.1.0 x86_64 GNU/Linux\n"
    output = Output(out, len(out), hashlib.sha256(out).hexdigest())
    results = [
        HostResult(f"host{n:04d}", f"127.0.1.{n % 250 + 1}", Status.OK, 0, output, duration=0.1)
        for n in range(hosts)
    ]
    started = time.perf_counter()
    with AuditLog(home / "operations.db", syslog=False) as log:
        op = log.begin("run", argv=["herd", "run", "all"], hosts=[r.host for r in results])
        for start in range(0, hosts, 200):
            log.record_hosts(op, results[start : start + 200])
        log.finish(op, status="ok", exit_code=0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7, help="runs of each (medians)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="herd-logcost-"))
    home = work / "home"
    home.mkdir()
    alone = statistics.median(log_work_alone(home, args.hosts) for _ in range(args.repeat))
    print(f"log work alone for a {args.hosts}-host run: {alone * 1000:.1f} ms (median)")
    print(f"bringing up {args.hosts} OpenSSH hosts ...", flush=True)
    lab = Lab.up(work / "lab", args.hosts, engine="openssh", port=free_port(args.hosts))
    try:
        inventory = lab.inventory
        timed_run(home, inventory)  # warm-up: page cache, first connections
        logged: list[tuple[float, float]] = []
        unlogged: list[tuple[float, float]] = []
        for n in range(args.repeat):  # alternate which goes first: no order bias
            if n % 2:
                logged.append(timed_run(home, inventory))
                unlogged.append(timed_run(home, inventory, "--no-log"))
            else:
                unlogged.append(timed_run(home, inventory, "--no-log"))
                logged.append(timed_run(home, inventory))
        for name, runs in (("logging on ", logged), ("--no-log   ", unlogged)):
            wall = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            print(f"herd run, {args.hosts} hosts, {name}: {wall:.3f} s wall, {cpu:.3f} s CPU"
                  f" (medians of {args.repeat})")  # fmt: skip
        on_wall, off_wall = (statistics.median(r[0] for r in x) for x in (logged, unlogged))
        on_cpu, off_cpu = (statistics.median(r[1] for r in x) for x in (logged, unlogged))
        print(f"ratio on/off: wall {on_wall / off_wall:.3f}, CPU {on_cpu / off_cpu:.3f}"
              " (target < 1.05)")  # fmt: skip
        print(f"log work alone / run without log: wall {alone / off_wall:.4f}")
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
