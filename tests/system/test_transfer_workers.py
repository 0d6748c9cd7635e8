"""Push and pull carried by worker processes: same results as in herd's own process, and faults.

herd hands the hosts of a push or pull to worker processes (one per core by
default for 8 hosts or more); these tests ask for them with ``--workers`` so
they run whatever the machine's core count.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.ui.transfer import TransferProgressBar

from .conftest import Fleet
from .test_transfer_faults import json_results, leftovers, sha256, sparse_file, start_push

pytestmark = pytest.mark.system

_WORKER = "herd.hosts.worker"


def herd(fleet: Fleet, *args: str) -> int:
    return main(["-i", str(fleet.inventory), *args])


def workers_of(pid: int) -> list[int]:
    """The transfer workers among ``pid``'s children."""
    found = []
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in map(int, children):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if _WORKER.encode() in cmdline:
            found.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def files_of(row: dict[str, object]) -> set[tuple[str, int, str]]:
    files = row["files"]
    assert isinstance(files, list)
    return {(str(f["path"]).split("/site/", 1)[1], f["size"], f["sha256"]) for f in files}


def test_workers_push_and_pull_the_same_as_herd_in_one_process(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    site = tmp_path / "site"
    (site / "conf").mkdir(parents=True)
    for index in range(20):
        (site / "conf" / f"{index}.conf").write_bytes(os.urandom(5000 + index))
    (site / "blob").write_bytes(os.urandom(3 * 1024 * 1024))
    results = {}
    for workers in ("0", "2"):
        remote = tmp_path / f"remote-{workers}"
        code = herd(lab_fleet, "push", "all", str(site), f"{remote}/{{host}}/", "--mkdir",
                    "--json", "--workers", workers)  # fmt: skip
        assert code == 0
        results[workers] = json_results(capsys.readouterr().out)
        assert not leftovers(remote)
        for name in lab_fleet.names():
            assert sha256(remote / name / "site" / "blob") == sha256(site / "blob")
    assert set(results["2"]) == set(lab_fleet.names())
    for name, row in results["2"].items():
        twin = results["0"][name]
        assert (row["status"], row["bytes"], row["skipped"]) == ("ok", twin["bytes"], 0)
        assert files_of(row) == files_of(twin)

    fetched = tmp_path / "fetched"
    remote = tmp_path / "remote-2"
    code = herd(lab_fleet, "pull", "all", f"{remote}/{{host}}/site", str(fetched), "--json",
                "--workers", "2")  # fmt: skip
    assert code == 0
    pulled = json_results(capsys.readouterr().out)
    for name in lab_fleet.names():
        assert pulled[name]["status"] == "ok"
        assert len(files_of(pulled[name])) == 21
        landed = fetched / name / str(remote / name / "site" / "blob").lstrip("/")
        assert sha256(landed) == sha256(site / "blob")
    assert not leftovers(fetched)


def test_a_worker_killed_mid_transfer_fails_only_its_own_hosts(
    lab_fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = tmp_path / "release.tar"
    big.write_bytes(os.urandom(16 * 1024 * 1024))
    remote = tmp_path / "remote"
    killed: list[int] = []
    original = TransferProgressBar.moved

    def moved_here(self: TransferProgressBar, name: str, nbytes: int) -> None:
        if not killed:
            workers = workers_of(os.getpid())
            assert len(workers) == 2
            os.kill(workers[0], signal.SIGKILL)
            killed.append(workers[0])
        original(self, name, nbytes)

    monkeypatch.setattr(TransferProgressBar, "moved", moved_here)
    # two hosts at a time: the hosts that start after the kill all go to the live worker
    code = herd(lab_fleet, "push", "all", str(big), f"{remote}/{{host}}/", "--mkdir", "--json",
                "--workers", "2", "--forks", "2")  # fmt: skip
    assert killed
    assert code == 1
    rows = json_results(capsys.readouterr().out)
    assert set(rows) == set(lab_fleet.names())
    failed = {n for n, r in rows.items() if r["status"] != "ok"}
    assert 1 <= len(failed) <= 2  # what the killed worker had in flight, nothing after
    for name, row in rows.items():
        if name in failed:
            assert row["error"] == (
                f"transfer worker {killed[0]} was killed (signal 9) during the transfer"
            )
            assert not (remote / name / "release.tar").exists()  # never a partial file
        else:
            assert sha256(remote / name / "release.tar") == sha256(big)


def wait_until(what: str, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("how", ["interrupt", "kill"])
def test_workers_clean_up_when_herd_is_stopped_midway(
    lab_fleet: Fleet, tmp_path: Path, how: str
) -> None:
    big = sparse_file(tmp_path / "huge.bin")
    dest = tmp_path / "remote"
    home = tmp_path / "home"
    process = start_push(lab_fleet, big, f"{dest}/{{host}}/", home, "--workers", "2", pattern="web")
    try:
        wait_until("temporary files", lambda: dest.exists() and len(leftovers(dest)) >= 2)
        workers = workers_of(process.pid)
        assert len(workers) == 2
        process.send_signal(signal.SIGINT if how == "interrupt" else signal.SIGKILL)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    # Ctrl-C: herd cancels each host on its worker; SIGKILL: the workers see their
    # stdin close and cancel by themselves. Either way the temporary files go.
    wait_until("the workers to exit", lambda: not any(alive(w) for w in workers))
    assert process.returncode == (130 if how == "interrupt" else -signal.SIGKILL), err
    assert not leftovers(dest)
    assert not any((dest / name / "huge.bin").exists() for name in lab_fleet.names("web"))
