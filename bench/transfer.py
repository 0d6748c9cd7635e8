"""Benchmark ``herd push`` and ``herd pull`` against other tools on the lab's OpenSSH fleet.

Usage: python bench/transfer.py [--hosts 50] [--big-mb 100] [--tree-files 1000]
                                [--ansible-hosts N] [--tools herd,asyncssh,pssh,scp,ansible]

Two workloads, each pushed to every host and pulled back:
  big   one file of --big-mb MB
  tree  --tree-files small files (1-8 KB) in 10 directories

Tools, each a separate process measured with wait4 (wall time, client CPU, and
peak RSS of the largest client process), and sampled every 20 ms for the peak
of the RSS summed over the whole client process tree (herd and its transfer
workers; xargs with every scp and ssh) and, for trees of at most eight
processes, of their summed PSS (each shared page split between its processes):
  herd      the full CLI: ``herd push all SRC DEST/{host}/`` (atomic, verified)
  herd-noverify  the same with --no-verify: what the hosts' sha256 pass costs
  herd-oneproc   the same with --workers 0: everything in herd's one process
  asyncssh  a plain asyncssh reference: connect + ``sftp.put``/``sftp.get``, defaults
  pssh      parallel-ssh's ``copy_file`` / ``copy_remote_file``
  scp       OpenSSH scp, one per host, in parallel with ``xargs -P``
  ansible   ``ansible -m copy`` on the tree (push only: ``fetch`` has no recursive mode)

Every host writes into its own remote directory (the fleet shares this
machine's filesystem), under a tmpfs (/dev/shm) so the disk is not what is
measured; remote copies are removed before every run, so nothing is skipped.
herd is also timed re-running a push whose files are all in place. With
--repeat N each tool runs N times, in a rotating order, and the median counts.
Ratios are herd's over each tool's, measured in the same run (below 1.0: herd
is better). Run on demand, never in the test suite.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from herd.lab import Lab, free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FORKS = 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
HERD_VARIANTS = {  # herd as shipped, and what its verification and its workers change
    "herd": [],
    "herd-noverify": ["--no-verify"],
    "herd-oneproc": ["--workers", "0"],
}

ASYNCSSH = textwrap.dedent(
    """
    import asyncio, sys, asyncssh
    mode, what, hosts, port = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
    user, key, known, remote, local = sys.argv[5:10]
    async def one(host):
        async with asyncssh.connect(host, port, username=user, client_keys=[key],
                                    known_hosts=known, agent_path=None, config=None) as conn:
            async with conn.start_sftp_client() as sftp:
                there = f"{remote}/{host}/{what}"
                if mode == "push":
                    await sftp.put(local, there, recurse=True, preserve=True)
                else:
                    await sftp.get(there, f"{local}/{host}", recurse=True, preserve=True)
    async def main():
        results = await asyncio.gather(*(one(h) for h in hosts), return_exceptions=True)
        bad = [r for r in results if r is not None]
        assert not bad, bad[:3]
    asyncio.run(main())
    """
)

PSSH = textwrap.dedent(
    """
    import sys, os
    from gevent import joinall
    from pssh.clients import ParallelSSHClient
    mode, what, hosts, port = sys.argv[1], sys.argv[2], sys.argv[3].split(","), int(sys.argv[4])
    user, key, remote, local = sys.argv[5], sys.argv[6], sys.argv[7], sys.argv[8]
    client = ParallelSSHClient(hosts, port=port, user=user, pkey=key, pool_size=100,
                               num_retries=1)
    args = [{"host": h} for h in hosts]
    recurse = os.path.isdir(local) if mode == "push" else what != "big.bin"
    if mode == "push":
        greenlets = client.copy_file(local, remote + "/%(host)s/" + what, recurse=recurse,
                                     copy_args=args)
    else:
        os.makedirs(local, exist_ok=True)
        greenlets = client.copy_remote_file(remote + "/%(host)s/" + what, local + "/" + what,
                                            recurse=recurse, copy_args=args)
    joinall(greenlets, raise_error=True)
    """
)


@dataclass(frozen=True)
class Measure:
    wall: float
    cpu: float  # user+sys seconds of the client and the children it waited for (not sshd)
    rss_mb: float  # peak RSS of the client process (the largest of its waited-for children)
    tree_mb: float = 0.0  # peak of the summed RSS of the client and all its descendants
    # peak of their summed PSS (shared pages split between the processes that map them),
    # taken only for small trees (herd and its workers): reading it costs a page-table walk
    tree_pss_mb: float | None = None


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        found.append(parent)
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children") as children:
                    todo.extend(int(c) for c in children.read().split())
        except OSError:
            continue
    return found


PSS_TREE_MAX = 8  # processes: herd and its workers; not xargs with a hundred scp


def _tree_memory(pid: int) -> tuple[int, int | None]:
    """The summed RSS of a process tree, and its summed PSS when the tree is small."""
    members = _descendants(pid)
    rss, pss = 0, 0
    for member in members:
        try:
            with open(f"/proc/{member}/statm") as statm:
                rss += int(statm.read().split()[1]) * PAGE_SIZE
            if len(members) <= PSS_TREE_MAX:
                with open(f"/proc/{member}/smaps_rollup") as rollup:
                    pss += next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
        except (OSError, IndexError, ValueError, StopIteration):
            continue
    return rss, (pss * 1024 if len(members) <= PSS_TREE_MAX else None)


class _TreeSampler(threading.Thread):
    """The peaks of a process tree's summed RSS and PSS, sampled every 20 ms until it ends."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.peak_pss: int | None = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            rss, pss = _tree_memory(self.pid)
            self.peak = max(self.peak, rss)
            if pss is None or self.peak_pss is None:
                self.peak_pss = None  # the tree grew past PSS_TREE_MAX once: no figure
            else:
                self.peak_pss = max(self.peak_pss, pss)


