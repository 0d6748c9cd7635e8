"""Every host set herd prints, pasted back as a pattern, selects exactly those hosts.

Through the CLI, on ``ansible_connection=local`` hosts of a group ``web``:
there ``web[03-04]`` is Ansible's subscript (the group's hosts 3 and 4, that
is web04 and web05), so herd must not print it for web03 and web04.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from herd.cli.main import main

pytestmark = pytest.mark.timeout(60)

# ──── web0[3-4] (2) ────   and   "  failed (3): web0[3-5]"
HEADER = re.compile(r"^──── (\S+) \((\d+)\)")
STATUS_LINE = re.compile(r"^  \w+ \((\d+)\): (\S+)$")


def web_inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.ini"
    path.write_text("[web]\nweb[01:05] ansible_connection=local\n")
    return path


def selected(inventory: Path, pattern: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What ``herd hosts PATTERN`` lists: the hosts a run on PATTERN would touch."""
    assert main(["-i", str(inventory), "hosts", pattern, "--json"]) == 0
    return sorted(json.loads(line)["host"] for line in capsys.readouterr().out.splitlines())


def test_a_gathered_header_pasted_back_selects_the_hosts_of_its_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = web_inventory(tmp_path)
    assert main(["-i", str(inventory), "run", "web03:web04", "-b", "--", "echo same"]) == 0
    out = capsys.readouterr().out
    header = HEADER.match(out.splitlines()[0])
    assert header is not None, out
    assert header.group(2) == "2"
    assert selected(inventory, header.group(1), capsys) == ["web03", "web04"]


def test_the_summarys_failed_hosts_pasted_back_select_those_hosts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = web_inventory(tmp_path)
    assert main(["-i", str(inventory), "run", "web03:web04:web05", "--", "exit 3"]) == 1
    err = capsys.readouterr().err
    [folded] = [m.group(2) for m in map(STATUS_LINE.match, err.splitlines()) if m]
    assert selected(inventory, folded, capsys) == ["web03", "web04", "web05"]


def test_herd_groups_folds_each_group_into_a_pattern_of_its_hosts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = web_inventory(tmp_path)
    assert main(["-i", str(inventory), "groups"]) == 0
    [line] = [line for line in capsys.readouterr().out.splitlines() if "web (5)" in line]
    folded = line.split()[-1]
    every = [f"web{n:02d}" for n in range(1, 6)]
    assert selected(inventory, folded, capsys) == every
    assert main(["-i", str(inventory), "groups", "--json"]) == 0
    rows = {row["group"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    assert selected(inventory, str(rows["web"]["folded"]), capsys) == every


def test_a_push_header_pasted_back_selects_the_hosts_of_its_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = web_inventory(tmp_path)
    source = tmp_path / "motd"
    source.write_text("hi\n")
    dest = f"{tmp_path}/dest/{{host}}/"
    main(["-i", str(inventory), "push", "web03:web04", str(source), dest, "--mkdir", "-b"])
    header = HEADER.match(capsys.readouterr().out.splitlines()[0])
    assert header is not None
    assert selected(inventory, header.group(1), capsys) == ["web03", "web04"]


def test_the_log_folds_without_the_inventory_so_that_none_misreads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = web_inventory(tmp_path)
    assert main(["-i", str(inventory), "run", "web03:web04", "--", "true"]) == 0
    capsys.readouterr()
    assert main(["log", "show", "1", "-b"]) == 0
    out = capsys.readouterr().out
    [hosts_line] = [line for line in out.splitlines() if line.startswith("hosts:")]
    [header] = [m for m in map(HEADER.match, out.splitlines()) if m]
    assert hosts_line.split()[1] == header.group(1)
    assert selected(inventory, header.group(1), capsys) == ["web03", "web04"]
