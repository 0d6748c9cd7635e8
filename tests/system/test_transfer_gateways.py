"""``herd push`` and ``herd pull`` through gateways (``herd_gateway``), on the real OpenSSH fleet.

A push's gateway gets each file once, into a private cache under its user's
home, and pushes to its hosts from there; a pull's gateway pulls into that
cache and herd fetches each host's files back. The fleet's hosts share this
machine's filesystem, so ``{host}`` in a remote path gives each its own directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from .conftest import Fleet
from .test_run_faults import herd, rows
from .test_run_gateways import _gateway_pids, _herd_started, _inventory, _marker, _via
from .test_transfer import make_site

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

_JSON = ("--json", "--connect-timeout", "60")
_HOME = Path(pwd.getpwuid(os.getuid()).pw_dir)  # where the gateway's SFTP session starts


def _caches() -> set[str]:
    """The gateway caches in the gateway user's home (this machine's, here)."""
    return {p.name for p in _HOME.glob(".herd-cache-*")}


def _layout(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under ``root``: its kind, mode, time and contents (or link target)."""
    found: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = ("link", os.readlink(path))
        elif path.is_dir():
            found[name] = ("dir", info.st_mode & 0o7777)
        else:
            found[name] = ("file", info.st_mode & 0o7777, info.st_mtime, path.read_bytes())
    return found


