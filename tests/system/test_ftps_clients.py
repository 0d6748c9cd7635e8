"""Real FTP clients over TLS (curl, lftp) against herd's FTPS server, and the quota's 552
as curl, lftp and ftplib see it."""

from __future__ import annotations

import ftplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ftp_server_support import PASSWORD, RunningServer, certificate, running_server
from tests.system.test_ftp_clients import MB, _random_file, _sha256, _tool, curl

pytestmark = pytest.mark.system


@pytest.fixture
def cafile(tmp_path: Path) -> Path:
    return certificate(tmp_path)[0]


@pytest.fixture
def ftps_server(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(tmp_path / "server", tls=True, require_tls=True) as running:
        yield running


def lftp_tls(
    running: RunningServer, cafile: Path, script: str, *, implicit: bool = False
) -> subprocess.CompletedProcess[str]:
    settings = (
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-protect-list true;"
        f" set ssl:ca-file {cafile}; set ssl:verify-certificate true; set net:max-retries 1;"
        " set net:timeout 15; set cmd:fail-exit yes; set xfer:clobber on;"
    )
    if implicit:
        host, port = running.server.implicit_addresses[0]
        opening = f"open -u alice,{PASSWORD} ftps://{host}:{port};"
    else:
        opening = f"open -u alice,{PASSWORD} -p {running.port} {running.host};"
    return subprocess.run(
        [_tool("lftp"), "-c", settings + opening + script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_curl_ssl_reqd_uploads_lists_and_downloads_over_tls(
    ftps_server: RunningServer, cafile: Path, tmp_path: Path
) -> None:
    local = _random_file(tmp_path / "up.bin", 5 * MB)
    tls = ("--ssl-reqd", "--cacert", str(cafile))
    curl(*tls, "-T", str(local), ftps_server.url("/up.bin"))
    assert _sha256(ftps_server.home / "up.bin") == _sha256(local)
    assert curl(*tls, "--list-only", ftps_server.url("/")).stdout.split() == [b"up.bin"]
    back = tmp_path / "back.bin"
    curl(*tls, "-o", str(back), ftps_server.url("/up.bin"))
    assert _sha256(back) == _sha256(local)


def test_curl_implicit_ftps_downloads(
    ftps_server: RunningServer, cafile: Path, tmp_path: Path
) -> None:
    source = _random_file(ftps_server.home / "f.bin", 2 * MB)
    host, port = ftps_server.server.implicit_addresses[0]
    url = f"ftps://alice:{PASSWORD}@{host}:{port}/f.bin"
    back = tmp_path / "f.bin"
    curl("--cacert", str(cafile), "-o", str(back), url)
    assert _sha256(back) == _sha256(source)


def test_curl_in_clear_is_refused_and_an_unknown_certificate_too(
    ftps_server: RunningServer, tmp_path: Path
) -> None:
    plain = curl(ftps_server.url("/"), check=False)
    assert plain.returncode == 67  # CURLE_LOGIN_DENIED: 530 at USER
    untrusted = curl("--ssl-reqd", ftps_server.url("/"), check=False)
    assert untrusted.returncode == 60  # CURLE_PEER_FAILED_VERIFICATION


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_lftp_with_ssl_force_puts_and_gets_over_tls(
    ftps_server: RunningServer, cafile: Path, tmp_path: Path, implicit: bool
) -> None:
    local = _random_file(tmp_path / "data.bin", 3 * MB)
    back = tmp_path / "back.bin"
    result = lftp_tls(
        ftps_server,
        cafile,
        f"put {local} -o data.bin; get data.bin -o {back}; cls -1",
        implicit=implicit,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["data.bin"]
    assert _sha256(back) == _sha256(local) == _sha256(ftps_server.home / "data.bin")


# -- the quota's 552, as each client sees it ------------------------------------------------


def test_curl_sees_the_552_of_an_upload_over_quota(tmp_path: Path) -> None:
    local = _random_file(tmp_path / "big.bin", 12 * MB)
    with running_server(tmp_path / "server", quota=8 * MB) as running:
        result = curl("-T", str(local), running.url("/big.bin"), check=False)
        # curl maps 552 to CURLE_REMOTE_DISK_FULL; a reset connection would be 55 or 56.
        assert result.returncode == 70, result.stderr
        assert b"Exceeded storage allocation" in result.stderr
        assert list(running.home.iterdir()) == []


def test_lftp_sees_the_552_of_an_upload_over_quota(tmp_path: Path) -> None:
    local = _random_file(tmp_path / "big.bin", 12 * MB)
    with running_server(tmp_path / "server", quota=8 * MB) as running:
        result = subprocess.run(
            [
                _tool("lftp"),
                "-c",
                "set ftp:ssl-allow no; set net:max-retries 1; set cmd:fail-exit yes;"
                f" open -u alice,{PASSWORD} -p {running.port} {running.host};"
                f" put {local} -o big.bin",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert "552" in result.stderr, result.stderr
        assert not (running.home / "big.bin").exists()


def test_ftplib_sees_the_552_of_40_mb_into_a_30_mb_quota_every_time(tmp_path: Path) -> None:
    local = _random_file(tmp_path / "big.bin", 40 * MB)
    with running_server(tmp_path / "server", quota=30 * MB) as running:
        for _ in range(3):
            with (
                running.client() as ftp,
                local.open("rb") as source,
                pytest.raises(ftplib.error_perm, match=r"^552"),
            ):
                ftp.storbinary("STOR big.bin", source, blocksize=256 * 1024)
            assert list(running.home.iterdir()) == []
        assert running.users.usage("alice") == 0
