"""Benchmark ``herd run`` against other fan-out tools on the lab's OpenSSH fleet.

Usage: python bench/run_fanout.py --hosts 10,50,200 [--repeat 3] [--profile]

For each fleet size it runs ``uname -a`` on every host with:
  herd       the full CLI process: ``herd run all --json -- uname -a``
  asyncssh   a minimal reference: asyncio.gather of connect + run, nothing else
  pssh       parallel-ssh's ParallelSSHClient
  ansible    ``ansible all -m raw -a 'uname -a'``
and prints the wall time, the client's CPU seconds per host (user+sys of the
client process and the children it waited for, divided by hosts) and the
client's peak RSS (the largest process of its tree), with herd's ratio to each
tool measured in the same run. The tools take turns (round robin, median of
--repeat runs), so a change in the machine's load hits each of them alike.
The servers (sshd) are not the client: their CPU is not counted. Run on
demand, never in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from herd.lab import Lab, free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FORKS = 100

REFERENCE = textwrap.dedent(
    """
    import asyncio, sys, asyncssh
    hosts, port = sys.argv[1].split(","), int(sys.argv[2])
    user, key, known = sys.argv[3], sys.argv[4], sys.argv[5]
    async def one(host):
        async with asyncssh.connect(host, port, username=user, client_keys=[key],
                                    known_hosts=known, agent_path=None, config=None) as conn:
            return (await conn.run("uname -a")).stdout
    async def main():
        results = await asyncio.gather(*(one(h) for h in hosts), return_exceptions=True)
        bad = [r for r in results if not isinstance(r, str)]
        if bad:
            print(f"asyncssh: {len(bad)} hosts not ok: {bad[:3]}", file=sys.stderr)
    asyncio.run(main())
    """
)

PSSH = textwrap.dedent(
    """
    import sys
    from pssh.clients import ParallelSSHClient
    hosts, port, user, key = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    client = ParallelSSHClient(hosts, port=port, user=user, pkey=key, pool_size=100, num_retries=1)
    output = client.run_command("uname -a", stop_on_errors=True)
    client.join(output)
    bad = [o.host for o in output if o.exit_code != 0]
    if bad:
        print(f"pssh: {len(bad)} hosts not ok: {bad[:3]}", file=sys.stderr)
    """
)


@dataclass(frozen=True)
class Measure:
    wall: float
    cpu: float  # user+sys seconds of the process and its waited-for descendants
    rss_mb: float  # peak RSS of the largest process in the tree


# herd's CLI in the measured process itself; as it ends it prints its own rusage, its
# workers' (the children it waited for) and the bytes it wrote, as one JSON line on stderr.
_IN_PROCESS = (
    "import json, resource, sys\n"
    "from herd.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "me = resource.getrusage(resource.RUSAGE_SELF)\n"
    "kids = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "io = dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())\n"
    "print(json.dumps({'code': code, 'self': me.ru_utime + me.ru_stime,"
    " 'children': kids.ru_utime + kids.ru_stime, 'rss': me.ru_maxrss,"
    " 'child_rss': kids.ru_maxrss, 'wrote': int(io['wchar'])}), file=sys.stderr)\n"
)


def herd_in_process(argv: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    """Run ``herd ARGV`` to its end: its wall time and what it said of itself (``_IN_PROCESS``:
    self, children, rss, child_rss in KiB, wrote)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _IN_PROCESS, *argv],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    figures: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    if figures["code"] != 0:
        raise SystemExit(f"herd {' '.join(argv)} failed: {done.stdout[-800:]}{done.stderr[-800:]}")
    return wall, figures


