"""Benchmark ``herd run``, push and pull through one gateway against direct, on the lab.

Usage: python bench/gateway.py [--hosts 40] [--mb 20] [--repeat 3]

Brings up --hosts + 1 OpenSSH lab hosts: the first is the gateway, the others
are reached either directly or through it (``herd_gateway``). Runs ``uname -a``
on them, pushes a file of --mb MB to each (into its own directory, removed
before every push so each sends the whole file) and pulls it back (into a
directory removed before every pull), both ways, taking turns (round robin,
median of --repeat runs). herd runs in one process (``--workers 0``) so that
its /proc/self/io ``wchar`` is the bytes the controller wrote: mostly its SSH
sockets (for a pull, the files it lands). Prints wall time, controller CPU and
bytes written, then gateway / direct ratios from the same run. On one machine
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
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from herd.lab import Lab, free_port
from run_fanout import ROOT

# herd's CLI in this process, then its CPU and the bytes it wrote (it has no workers here).
_MEASURED = (
    "import json, resource, sys\n"
    "from herd.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "me = resource.getrusage(resource.RUSAGE_SELF)\n"
    "io = dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())\n"
    "print(json.dumps({'code': code, 'cpu': me.ru_utime + me.ru_stime,"
    " 'wrote': int(io['wchar'])}), file=sys.stderr)\n"
)


@dataclass(frozen=True)
class Measure:
    wall: float
    cpu: float  # user+sys seconds of herd's process
    wrote: int  # bytes herd's process wrote


def measure(argv: list[str], env: dict[str, str]) -> Measure:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _MEASURED, *argv],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    figures = json.loads(done.stderr.strip().splitlines()[-1])
    if figures["code"] != 0:
        raise SystemExit(f"herd {' '.join(argv)} failed: {done.stdout[-800:]}{done.stderr[-800:]}")
    return Measure(wall, figures["cpu"], figures["wrote"])


def inventories(lab: Lab, work: Path) -> dict[str, Path]:
    """The lab's inventory with the hosts after the first in group ``far``: reached
    directly, and through the first host."""
    gateway_home = work / "gateway-home"
    (gateway_home / ".ssh").mkdir(parents=True)
    (gateway_home / ".ssh" / "config").write_text(f"Host *\n  IdentityFile {lab.client_key}\n")
    command = f"HOME={shlex.quote(str(gateway_home))} {shlex.quote(sys.executable)} -m herd gateway"
    made = {}
    for way in ("direct", "gateway"):
        document = yaml.safe_load(lab.inventory.read_text())
        first, *far = lab.hosts
        document["all"]["vars"]["herd_gateway_command"] = command
        group = {"hosts": {h.name: {"ansible_host": h.address} for h in far}}
        if way == "gateway":
            group["vars"] = {"herd_gateway": first.name}
        document["all"]["children"] = {
            "gw": {"hosts": {first.name: {"ansible_host": first.address}}},
            "far": group,
        }
        path = work / f"inventory-{way}.yml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        made[way] = path
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=40, help="hosts behind the gateway (40)")
    parser.add_argument("--mb", type=int, default=20, help="MB pushed to each host (20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="herd-bench-gateway-"))
    env = {**os.environ, "HERD_HOME": str(work / "home")}
    env.pop("SSH_AUTH_SOCK", None)
    payload = work / "payload.bin"
    payload.write_bytes(os.urandom(args.mb * 1024 * 1024))
    remote, fetched = work / "remote", work / "fetched"
    count = args.hosts + 1
    print(f"bringing up {count} OpenSSH hosts in {work / 'lab'} ...", flush=True)
    lab = Lab.up(work / "lab", count, engine="openssh", port=free_port(count))
    try:
        paths = inventories(lab, work)
        alone = ["--json", "-y", "--workers", "0", "--no-agent"]  # herd's one process does it all
        cases = {
            (what, way): ["-i", str(path), *argv]
            for way, path in paths.items()
            for what, argv in (
                ("run", ["run", "far", *alone, "--", "uname -a"]),
                ("push", ["push", "far", str(payload), f"{remote}/{{host}}/", "--mkdir", *alone]),
                ("pull", ["pull", "far", f"{remote}/{{host}}/payload.bin", str(fetched), *alone]),
            )
        }
        runs: dict[tuple[str, str], list[Measure]] = {case: [] for case in cases}
        for round_ in range(args.repeat + 1):  # the first round warms up, and is not counted
            for case, argv in cases.items():  # a pull fetches what the push before it sent
                shutil.rmtree(fetched if case[0] == "pull" else remote, ignore_errors=True)
                found = measure(argv, env)
                if round_:
                    runs[case].append(found)
        report(runs, args.hosts, args.mb)
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)


def report(runs: dict[tuple[str, str], list[Measure]], hosts: int, mb: int) -> None:
    print(f"\n{hosts} hosts, direct and behind one gateway; push and pull of {mb} MB each:")
    print(f"{'case':>8} {'way':>8} {'wall s':>7} {'CPU s':>6} {'MB written':>11}")
    medians = {}
    for (what, way), found in runs.items():
        m = Measure(
            statistics.median(r.wall for r in found),
            statistics.median(r.cpu for r in found),
            int(statistics.median(r.wrote for r in found)),
        )
        medians[(what, way)] = m
        print(f"{what:>8} {way:>8} {m.wall:7.2f} {m.cpu:6.2f} {m.wrote / 2**20:11.1f}")
    print("\ngateway / direct, same run:")
    for what in ("run", "push", "pull"):
        a, b = medians[(what, "direct")], medians[(what, "gateway")]
        print(
            f"{what:>8}: wall {b.wall / a.wall:.2f}x, controller CPU {b.cpu / a.cpu:.2f}x,"
            f" bytes written {b.wrote / a.wrote:.3f}x"
        )
    push = medians[("push", "gateway")]
    print(f"\npush through the gateway: {push.wrote / (mb * 2**20):.2f} copies of the file written")


if __name__ == "__main__":
    main()
