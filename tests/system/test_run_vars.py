"""Templated inventory values and ``-e`` decide how herd reaches real OpenSSH hosts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from herd.cli.main import main

from .conftest import Fleet

pytestmark = pytest.mark.system

WHERE = 'set -- $SSH_CONNECTION; echo "$(id -un) $3 $4"'  # login, server address, server port


def templated_inventory(fleet: Fleet, directory: Path) -> Path:
    """The web hosts with ``ansible_host: "{{ net }}.{{ octet }}"``, a wrong port and user.

    Only ``-e`` can put the port and the user right.
    """
    hosts = {
        name: {"octet": int(fleet.host(name).address.rsplit(".", 1)[1])}
        for name in fleet.names("web")
    }
    net = fleet.host("web01").address.rsplit(".", 1)[0]
    document = {
        "all": {
            "vars": {
                "net": net,
                "ansible_host": "{{ net }}.{{ octet }}",
                "ansible_port": "{{ 1 }}",  # nothing listens there
                "ansible_user": "{{ 'no' ~ 'body' }}",
                "ansible_ssh_private_key_file": str(fleet.client_key),
                "known_hosts": str(fleet.known_hosts),
            },
            "children": {"web": {"hosts": hosts}},
        }
    }
    path = directory / "templated.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def rows(text: str) -> dict[str, dict[str, object]]:
    return {row["host"]: row for row in map(json.loads, text.splitlines())}


def test_templated_address_and_e_port_and_user_decide_the_connection(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = str(templated_inventory(lab_fleet, tmp_path))
    fix = ["-e", f"ansible_port={lab_fleet.port}", "-e", f"ansible_user={lab_fleet.user}"]
    code = main(["-i", inventory, "run", "web", "--json", *fix, "--", WHERE])
    out, err = capsys.readouterr()
    assert code == 0, err
    for name, row in rows(out).items():
        host = lab_fleet.host(name)
        assert row["address"] == host.address
        assert row["stdout"] == f"{lab_fleet.user} {host.address} {lab_fleet.port}\n"


def test_a_templated_e_value_uses_the_inventory_and_other_e_values(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = str(templated_inventory(lab_fleet, tmp_path))
    code = main([
        "-i", inventory, "run", "web01", "--json",
        "-e", f'{{"lab_port": {lab_fleet.port}, "ansible_port": "{{{{ lab_port }}}}"}}',
        "-e", f"ansible_user={lab_fleet.user}",
        "--", WHERE,
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    host = lab_fleet.host("web01")
    assert rows(out)["web01"]["stdout"] == f"{lab_fleet.user} {host.address} {lab_fleet.port}\n"


def test_without_e_the_inventory_values_are_used_and_fail(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = str(templated_inventory(lab_fleet, tmp_path))
    assert main(["-i", inventory, "run", "web01:web02", "--json", "--", "true"]) == 1
    assert {r["status"] for r in rows(capsys.readouterr().out).values()} == {"unreachable"}
    code = main(["-i", inventory, "run", "web01", "--json",
                 "-e", f"ansible_port={lab_fleet.port}", "--", "true"])  # fmt: skip
    assert code == 1
    assert rows(capsys.readouterr().out)["web01"]["status"] == "auth_failed"


def test_an_undefined_variable_in_how_to_connect_is_exit_2_before_anything_runs(
    lab_fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = templated_inventory(lab_fleet, tmp_path)
    inventory.write_text(inventory.read_text().replace("'{{ net }}.", "'{{ subnet }}."))
    assert main(["-i", str(inventory), "run", "web", "--", "true"]) == 2
    _, err = capsys.readouterr()
    assert err == "herd: error: host 'web01', variable 'ansible_host': 'subnet' is undefined\n"
