"""``herd ftp serve --config FILE``: TOML into FtpSettings, with errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd.errors import ConfigError
from herd.ftp.config import load_ftp_settings, parse_listen
from herd.ftp.settings import FtpSettings


def test_no_config_file_means_loopback_port_2121() -> None:
    settings = load_ftp_settings(None)
    assert settings == FtpSettings()
    assert settings.listen == (("127.0.0.1", 2121),)


def test_toml_file_sets_listen_addresses_ports_and_anonymous_root(tmp_path: Path) -> None:
    config = tmp_path / "ftp.toml"
    config.write_text(
        'listen = ["127.0.0.1:2100", "[::1]:2101"]\n'
        'passive-ports = "60000-60099"\n'
        'anonymous_root = "/srv/ftp/pub"\n'
        "max_connections = 50\n"
        "control_idle_timeout = 30\n"
        'banner = "welcome"\n'
    )
    settings = load_ftp_settings(config)
    assert settings.listen == (("127.0.0.1", 2100), ("::1", 2101))
    assert settings.passive_ports == (60000, 60099)
    assert settings.anonymous_root == Path("/srv/ftp/pub")
    assert settings.max_connections == 50
    assert settings.control_idle_timeout == 30.0
    assert settings.banner == "welcome"


def test_settings_may_live_under_an_ftp_table(tmp_path: Path) -> None:
    config = tmp_path / "herd.toml"
    config.write_text('[run]\nforks = 5\n[ftp]\nlisten = "127.0.0.2:2121"\n')
    assert load_ftp_settings(config).listen == (("127.0.0.2", 2121),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense = 1\n", r"\[ftp\] has no setting 'nonsense'"),
        ('max_connections = "many"\n', "max_connections must be a whole number"),
        ("max_connections = true\n", "max_connections must be a whole number"),
        ("passive_ports = [1, 2, 3]\n", "passive_ports must be a range"),
        ('passive_ports = "80-90"\n', "bad passive port range"),
        ('listen = ["127.0.0.1:99999"]\n', "port is 0-65535"),
        ("listen = [\n", "ftp.toml"),
        ("data_idle_timeout = 0\n", "data_idle_timeout must be more than 0 seconds"),
        ("control_idle_timeout = -5\n", "control_idle_timeout must be more than 0 seconds"),
    ],
)
def test_bad_settings_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "ftp.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_ftp_settings(config)
    assert str(config) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read FTP settings"):
        load_ftp_settings(tmp_path / "absent.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:21", ("127.0.0.1", 21)),
        ("[::1]:2121", ("::1", 2121)),
        ("::", ("::", 2121)),
        ("localhost", ("localhost", 2121)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_listen_addresses_parse_with_ipv6_brackets(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected
