"""Jinja in inventory variables: rendered in Ansible's precedence, with its types, or refused."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.errors import InventoryError
from herd.inventory import Inventory, load_inventory


def inventory(tmp_path: Path, text: str, extra: dict[str, object] | None = None) -> Inventory:
    source = tmp_path / "inv.yml"
    source.write_text(textwrap.dedent(text))
    return load_inventory([str(source)], extra)


LEVELS = """
all:
  vars:
    base_ip: 10.0.0
    port_base: 2200
    ansible_host: "{{ base_ip }}.{{ octet }}"
    fqdn: "{{ inventory_hostname_short }}.{{ domain }}"
    domain: example.net
  children:
    web:
      vars:
        octet: 8
        ansible_port: "{{ port_base + 1 }}"
        ansible_user: "{{ role }}-admin"
        role: web
      hosts:
        web01.example.com:
        web02:
          octet: 9
          base_ip: 192.168.1
          domain: "{{ role }}.example.org"
"""


def test_references_resolve_across_levels_after_precedence(tmp_path: Path) -> None:
    inv = inventory(tmp_path, LEVELS)
    web01, web02 = inv.host("web01.example.com"), inv.host("web02")
    assert (web01.address, web01.port, web01.user) == ("10.0.0.8", 2201, "web-admin")
    # the host's own base_ip and octet win before the group's template is rendered
    assert web02.address == "192.168.1.9"
    assert web01.vars["fqdn"] == "web01.example.net"
    assert web02.vars["fqdn"] == "web02.web.example.org"  # a template using a template


def test_a_whole_expression_keeps_its_type_and_text_stays_text(tmp_path: Path) -> None:
    inv = inventory(
        tmp_path,
        """
        all:
          hosts:
            h1:
              n: 20
              number: "{{ n + 1 }}"
              listed: "{{ [n, 'x'] }}"
              quoted: "{{ '22' }}"
              joined: "{{ n }}{{ n }}"
              nothing: "{% if false %}x{% endif %}"
              gap: "a{{ none }}b"
              none: null
              kept: "{{ n }}-{{ n }}\\n"
              nested: ["{{ n }}", {"k": "{{ n * 2 }}"}]
              unsafe: !unsafe "{{ n }}"
        """,
    )
    variables = inv.host("h1").vars
    assert variables["number"] == 21
    assert variables["listed"] == [20, "x"]
    assert variables["quoted"] == "22"
    assert variables["joined"] == "2020"
    assert variables["nothing"] is None
    assert variables["gap"] == "ab"
    assert variables["kept"] == "20-20\n"
    assert variables["nested"] == [20, {"k": 40}]
    assert variables["unsafe"] == "{{ n }}"


def test_magic_variables_without_facts(tmp_path: Path) -> None:
    inv = inventory(
        tmp_path,
        """
        all:
          vars:
            me: "{{ inventory_hostname }}|{{ inventory_hostname_short }}|{{ group_names }}"
            db_first: "{{ groups['db'][0] }}"
            web_count: "{{ groups.web | length }}"
          children:
            web: {hosts: {web1.example.com: {}, 10.0.0.2: {}}}
            db: {hosts: {db1: {}, db2: {}}}
        """,
    )
    assert inv.host("web1.example.com").vars["me"] == "web1.example.com|web1|['web']"
    assert inv.host("10.0.0.2").vars["me"].startswith("10.0.0.2|10.0.0.2|")
    assert inv.host("db2").vars["db_first"] == "db1"
    assert inv.host("db1").vars["web_count"] == 2


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("{{ 'web01.example.com' | regex_replace('^(\\w+)\\..*$', '\\1') }}", "web01"),
        ("{{ ['yes', 'off', 1] | map('bool') | list }}", [True, False, True]),
        ("{{ (2 > 1) | ternary('big', 'small') }}", "big"),
        ("{{ 'héllo' | b64encode }}", "aMOpbGxv"),
        ("{{ {'b': 1, 'a': 'é'} | to_json }}", '{"b": 1, "a": "\\u00e9"}'),
        ("{{ {'b': 1, 'a': [1]} | to_yaml }}", "a: [1]\nb: 1\n"),
        ("{{ missing | default('fallback') }}", "fallback"),
        ("{{ missing.deeper | default('chained') }}", "chained"),
        ("{{ missing is defined }}", False),
        ("{{ ['a', 'A', 'b'] | unique }}", ["a", "b"]),
        ("{{ 'a b' | quote }}", "'a b'"),
    ],
)
def test_filters_render_as_ansible_renders_them(
    tmp_path: Path, template: str, value: object
) -> None:
    inv = inventory(tmp_path, f"all:\n  hosts:\n    h1:\n      x: {json.dumps(template)}\n")
    assert inv.host("h1").vars["x"] == value


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ base_ip }}.8", "host 'h1', variable 'x': 'base_ip' is undefined"),
        ("{{ lookup('env', 'HOME') }}", "variable 'x': lookup() is not available"),
        ("{{ query('file', '/etc/passwd') }}", "query() is not available"),
        ("{{ hostvars['h1'].y }}", "hostvars is not available in inventory variables"),
        ("{{ 'x' | to_uuid }}", "No filter named 'to_uuid'"),
        ("{{ 'x' | random }}", "No filter named 'random'"),
        ("{{ ''.__class__ }}", "variable 'x'"),
        ("{{ 'maybe' | bool }}", "bool: 'maybe' is not one of yes/no"),
        ("{{ 1 / 0 }}", "variable 'x': division by zero"),
        ("{{ unclosed", "variable 'x': template '{{ unclosed'"),
    ],
)
def test_what_cannot_render_is_an_error_naming_host_and_variable(
    tmp_path: Path, template: str, message: str
) -> None:
    inv = inventory(tmp_path, f"all:\n  hosts:\n    h1:\n      x: {json.dumps(template)}\n")
    host = inv.host("h1")  # x is no connection variable: only reading it fails
    with pytest.raises(InventoryError) as caught:
        host.vars["x"]
    assert message in str(caught.value)


def test_a_loop_of_references_is_an_error_naming_it(tmp_path: Path) -> None:
    inv = inventory(tmp_path, "all:\n  hosts:\n    h1:\n      a: '{{ b }}'\n      b: '{{ a }}'\n")
    with pytest.raises(InventoryError, match=r"host 'h1', variable 'a': refers back to itself: "):
        dict(inv.host("h1").vars)


def test_a_failure_deeper_down_names_the_variable_and_who_used_it(tmp_path: Path) -> None:
    inv = inventory(
        tmp_path, "all:\n  hosts:\n    h1:\n      a: '{{ b }}'\n      b: '{{ 1 // 0 }}'\n"
    )
    with pytest.raises(InventoryError, match=r"variable 'b' \(used by 'a'\): "):
        inv.host("h1").vars["a"]


def test_a_broken_connection_variable_stops_the_host_being_selected(tmp_path: Path) -> None:
    inv = inventory(tmp_path, "all:\n  hosts:\n    h1:\n      ansible_host: '{{ base }}.8'\n")
    with pytest.raises(InventoryError, match=r"host 'h1', variable 'ansible_host': 'base' is"):
        inv.select("h1")


def test_a_rendered_connection_value_is_checked_like_a_written_one(tmp_path: Path) -> None:
    inv = inventory(tmp_path, "all:\n  hosts:\n    h1:\n      ansible_port: '{{ 70000 }}'\n")
    with pytest.raises(InventoryError, match=r"host 'h1': ansible_port must be a port number"):
        inv.host("h1")


def test_group_priority_is_read_when_loading_so_it_cannot_be_a_template(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"ansible_group_priority must be a whole number"):
        inventory(tmp_path, "all:\n  vars:\n    ansible_group_priority: '{{ 3 }}'\n")


def test_a_variable_nothing_reads_does_not_stop_the_host(tmp_path: Path) -> None:
    # as in Ansible: a template naming a fact breaks only what reads it
    inv = inventory(
        tmp_path,
        "all:\n  hosts:\n    h1:\n      ansible_host: 10.0.0.1\n"
        "      node_ip: '{{ ansible_default_ipv4.address }}'\n",
    )
    [h1] = inv.select("h1")
    assert h1.address == "10.0.0.1"


def test_extra_vars_are_rendered_and_feed_the_inventory_templates(tmp_path: Path) -> None:
    inv = inventory(
        tmp_path,
        "all:\n  vars:\n    ansible_host: '{{ net }}.5'\n    net: 10.0.0\n  hosts:\n    h1:\n",
        {"net": "172.16.0", "ansible_port": "{{ 2000 + 22 }}"},
    )
    h1 = inv.host("h1")
    assert (h1.address, h1.port) == ("172.16.0.5", 2022)


def test_hosts_json_shows_rendered_values_and_fails_on_a_broken_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "inv.yml"
    source.write_text(textwrap.dedent(LEVELS))
    assert main(["-i", str(source), "hosts", "web02", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert (record["address"], record["port"]) == ("192.168.1.9", 2201)
    assert record["vars"]["ansible_host"] == "192.168.1.9"
    assert record["vars"]["ansible_port"] == 2201
    source.write_text("all:\n  hosts:\n    h1:\n      motd: 'hi {{ nobody }}'\n")
    assert main(["-i", str(source), "hosts", "h1", "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "herd: error: host 'h1', variable 'motd': 'nobody' is undefined\n"


def test_an_inventory_without_templates_never_loads_jinja(tmp_path: Path) -> None:
    source = tmp_path / "inv.ini"
    source.write_text("[web]\nweb[01:50] ansible_user=ops\n")
    probe = (
        "import sys; from herd.inventory import load_inventory; "
        f"inv = load_inventory([{str(source)!r}], {{'x': '1'}}); "
        "[inv.host(n).vars['ansible_user'] for n in inv.host_names]; "
        "print('jinja2' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
