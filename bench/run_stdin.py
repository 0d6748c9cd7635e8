"""Memory and time of ``herd run --stdin FILE`` as the fleet grows, against OpenSSH's ssh.

Usage: python bench/run_stdin.py [--hosts 1,30] [--mb 50] [--repeat 3] [--herd-src DIR]

Every host runs ``sha256sum`` on the file fed to its stdin. For each fleet size it
measures herd (wall time, CPU of the process and what it waited for, and the
peak of its summed RSS, sampled) and the reference: one ``ssh HOST sha256sum <
FILE`` per host, all at once (the same three, the RSS summed over every ssh). It prints herd's peak
RSS per size against its own at the smallest size (flat = bounded memory whatever
the host count) and herd's ratios to the ssh loop. ``--herd-src`` runs herd from
another source tree (an older checkout, for before/after figures). Run on demand,
never in the test suite.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from herd.lab import Lab, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import Measure, measure, write_inventory  # a sibling script


def ssh_loop(lab: Lab, count: int, feed: Path) -> str:
    """A shell line running one OpenSSH client per host at once, each fed the file."""
    known = f"UserKnownHostsFile={lab.known_hosts}"
    ssh = shlex.join(["ssh", "-p", str(lab.port), "-i", str(lab.client_key), "-o", "BatchMode=yes",
                      "-o", known, "-l", lab.state.user])  # fmt: skip
    clients = " ".join(
        f"{ssh} {h.address} sha256sum <{shlex.quote(str(feed))} >/dev/null &"
        for h in lab.hosts[:count]
    )
    return f"{clients} wait"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,30", help="fleet sizes, comma-separated")
    parser.add_argument("--mb", type=int, default=50, help="size of the stdin file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and size (median)")
    parser.add_argument("--herd-src", type=Path, help="run herd from this source tree instead")
    args = parser.parse_args()
    sizes = [int(s) for s in args.hosts.split(",")]
    work = Path(tempfile.mkdtemp(prefix="herd-bench-stdin-"))
    feed = work / "feed"
    with feed.open("wb") as out:
        for _ in range(args.mb):
            out.write(os.urandom(1 << 20))
    env = {**os.environ, "HERD_HOME": str(work / "home")}
    env.pop("SSH_AUTH_SOCK", None)
    if args.herd_src:
        env["PYTHONPATH"] = str(args.herd_src.resolve())
    print(f"bringing up {max(sizes)} OpenSSH hosts ...", flush=True)
    lab = Lab.up(work / "lab", max(sizes), engine="openssh", port=free_port(max(sizes)))
    try:
        herd_rss: dict[int, float] = {}
        for count in sizes:
            inventory = write_inventory(lab, count, work)
            argv = [sys.executable, "-m", "herd", "-i", str(inventory), "run", "all", "-y",
                    "--json", "--stdin", str(feed), "--", "sha256sum"]  # fmt: skip
            herd_runs, ssh_runs = [], []
            for _ in range(args.repeat):  # round robin: load changes hit both alike
                herd_runs.append(measure(argv, env))
                ssh_runs.append(measure([ssh_loop(lab, count, feed)], env, shell=True))
            herd, ssh = _median(herd_runs), _median(ssh_runs)
            herd_rss[count] = herd.tree_mb
            print(
                f"{count:4d} hosts, {args.mb} MB each:"
                f" herd {herd.wall:6.2f} s, {herd.cpu:6.2f} s CPU, {herd.tree_mb:7.1f} MB peak RSS"
                f" | ssh x{count} {ssh.wall:6.2f} s, {ssh.cpu:6.2f} s CPU,"
                f" {ssh.tree_mb:7.1f} MB peak RSS summed"
                f" | herd/ssh: wall {herd.wall / ssh.wall:5.2f}x, CPU {herd.cpu / ssh.cpu:5.2f}x,"
                f" RSS {herd.tree_mb / ssh.tree_mb:5.2f}x",
                flush=True,
            )
        smallest = sizes[0]
        for count in sizes[1:]:
            print(
                f"herd peak RSS at {count} hosts / at {smallest}:"
                f" {herd_rss[count] / herd_rss[smallest]:.2f}x"
            )
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)


def _median(runs: list[Measure]) -> Measure:
    return Measure(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        max(r.rss_mb for r in runs),
        max(r.tree_mb for r in runs),
    )


if __name__ == "__main__":
    main()
