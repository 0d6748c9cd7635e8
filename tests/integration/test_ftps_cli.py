"""``herd ftp get/put/ls`` over TLS (ftpes://, ftps://), ``herd ftp cert``, and the TLS settings."""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.errors import ConfigError
from herd.ftp.config import settings_from_mapping
from tests.ftp_server_support import PASSWORD, RunningServer, certificate, running_server


@pytest.fixture
def cafile(tmp_path: Path) -> Path:
    return certificate(tmp_path)[0]


@pytest.fixture
def ftps_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    monkeypatch.setenv("HERD_FTP_PASSWORD", PASSWORD)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with running_server(tmp_path / "server", tls=True, require_tls=True) as running:
        yield running


@pytest.mark.parametrize("scheme", ["ftpes", "ftps"])
def test_put_get_and_ls_over_tls_with_cacert(
    ftps_server: RunningServer,
    cafile: Path,
    tmp_path: Path,
    scheme: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    host, port = ftps_server.host, ftps_server.port
    if scheme == "ftps":
        host, port = ftps_server.server.implicit_addresses[0]
    url = f"{scheme}://alice@{host}:{port}/"
    source = tmp_path / "report.bin"
    source.write_bytes(os.urandom(300_000))
    assert main(["ftp", "put", "--cacert", str(cafile), str(source), url]) == 0
    assert (ftps_server.home / "report.bin").read_bytes() == source.read_bytes()
    back = tmp_path / "back.bin"
    assert main(["ftp", "get", "--cacert", str(cafile), url + "report.bin", str(back)]) == 0
    assert back.read_bytes() == source.read_bytes()
    assert "SHA-256 verified" in capsys.readouterr().out
    assert main(["ftp", "ls", "--cacert", str(cafile), url]) == 0
    assert "report.bin" in capsys.readouterr().out


def test_an_untrusted_certificate_is_one_line_and_insecure_warns(
    ftps_server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"ftpes://alice@{ftps_server.host}:{ftps_server.port}/"
    assert main(["ftp", "ls", url]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--cacert" in error and "not trusted" in error
    assert main(["ftp", "ls", "--insecure", url]) == 0
    assert "warning: --insecure" in capsys.readouterr().err
    assert main(["ftp", "ls", "--insecure", url.replace("ftpes", "ftp")]) == 2


def test_cert_writes_a_pair_with_the_key_0600(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    assert main(["ftp", "cert", "--out", str(out), "--name", "ftp.example.org"]) == 0
    assert stat.S_IMODE((out / "ftp-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert b"BEGIN CERTIFICATE" in (out / "ftp-cert.pem").read_bytes()
    assert main(["ftp", "cert", "--out", str(out)]) == 2  # never overwrites


def test_tls_settings_are_checked_and_name_the_key(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path)
    settings = settings_from_mapping(
        {"tls_cert": str(cert), "tls_key": str(key), "listen_implicit": ["127.0.0.1:9990"],
         "require_tls": True, "require_tls_session_reuse": False}, "ftp.toml",
    )  # fmt: skip
    assert settings.tls and settings.listen_implicit == (("127.0.0.1", 9990),)
    assert settings.require_tls and not settings.require_tls_session_reuse
    with pytest.raises(ConfigError, match=r"ftp.toml: \[ftp\]: require_tls needs tls_cert"):
        settings_from_mapping({"require_tls": True}, "ftp.toml")
    with pytest.raises(ConfigError, match=r"ftp.toml: \[ftp\]: tls_cert and tls_key go together"):
        settings_from_mapping({"tls_cert": str(cert)}, "ftp.toml")
    with pytest.raises(ConfigError, match=r"ftp.toml: \[ftp\] require_tls must be true or false"):
        settings_from_mapping({"require_tls": "yes"}, "ftp.toml")


def test_serve_with_a_missing_certificate_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ftp.toml"
    config.write_text(
        f'listen = ["127.0.0.1:0"]\ntls_cert = "{tmp_path}/nope.pem"\n'
        f'tls_key = "{tmp_path}/k.pem"\n'
    )
    assert main(["ftp", "serve", "--config", str(config)]) == 2
    assert "nope.pem" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["get", "put", "ls", "shell"])
def test_client_help_says_where_the_password_comes_from(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ftp", command, "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    for source in ("$HERD_FTP_PASSWORD", "~/.netrc", "prompt"):
        assert source in shown
