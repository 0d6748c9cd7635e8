"""Benchmark kept connections: ``herd run`` cold, warm through the agent, and the others warm.

Usage: python bench/agent.py [--hosts 200] [--repeat 5] [--tools herd-cold,herd-warm,...]

On the lab's OpenSSH fleet, ``uname -a`` on every host with:
  herd-cold    ``herd run all --no-agent``: every host connected and logged in afresh
  herd-warm    ``herd run all`` through an agent that already holds the connections
  herd-warm-1  the same, on one host
  openssh-cm   ``ssh`` per host, in parallel (xargs -P), through ControlMaster sockets a
               first round opened (ControlPersist)
  ansible-cp   ``ansible all -m raw``, its second run (its default ControlPersist)
For each: the wall time, and the controller's CPU per host in ms: the client
process and the children it waited for, plus (herd-warm) the CPU of the agent and
of its warm command line (with the forks that ran the commands) during the run,
read from /proc. ControlMaster processes, detached like the
agent, are counted too (their /proc times, summed). The tools take turns,
median of --repeat. Run on demand, never in the test suite.

With --before-src DIR (the src/ of an earlier herd), herd-warm-before and
herd-warm-1-before run that herd through its own agent, beside this one: figures
before and after a change, in one run (--before-command: its own `herd` script).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import herd as herd_package
from herd.lab import Lab, free_port
from herd.operation.agent_protocol import AgentFiles, agent_pid, warm_pid
from run_fanout import Measure, measure, write_inventory

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
OPENERS = ("herd-warm", "herd-warm-before", "openssh-cm", "ansible-cp")


def process_cpu(pids: list[int]) -> float:
    """User+system seconds the processes ``pids`` and the children they reaped have used so
    far (those still alive): the warm command line's forks count once it has reaped them."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / TICK
    return total


def masters(control_dir: Path) -> list[int]:
    """The pids of the ssh ControlMaster processes serving sockets in ``control_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmdline.startswith(b"ssh") and str(control_dir).encode() in cmdline:
            found.append(int(entry.name))
    return found


def herd_run(script: Path, inventory: Path, *options: str) -> list[str]:
    """``herd run all -- uname -a`` on ``inventory``, by the ``herd`` script at ``script``."""
    return [str(script), "-i", str(inventory), "run", "all", "--json", "-y", *options,
            "--", "uname -a"]  # fmt: skip


def helpers_of(tool: str, files: AgentFiles, control: Path) -> list[int]:
    """The detached processes that work for ``tool``: herd's agent and its warm command
    line (``files``: that herd's), ssh's ControlMasters."""
    if tool.startswith("herd-warm"):
        pids = [agent_pid(files), warm_pid(files)]
        return [pid for pid in pids if pid]
    return masters(control) if tool == "openssh-cm" else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tools", default="herd-cold,herd-warm,herd-warm-1,openssh-cm,ansible-cp")
    parser.add_argument("--before-src", type=Path, help="src/ of an earlier herd to compare")
    parser.add_argument("--before-command", type=Path, default=BIN / "herd",
                        help="the earlier herd's `herd` script (default: this venv's)")  # fmt: skip
    args = parser.parse_args()
    chosen = args.tools.split(",")
    if args.before_src:
        chosen += ["herd-warm-before", "herd-warm-1-before"]
    work = Path(tempfile.mkdtemp(prefix="herd-bench-agent-"))
    runtime = work / "xdg"
    runtime.mkdir(mode=0o700)
    control = work / "cm"
    control.mkdir(mode=0o700)
    print(f"bringing up {args.hosts} OpenSSH hosts in {work / 'lab'} ...", flush=True)
    lab = Lab.up(work / "lab", args.hosts, engine="openssh", port=free_port(args.hosts))
    env = {**os.environ, "HERD_HOME": str(work / "home"), "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("SSH_AUTH_SOCK", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's herd runs from compiled modules
    compileall.compile_dir(Path(herd_package.__file__).parent, quiet=1)
    files = AgentFiles(runtime / "herd")
    before_files = AgentFiles(work / "xdg-before" / "herd")
    before_env = dict(env)
    if args.before_src:
        (work / "xdg-before").mkdir(mode=0o700)
        compileall.compile_dir(args.before_src / "herd", quiet=1)
        before_env["PYTHONPATH"] = str(args.before_src.resolve())
        before_env["HERD_HOME"] = str(work / "home-before")
        before_env["XDG_RUNTIME_DIR"] = str(work / "xdg-before")
    try:
        inventory = write_inventory(lab, args.hosts, work)
        one = write_inventory(lab, 1, work)
        ssh = (
            f"ssh -F none -p {lab.port} -l {lab.state.user} -i {lab.client_key}"
            f" -o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes"
            f" -o ControlMaster=auto -o ControlPersist=300 -o ControlPath={control}/%h"
        )
        addresses = " ".join(h.address for h in lab.hosts)
        xargs = f"printf '%s\\n' {addresses} | xargs -P 100 -I@ {ssh} @ uname -a"
        ansible_env = {
            **env,
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
            "ANSIBLE_NOCOLOR": "1",
        }
        commands = {
            "herd-cold": (herd_run(BIN / "herd", inventory, "--no-agent"), env),
            "herd-warm": (herd_run(BIN / "herd", inventory), env),
            "herd-warm-1": (herd_run(BIN / "herd", one), env),
            "herd-warm-before": (herd_run(args.before_command, inventory), before_env),
            "herd-warm-1-before": (herd_run(args.before_command, one), before_env),
            "openssh-cm": (["sh", "-c", xargs], env),
            "ansible-cp": ([str(BIN / "ansible"), "all", "-i", str(inventory), "-m", "raw",
                            "-a", "uname -a", "-f", "100", "-o"], ansible_env),
        }  # fmt: skip
        for tool in OPENERS:  # the first round opens their connections
            if tool in chosen and (tool != "ansible-cp" or (BIN / "ansible").exists()):
                measure(*commands[tool])
        results: dict[str, list[Measure]] = {tool: [] for tool in chosen}
        for _ in range(args.repeat):
            for tool in chosen:
                if tool == "ansible-cp" and not (BIN / "ansible").exists():
                    continue
                mine = before_files if tool.endswith("-before") else files
                helpers = helpers_of(tool, mine, control)
                before = process_cpu(helpers)
                taken = measure(*commands[tool])
                extra = process_cpu(helpers) - before
                results[tool].append(Measure(taken.wall, taken.cpu + extra, taken.rss_mb))
        print(f"\n{args.hosts} hosts, uname -a, median of {args.repeat}:")
        colds = results.get("herd-cold")
        cold = statistics.median(m.wall for m in colds) if colds else None
        for tool, runs in results.items():
            if not runs:
                continue
            wall = statistics.median(m.wall for m in runs)
            hosts = 1 if tool.startswith("herd-warm-1") else args.hosts
            cpu_ms = statistics.median(m.cpu for m in runs) / hosts * 1000
            ratio = f"  {wall / cold:.2f}x herd-cold's wall" if cold else ""
            print(f"  {tool:<18} wall {wall:7.3f} s   CPU {cpu_ms:6.2f} ms/host{ratio}")
    finally:
        for pid in (agent_pid(files), agent_pid(before_files)):
            if pid:
                os.kill(pid, 15)
        stop_masters = f"for s in {control}/*; do ssh -o ControlPath=$s -O exit x; done"
        subprocess.run(["sh", "-c", stop_masters], capture_output=True, check=False)
        lab.down()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