def _kill_gateway_once(process: subprocess.Popen[str], marker: str, sign: Path) -> tuple[str, str]:
    """Once ``sign`` exists, kill web01's herd gateway; herd's stdout and stderr."""
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not sign.exists():
            time.sleep(0.1)
        killed = _gateway_pids(marker, "web01")
        assert killed, "no herd gateway process on web01"
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        return process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_push_through_a_gateway_lands_as_a_direct_one_and_a_rerun_sends_nothing(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    site = make_site(tmp_path / "local")
    (tmp_path / "local" / "motd").write_text("welcome\n")
    (tmp_path / "local" / "motd.copy").write_text("welcome\n")  # the same bytes: sent once
    inventory = _inventory(lab_fleet, tmp_path, {"db": "web01", "web02": "web01", "cache": "web02"})
    home = tmp_path / "home"
    remote = tmp_path / "remote"
    before = _caches()
    local = tmp_path / "local"
    args = ["push", "all", str(site), f"{site}/", str(local / "motd"), str(local / "motd.copy"),
            f"{remote}/{{host}}/srv/", "--mkdir", "--json"]  # fmt: skip
    done = herd(home, inventory, *args)
    assert done.returncode == 0, done.stderr
    first = rows(done.stdout)
    assert {n: r["status"] for n, r in first.items()} == dict.fromkeys(lab_fleet.names(), "ok")
    assert _via(home) == {
        "web01": ["db01", "db02", "web02"],
        "web01 > web02": ["cache01", "cache02"],
    }
    direct = _layout(remote / "web03")
    assert "srv/site/current" in direct and "srv/index.html" in direct and "srv/motd.copy" in direct
    for name in ("db01", "web02", "cache01"):  # one hop, the gateway itself, two hops
        assert _layout(remote / name) == direct, name
    assert not [p for p in remote.rglob("*") if ".herd-" in p.name]
    assert _caches() == before  # every gateway removed its cache

    again = herd(home, inventory, *args)
    assert again.returncode == 0, again.stderr
    for name, row in rows(again.stdout).items():
        assert (row["status"], row["bytes"], row["skipped"]) == ("ok", 0, 8), name
    assert _caches() == before


def test_a_pull_through_gateways_lands_as_a_direct_one(lab_fleet: Fleet, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    for name in lab_fleet.names():
        make_site(remote / name)
        (remote / name / "app.log").write_text(f"log of {name}\n")
    inventory = _inventory(lab_fleet, tmp_path, {"db": "web01", "web02": "web01", "cache": "web02"})
    home = tmp_path / "home"
    fetched = tmp_path / "fetched"
    before = _caches()
    args = ["pull", "all", f"{remote}/{{host}}/site", f"{remote}/{{host}}/*.log", str(fetched),
            "--json"]  # fmt: skip
    for _ in range(2):  # a re-run lands the same, its copies already here skipped
        done = herd(home, inventory, *args)
        assert done.returncode == 0, done.stderr
        statuses = {n: r["status"] for n, r in rows(done.stdout).items()}
        assert statuses == dict.fromkeys(lab_fleet.names(), "ok")
        assert _via(home) == {
            "web01": ["db01", "db02", "web02"],
            "web01 > web02": ["cache01", "cache02"],
        }

        def landed(name: str) -> dict[str, tuple[object, ...]]:
            assert [p.name for p in (fetched / name).iterdir()] == [remote.parts[1]]
            return _layout(fetched / name / remote.relative_to("/") / name)

        direct = landed("web03")
        assert direct["site/current"] == ("link", "index.html")
        assert direct["app.log"][3] == b"log of web03\n"
        for name in ("db01", "web02", "cache01"):  # one hop, the gateway itself, two hops
            theirs = landed(name)
            assert theirs.pop("app.log")[3] == f"log of {name}\n".encode()
            assert theirs == {k: v for k, v in direct.items() if k != "app.log"}, name
        assert not [p for p in fetched.rglob("*") if ".herd-" in p.name]
        assert _caches() == before


class _CountingProxy:
    """A TCP forwarder on loopback: counts the bytes the controller sends through it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._server = socket.create_server(("127.0.4.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.sent = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target, timeout=10)
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for source, sink, counted in ((client, upstream, True), (upstream, client, False)):
                thread = threading.Thread(
                    target=self._pump, args=(source, sink, counted), daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while data := source.recv(256 * 1024):
                sink.sendall(data)
                if counted:
                    with self._lock:
                        self.sent += len(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._server.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        for thread in self._threads:
            thread.join(timeout=10)


def test_a_push_to_20_hosts_behind_a_gateway_crosses_the_controllers_link_about_once(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    size = 2 * 1024 * 1024
    payload = tmp_path / "payload.bin"
    payload.write_bytes(os.urandom(size))
    gateway = lab_fleet.host("web01")
    proxy = _CountingProxy((gateway.address, gateway.port))
    try:
        inventory = _inventory(lab_fleet, tmp_path, {})
        document = yaml.safe_load(inventory.read_text())
        known = tmp_path / "known_hosts"
        lines = lab_fleet.known_hosts.read_text().splitlines()
        web01 = next(line for line in lines if line.startswith(f"[{gateway.address}]:"))
        key = web01.split(" ", 1)[1]
        known.write_text("\n".join([*lines, f"[127.0.4.1]:{proxy.port} {key}"]) + "\n")
        document["all"]["vars"]["known_hosts"] = str(known)
        document["all"]["vars"]["ansible_ssh_common_args"] = (
            f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes"
        )
        web = document["all"]["children"]["web"]["hosts"]
        web["web01"] = {"ansible_host": "127.0.4.1", "ansible_port": proxy.port}
        behind = [h for h in lab_fleet.hosts if h.name != "web01"]
        many = {
            f"node{i:02d}": {"ansible_host": behind[i % 7].address, "herd_gateway": "web01"}
            for i in range(1, 21)
        }
        document["all"]["children"]["many"] = {"hosts": many}
        inventory.write_text(yaml.safe_dump(document))
        before = _caches()
        remote = tmp_path / "remote"
        done = herd(tmp_path / "home", inventory, "push", "many", str(payload),
                    f"{remote}/{{host}}/", "--mkdir", "--json", timeout=150)  # fmt: skip
        sent = proxy.sent
        fetched = tmp_path / "fetched"
        source = f"{remote}/{{host}}/payload.bin"
        back = herd(tmp_path / "home", inventory, "pull", "many", source, str(fetched), "--json",
                    timeout=150)  # fmt: skip
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr
    by_host = rows(done.stdout)
    assert {n: r["status"] for n, r in by_host.items()} == dict.fromkeys(many, "ok")
    for name in many:
        assert (remote / name / "payload.bin").read_bytes() == payload.read_bytes()
    # one copy and the SSH and herd messages around it; a direct push would send twenty
    assert size < sent < 1.5 * size, sent
    # and back: twenty hosts fetched through one gateway, a few at a time on its connection
    assert back.returncode == 0, back.stderr
    assert {n: r["status"] for n, r in rows(back.stdout).items()} == dict.fromkeys(many, "ok")
    for name in many:
        landed = fetched / name / remote.relative_to("/") / name / "payload.bin"
        assert landed.read_bytes() == payload.read_bytes()
    assert _caches() == before


def test_a_gateway_killed_mid_push_loses_its_hosts_and_nothing_is_pushed_twice(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    payload = tmp_path / "app.conf"
    payload.write_text("port = 80\n")
    marker = _marker("push")
    inventory = _inventory(lab_fleet, tmp_path, {"db": "web01", "cache": "web02"}, marker=marker)
    remote = tmp_path / "remote"
    before = _caches()
    lab_fleet.freeze("db01")  # the gateway's connection to db01 hangs: the push is under way
    try:
        process = _herd_started(
            tmp_path, inventory, "push", "all", str(payload), f"{remote}/{{host}}/", "--mkdir",
            *_JSON,
        )  # fmt: skip
        # db02, through web01 too, has its file: web01 is under way
        stdout, stderr = _kill_gateway_once(process, marker, remote / "db02" / "app.conf")
    finally:
        lab_fleet.thaw("db01")
    assert process.returncode == 1, stderr
    by_host = rows(stdout)
    assert by_host["db01"]["status"] == "unreachable"
    assert str(by_host["db01"]["error"]).startswith("gateway web01 lost after "), by_host["db01"]
    for name in sorted(set(lab_fleet.names()) - {"db01"}):
        assert by_host[name]["status"] == "ok", by_host[name]
    assert not (remote / "db01").exists()  # never pushed another way
    assert _caches() == before  # herd removed the dead gateway's cache itself


def test_ctrl_c_during_a_push_through_a_gateway_removes_its_cache(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    payload = tmp_path / "app.conf"
    payload.write_text("port = 80\n")
    marker = _marker("push-int")
    inventory = _inventory(lab_fleet, tmp_path, {"db": "web01"}, marker=marker)
    remote = tmp_path / "remote"
    before = _caches()
    lab_fleet.freeze("db01")  # the push to db01 waits in its handshake until Ctrl-C
    try:
        process = _herd_started(
            tmp_path, inventory, "push", "db", str(payload), f"{remote}/{{host}}/", "--mkdir",
            *_JSON,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (remote / "db02" / "app.conf").exists():
                time.sleep(0.1)
            assert _gateway_pids(marker, "web01")
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    finally:
        lab_fleet.thaw("db01")
    assert process.returncode == 130, stderr
    assert {n: r["status"] for n, r in rows(stdout).items()} == {"db02": "ok"}  # done before
    assert not (remote / "db01").exists()
    deadline = time.monotonic() + 10
    while _gateway_pids(marker, "web01") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gateway_pids(marker, "web01") == []
    assert _caches() == before


def test_a_gateway_killed_mid_pull_loses_its_hosts_and_leaves_no_cache(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    for name in lab_fleet.names():
        (remote / name).mkdir(parents=True)
        (remote / name / "app.log").write_text(f"log of {name}\n")
    marker = _marker("pull")
    inventory = _inventory(lab_fleet, tmp_path, {"db": "web01"}, marker=marker)
    fetched = tmp_path / "fetched"
    before = _caches()
    lab_fleet.freeze("db01")  # the gateway's connection to db01 hangs: the pull is under way
    try:
        process = _herd_started(
            tmp_path, inventory, "pull", "db:web03", f"{remote}/{{host}}/app.log", str(fetched),
            *_JSON,
        )  # fmt: skip
        # db02's file came back through web01: web01 is under way
        landed = fetched / "db02" / remote.relative_to("/") / "db02" / "app.log"
        stdout, stderr = _kill_gateway_once(process, marker, landed)
    finally:
        lab_fleet.thaw("db01")
    assert process.returncode == 1, stderr
    by_host = rows(stdout)
    assert by_host["db01"]["status"] == "unreachable"
    assert str(by_host["db01"]["error"]).startswith("gateway web01 lost after "), by_host["db01"]
    assert (by_host["db02"]["status"], by_host["web03"]["status"]) == ("ok", "ok")
    assert not (fetched / "db01").exists()
    assert _caches() == before  # herd removed the dead gateway's cache itself


# A gateway that lies: for each host it leaves in its cache a link out to / and, where
# a directory goes, a file, and says the host's pull went fine.
_HOSTILE_GATEWAY = """
import json, os, sys
from pathlib import Path
from herd.core.events import HostFinished, encode
from herd.core.model import HostResult, Status
cache = Path(json.loads(sys.stdin.readline())["cache"])
for line in sys.stdin:
    message = json.loads(line)
    if message["control"] != "host":
        continue
    host = message["host"]
    top = cache / host["name"]
    (top / "d").mkdir(parents=True)
    (top / "d" / "x").write_text("from the gateway")
    os.symlink("/", top / "escape")
    result = HostResult(host["name"], host["address"], Status.OK)
    sys.stdout.write(encode(HostFinished(result)) + "\\n")
    sys.stdout.flush()
"""


def test_a_gateway_is_trusted_no_more_than_a_host_by_a_pull(
    lab_fleet: Fleet, tmp_path: Path
) -> None:
    inventory = _inventory(lab_fleet, tmp_path, {"db01": "web01"})
    document = yaml.safe_load(inventory.read_text())
    script = tmp_path / "hostile_gateway.py"
    script.write_text(_HOSTILE_GATEWAY)
    document["all"]["vars"]["herd_gateway_command"] = f"{sys.executable} {script}"
    inventory.write_text(yaml.safe_dump(document))
    fetched = tmp_path / "fetched"
    outside = tmp_path / "outside"
    outside.mkdir()
    (fetched / "db01").mkdir(parents=True)
    (fetched / "db01" / "d").symlink_to(outside)  # left by an earlier hostile pull, say
    before = _caches()
    done = herd(tmp_path / "home", inventory, "pull", "db01", "/etc/hostname", str(fetched),
                "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert rows(done.stdout)["db01"]["status"] == "ok"
    assert list(outside.iterdir()) == []  # never written through the link
    assert (fetched / "db01" / "d").is_dir() and not (fetched / "db01" / "d").is_symlink()
    assert (fetched / "db01" / "d" / "x").read_text() == "from the gateway"
    assert os.readlink(fetched / "db01" / "escape") == "/"  # a link, kept as one, not followed
    assert _caches() == before
