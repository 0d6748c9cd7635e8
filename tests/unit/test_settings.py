"""herd.toml: one loader checks every value against its type and range, naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd.cli.main import main
from herd.core.settings import RunSettings, Settings, load_settings, merged
from herd.errors import ConfigError


def settings_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "herd.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[run]\ncommand_timeout = "soon"', "[run] command_timeout must be seconds, or a duration"),
        ('[run]\nhost_keys = "bogus"', "[run] host_keys must be one of 'strict', 'accept-new'"),
        ("[run]\nforks = -5", "[run] forks must be at least 1, not -5"),
        ("[run]\nforks = 2.5", "[run] forks must be a whole number, not 2.5"),
        ("[run]\nforks = true", "[run] forks must be a whole number, not True"),
        ('[run]\noutput_cap = "lots"', "[run] output_cap must be a size such as 65536"),
        ("[run]\nparallel = 3", "[run] has no setting 'parallel'"),
        ('[log]\nsyslog = "yes"', "[log] syslog must be true or false, not 'yes'"),
        ("[rnu]\nforks = 3", "no settings table [rnu] (known: [run], [log], [agent])"),
        ("run = 3", "[run] must be a table"),
        ("[run\nforks = 3", "herd.toml: "),
    ],
)
def test_a_bad_setting_is_refused_naming_the_file_and_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = settings_file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_values_written_as_text_are_read_as_a_sysadmin_means_them(tmp_path: Path) -> None:
    path = settings_file(
        tmp_path, '[run]\noutput_cap = "1M"\nconnect_timeout = "2s"\ncommand_timeout = "5m"\n'
    )
    run = load_settings(path).run
    assert (run.output_cap, run.connect_timeout, run.command_timeout) == (1 << 20, 2.0, 300.0)


def test_a_missing_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "none.toml") == Settings()


def test_the_command_line_is_merged_over_the_settings_in_one_place() -> None:
    run = merged(RunSettings(forks=7), forks=None, connect_timeout=3.0)
    assert (run.forks, run.connect_timeout) == (7, 3.0)


def test_a_bad_setting_stops_a_run_with_exit_2_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    (isolated_env / "herd.toml").write_text('[run]\ncommand_timeout = "soon"\n')
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[here]\nnode1 ansible_connection=local\n")
    marker = tmp_path / "ran"
    assert main(["-i", str(inventory), "run", "all", "--", f"touch {marker}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[run] command_timeout must be" in err
    assert not marker.exists()


def test_help_shows_the_defaults_in_force(
    isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (isolated_env / "herd.toml").write_text('[run]\nforks = 7\noutput_cap = "1M"\n')
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Hosts worked on at once (default 7)" in text
    assert "(default 1.0 MiB); -o DIR" in text
