"""Benchmark ``herd run``, push and pull through gateways against direct, on the lab.

Usage: python bench/gateway.py [--hosts 40] [--gateways 1] [--mb 20] [--repeat 3]
                               [--cases run,push,pull] [--forks 100]

Brings up --hosts + --gateways OpenSSH lab hosts: the first --gateways are the
gateways, the others are reached either directly or through them, shared out
in turn (``herd_gateway`` per host: two gateways carry half each). Runs ``uname -a``
on them, pushes a file of --mb MB to each (into its own directory, removed
before every push so each sends the whole file) and pulls it back (into a
directory removed before every pull), both ways, taking turns (round robin,
median of --repeat runs; --cases picks which). herd runs in one process (``--workers 0``) so that
its /proc/self/io ``wchar`` is the bytes the controller wrote: mostly its SSH
sockets (for a pull, the files it lands). Prints wall time, controller CPU (per host,
and the new hosts per second one core would carry at that cost), the
controller's peak RSS and the bytes it wrote, then gateway / direct ratios
from the same run, and the gateways' own CPU and peak RSS (the gateway
command is wrapped to record them as it exits). On one machine
the gateway and the sshds share the cores with herd, so the controller's CPU
and bytes, not the wall time, are the figures that carry to a real site. Run
on demand, never in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from herd.lab import Lab, free_port
from run_fanout import herd_in_process

# `herd gateway` on the gateway host; as it ends, it appends its CPU and peak RSS to argv[1].
_GATEWAY = (
    "import atexit, json, resource, sys\n"
    "def usage():\n"
    "    me = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    with open(sys.argv[1], 'a') as out:\n"
    "        print(json.dumps({'cpu': me.ru_utime + me.ru_stime, 'rss': me.ru_maxrss}), file=out)\n"
    "atexit.register(usage)\n"
    "from herd.cli.main import main\n"
    "sys.exit(main(['gateway']))\n"
)


@dataclass(frozen=True)
class Measure:
    wall: float
    cpu: float  # user+sys seconds of herd's process
    wrote: int  # bytes herd's process wrote
    rss_mb: float  # peak RSS of herd's process
    gw_cpu: float = 0.0  # user+sys seconds of the gateways, all together
    gw_rss_mb: float = 0.0  # peak RSS of the largest gateway


def measure(argv: list[str], env: dict[str, str], usage: Path) -> Measure:
    usage.write_text("")
    wall, figures = herd_in_process(argv, env)  # one process (--workers 0): its CPU is all
    gateways = [json.loads(line) for line in usage.read_text().splitlines()]
    return Measure(
        wall, figures["self"], figures["wrote"], figures["rss"] / 1024,
        sum(g["cpu"] for g in gateways), max((g["rss"] / 1024 for g in gateways), default=0.0),
    )  # fmt: skip


def inventories(lab: Lab, work: Path, gateways: int, usage: Path) -> dict[str, Path]:
    """The lab's inventory with the hosts after the first ``gateways`` in group
    ``far``: reached directly, and through those gateways in turn."""
    gateway_home = work / "gateway-home"
    (gateway_home / ".ssh").mkdir(parents=True)
    (gateway_home / ".ssh" / "config").write_text(f"Host *\n  IdentityFile {lab.client_key}\n")
    command = shlex.join([sys.executable, "-c", _GATEWAY, str(usage)])
    command = f"HOME={shlex.quote(str(gateway_home))} {command}"
    made = {}
    for way in ("direct", "gateway"):
        document = yaml.safe_load(lab.inventory.read_text())
        near, far = lab.hosts[:gateways], lab.hosts[gateways:]
        document["all"]["vars"]["herd_gateway_command"] = command
        group: dict[str, dict[str, str]] = {}
        for k, h in enumerate(far):
            group[h.name] = {"ansible_host": h.address}
            if way == "gateway":
                group[h.name]["herd_gateway"] = near[k % gateways].name
        document["all"]["children"] = {
            "gw": {"hosts": {h.name: {"ansible_host": h.address} for h in near}},
            "far": {"hosts": group},
        }
        path = work / f"inventory-{way}.yml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        made[way] = path
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=40, help="hosts behind the gateways (40)")
    parser.add_argument("--gateways", type=int, default=1, help="gateways sharing them (1)")
    parser.add_argument("--mb", type=int, default=20, help="MB pushed to each host (20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median)")
    parser.add_argument("--cases", default="run,push,pull", help="of run,push,pull (all)")
    parser.add_argument("--forks", type=int, default=100, help="-f (100)")
    args = parser.parse_args()
    chosen = args.cases.split(",")
    if not set(chosen) <= {"run", "push", "pull"} or args.gateways < 1 or args.hosts < 1:
        raise SystemExit("--cases takes run, push, pull; --gateways and --hosts at least 1")
    if "pull" in chosen and "push" not in chosen:
        raise SystemExit("a pull fetches what the push sent: --cases pull needs push too")
    work = Path(tempfile.mkdtemp(prefix="herd-bench-gateway-"))
    env = {**os.environ, "HERD_HOME": str(work / "home")}
    env.pop("SSH_AUTH_SOCK", None)
    payload = work / "payload.bin"
    with payload.open("wb") as out:
        for _ in range(args.mb):
            out.write(os.urandom(1024 * 1024))
    remote, fetched = work / "remote", work / "fetched"
    count = args.hosts + args.gateways
    print(f"bringing up {count} OpenSSH hosts in {work / 'lab'} ...", flush=True)
    lab = Lab.up(work / "lab", count, engine="openssh", port=free_port(count))
    try:
        usage = work / "gateway-usage.jsonl"
        paths = inventories(lab, work, args.gateways, usage)
        # herd's one process does it all
        alone = ["--json", "-y", "--workers", "0", "--no-agent", "-f", str(args.forks)]
        cases = {
            (what, way): ["-i", str(path), *argv]
            for way, path in paths.items()
            for what, argv in (
                ("run", ["run", "far", *alone, "--", "uname -a"]),
                ("push", ["push", "far", str(payload), f"{remote}/{{host}}/", "--mkdir", *alone]),
                ("pull", ["pull", "far", f"{remote}/{{host}}/payload.bin", str(fetched), *alone]),
            )
            if what in chosen
        }
        runs: dict[tuple[str, str], list[Measure]] = {case: [] for case in cases}
        for round_ in range(args.repeat + 1):  # the first round warms up, and is not counted
            for case, argv in cases.items():  # a pull fetches what the push before it sent
                shutil.rmtree(fetched if case[0] == "pull" else remote, ignore_errors=True)
                found = measure(argv, env, usage)
                if round_:
                    runs[case].append(found)
        report(runs, args.hosts, args.gateways, args.mb)
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)


def report(runs: dict[tuple[str, str], list[Measure]], hosts: int, gateways: int, mb: int) -> None:
    cases = list(dict.fromkeys(what for what, _ in runs))
    behind = "one gateway" if gateways == 1 else f"{gateways} gateways sharing them"
    files = f"; push and pull of {mb} MB each" if {"push", "pull"} & set(cases) else ""
    print(f"\n{hosts} hosts, direct and behind {behind}{files}:")
    print(
        f"{'case':>6} {'way':>8} {'wall s':>7} {'CPU s':>6} {'CPU ms/host':>12}"
        f" {'hosts/s/core':>13} {'RSS MB':>7} {'MB written':>11}"
    )
    medians = {}
    for (what, way), found in runs.items():
        m = Measure(
            statistics.median(r.wall for r in found),
            statistics.median(r.cpu for r in found),
            int(statistics.median(r.wrote for r in found)),
            max(r.rss_mb for r in found),
            statistics.median(r.gw_cpu for r in found),
            max(r.gw_rss_mb for r in found),
        )
        medians[(what, way)] = m
        print(
            f"{what:>6} {way:>8} {m.wall:7.2f} {m.cpu:6.2f} {1000 * m.cpu / hosts:12.2f}"
            f" {hosts / m.cpu:13.0f} {m.rss_mb:7.1f} {m.wrote / 2**20:11.1f}"
        )
    print("\ngateway / direct, same run:")
    for what in cases:
        a, b = medians[(what, "direct")], medians[(what, "gateway")]
        print(
            f"{what:>6}: wall {b.wall / a.wall:.2f}x, controller CPU {b.cpu / a.cpu:.2f}x,"
            f" peak RSS {b.rss_mb / a.rss_mb:.2f}x, bytes written {b.wrote / a.wrote:.3f}x"
        )
        print(
            f"{'':>6}  the gateways: {b.gw_cpu:.2f} s CPU in all, {1000 * b.gw_cpu / hosts:.2f} ms"
            f" per host carried ({b.gw_cpu / a.cpu:.2f}x the direct controller's CPU),"
            f" peak RSS {b.gw_rss_mb:.1f} MB"
        )
    if "push" in cases and mb:
        push = medians[("push", "gateway")]
        copies = push.wrote / (mb * 2**20)
        print(f"\npush through {gateways} gateway(s): {copies:.2f} copies of the file written")


if __name__ == "__main__":
    main()
