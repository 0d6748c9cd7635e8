"""The lab's plan, files and state: names, addresses, groups, inventory, known_hosts."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest
import yaml

from herd.cli.main import main
from herd.errors import LabError
from herd.lab import LabHost, LabState, address_of, default_groups, parse_groups
from herd.lab.files import LabFiles, inventory_document
from herd.lab.keys import known_hosts_line, write_key_pair
from herd.lab.plan import plan_hosts
from herd.lab.state import read_state, write_state


def test_host_addresses_skip_to_the_next_octet_after_254() -> None:
    assert address_of(1) == "127.0.1.1"
    assert address_of(254) == "127.0.1.254"
    assert address_of(255) == "127.0.2.1"
    assert address_of(5000) == "127.0.20.174"
    assert len({address_of(k) for k in range(1, 5001)}) == 5000


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1, [("web", 1)]),
        (2, [("web", 1), ("db", 1)]),
        (8, [("web", 4), ("db", 2), ("cache", 2)]),
        (200, [("web", 100), ("db", 50), ("cache", 50)]),
    ],
)
def test_default_groups_split_half_web_quarter_db_rest_cache(
    count: int, expected: list[tuple[str, int]]
) -> None:
    assert default_groups(count) == expected


def test_hosts_are_named_by_group_in_order_and_overflow_goes_to_other() -> None:
    hosts = plan_hosts(5, parse_groups("web=2,db=1"), port=2200)
    assert [(h.name, h.group, h.address, h.port) for h in hosts] == [
        ("web01", "web", "127.0.1.1", 2200),
        ("web02", "web", "127.0.1.2", 2200),
        ("db01", "db", "127.0.1.3", 2200),
        ("other01", "other", "127.0.1.4", 2200),
        ("other02", "other", "127.0.1.5", 2200),
    ]


def test_host_numbers_widen_for_groups_of_a_hundred_or_more() -> None:
    names = [h.name for h in plan_hosts(150, [("node", 150)])]
    assert names[0] == "node001"
    assert names[-1] == "node150"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("web", "is not NAME=COUNT"),
        ("web=x", "must be a whole number"),
        ("web=0", "at least one host"),
        ("web=1,web=2", "named twice"),
        ("9web=1", "is not NAME=COUNT"),
    ],
)
def test_bad_group_specs_are_refused_with_the_offending_item(spec: str, message: str) -> None:
    with pytest.raises(LabError, match=message):
        parse_groups(spec)


@pytest.mark.parametrize("count", [0, -1, 5001])
def test_host_counts_outside_1_to_5000_are_refused(count: int) -> None:
    with pytest.raises(LabError, match="1 to 5000 hosts"):
        plan_hosts(count)


def test_groups_asking_for_more_hosts_than_the_lab_has_are_refused() -> None:
    with pytest.raises(LabError, match="asks for 6 hosts but the lab has 4"):
        plan_hosts(4, parse_groups("web=4,db=2"))


def test_inventory_puts_common_settings_under_all_vars(tmp_path: Path) -> None:
    files = LabFiles(tmp_path)
    document = yaml.safe_load(inventory_document(files, plan_hosts(3, port=2222), "alice"))
    assert document["all"]["vars"] == {
        "ansible_port": 2222,
        "ansible_user": "alice",
        "ansible_ssh_private_key_file": str(tmp_path / "client_key"),
        "known_hosts": str(tmp_path / "known_hosts"),
        "ansible_ssh_common_args": (
            f"-o UserKnownHostsFile={tmp_path / 'known_hosts'} -o StrictHostKeyChecking=yes"
        ),
    }
    assert document["all"]["children"] == {
        "web": {
            "hosts": {
                "web01": {"ansible_host": "127.0.1.1"},
                "web02": {"ansible_host": "127.0.1.2"},
            }
        },
        "db": {"hosts": {"db01": {"ansible_host": "127.0.1.3"}}},
    }


def test_known_hosts_lines_bracket_address_and_port_unless_port_22(tmp_path: Path) -> None:
    public, fingerprint = write_key_pair(tmp_path / "key", "test")
    assert (tmp_path / "key.pub").read_text() == public + "\n"
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600
    key_type, data = public.split()[:2]
    assert known_hosts_line("127.0.1.1", 2222, public) == f"[127.0.1.1]:2222 {key_type} {data}"
    assert known_hosts_line("127.0.1.1", 22, public) == f"127.0.1.1 {key_type} {data}"
    assert asyncssh.import_public_key(public).get_fingerprint("sha256") == fingerprint
    assert fingerprint.startswith("SHA256:")


def test_state_file_round_trips_and_reports_damage(tmp_path: Path) -> None:
    host = LabHost("web01", "web", "127.0.1.1", 2222, 1234, "SHA256:x")
    state = LabState("openssh", str(tmp_path), 2222, "alice", "2026-01-01T00:00:00+00:00", (host,))
    path = tmp_path / "lab.json"
    write_state(path, state)
    assert read_state(path) == state
    assert read_state(tmp_path / "missing.json") is None
    path.write_text("{not json")
    with pytest.raises(LabError, match="cannot read the lab state"):
        read_state(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["0"], "a lab has 1 to 5000 hosts, not 0"),
        (["5001"], "a lab has 1 to 5000 hosts, not 5001"),
        (["3", "--groups", "web=two"], "--groups: 'web=two'"),
        (["3", "--port", "0"], "port 0 is outside 1..65535"),
    ],
)
def test_lab_up_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["lab", "up", *args, "--dir", str(tmp_path / "lab")]) == 2
    err = capsys.readouterr().err
    assert err == f"herd: error: {err.removeprefix('herd: error: ')}"
    assert message in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "lab").exists()


def test_lab_up_with_openssh_engine_and_no_sshd_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("herd.lab.openssh.find_sshd", lambda: None)
    assert main(["lab", "up", "2", "--engine", "openssh", "--dir", str(tmp_path / "lab")]) == 2
    assert "sshd not found" in capsys.readouterr().err
    assert not (tmp_path / "lab").exists()


def test_lab_auto_engine_falls_back_to_builtin_without_sshd(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from herd.lab import pick_engine

    monkeypatch.setattr("herd.lab.openssh.find_sshd", lambda: None)
    assert pick_engine("auto") == ("builtin", None)
    monkeypatch.setattr("herd.lab.openssh.find_sshd", lambda: "/usr/sbin/sshd")
    assert pick_engine("auto") == ("openssh", "/usr/sbin/sshd")


def test_free_port_prefers_the_default_and_avoids_a_port_taken_on_any_host_address() -> None:
    import socket

    from herd.lab import free_port

    with socket.socket() as taken:
        taken.bind(("127.0.1.2", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert free_port(3, preferred=busy) != busy
        chosen = free_port(3, preferred=busy)
        for k in (1, 2, 3):
            with socket.socket() as probe:
                probe.bind((f"127.0.1.{k}", chosen))
    with socket.socket() as probe:
        probe.bind(("127.0.1.1", 0))
        idle = probe.getsockname()[1]
    assert free_port(3, preferred=idle) == idle
