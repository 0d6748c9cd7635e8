"""FTP URLs and where the client's password comes from (never argv)."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd.errors import ConfigError, UsageError
from herd.ftp.client_url import Credentials, FtpUrl, parse_url, resolve_credentials


def test_url_gives_user_host_port_and_path() -> None:
    url = parse_url("ftp://alice@127.0.0.1:2121/pub/file%20one.txt")
    assert url == FtpUrl(host="127.0.0.1", port=2121, user="alice", path="pub/file one.txt")
    assert url.server == "127.0.0.1:2121"
    assert str(url) == "ftp://alice@127.0.0.1:2121/pub/file one.txt"


def test_ipv6_url_and_default_port() -> None:
    url = parse_url("ftp://[::1]/")
    assert (url.host, url.port, url.user, url.path) == ("::1", 21, None, "")
    assert url.server == "[::1]:21"


@pytest.mark.parametrize(
    "text", ["http://host/x", "ftp:///nohost", "host:21/x", "ftp://h:99999/", "ftp://u:pw@h/"]
)
def test_bad_urls_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="bad FTP URL"):
        parse_url(text)


def test_password_in_url_is_refused_with_the_alternatives_named() -> None:
    with pytest.raises(UsageError, match="HERD_FTP_PASSWORD"):
        parse_url("ftp://alice:secret@host/")


def test_password_from_environment_comes_first(tmp_path: Path) -> None:
    url = parse_url("ftp://alice@host:2121/")
    got = resolve_credentials(
        url, environ={"HERD_FTP_PASSWORD": "envpw"}, netrc_path=tmp_path / "none"
    )
    assert got == Credentials("alice", "envpw")
    assert "envpw" not in repr(got)


def test_password_from_netrc_for_the_host(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine host login alice password fromnetrc\n")
    netrc.chmod(0o600)
    url = parse_url("ftp://host:2121/")
    assert resolve_credentials(url, environ={}, netrc_path=netrc) == Credentials(
        "alice", "fromnetrc"
    )
    other = parse_url("ftp://bob@host/")
    asked: list[str] = []
    got = resolve_credentials(
        other, environ={}, netrc_path=netrc, prompt=lambda text: asked.append(text) or "typed"
    )
    assert got == Credentials("bob", "typed")
    assert asked == ["Password for bob@host:21"]


def test_broken_netrc_names_file_and_line(tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine host badtoken x\n")
    netrc.chmod(0o600)
    with pytest.raises(ConfigError, match=r"netrc:\d"):
        resolve_credentials(parse_url("ftp://host/"), environ={}, netrc_path=netrc)


def test_no_user_means_anonymous_and_no_terminal_means_a_clear_error(tmp_path: Path) -> None:
    none = tmp_path / "none"
    assert resolve_credentials(parse_url("ftp://h/"), environ={}, netrc_path=none).user == (
        "anonymous"
    )
    with pytest.raises(UsageError, match="no password for alice@h:21"):
        resolve_credentials(parse_url("ftp://alice@h/"), environ={}, netrc_path=none)
