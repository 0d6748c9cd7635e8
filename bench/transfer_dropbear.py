"""Does a push to Dropbear go faster with more SFTP requests in flight? herd against ``sftp``.

Usage (as root: the Dropbear host runs in a private mount namespace, as in the
system tests): python bench/transfer_dropbear.py [--mb 150] [--repeat 3]
                                                 [--requests 4,16,64] [--cipher C]

One Dropbear host with a BusyBox userland on loopback (the test suite's own,
``tests/system/dropbear.py``), whose SFTP is OpenSSH's ``sftp-server`` behind
Dropbear's small default channel window (24 KB). One file of --mb MB is pushed
to it, under a tmpfs (/dev/shm) so the disk is not what is measured, the
remote copy removed before every run, so nothing is skipped. Client CPU is
this process's (herd runs in it) or that of the ``sftp`` and ``ssh`` it waited for:

  herd N       herd's push engine (``push_host``: temporary name, verified by the
               host's sha256, renamed) with N requests in flight
  herd-nv N    the same with --no-verify: the transfer alone
  sftp N       OpenSSH's ``sftp -R N`` (``put``, nothing verified)
  herd 4 C     with --cipher C: herd's push with only that SSH cipher offered

herd's default is 4 requests for a push to up to 16 hosts. Wall times are the
median of --repeat runs in a rotating order; the ratio is each over ``sftp
64`` (OpenSSH sftp's default). Run on demand, never in the test suite.

Measured on the shared 2-core box (--mb 150 --repeat 3 --cipher aes128-ctr):
herd took 4.5 s with 4, 16 or 64 requests alike (2.7x sftp's 1.7 s, which
varied as little with -R), using 2.5-3.6 s of client CPU against sftp's 0.5:
more requests in flight do not help; herd's per-packet work in the client
does, on Dropbear's small packets. Nor did the cipher (aes128-ctr: 3.8 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import asyncssh

from herd.core.model import Host, Status
from herd.hosts.push import push_host
from herd.hosts.transfer_plan import NoProgress, TransferOptions, plan_push
from herd.hosts.transfer_stream import BlockSource

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.system.dropbear import DropbearFleet, Userland  # noqa: E402 (after the path)


async def _herd_push(
    fleet: DropbearFleet, source: Path, dest: Path, options: TransferOptions, cipher: str
) -> None:
    host = fleet.hosts[0]
    ciphers = {"encryption_algs": [cipher]} if cipher else {}
    async with asyncssh.connect(
        host.address, fleet.port, username=fleet.user, client_keys=[str(fleet.client_key)],
        known_hosts=str(fleet.known_hosts), server_host_key_algs=["ssh-ed25519"],
        agent_path=None, config=None, **ciphers,
    ) as conn:  # fmt: skip
        result = await push_host(
            conn, Host(host.name, host.address), plan=plan_push([source]), dest=f"{dest}/",
            options=options, source=BlockSource(options.block_size, options.cache_budget),
            progress=NoProgress(),
        )  # fmt: skip
    if result.status is not Status.OK:
        raise SystemExit(f"herd push failed: {result.error}")


def _client_cpu() -> float:
    """User and system seconds of this process and the children it waited for (sftp, ssh)."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _run_herd(
    fleet: DropbearFleet, source: Path, dest: Path, options: TransferOptions, cipher: str = ""
) -> None:
    asyncio.run(_herd_push(fleet, source, dest, options, cipher))


def _sftp_push(fleet: DropbearFleet, source: Path, dest: Path, requests: int) -> None:
    host = fleet.hosts[0]
    command = [
        "sftp", "-q", "-b", "-", "-R", str(requests), "-P", str(fleet.port),
        "-i", str(fleet.client_key), "-o", f"UserKnownHostsFile={fleet.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
        f"{fleet.user}@{host.address}",
    ]  # fmt: skip
    batch = f'put "{source}" "{dest}/{source.name}"\n'
    subprocess.run(command, input=batch, text=True, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=150, help="size of the file pushed")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool (median)")
    parser.add_argument("--requests", default="4,16,64", help="requests in flight to try")
    parser.add_argument(
        "--cipher", default="", help="also time herd (4 requests) with this SSH cipher only"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the Dropbear host needs a private mount namespace")
    counts = [int(n) for n in args.requests.split(",")]
    top = Path(tempfile.mkdtemp(prefix="herd-bench-dropbear-"))
    work = Path(tempfile.mkdtemp(prefix="herd-bench-dropbear-", dir="/dev/shm"))
    fleet: DropbearFleet | None = None
    try:
        top.chmod(0o755)
        userland = Userland(top / "userland")
        fleet = DropbearFleet(top / "fleet", userland, [("bench", "bench", "full")], 40).up()
        source = work / "big.bin"
        with source.open("wb") as out:
            for _ in range(args.mb):
                out.write(os.urandom(1024 * 1024))
        dest = work / "dest"
        dest.mkdir()
        tools: dict[str, Callable[[], None]] = {}
        for n in counts:
            for label, verify in (("herd", True), ("herd-nv", False)):
                options = TransferOptions(requests=n, verify=verify)
                tools[f"{label} {n}"] = partial(_run_herd, fleet, source, dest, options)
            tools[f"sftp {n}"] = partial(_sftp_push, fleet, source, dest, n)
        if args.cipher:
            tools[f"herd 4 {args.cipher}"] = partial(
                _run_herd, fleet, source, dest, TransferOptions(requests=4), args.cipher
            )
        times: dict[str, list[float]] = {name: [] for name in tools}
        cpus: dict[str, list[float]] = {name: [] for name in tools}
        names = list(tools)
        for round_ in range(args.repeat):
            order = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in order:
                shutil.rmtree(dest)
                dest.mkdir()
                started, cpu = time.perf_counter(), _client_cpu()
                tools[name]()
                times[name].append(time.perf_counter() - started)
                cpus[name].append(_client_cpu() - cpu)
                assert (dest / source.name).stat().st_size == source.stat().st_size, name
        base = statistics.median(times.get("sftp 64") or times[f"sftp {counts[-1]}"])
        print(f"{args.mb} MB push to one Dropbear host, median of {args.repeat}")
        print(f"{'tool':<20} {'wall s':>8} {'MB/s':>8} {'x sftp 64':>10} {'client cpu s':>13}")
        for name in names:
            wall, cpu = statistics.median(times[name]), statistics.median(cpus[name])
            print(
                f"{name:<20} {wall:>8.2f} {args.mb / wall:>8.1f} {wall / base:>10.2f} {cpu:>13.2f}"
            )
    finally:
        if fleet is not None:
            fleet.down()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
