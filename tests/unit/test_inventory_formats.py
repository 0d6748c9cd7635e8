"""Reading inventories: INI and YAML as Ansible writes them, directories, defaults, host lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd.inventory import Inventory, load_inventory

DATA = Path(__file__).resolve().parents[1] / "data" / "inventories"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def names(inventory: Inventory, pattern: str = "all") -> list[str]:
    return [host.name for host in inventory.select(pattern)]


def test_ini_sections_children_and_vars_build_the_group_tree() -> None:
    inventory = load_inventory([str(DATA / "ansible_docs.ini")])
    assert inventory.groups["southeast"].children == ("atlanta", "raleigh")
    assert inventory.groups["usa"].children == ("southeast", "northeast", "northwest", "southwest")
    assert inventory.groups["southeast"].vars["escape_pods"] == 2
    assert names(inventory, "southeast") == ["host1", "host2", "host3"]


def test_ini_hosts_before_any_section_are_ungrouped() -> None:
    inventory = load_inventory([str(DATA / "ansible_docs.ini")])
    assert names(inventory, "ungrouped") == ["mail.example.com"]


def test_ini_ranges_expand_with_padding_letters_and_ports() -> None:
    inventory = load_inventory([str(DATA / "ansible_docs.ini")])
    northeast = names(inventory, "northeast")
    assert northeast[0] == "www01.example.com"
    assert len(northeast) == 50
    assert names(inventory, "northwest")[-1] == "db-f.example.com"
    assert inventory.host("badwolf.example.com").port == 5309


def test_ini_values_are_python_literals_or_text(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "hosts",
        "[web]\n"
        "web1 count=3 ratio=0.5 on=True items=\"[1, 2]\" name=plain quoted='a b' # a comment\n"
        "[web:vars]\n"
        "greeting = hello world\n",
    )
    host = load_inventory([str(source)]).host("web1")
    assert host.vars["count"] == 3
    assert host.vars["ratio"] == 0.5
    assert host.vars["on"] is True
    assert host.vars["items"] == [1, 2]
    assert host.vars["name"] == "plain"
    assert host.vars["quoted"] == "a b"
    assert host.vars["greeting"] == "hello world"


def test_ini_semicolon_and_hash_lines_are_comments(tmp_path: Path) -> None:
    source = write(tmp_path, "inv.ini", "; comment\n# comment\n[web]  # trailing\nweb1\n")
    assert names(load_inventory([str(source)])) == ["web1"]


def test_ini_children_may_be_defined_after_the_parent_names_them(tmp_path: Path) -> None:
    source = write(tmp_path, "inv.ini", "[top:children]\nmid\n[mid:children]\nleaf\n[leaf]\nh1\n")
    inventory = load_inventory([str(source)])
    assert names(inventory, "top") == ["h1"]
    assert inventory.groups["leaf"].depth == 3


def test_yaml_groups_nest_to_any_depth_with_ranges_and_vars() -> None:
    inventory = load_inventory([str(DATA / "datacenter.yml")])
    assert inventory.groups["par_prod_web_rack1"].depth == 4
    assert names(inventory, "par_prod_web_rack1") == [f"web-par-{n:02d}" for n in range(1, 7)]
    assert names(inventory, "nyc_prod_web")[:3] == ["web-nyc-01", "web-nyc-03", "web-nyc-05"]
    assert names(inventory, "nyc_prod_db") == ["db-nyc-a", "db-nyc-b", "db-nyc-c"]
    assert inventory.host("db-par-2").port == 2222
    assert inventory.host("web-par-13").vars["env"] == "staging"


def test_yaml_hosts_given_as_one_string_is_one_host(tmp_path: Path) -> None:
    source = write(tmp_path, "inv.yml", "web:\n  hosts: web1\n")
    assert names(load_inventory([str(source)])) == ["web1"]


def test_format_is_chosen_by_content_not_extension(tmp_path: Path) -> None:
    yaml_named_ini = write(tmp_path, "a.ini", "all:\n  hosts:\n    y1:\n")
    ini_named_yaml = write(tmp_path, "b.yml", "[web]\ni1\n")
    no_extension = write(tmp_path, "hosts", "x1\nx2:2200\n")
    inventory = load_inventory([str(yaml_named_ini), str(ini_named_yaml), str(no_extension)])
    assert names(inventory) == ["y1", "i1", "x1", "x2"]
    assert inventory.host("x2").port == 2200


def test_several_sources_merge_in_order(tmp_path: Path) -> None:
    first = write(tmp_path, "one.ini", "[web]\nweb1 role=first\n")
    second = write(tmp_path, "two.yml", "web:\n  hosts:\n    web1: {role: second}\n    web2:\n")
    inventory = load_inventory([str(first), str(second)])
    assert names(inventory, "web") == ["web1", "web2"]
    assert inventory.host("web1").vars["role"] == "second"


def test_directory_loads_files_in_name_order_and_skips_ignored_ones() -> None:
    inventory = load_inventory([str(DATA / "split")])
    assert names(inventory, "app") == [*(f"app{n}.internal" for n in range(1, 5)), "app5.internal"]
    assert names(inventory, "backend:!app") == [
        "redis-a.internal",
        "redis-b.internal",
        "redis-c.internal",
    ]
    assert "README" not in " ".join(inventory.host_names)


def test_group_vars_and_host_vars_directories_apply_next_to_the_inventory() -> None:
    inventory = load_inventory([str(DATA / "split")])
    app1 = inventory.host("app1.internal")
    assert app1.user == "deploy"  # group_vars/app.yml over group_vars/all.yml
    assert app1.port == 2200  # host_vars/app1.internal.yml
    assert app1.vars["http_port"] == 9090
    assert inventory.host("app2.internal").vars["http_port"] == 8080
    assert inventory.host("grafana.internal").user == "admin"


def test_host_list_source_makes_ungrouped_hosts() -> None:
    inventory = load_inventory(["web1,web[2:3],"])
    assert names(inventory, "ungrouped") == ["web1", "web2", "web3"]


def test_herd_inventory_variable_is_the_default_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path, "fleet.ini", "[web]\nweb1\n")
    monkeypatch.setenv("HERD_INVENTORY", str(source))
    assert names(load_inventory([])) == ["web1"]


def test_inventory_yml_in_the_current_directory_is_the_last_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "inventory.ini", "[web]\nfrom_ini\n")
    monkeypatch.chdir(tmp_path)
    assert names(load_inventory([])) == ["from_ini"]
    write(tmp_path, "inventory.yml", "web:\n  hosts:\n    from_yml:\n")
    assert names(load_inventory([])) == ["from_yml"]


def test_all_and_ungrouped_always_exist_and_every_group_hangs_under_all(tmp_path: Path) -> None:
    source = write(tmp_path, "inv.ini", "[web]\nweb1\n")
    inventory = load_inventory([str(source)])
    assert inventory.groups["all"].children == ("ungrouped", "web")
    assert inventory.groups["web"].parents == ("all",)
    assert inventory.groups["ungrouped"].hosts == ()


def test_host_listed_under_all_only_is_ungrouped(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "inv.yml",
        "all:\n  hosts:\n    lone:\n    both:\n  children:\n    g:\n      hosts:\n        both:\n",
    )
    assert names(load_inventory([str(source)]), "ungrouped") == ["lone"]
