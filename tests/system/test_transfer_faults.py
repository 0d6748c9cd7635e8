"""herd push and pull when things go wrong: bad input, and one host failing while the rest go on.

After each fault: no partial file under a final name anywhere, and the
operation log says exactly which host got which file. Faults that must strike
mid-transfer are triggered from the progress events (the first bytes a given
host moves), so they land mid-transfer every time, not by timing luck.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.core.audit import AuditLog
from herd.core.model import HostResult
from herd.core.paths import HerdPaths
from herd.ui.transfer import TransferProgressBar

from .conftest import Fleet, both_engines

pytestmark = pytest.mark.system


def herd(fleet: Fleet, *args: str) -> int:
    return main(["-i", str(fleet.inventory), *args])


def json_results(out: str) -> dict[str, dict[str, object]]:
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {str(row["host"]): row for row in rows}


def logged(home: Path) -> dict[str, HostResult]:
    """The host results of the last push or pull in the operation log."""
    with AuditLog(HerdPaths(home).audit_db) as log:
        op_id = log.last_operation_id(("push", "pull"))
        assert op_id is not None
        return {r.host: r for r in log.host_results(op_id)}


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".herd-" in p.name]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def on_first_bytes(
    monkeypatch: pytest.MonkeyPatch, host: str, action: Callable[[], None], after: int = 1
) -> list[bool]:
    """Run ``action`` once, when ``host`` has moved at least ``after`` bytes.

    Tests using it pass --no-agent: the fault must land as the bytes move in the
    process that moves them, not when the agent's events about them arrive.
    """
    fired: list[bool] = []
    moved: dict[str, int] = {}
    original = TransferProgressBar.moved

    def moved_here(self: TransferProgressBar, name: str, nbytes: int) -> None:
        moved[name] = moved.get(name, 0) + nbytes
        if name == host and not fired and moved[name] >= after:
            fired.append(True)
            action()
        original(self, name, nbytes)

    monkeypatch.setattr(TransferProgressBar, "moved", moved_here)
    return fired


def per_host_dirs(remote: Path, names: list[str]) -> None:
    for name in names:
        (remote / name).mkdir(parents=True, exist_ok=True)


# -- bad input: exit 2, nothing sent ---------------------------------------------------------


@both_engines
def test_a_missing_local_source_is_one_line_exit_2_and_nothing_is_sent(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    (tmp_path / "good.conf").write_text("ok\n")
    dest = tmp_path / "remote"
    code = herd(lab_fleet, "push", "all", str(tmp_path / "good.conf"), str(tmp_path / "gone.conf"),
                f"{dest}/", "--mkdir")  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"herd: error: {tmp_path / 'gone.conf'}: no such file or directory"
    assert not dest.exists()
    with AuditLog(HerdPaths(isolated_env).audit_db) as log:
        assert log.last_operation_id(("push",)) is None


@both_engines
def test_an_unreadable_local_file_is_one_line_exit_2_and_nothing_is_sent(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "good.conf").write_text("ok\n")
    dest = tmp_path / "remote"
    # /proc/self/mem fails with EIO at offset 0 even for root, who reads any mode
    code = herd(lab_fleet, "push", "all", str(tmp_path / "good.conf"), "/proc/self/mem",
                f"{dest}/", "--mkdir")  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/proc/self/mem: cannot read" in err[0]
    assert not dest.exists()


# -- per-host faults: that host fails, the others carry on ---------------------------------


@both_engines
def test_a_missing_remote_directory_without_mkdir_fails_only_that_host(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    (tmp_path / "app.conf").write_text("x = 1\n")
    remote = tmp_path / "remote"
    names = lab_fleet.names("web")
    per_host_dirs(remote, [n for n in names if n != "web02"])
    code = herd(lab_fleet, "push", "web", str(tmp_path / "app.conf"), f"{remote}/{{host}}/",
                "--json")  # fmt: skip
    assert code == 1
    rows = json_results(capsys.readouterr().out)
    assert rows["web02"]["status"] == "error"
    assert rows["web02"]["error"] == f"{remote}/web02: no such directory (--mkdir creates it)"
    assert not (remote / "web02").exists()
    for name in names:
        if name != "web02":
            assert rows[name]["status"] == "ok"
            assert (remote / name / "app.conf").read_text() == "x = 1\n"
    log = logged(isolated_env)
    assert log["web02"].files == ()
    assert [f.path for f in log["web01"].files] == [f"{remote}/web01/app.conf"]


@both_engines
def test_permission_denied_on_one_host_fails_only_that_host(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    (tmp_path / "app.conf").write_text("x = 1\n")
    remote = tmp_path / "remote"
    names = lab_fleet.names("web")
    per_host_dirs(remote, names)
    locked = remote / "web03"
    # root ignores file modes; an immutable directory refuses even root
    subprocess.run(["chattr", "+i", str(locked)], check=True)
    try:
        code = herd(lab_fleet, "push", "web", str(tmp_path / "app.conf"), f"{remote}/{{host}}/",
                    "--json")  # fmt: skip
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert code == 1
    rows = json_results(capsys.readouterr().out)
    assert rows["web03"]["status"] == "error"
    assert "permission denied" in str(rows["web03"]["error"]).lower()
    assert list(locked.iterdir()) == []
    assert all(rows[n]["status"] == "ok" for n in names if n != "web03")
    assert not leftovers(remote)
    assert logged(isolated_env)["web03"].files == ()


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def test_a_full_disk_on_one_host_fails_only_that_host_and_leaves_no_partial_file(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    big = tmp_path / "image.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    remote = tmp_path / "remote"
    names = lab_fleet.names("db") + lab_fleet.names("cache")
    per_host_dirs(remote, names)
    with small_tmpfs(remote / "db01", "1m"):
        code = herd(lab_fleet, "push", "db:cache", str(big), f"{remote}/{{host}}/", "--json")
        rows = json_results(capsys.readouterr().out)
        assert list((remote / "db01").iterdir()) == []  # neither the file nor a temporary
    assert code == 1
    assert rows["db01"]["status"] == "error"
    assert rows["db01"]["error"] == f"{remote}/db01/image.bin: no space left on device"
    for name in names:
        if name != "db01":
            assert rows[name]["status"] == "ok"
            assert sha256(remote / name / "image.bin") == sha256(big)
    log = logged(isolated_env)
    assert log["db01"].files == ()
    assert [f.sha256 for f in log["db02"].files] == [sha256(big)]


def test_a_host_that_dies_mid_transfer_fails_alone_and_gets_no_partial_file(
    lab_fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = tmp_path / "release.tar"
    big.write_bytes(os.urandom(8 * 1024 * 1024))
    remote = tmp_path / "remote"
    names = lab_fleet.names("web")
    per_host_dirs(remote, names)
    fired = on_first_bytes(monkeypatch, "web04", lambda: lab_fleet.stop("web04"), 512 * 1024)
    code = herd(lab_fleet, "push", "--no-agent", "web", str(big), f"{remote}/{{host}}/", "--json",
                "--stall-timeout", "20")  # fmt: skip
    assert fired
    assert code == 1
    rows = json_results(capsys.readouterr().out)
    assert rows["web04"]["status"] == "error"
    reason, _, named = str(rows["web04"]["error"]).partition("; left on the host: ")
    assert reason.endswith("connection lost")
    # a dead host cannot be asked to remove its temporary file: the reason names it
    assert all(str(left) in named for left in leftovers(remote / "web04"))
    assert not (remote / "web04" / "release.tar").exists()
    for name in names:
        if name != "web04":
            assert rows[name]["status"] == "ok", rows[name]["error"]
            assert sha256(remote / name / "release.tar") == sha256(big)
    log = logged(isolated_env)
    assert log["web04"].files == ()
    assert {n for n, r in log.items() if r.files} == {n for n in names if n != "web04"}


@both_engines
def test_a_remote_file_changing_while_pulled_fails_that_host_and_lands_nothing(
    lab_fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    remote = tmp_path / "remote"
    names = lab_fleet.names("cache") + lab_fleet.names("db")
    for name in names:
        (remote / name).mkdir(parents=True)
        (remote / name / "data.bin").write_bytes(os.urandom(4 * 1024 * 1024))
        (remote / name / "small.txt").write_text(f"{name}\n")
    changing = remote / "cache01" / "data.bin"

    def rewrite() -> None:
        with changing.open("r+b") as handle:
            handle.seek(3 * 1024 * 1024)
            handle.write(os.urandom(4096))
        os.utime(changing, (time.time() + 5, time.time() + 5))

    fired = on_first_bytes(monkeypatch, "cache01", rewrite, 256 * 1024)
    fetched = tmp_path / "fetched"
    code = herd(lab_fleet, "pull", "--no-agent", "cache:db", f"{remote}/{{host}}/data.bin",
                f"{remote}/{{host}}/small.txt", str(fetched), "--json", "--forks", "1")  # fmt: skip
    assert fired
    assert code == 1
    rows = json_results(capsys.readouterr().out)
    assert rows["cache01"]["status"] == "error"
    assert "data.bin: changed while being pulled" in str(rows["cache01"]["error"])
    mine = fetched / "cache01" / str(remote / "cache01").lstrip("/")
    assert not (mine / "data.bin").exists()
    assert (mine / "small.txt").read_text() == "cache01\n"  # the host's other file still came
    assert not leftovers(fetched)
    for name in names:
        if name != "cache01":
            assert rows[name]["status"] == "ok"
            local = fetched / name / str(remote / name / "data.bin").lstrip("/")
            assert sha256(local) == sha256(remote / name / "data.bin")
    log = logged(isolated_env)
    assert [Path(f.path).name for f in log["cache01"].files] == ["small.txt"]
    assert sorted(Path(f.path).name for f in log["db01"].files) == ["data.bin", "small.txt"]


# -- the herd process itself stopped midway --------------------------------------------------


def sparse_file(path: Path, size: int = 300 * 1024 * 1024) -> Path:
    """A file big enough to still be in flight when herd is stopped, costing no disk."""
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def start_push(
    fleet: Fleet, big: Path, dest: str, home: Path, *args: str, pattern: str = "web01"
) -> subprocess.Popen[bytes]:
    """``herd push PATTERN BIG DEST --mkdir ARGS`` as its own process, to be stopped midway."""
    command = [sys.executable, "-m", "herd", "-i", str(fleet.inventory), "--home", str(home),
               "push", pattern, str(big), dest, "--no-progress", "--mkdir", *args]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_temp(dest: Path, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dest.exists() and leftovers(dest) and leftovers(dest)[0].stat().st_size > 0:
            return
        if process.poll() is not None:
            raise AssertionError("the push ended before it could be stopped midway")
        time.sleep(0.01)
    raise AssertionError("no temporary file appeared")


@both_engines
@pytest.mark.parametrize("how", ["kill", "interrupt"])
def test_a_push_stopped_midway_leaves_no_partial_file_under_the_final_name(
    lab_fleet: Fleet, tmp_path: Path, how: str
) -> None:
    big = sparse_file(tmp_path / "huge.bin")
    dest = tmp_path / "remote"
    process = start_push(lab_fleet, big, f"{dest}/", tmp_path / "home")
    try:
        wait_for_temp(dest, process)
        process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
        _, err = process.communicate(timeout=30)
        code = process.returncode
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    assert not (dest / "huge.bin").exists()
    if how == "interrupt":
        assert code == 130, err
        assert not leftovers(dest)  # Ctrl-C cleans up its temporary files
    else:
        assert code == -signal.SIGKILL


@both_engines
def test_a_host_that_freezes_mid_transfer_times_out_alone_and_says_what_it_left(
    lab_fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = tmp_path / "release.tar"
    big.write_bytes(os.urandom(8 * 1024 * 1024))
    remote = tmp_path / "remote"
    names = lab_fleet.names("db")
    per_host_dirs(remote, names)
    fired = on_first_bytes(monkeypatch, "db02", lambda: lab_fleet.freeze("db02"), 512 * 1024)
    started = time.monotonic()
    code = herd(lab_fleet, "push", "--no-agent", "db", str(big), f"{remote}/{{host}}/", "--json",
                "--stall-timeout", "2")  # fmt: skip
    elapsed = time.monotonic() - started
    assert fired
    assert code == 1
    captured = capsys.readouterr()
    rows = json_results(captured.out)
    assert rows["db02"]["status"] == "timeout"
    (left,) = leftovers(remote / "db02")  # a frozen host cannot be asked to remove it
    assert rows["db02"]["error"] == (
        f"no progress for 2 s; left on the host: {left}"
        " (a push of the same files removes them after a day)"
    )
    assert str(left) in captured.err  # the summary says where it is
    assert rows["db01"]["status"] == "ok"
    assert not (remote / "db02" / "release.tar").exists()
    assert elapsed < 30  # stall timeout + bounded clean-up and hang-up, not forever
    assert logged(isolated_env)["db02"].files == ()


def sftp_sessions(fleet: Fleet, name: str) -> list[int]:
    """The processes serving host ``name``'s SFTP sessions (sshd's internal-sftp)."""
    found: list[int] = []
    pending = [fleet.host(name).pid or 0]
    while pending:
        pid = pending.pop()
        with contextlib.suppress(FileNotFoundError):
            if b"internal-sftp" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
            pending.extend(map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split()))
    return found


def test_a_push_whose_sftp_session_stalls_removes_its_temporary_file_if_the_host_answers(
    lab_fleet: Fleet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = tmp_path / "release.tar"
    big.write_bytes(os.urandom(8 * 1024 * 1024))
    remote = tmp_path / "remote"
    per_host_dirs(remote, lab_fleet.names("cache"))
    frozen: list[int] = []

    def freeze_the_sftp_session() -> None:  # its disk hangs, say; sshd itself still answers
        for pid in sftp_sessions(lab_fleet, "cache02"):
            os.kill(pid, signal.SIGSTOP)
            frozen.append(pid)

    fired = on_first_bytes(monkeypatch, "cache02", freeze_the_sftp_session, 512 * 1024)
    try:
        code = herd(lab_fleet, "push", "--no-agent", "cache", str(big), f"{remote}/{{host}}/",
                    "--json", "--stall-timeout", "2")  # fmt: skip
    finally:
        for pid in frozen:  # killed while stopped: it never runs another request
            os.kill(pid, signal.SIGKILL)
    assert fired and frozen
    rows = json_results(capsys.readouterr().out)
    assert (code, rows["cache02"]["status"]) == (1, "timeout")
    assert rows["cache02"]["error"] == "no progress for 2 s"
    assert list((remote / "cache02").iterdir()) == []  # no temporary file left behind
    assert rows["cache01"]["status"] == "ok"
