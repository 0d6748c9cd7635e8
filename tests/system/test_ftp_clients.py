"""Real FTP clients (curl, lftp, ftplib) against a herd FTP server on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ftp_server_support import PASSWORD, RunningServer, running_server

pytestmark = pytest.mark.system

MB = 1024 * 1024


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.geteuid() == 0:
            pytest.fail(f"{name} is missing: `make system-deps` installs it")
        pytest.skip(f"{name} is not installed and we are not root")
    return found


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


def _random_file(path: Path, size: int) -> Path:
    with path.open("wb") as out:
        for _ in range(size // MB):
            out.write(os.urandom(MB))
        out.write(os.urandom(size % MB))
    return path


def _largest(directory: Path) -> int:
    """The size of the largest file in ``directory`` (files may vanish as we look)."""
    sizes = [0]
    for path in directory.iterdir():
        with contextlib.suppress(FileNotFoundError):
            sizes.append(path.stat().st_size)
    return max(sizes)


def _server_hash(running: RunningServer, path: str) -> str:
    with running.client() as ftp:
        return ftp.sendcmd(f"HASH {path}").split()[3]


def curl(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    command = [_tool("curl"), "--silent", "--show-error", "--max-time", str(timeout - 5), *args]
    result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    if check:
        assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result


def lftp(
    running: RunningServer, script: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    settings = (
        "set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 15;"
        " set net:reconnect-interval-base 1; set cmd:fail-exit yes; set xfer:clobber on;"
        " set ftp:prefer-epsv no;"
    )
    opening = f"open -u alice,{PASSWORD} -p {running.port} {running.host};"
    return subprocess.run(
        [_tool("lftp"), "-c", settings + opening + script],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path / "server") as running:
        yield running


# -- curl -------------------------------------------------------------------------------------


def test_curl_logs_in_and_lists(ftp_server: RunningServer) -> None:
    (ftp_server.home / "hello.txt").write_bytes(b"hello")
    (ftp_server.home / "sub").mkdir()
    listing = curl(ftp_server.url("/")).stdout.decode()
    names = {line.split(None, 8)[8] for line in listing.splitlines()}
    assert names == {"hello.txt", "sub"}
    assert curl("--list-only", ftp_server.url("/")).stdout.decode().split() == ["hello.txt", "sub"]
    assert curl(ftp_server.url("/hello.txt")).stdout == b"hello"
    wrong = curl(f"ftp://alice:nope@{ftp_server.host}:{ftp_server.port}/", check=False)
    assert wrong.returncode == 67  # CURLE_LOGIN_DENIED


def test_a_50_mb_upload_and_download_with_curl_verified_by_hash(
    ftp_server: RunningServer, tmp_path: Path
) -> None:
    local = _random_file(tmp_path / "big.bin", 50 * MB)
    curl("-T", str(local), ftp_server.url("/big.bin"))
    assert _server_hash(ftp_server, "big.bin") == _sha256(local)
    back = tmp_path / "back.bin"
    curl("-o", str(back), ftp_server.url("/big.bin"))
    assert _sha256(back) == _sha256(local)
    stor = [e for e in ftp_server.events.events if e.command == "STOR /big.bin"]
    assert stor[0].files[0].sha256 == _sha256(local)


def test_curl_resumes_an_interrupted_download(ftp_server: RunningServer, tmp_path: Path) -> None:
    source = _random_file(ftp_server.home / "movie.bin", 12 * MB)
    out = tmp_path / "movie.bin"
    slow = subprocess.Popen(
        [_tool("curl"), "-s", "--limit-rate", "2M", "-o", str(out), ftp_server.url("/movie.bin")]
    )
    try:
        deadline = time.monotonic() + 30
        while not (out.exists() and out.stat().st_size >= MB) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        slow.terminate()  # the interruption: the client goes away mid-download
        slow.wait(10)
    partial = out.stat().st_size
    assert 0 < partial < 12 * MB
    curl("-C", "-", "-o", str(out), ftp_server.url("/movie.bin"))
    assert _sha256(out) == _sha256(source)


def test_curl_resumes_an_upload_with_size_and_appe(
    ftp_server: RunningServer, tmp_path: Path
) -> None:
    local = _random_file(tmp_path / "data.bin", 6 * MB)
    slow = subprocess.Popen(
        [_tool("curl"), "-s", "--limit-rate", "2M", "-T", str(local), ftp_server.url("/data.bin")]
    )
    try:  # stream mode: a client that goes away ends the file where it stopped
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _largest(ftp_server.home) < MB:
            time.sleep(0.05)
    finally:
        slow.terminate()
        slow.wait(10)
    ftp_server.wait_for((ftp_server.home / "data.bin").exists)
    partial = (ftp_server.home / "data.bin").stat().st_size
    assert 0 < partial < 6 * MB
    curl("-C", "-", "-T", str(local), ftp_server.url("/data.bin"))
    assert _sha256(ftp_server.home / "data.bin") == _sha256(local)
    appe = [e for e in ftp_server.events.events if e.command == "APPE /data.bin"]
    assert appe and appe[0].files[0].size == 6 * MB - partial


def test_curl_upload_over_quota_fails_with_552_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    local = _random_file(tmp_path / "big.bin", 8 * MB)
    with running_server(tmp_path / "server", quota=3 * MB) as running:
        result = curl("-T", str(local), running.url("/big.bin"), check=False)
        assert result.returncode != 0
        assert list(running.home.iterdir()) == []
        assert running.users.usage("alice") == 0


def test_curl_cannot_escape_the_jail(ftp_server: RunningServer) -> None:
    outside = ftp_server.root / "outside.txt"
    outside.write_text("secret")
    for path in ("/../outside.txt", "/%2e%2e/outside.txt", "/..%2Foutside.txt", "/%2Fetc/passwd"):
        result = curl("--path-as-is", ftp_server.url(path), check=False)
        assert result.returncode != 0, path
        assert b"secret" not in result.stdout and b"root:" not in result.stdout


# -- lftp -------------------------------------------------------------------------------------


def test_lftp_mkdir_cd_put_rename_delete(ftp_server: RunningServer, tmp_path: Path) -> None:
    local = tmp_path / "note.txt"
    local.write_text("note")
    result = lftp(
        ftp_server,
        f"mkdir docs; cd docs; put {local} -o note.txt; mv note.txt kept.txt; cls -1; "
        "put /dev/null -o gone.txt; rm gone.txt; cd ..; mkdir empty; rmdir empty; cls -1 docs",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["kept.txt", "docs/kept.txt"]
    assert (ftp_server.home / "docs" / "kept.txt").read_text() == "note"
    assert not (ftp_server.home / "empty").exists()


def test_lftp_put_c_resumes_an_upload(ftp_server: RunningServer, tmp_path: Path) -> None:
    local = _random_file(tmp_path / "part.bin", 5 * MB)
    (ftp_server.home / "part.bin").write_bytes(local.read_bytes()[:MB])
    result = lftp(ftp_server, f"put -c {local} -o part.bin")
    assert result.returncode == 0, result.stderr
    assert _sha256(ftp_server.home / "part.bin") == _sha256(local)
    resumed = [
        e for e in ftp_server.events.events if e.command in ("STOR /part.bin", "APPE /part.bin")
    ]
    assert resumed and resumed[-1].files[0].size == 4 * MB  # only the missing part was sent


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): _sha256(p) if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def test_lftp_mirror_up_and_down(ftp_server: RunningServer, tmp_path: Path) -> None:
    source = tmp_path / "site"
    for directory in ("a", "a/b", "c", "empty"):
        (source / directory).mkdir(parents=True)
    for index, name in enumerate(
        ("top.txt", "a/one.bin", "a/b/two.bin", "c/three.txt", "a/b/é.txt")
    ):
        (source / name).write_bytes(os.urandom(1000 * (index + 1)))
    up = lftp(ftp_server, f"mirror -R {source} site")
    assert up.returncode == 0, up.stderr
    assert _tree(ftp_server.home / "site") == _tree(source)
    copy = tmp_path / "copy"
    down = lftp(ftp_server, f"mirror site {copy}")
    assert down.returncode == 0, down.stderr
    assert _tree(copy) == _tree(source)


def test_lftp_cannot_leave_the_home(ftp_server: RunningServer, tmp_path: Path) -> None:
    (ftp_server.root / "outside.txt").write_text("secret")
    result = lftp(ftp_server, f"cd ..; cd ..; pwd; get ../outside.txt -o {tmp_path / 'x'}")
    assert result.returncode != 0
    assert not (tmp_path / "x").exists()
    listing = lftp(ftp_server, "cd ../..; cls -1a")
    assert "outside.txt" not in listing.stdout