def measure(argv: list[str], env: dict[str, str], *, shell: bool = False) -> Measure:
    """Run one tool to its end; wall time and its own peak RSS come from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv[0] if shell else argv, stdout=out, stderr=err, env=env, cwd=ROOT, shell=shell
        )
        sampler = _TreeSampler(process.pid)
        sampler.start()
        # the tree is sampled until the process is reaped: wait without reaping first
        os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)
        sampler.done.set()
        sampler.join()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            err.seek(0)
            out.seek(0)
            raise SystemExit(
                f"{' '.join(argv)[:200]} failed ({code}):"
                f" {err.read().decode()[-800:]} {out.read().decode()[-800:]}"
            )
    cpu = usage.ru_utime + usage.ru_stime
    pss = None if sampler.peak_pss is None else sampler.peak_pss / 1024 / 1024
    return Measure(wall, cpu, usage.ru_maxrss / 1024, sampler.peak / 1024 / 1024, pss)


def make_workloads(local: Path, big_mb: int, tree_files: int) -> dict[str, Path]:
    local.mkdir(parents=True, exist_ok=True)
    big = local / "big.bin"
    with big.open("wb") as handle:
        block = os.urandom(1024 * 1024)
        for index in range(big_mb):
            handle.write(block[index % 1024 :] + block[: index % 1024])
    tree = local / "tree"
    rng = random.Random(5)
    for index in range(tree_files):
        sub = tree / f"d{index % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{index:05d}.txt").write_bytes(os.urandom(rng.randint(1024, 8192)))
    return {"big": big, "tree": tree}


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


class Bench:
    """One fleet, one work directory, and the command line of every tool."""

    def __init__(self, lab: Lab, work: Path, shm: Path) -> None:
        self.lab = lab
        self.work = work
        self.remote = shm / "remote"
        self.pulled = shm / "pulled"
        self.home = work / "home"
        self.env = {**os.environ, "HERD_HOME": str(self.home)}
        self.env.pop("SSH_AUTH_SOCK", None)

    def hosts(self, count: int) -> list[tuple[str, str]]:
        return [(h.name, h.address) for h in self.lab.hosts[:count]]

    def reset_remote(self, count: int) -> None:
        shutil.rmtree(self.remote, ignore_errors=True)
        for name, address in self.hosts(count):
            (self.remote / name).mkdir(parents=True)
            if address != name:
                (self.remote / address).mkdir(parents=True)

    def populate(self, count: int, workload: Path) -> None:
        """Put the workload on every host, under its name and (hard links) its address."""
        self.reset_remote(count)
        measure(self.push("herd", count, workload)[0], self.env)
        for name, address in self.hosts(count):
            if address != name:
                subprocess.run(
                    ["cp", "-al", f"{self.remote / name}/.", f"{self.remote / address}/"],
                    check=True,
                )

    def reset_pulled(self) -> None:
        shutil.rmtree(self.pulled, ignore_errors=True)
        self.pulled.mkdir(parents=True)

    def push(self, tool: str, count: int, source: Path) -> tuple[list[str], bool]:
        inventory = write_inventory(self.lab, count, self.work)
        addresses = ",".join(a for _, a in self.hosts(count))
        lab, remote = self.lab, str(self.remote)
        user, key, known, port = lab.state.user, str(lab.client_key), str(lab.known_hosts), lab.port
        if tool in HERD_VARIANTS:
            extra = HERD_VARIANTS[tool]
            return [str(BIN / "herd"), "-i", str(inventory), "push", "all", str(source),
                    f"{remote}/{{host}}/", "--json", "--no-progress",
                    "--forks", str(FORKS), *extra], False  # fmt: skip
        if tool == "asyncssh":
            return [sys.executable, "-c", ASYNCSSH, "push", source.name, addresses, str(port),
                    user, key, known, remote, str(source)], False  # fmt: skip
        if tool == "pssh":
            return [sys.executable, "-c", PSSH, "push", source.name, addresses, str(port),
                    user, key, remote, str(source)], False  # fmt: skip
        if tool == "scp":
            hosts = " ".join(a for _, a in self.hosts(count))
            line = (
                f"printf '%s\\n' {hosts} | xargs -P {FORKS} -I% scp -q -r -p -B -P {port}"
                f" -i {key} -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes"
                f" {source} {user}@%:{remote}/%/"
            )
            return [line], True
        if tool == "ansible":
            dest = f"{remote}/{{{{ inventory_hostname }}}}/"
            return [str(BIN / "ansible"), "all", "-i", str(inventory), "-m", "copy",
                    "-a", f"src={source} dest={dest}", "-f", str(FORKS)], False  # fmt: skip
        raise ValueError(tool)

    def pull(self, tool: str, count: int, what: str) -> tuple[list[str], bool]:
        inventory = write_inventory(self.lab, count, self.work)
        addresses = ",".join(a for _, a in self.hosts(count))
        lab, remote, pulled = self.lab, str(self.remote), str(self.pulled)
        user, key, known, port = lab.state.user, str(lab.client_key), str(lab.known_hosts), lab.port
        if tool in HERD_VARIANTS:
            extra = HERD_VARIANTS[tool]
            return [str(BIN / "herd"), "-i", str(inventory), "pull", "all",
                    f"{remote}/{{host}}/{what}", pulled, "--json", "--no-progress",
                    "--forks", str(FORKS), *extra], False  # fmt: skip
        if tool == "asyncssh":
            return [sys.executable, "-c", ASYNCSSH, "pull", what, addresses, str(port),
                    user, key, known, remote, pulled], False  # fmt: skip
        if tool == "pssh":
            return [sys.executable, "-c", PSSH, "pull", what, addresses, str(port),
                    user, key, remote, pulled], False  # fmt: skip
        if tool == "scp":
            hosts = " ".join(a for _, a in self.hosts(count))
            line = (
                f"printf '%s\\n' {hosts} | xargs -P {FORKS} -I% sh -c 'mkdir -p {pulled}/% &&"
                f" scp -q -r -p -B -P {port} -i {key} -o UserKnownHostsFile={known}"
                f" -o StrictHostKeyChecking=yes {user}@%:{remote}/%/{what} {pulled}/%/'"
            )
            return [line], True
        raise ValueError(tool)


def run_tool(bench: Bench, kind: str, tool: str, count: int, workload: Path) -> Measure:
    if kind == "push":
        bench.reset_remote(count)
        argv, shell = bench.push(tool, count, workload)
    else:
        bench.reset_pulled()
        argv, shell = bench.pull(tool, count, workload.name)
    return measure(argv, bench.env, shell=shell)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--tree-files", type=int, default=1000)
    parser.add_argument(
        "--ansible-hosts",
        type=int,
        default=5,
        help="hosts for the ansible tree push and its herd twin",
    )
    parser.add_argument(
        "--ansible-files",
        type=int,
        default=100,
        help="files in the tree ansible pushes (it runs a module per file)",
    )
    parser.add_argument("--tools", default="herd,herd-noverify,asyncssh,pssh,scp,ansible")
    parser.add_argument("--workloads", default="big,tree")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool (median)")
    args = parser.parse_args()  # fmt: skip
    chosen = args.tools.split(",")
    work = Path(tempfile.mkdtemp(prefix="herd-bench-transfer-"))
    shm = Path(tempfile.mkdtemp(prefix="herd-bench-", dir="/dev/shm"))
    print(f"workloads in {shm}; bringing up {args.hosts} OpenSSH hosts ...", flush=True)
    lab = Lab.up(work / "lab", args.hosts, engine="openssh", port=free_port(args.hosts))
    bench = Bench(lab, work, shm)
    results: dict[tuple[str, str, str], Measure] = {}
    try:
        workloads = make_workloads(shm / "local", args.big_mb, args.tree_files)
        count = args.hosts
        for name in args.workloads.split(","):
            workload = workloads[name]
            for kind in ("push", "pull"):
                if kind == "pull":  # what to pull: put it there once (pulling changes nothing)
                    bench.populate(count, workload)
                runs: dict[str, list[Measure]] = {}
                tools = [t for t in chosen if t != "ansible"]  # ansible: scaled down, below
                if kind == "push" and "herd" in tools:
                    tools.append("herd-rerun")  # everything already there: all skipped
                for round_ in range(args.repeat):
                    # a different order each round, so a burst of load on this shared
                    # machine does not always fall on the same tool
                    for tool in tools[round_ % len(tools) :] + tools[: round_ % len(tools)]:
                        if tool == "herd-rerun":
                            bench.reset_remote(count)
                            measure(bench.push("herd", count, workload)[0], bench.env)
                            m = measure(bench.push("herd", count, workload)[0], bench.env)
                        else:
                            m = run_tool(bench, kind, tool, count, workload)
                        runs.setdefault(tool, []).append(m)
                        print(f"  {name:4s} {kind:4s} {tool:13s} {count:3d} hosts: {m.wall:7.2f} s,"
                              f" client CPU {m.cpu:6.2f} s, peak RSS {m.rss_mb:6.1f} MB"
                              f" (process tree {m.tree_mb:6.1f} MB{_pss(m)})",
                              flush=True)  # fmt: skip
                for tool, measures in runs.items():
                    key = (name, "rerun", "herd") if tool == "herd-rerun" else (name, kind, tool)
                    results[key] = Measure(
                        statistics.median(m.wall for m in measures),
                        statistics.median(m.cpu for m in measures),
                        max(m.rss_mb for m in measures),
                        max(m.tree_mb for m in measures),
                        max((m.tree_pss_mb or 0.0 for m in measures), default=0.0) or None,
                    )
        if "ansible" in chosen and args.ansible_hosts:
            count = args.ansible_hosts
            small = make_workloads(shm / "small", 0, args.ansible_files)["tree"]
            for tool in ("herd", "ansible"):
                m = run_tool(bench, "push", tool, count, small)
                results[("tree-small", "push", tool)] = m
                print(f"  tree of {args.ansible_files} files push {tool:9s} {count:3d} hosts:"
                      f" {m.wall:7.2f} s", flush=True)  # fmt: skip
        report(results, args)
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


def _pss(m: Measure) -> str:
    return "" if m.tree_pss_mb is None else f", PSS {m.tree_pss_mb:6.1f} MB"


def report(results: dict[tuple[str, str, str], Measure], args: argparse.Namespace) -> None:
    print(f"\n{args.hosts} hosts, big = {args.big_mb} MB, tree = {args.tree_files} files")
    print("herd's wall time and client CPU over each tool's (below 1.0 = herd is better):")
    for (name, kind, tool), m in sorted(results.items()):
        herd = results.get((name, kind, "herd"))
        if tool == "herd" or herd is None:  # herd-noverify is listed against herd too
            continue
        print(f"  {name:10s} {kind:5s} vs {tool:9s} wall {herd.wall / m.wall:6.2f}x"
              f"  cpu {herd.cpu / m.cpu:6.2f}x"
              f"   (herd {herd.wall:.2f} s, {tool} {m.wall:.2f} s)")  # fmt: skip
    for name in ("big", "tree"):
        rerun, push = results.get((name, "rerun", "herd")), results.get((name, "push", "herd"))
        if rerun and push:
            print(f"herd re-run of the {name} push, everything skipped: {rerun.wall:.2f} s"
                  f" ({rerun.wall / push.wall:.2f}x the first push)")  # fmt: skip
    herd_big = results.get(("big", "push", "herd"))
    if herd_big is not None:
        print(
            f"herd peak RSS, big push to {args.hosts} hosts: {herd_big.rss_mb:.1f} MB in one"
            f" process, {herd_big.tree_mb:.1f} MB summed over herd and its workers"
            f" (PSS, shared pages counted once: {herd_big.tree_pss_mb or 0:.1f} MB)"
        )
    for name in ("tree", "tree-small"):
        herd, ansible = results.get((name, "push", "herd")), results.get((name, "push", "ansible"))
        if herd and ansible:
            print(f"ansible's time over herd's on the {name} push: {ansible.wall / herd.wall:.1f}x")


if __name__ == "__main__":
    main()