def measure(argv: list[str], env: dict[str, str]) -> Measure:
    """Run one tool to its end; its own rusage comes from wait4 (children it waited for count)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            err.seek(0)
            out.seek(0)
            raise SystemExit(
                f"{' '.join(argv[:4])} failed ({process.returncode}):"
                f" {err.read().decode()[-800:]} {out.read().decode()[-400:]}"
            )
    return Measure(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def write_inventory(lab: Lab, count: int, directory: Path) -> Path:
    document = yaml.safe_load(lab.inventory.read_text())
    keep = {h.name for h in lab.hosts[:count]}
    for group in document["all"]["children"].values():
        group["hosts"] = {n: v for n, v in group["hosts"].items() if n in keep}
    document["all"]["children"] = {
        name: group for name, group in document["all"]["children"].items() if group["hosts"]
    }
    path = directory / f"inventory-{count}.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def tools(
    lab: Lab, count: int, work: Path, home: Path
) -> dict[str, tuple[list[str], dict[str, str]]]:
    inventory = write_inventory(lab, count, work)
    addresses = ",".join(h.address for h in lab.hosts[:count])
    user, key, known = lab.state.user, str(lab.client_key), str(lab.known_hosts)
    env = {**os.environ, "HERD_HOME": str(home)}
    env.pop("SSH_AUTH_SOCK", None)
    ansible_env = {
        **env,
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    herd_bin = str(BIN / "herd")
    return {
        "herd": (
            [herd_bin, "-i", str(inventory), "run", "all", "--json", "-y", "--", "uname -a"],
            env,
        ),
        "asyncssh": (
            [sys.executable, "-c", REFERENCE, addresses, str(lab.port), user, key, known],
            env,
        ),
        "pssh": ([sys.executable, "-c", PSSH, addresses, str(lab.port), user, key], env),
        "ansible": (
            [
                str(BIN / "ansible"),
                "all",
                "-i",
                str(inventory),
                "-m",
                "raw",
                "-a",
                "uname -a",
                "-f",
                str(FORKS),
                "-o",
            ],
            ansible_env,
        ),
    }


def profile_herd(argv: list[str], env: dict[str, str], work: Path) -> None:
    """Profile herd's own CPU (process time: waiting for sshd on a busy machine is not ours)."""
    out = work / "herd.prof"
    script = (
        "import cProfile, sys, time; from herd.cli.main import main;"
        " profile = cProfile.Profile(time.process_time);"
        f" profile.runcall(main, sys.argv[1:]); profile.dump_stats({str(out)!r})"
    )
    subprocess.run(
        [sys.executable, "-c", script, *argv[1:]],
        env=env,
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    import pstats

    print("\nwhere herd's CPU goes (cProfile on process time, cumulative, top 30):")
    pstats.Stats(str(out)).sort_stats("cumulative").print_stats(30)
    print("self time, top 20:")
    pstats.Stats(str(out)).sort_stats("tottime").print_stats(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="10,50,200", help="fleet sizes, comma-separated")
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per tool and size, round robin (median)"
    )
    parser.add_argument("--tools", default="herd,asyncssh,pssh,ansible")
    parser.add_argument("--profile", action="store_true", help="cProfile herd at the largest size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.hosts.split(",")]
    chosen = args.tools.split(",")
    work = Path(tempfile.mkdtemp(prefix="herd-bench-"))
    home = work / "home"
    lab_dir = work / "lab"
    print(f"bringing up {max(sizes)} OpenSSH hosts in {lab_dir} ...", flush=True)
    lab = Lab.up(lab_dir, max(sizes), engine="openssh", port=free_port(max(sizes)))
    try:
        results: dict[tuple[str, int], Measure] = {}
        for count in sizes:
            commands = tools(lab, count, work, home)
            for tool in chosen:
                measure(*commands[tool])  # warm-up: page cache, sshd first-connection costs
            runs: dict[str, list[Measure]] = {tool: [] for tool in chosen}
            for _ in range(args.repeat):
                # round robin: a change in the machine's load hits every tool alike
                for tool in chosen:
                    runs[tool].append(measure(*commands[tool]))
            for tool in chosen:
                results[(tool, count)] = m = Measure(
                    statistics.median(r.wall for r in runs[tool]),
                    statistics.median(r.cpu for r in runs[tool]),
                    max(r.rss_mb for r in runs[tool]),
                )
                print(
                    f"  {tool:9s} {count:5d} hosts: {m.wall:7.2f} s wall, "
                    f"{1000 * m.cpu / count:7.2f} ms CPU/host, {m.rss_mb:6.1f} MB peak RSS",
                    flush=True,
                )
        report(results, sizes, chosen)
        if args.profile:
            argv, env = tools(lab, max(sizes), work, home)["herd"]
            profile_herd(argv, env, work)
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict[tuple[str, int], Measure], sizes: list[int], chosen: list[str]) -> None:
    print("\nherd's ratio to each tool (below 1.0 = herd is better):")
    print(f"{'hosts':>6} {'tool':10} {'wall':>8} {'cpu/host':>9} {'rss':>7}")
    for count in sizes:
        herd = results.get(("herd", count))
        if herd is None:
            continue
        for tool in chosen:
            if tool == "herd":
                continue
            other = results[(tool, count)]
            print(
                f"{count:6d} {tool:10} {herd.wall / other.wall:7.2f}x "
                f"{herd.cpu / other.cpu:8.2f}x {herd.rss_mb / other.rss_mb:6.2f}x"
            )


if __name__ == "__main__":
    main()
