"""Variable precedence as Ansible documents it, and connection variables read into Host."""

from __future__ import annotations

from pathlib import Path

from herd.inventory import load_inventory
from herd.inventory.variables import mask_secrets

DATA = Path(__file__).resolve().parents[1] / "data" / "inventories"


def test_child_group_beats_parent_and_parent_beats_all() -> None:
    inventory = load_inventory([str(DATA / "precedence.ini")])
    h1 = inventory.host("h1")
    assert h1.vars["region_only"] == "yes"  # from the parent
    assert h1.vars["ntp"] == "pool.ntp.org"  # from all


def test_sibling_groups_merge_in_name_order_so_the_later_name_wins() -> None:
    inventory = load_inventory([str(DATA / "precedence.ini")])
    assert inventory.host("h1").vars["sibling"] == "beta"
    assert inventory.host("h1").vars["level"] == "beta"


def test_group_priority_beats_name_order() -> None:
    inventory = load_inventory([str(DATA / "precedence.ini")])
    assert inventory.host("h4").vars["level"] == "urgent"
    assert "ansible_group_priority" not in inventory.host("h4").vars


def test_host_variable_beats_every_group() -> None:
    inventory = load_inventory([str(DATA / "precedence.ini")])
    assert inventory.host("h2").vars["level"] == "host"


def test_more_specific_ansible_port_beats_a_general_port_whatever_the_spelling() -> None:
    inventory = load_inventory([str(DATA / "precedence.ini")])
    assert inventory.host("h3").port == 2222
    assert inventory.host("h1").port == 22


def test_herd_and_ansible_connection_names_fill_host_fields(tmp_path: Path) -> None:
    source = tmp_path / "inv.yml"
    source.write_text(
        "all:\n"
        "  hosts:\n"
        "    herdish:\n"
        "      address: 10.0.0.5\n"
        "      port: '2201'\n"
        "      user: ops\n"
        "      identity_file: ~/.ssh/ops\n"
        "      password: s3cret\n"
        "      jump: bastion.example.net\n"
        "      known_hosts: /etc/herd/known_hosts\n"
        "      connect_timeout: 2.5\n"
        "    ansibleish:\n"
        "      ansible_host: 10.0.0.6\n"
        "      ansible_port: 2202\n"
        "      ansible_user: deploy\n"
        "      ansible_ssh_private_key_file: [/keys/a, /keys/b]\n"
        "      ansible_password: hunter2\n"
        "    here:\n"
        "      ansible_connection: local\n"
    )
    inventory = load_inventory([str(source)])
    herdish = inventory.host("herdish")
    assert (herdish.address, herdish.port, herdish.user) == ("10.0.0.5", 2201, "ops")
    assert herdish.identity_files == (str(Path("~/.ssh/ops").expanduser()),)
    assert herdish.password == "s3cret"
    assert herdish.jump == "bastion.example.net"
    assert herdish.known_hosts == "/etc/herd/known_hosts"
    assert herdish.connect_timeout == 2.5
    ansibleish = inventory.host("ansibleish")
    assert (ansibleish.address, ansibleish.port, ansibleish.user) == ("10.0.0.6", 2202, "deploy")
    assert ansibleish.identity_files == ("/keys/a", "/keys/b")
    assert ansibleish.password == "hunter2"
    here = inventory.host("here")
    assert here.local and here.connection == "local"
    assert here.address == "here"  # the address defaults to the name
    assert not herdish.local and herdish.connection == "ssh"


def test_ini_numbers_and_strings_both_work_for_ports(tmp_path: Path) -> None:
    source = tmp_path / "inv.ini"
    source.write_text("[web]\nweb1 ansible_port=2222\nweb2 ansible_port='2223'\n")
    inventory = load_inventory([str(source)])
    assert [inventory.host(h).port for h in ("web1", "web2")] == [2222, 2223]


def test_host_groups_are_every_group_it_belongs_to_except_all() -> None:
    inventory = load_inventory([str(DATA / "ansible_docs.ini")])
    assert inventory.host("host2").groups == ("atlanta", "raleigh", "southeast", "usa")
    assert inventory.host("mail.example.com").groups == ("ungrouped",)


def test_secrets_are_masked_and_other_values_kept() -> None:
    masked = mask_secrets(
        {"password": "x", "ansible_password": "y", "ansible_become_pass": "z", "port": 22}
    )
    assert masked == {
        "password": "********",
        "ansible_password": "********",
        "ansible_become_pass": "********",
        "port": 22,
    }


def test_implicit_localhost_runs_locally_with_all_vars(tmp_path: Path) -> None:
    source = tmp_path / "inv.ini"
    source.write_text("[all:vars]\nntp=pool\n[web]\nweb1\n")
    [local] = load_inventory([str(source)]).select("localhost")
    assert local.local and local.vars["ntp"] == "pool"


def test_proxy_jump_in_ansible_ssh_arguments_becomes_the_jump_host(tmp_path: Path) -> None:
    source = tmp_path / "inv.ini"
    source.write_text(
        "[behind]\n"
        "a ansible_ssh_common_args='-o ProxyJump=ops@bastion.example.net:2222'\n"
        "b ansible_ssh_extra_args='-J jump1'\n"
        "c ansible_ssh_common_args='-o ProxyJump=ignored' jump=chosen\n"
    )
    inventory = load_inventory([str(source)])
    assert inventory.host("a").jump == "ops@bastion.example.net:2222"
    assert inventory.host("b").jump == "jump1"
    assert inventory.host("c").jump == "chosen"


def test_a_dash_j_inside_a_path_is_not_a_jump_host(tmp_path: Path) -> None:
    # a temporary directory such as /tmp/demo-Jacpx once made herd jump via "acpx/known_hosts"
    source = tmp_path / "inv.ini"
    source.write_text(
        "a ansible_ssh_common_args='-o UserKnownHostsFile=/tmp/demo-Jacpx/known_hosts'\n"
        "b ansible_ssh_common_args='-o UserKnownHostsFile=/tmp/x-oProxyJump=y/kh'\n"
        "c ansible_ssh_common_args='-o \"ProxyJump bastion\" -o UserKnownHostsFile=/k'\n"
        "d ansible_ssh_extra_args='-Jops@bastion:2222'\n"
    )
    inventory = load_inventory([str(source)])
    assert inventory.host("a").jump is None
    assert inventory.host("b").jump is None
    assert inventory.host("c").jump == "bastion"
    assert inventory.host("d").jump == "ops@bastion:2222"
