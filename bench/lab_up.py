"""How fast `herd lab up N` brings a fleet up, and how much memory the fleet holds.

Run on demand (never in the test suite):

    .venv/bin/python bench/lab_up.py --hosts 200 [--engine openssh|builtin|both]

For each engine it times `herd lab up N` and `herd lab down` as a user would
run them (a fresh `python -m herd` process), sums the RSS and PSS of every lab
process, and checks every host answers an SSH banner. The reference, measured
in the same run on the same host configs, is the naive way: one `ssh-keygen`
and one `sshd` after another per host. Figures are printed as ratios to it.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from herd.lab import Lab, address_of
from herd.lab.openssh import find_sshd
from herd.lab.processes import descendants


def tree_memory(roots: list[int]) -> tuple[int, int, int]:
    """(processes, RSS KiB, PSS KiB) of ``roots`` and everything below them."""
    members = {*roots, *descendants(roots)}
    rss = pss = 0
    for pid in members:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return len(members), rss, pss


def answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5) as conn:
            return conn.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def all_answer(count: int, port: int) -> int:
    with ThreadPoolExecutor(32) as pool:
        return sum(pool.map(lambda k: answers(address_of(k), port), range(1, count + 1)))


def children_cpu() -> float:
    """CPU seconds used so far by the child processes this benchmark waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def herd(*args: str) -> tuple[float, float]:
    """Run `herd ARGS` in a fresh process; return its wall time and CPU time.

    The CPU time covers herd and the processes it waited for (sshd's foreground
    halves), not the daemons: on a shared machine it is steadier than wall time.
    """
    started, cpu = time.perf_counter(), children_cpu()
    subprocess.run([sys.executable, "-m", "herd", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, children_cpu() - cpu


def measure_herd(engine: str, count: int, port: int, directory: Path) -> dict[str, float]:
    up, up_cpu = herd(
        "lab", "up", str(count), "--dir", str(directory), "--engine", engine, "--port", str(port)
    )
    lab = Lab(directory)
    roots = sorted({h.pid for h in lab.hosts if h.pid})
    processes, rss, pss = tree_memory(roots)
    answering = all_answer(count, port)
    down, _ = herd("lab", "down", "--dir", str(directory))
    return {
        "up": up,
        "up_cpu": up_cpu,
        "down": down,
        "processes": processes,
        "rss": rss,
        "pss": pss,
        "answering": answering,
    }


def measure_naive(count: int, directory: Path, sshd: str) -> dict[str, float]:
    """One ssh-keygen and one sshd after another, reusing the configs herd wrote."""
    names = sorted(p.name for p in (directory / "hosts").iterdir())
    started, cpu = time.perf_counter(), children_cpu()
    for name in names:
        host = directory / "hosts" / name
        key = host / "ssh_host_ed25519_key"
        key.unlink(missing_ok=True)
        (host / "ssh_host_ed25519_key.pub").unlink(missing_ok=True)
        (host / "sshd.pid").unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        subprocess.run(
            [sshd, "-f", str(host / "sshd_config"), "-E", str(host / "sshd.log")], check=True
        )
        while not (host / "sshd.pid").exists():
            time.sleep(0.001)
    up, up_cpu = time.perf_counter() - started, children_cpu() - cpu
    pids = [int((directory / "hosts" / n / "sshd.pid").read_text()) for n in names]
    processes, rss, pss = tree_memory(pids)
    for pid in pids:
        os.kill(pid, 15)
    return {"up": up, "up_cpu": up_cpu, "processes": processes, "rss": rss, "pss": pss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--engine", choices=["openssh", "builtin", "both"], default="both")
    options = parser.parse_args()
    sshd = find_sshd()
    if sshd is None:
        print("sshd is needed for the reference (and the openssh engine)")
        return 2
    count = options.hosts
    port = random.randint(20000, 60000)
    engines = ["openssh", "builtin"] if options.engine == "both" else [options.engine]
    with tempfile.TemporaryDirectory(prefix="herd-bench-lab-") as tmp:
        results = {e: measure_herd(e, count, port, Path(tmp) / e) for e in engines}
        reference_dir = Path(tmp) / "reference"
        measure_herd("openssh", count, port, reference_dir)  # writes the configs reused below
        naive = measure_naive(count, reference_dir, sshd)
    print(f"lab of {count} hosts on port {port}; cores: {os.cpu_count()}")
    print(
        f"reference (ssh-keygen + sshd, one host after another): up {naive['up']:.2f} s "
        f"({naive['up_cpu']:.2f} s CPU), "
        f"{naive['processes']:.0f} processes, RSS {naive['rss'] / 1024:.0f} MiB, "
        f"PSS {naive['pss'] / 1024:.0f} MiB"
    )
    for engine, r in results.items():
        print(
            f"herd lab up --engine {engine}: up {r['up']:.2f} s "
            f"(x{r['up'] / naive['up']:.2f} of reference; {r['up_cpu']:.2f} s CPU, "
            f"x{r['up_cpu'] / naive['up_cpu']:.2f}), down {r['down']:.2f} s, "
            f"{r['answering']:.0f}/{count} hosts answer, {r['processes']:.0f} processes, "
            f"RSS {r['rss'] / 1024:.0f} MiB (x{r['rss'] / naive['rss']:.2f}), "
            f"PSS {r['pss'] / 1024:.0f} MiB (x{r['pss'] / naive['pss']:.2f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
