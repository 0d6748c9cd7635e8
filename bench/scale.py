"""Benchmark ``herd run`` in one process against worker processes, on the lab's OpenSSH fleet.

Usage: python bench/scale.py [--hosts 200] [--repeat 3] [--workers N]

Runs ``uname -a`` on every host of a lab of --hosts OpenSSH hosts, with
``--workers 0`` (all in herd's own process) and ``--workers N`` (default: one
per core), taking turns (round robin, median of --repeat runs). For each it
prints the wall time, the controller's CPU per host (user+sys of herd and its
workers), the main process's own share of it, the projected new hosts per
second per core (1000 / CPU ms per host) and the peak RSS of herd's process and
of its largest worker; then the workers' ratios to one process, from the same
run. On a small machine the sshds share the cores with herd, so the CPU per
host, not the wall time, is the figure that carries to a real controller. Run
on demand, never in the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from herd.lab import Lab, free_port
from run_fanout import herd_in_process, write_inventory


@dataclass(frozen=True)
class Measure:
    wall: float
    main_cpu: float  # user+sys seconds of herd's own process
    worker_cpu: float  # user+sys seconds of its workers
    rss_mb: float  # peak RSS of herd's process
    worker_rss_mb: float  # peak RSS of its largest worker (0 without)

    @property
    def cpu(self) -> float:
        return self.main_cpu + self.worker_cpu


def measure(argv: list[str], env: dict[str, str]) -> Measure:
    wall, figures = herd_in_process(argv, env)
    return Measure(
        wall,
        figures["self"],
        figures["children"],
        figures["rss"] / 1024,
        figures["child_rss"] / 1024,
    )


def median(runs: list[Measure]) -> Measure:
    return Measure(
        statistics.median(r.wall for r in runs),
        statistics.median(r.main_cpu for r in runs),
        statistics.median(r.worker_cpu for r in runs),
        max(r.rss_mb for r in runs),
        max(r.worker_rss_mb for r in runs),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="50,200", help="fleet sizes (default 50,200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode and size (median)")
    cores = len(os.sched_getaffinity(0))
    parser.add_argument("--workers", type=int, default=cores, help=f"(default {cores})")
    parser.add_argument("--forks", type=int, default=100, help="-f (default 100)")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.hosts.split(","))
    work = Path(tempfile.mkdtemp(prefix="herd-bench-scale-"))
    env = {**os.environ, "HERD_HOME": str(work / "home")}
    env.pop("SSH_AUTH_SOCK", None)
    print(f"bringing up {sizes[-1]} OpenSSH hosts in {work / 'lab'} ...", flush=True)
    lab = Lab.up(work / "lab", sizes[-1], engine="openssh", port=free_port(sizes[-1]))
    try:
        results: dict[tuple[str, int], Measure] = {}
        for count in sizes:
            inventory = write_inventory(lab, count, work)
            base = ["-i", str(inventory), "run", "all", "--json", "-y", "-f", str(args.forks)]
            modes = {
                "one process": [*base, "--workers", "0", "--", "uname -a"],
                f"{args.workers} workers": [*base, "--workers", str(args.workers), "--",
                                            "uname -a"],
            }  # fmt: skip
            for argv in modes.values():
                measure(argv, env)  # warm-up: page cache, sshd first-connection costs
            runs: dict[str, list[Measure]] = {mode: [] for mode in modes}
            for _ in range(args.repeat):
                for mode, argv in modes.items():  # round robin: load changes hit both alike
                    runs[mode].append(measure(argv, env))
            results.update({(mode, count): median(found) for mode, found in runs.items()})
        report(results, sizes, cores)
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict[tuple[str, int], Measure], sizes: list[int], cores: int) -> None:
    print(f"\n`uname -a` on the lab's hosts, {cores} cores (the sshds share them):")
    print(
        f"{'hosts':>6} {'mode':>12} {'wall s':>7} {'CPU ms/host':>12} {'main ms/host':>13}"
        f" {'RSS MB':>7} {'worker MB':>10}"
    )
    modes = list(dict.fromkeys(mode for mode, _ in results))
    for (mode, count), m in results.items():
        print(
            f"{count:6d} {mode:>12} {m.wall:7.2f} {1000 * m.cpu / count:12.2f}"
            f" {1000 * m.main_cpu / count:13.2f} {m.rss_mb:7.1f} {m.worker_rss_mb:10.1f}"
        )
    one, workers = modes
    big = sizes[-1]
    a, b = results[(one, big)], results[(workers, big)]
    print(
        f"\nat {big} hosts, {workers} / one process: wall {b.wall / a.wall:.2f}x,"
        f" CPU per host {b.cpu / a.cpu:.2f}x, main process CPU per host {b.main_cpu / a.cpu:.2f}x"
    )
    if len(sizes) < 2:
        return
    small = sizes[0]
    print(f"\nper extra host, from {small} to {big} hosts (start-up costs cancel out):")
    marginal = {}
    for mode in modes:
        low, high = results[(mode, small)], results[(mode, big)]
        total = (high.cpu - low.cpu) / (big - small)
        main = (high.main_cpu - low.main_cpu) / (big - small)
        fixed = high.cpu - total * big
        marginal[mode] = (total, main)
        print(
            f"{mode:>12}: {1000 * total:5.2f} ms CPU per host ({1000 / (1000 * total):4.0f}"
            f" hosts/s/core), {1000 * main:5.2f} ms of it in the main process;"
            f" fixed {fixed:4.2f} s CPU per run"
        )
    (one_total, _), (w_total, w_main) = marginal[one], marginal[workers]
    print(
        f"\n{workers} / one process, per extra host: CPU {w_total / one_total:.2f}x,"
        f" main process {w_main / one_total:.2f}x: one main process feeds"
        f" {one_total / w_main:.1f}x the hosts per second, given the cores for its workers"
    )


if __name__ == "__main__":
    main()
