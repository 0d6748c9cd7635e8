"""Bad inventories fail with one line naming the file and line, and nothing half-loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd.errors import InventoryError
from herd.inventory import load_inventory


def fails_at(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory([str(path)])
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.exit_code == 2
    return message.removeprefix(f"{path}")


@pytest.mark.parametrize(
    ("name", "text", "where", "complaint"),
    [
        ("bad.yml", "all:\n  hosts:\n    web1:\n  children: [\n", ":5:", "YAML syntax"),
        ("bad.ini", "[web\nweb1\n", ":1:", "without its ']'"),
        ("bad.ini", "[web:stuff]\nweb1\n", ":1:", "unknown type"),
        ("bad.ini", "[web name]\n", ":1:", "invalid section"),
        ("bad.ini", "[web:vars]\nnot an assignment\n[web]\nw\n", ":2:", "key=value"),
        ("bad.ini", "[web]\nweb1 novalue\n", ":2:", "key=value"),
        ("bad.ini", "[web]\nweb1 'unclosed\n", ":2:", "cannot read host line"),
        ("bad.ini", "[a:children]\nb\n[b:children]\na\n", ":4:", "own ancestor: a -> b -> a"),
        (
            "bad.yml",
            "a:\n  children:\n    b:\n      children:\n        a:\n",
            ":5:",
            "own ancestor",
        ),
        ("bad.ini", "\n[web]\nweb[10:01]\n", ":3:", "starts after it ends"),
        ("bad.ini", "[web]\nweb[a:1]\n", ":2:", "mixes a letter and a number"),
        ("bad.yml", "web:\n  hosts:\n    web[1:xy]:\n", ":3:", "neither"),
        ("bad.ini", "[web]\nweb1 port=abc\n", ":2:", "port must be a port number"),
        ("bad.ini", "[web]\nweb1\n[web:vars]\nansible_port=70000\n", ":4:", "port number"),
        ("bad.yml", "web:\n  hosts:\n    web1:\n      ansible_port: abc\n", ":4:", "ansible_port"),
        ("bad.yml", "web:\n  vars:\n    connect_timeout: -1\n", ":3:", "seconds above 0"),
        ("bad.ini", "[web:vars]\nx=1\n", ":1:", "[web:vars] is for group 'web'"),
        ("bad.ini", "[top:children]\nnowhere\n", ":2:", "names group 'nowhere'"),
        ("bad.yml", "web:\n  host:\n    web1:\n", ":2:", "only hosts, children and vars"),
        ("bad.yml", "web:\n  hosts:\n    - web1\n", ":2:", "must be a mapping"),
        ("bad.yml", "web:\n  hosts:\n    8080:\n", ":3:", "must be text"),
        ("bad.yml", "plugin: aws_ec2\n", ":1:", "plugin configuration"),
        ("bad.ini", "[web]\nweb1:\n", ":2:", "reserved for a port"),
        ("bad.yml", 'all:\n  hosts:\n    "c\\nd":\n', ":3:", "host name 'c\\nd' holds a"),
        ("bad.yml", 'all:\n  hosts:\n    "a\\0b":\n', ":3:", "control character ('\\x00')"),
        ("bad.ini", "[web]\nweb1\nweb\x1bc\n", ":3:", "control character ('\\x1b')"),
        ("bad.ini", "[web]\nred\x9bx\n", ":2:", "control character ('\\x9b')"),
        ("bad.ini", "[we\x7fb]\nweb1\n", ":1:", "group name 'we\\x7fb' holds a"),
        ("bad.yml", 'all:\n  children:\n    "g\\tx":\n', ":3:", "group name 'g\\tx'"),
    ],
)
def test_bad_input_names_file_and_line(
    tmp_path: Path, name: str, text: str, where: str, complaint: str
) -> None:
    message = fails_at(tmp_path, name, text)
    assert message.startswith(where), message
    assert complaint in message


def test_a_host_list_on_the_command_line_is_checked_too() -> None:
    """A terminal would show the name as another text: no host set herd prints could
    select it when pasted back."""
    with pytest.raises(InventoryError, match=r"host name 'b\\x1bc' holds a control"):
        load_inventory(["a,b\x1bc,"])


def test_missing_source_is_named() -> None:
    with pytest.raises(InventoryError, match=r"nowhere\.ini: no such inventory"):
        load_inventory(["nowhere.ini"])


def test_no_inventory_at_all_says_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InventoryError, match="pass -i FILE"):
        load_inventory([])


def test_bad_value_in_group_vars_file_names_that_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_text("[web]\nweb1\n")
    (tmp_path / "group_vars").mkdir()
    bad = tmp_path / "group_vars" / "web.yml"
    bad.write_text("ntp: pool\nport: nope\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory([str(tmp_path / "inv.ini")])
    assert str(caught.value).startswith(f"{bad}:2:")


def test_vault_encrypted_file_is_refused_plainly(tmp_path: Path) -> None:
    message = fails_at(tmp_path, "inv.yml", "$ANSIBLE_VAULT;1.1;AES256\n6134\n")
    assert "ansible-vault" in message


def test_an_error_in_a_later_source_loads_nothing(tmp_path: Path) -> None:
    good = tmp_path / "good.ini"
    good.write_text("[web]\nweb1\n")
    bad = tmp_path / "bad.ini"
    bad.write_text("[db]\ndb1 port=x\n")
    with pytest.raises(InventoryError, match=r"bad\.ini:2:"):
        load_inventory([str(good), str(bad)])


def test_dynamic_inventory_script_is_refused_with_a_way_out(tmp_path: Path) -> None:
    script = tmp_path / "ec2.py"
    script.write_text("#!/usr/bin/env python3\nprint('{}')\n")
    script.chmod(0o755)
    with pytest.raises(InventoryError, match="dynamic inventory script") as caught:
        load_inventory([str(script)])
    assert "ansible-inventory -i SCRIPT --list -y" in str(caught.value)
