"""``-e/--extra-vars``: Ansible's forms, its precedence, and the errors that point at ``--env``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from herd.core.audit import AuditLog
from herd.errors import InventoryError, UsageError
from herd.inventory import load_inventory
from herd.inventory.extra_vars import parse_extra_vars
from herd.inventory.kv import KvError, parse_kv, split_args

from .test_inventory_cli import DATA, run

PRECEDENCE = str(DATA / "precedence.ini")


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        ("ansible_user=deploy", {"ansible_user": "deploy"}),
        ("a=1 b=two  c=3", {"a": "1", "b": "two", "c": "3"}),
        ("motd=\"hello there\" x='y z'", {"motd": "hello there", "x": "y z"}),
        ("url={{ base }}/x next=1", {"url": "{{ base }}/x", "next": "1"}),
        (r"tab=a\tb", {"tab": "a\tb"}),
        ("eq=a=b", {"eq": "a=b"}),
        ("a=1 a=2", {"a": "2"}),
        ("empty=", {"empty": ""}),
        ('{"port": 2222, "tags": ["a", "b"]}', {"port": 2222, "tags": ["a", "b"]}),
        ("{user: deploy, n: 3}", {"user": "deploy", "n": 3}),
        ("", {}),
    ],
)
def test_each_form_reads_as_ansible_reads_it(option: str, expected: dict[str, object]) -> None:
    assert parse_extra_vars([option]) == expected


def test_a_later_option_wins_whole_values_without_merging() -> None:
    merged = parse_extra_vars(['{"d": {"a": 1}, "x": 1}', '{"d": {"b": 2}}', "x=2"])
    assert merged == {"d": {"b": 2}, "x": "2"}


def test_at_file_reads_yaml_and_json(tmp_path: Path) -> None:
    yml = tmp_path / "vars.yml"
    yml.write_text("ansible_user: deploy\nports: [22, 2222]\n")
    js = tmp_path / "vars.json"
    js.write_text('{"ansible_port": 2200}')
    assert parse_extra_vars([f"@{yml}", f"@{js}"]) == {
        "ansible_user": "deploy",
        "ports": [22, 2222],
        "ansible_port": 2200,
    }


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "PATH=/opt/bin",
            "-e PATH=...: -e sets Ansible variables, and an upper-case PATH looks like a "
            "command's environment: use herd run --env PATH=VALUE",
        ),
        ("user=ops DB_PASSWORD=hunter2", "use herd run --env DB_PASSWORD=VALUE"),
        (
            "a-b=1",
            "-e a-b=...: 'a-b' is not a variable name (letters, digits and _, not starting with "
            "a digit); for a command's environment use herd run --env NAME=VALUE",
        ),
        ("1x=1", "'1x' is not a variable name"),
        ("true=1", "'true' is not a variable name"),
        ("GREETING", "-e 'GREETING': expected KEY=VALUE, @FILE or inline JSON/YAML"),
        ("GREETING", "use herd run --env GREETING"),
        ("user=ops stray", "-e 'stray': expected KEY=VALUE"),
        ("./vars.yml", "-e ./vars.yml: a file of variables is written with @ in front"),
        ('a="open', "-e 'a=\"open': unbalanced quotes"),
        ("x={{ open", "unbalanced quotes or {{ }}"),
        ("[1, 2]", "inline variables must be a mapping"),
        ("{a: [}", "not valid JSON or YAML"),
        ('{"a-b": 1}', "'a-b' is not a variable name"),
        ("ansible_port=abc", "-e: ansible_port must be a port number (1-65535), not 'abc'"),
        ('{"ansible_port": 0}', "ansible_port must be a port number"),
    ],
)
def test_bad_options_are_refused_with_one_line(option: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_extra_vars([option])
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_secret_value_is_not_echoed_in_the_error() -> None:
    with pytest.raises(UsageError) as caught:
        parse_extra_vars(["DB_PASSWORD=hunter2"])
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read this -e file: No such file or directory"),
        ("a: [1\n", "YAML syntax"),
        ("- a\n- b\n", "an -e file holds a mapping of variables, not list"),
        ("", "an -e file holds a mapping of variables, not nothing"),
        ("user: ops\nansible_port: ssh\n", "ansible_port must be a port number"),
        ("$ANSIBLE_VAULT;1.1;AES256\n6162\n", "encrypted with ansible-vault"),
    ],
)
def test_a_bad_file_is_an_error_naming_it(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "vars.yml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InventoryError) as caught:
        parse_extra_vars([f"@{path}"])
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_a_bad_value_in_a_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "vars.yml"
    path.write_text("user: ops\nansible_port: ssh\n")
    with pytest.raises(InventoryError, match=rf"^{path}:2: ansible_port"):
        parse_extra_vars([f"@{path}"])


def test_splitting_keeps_quotes_and_jinja_blocks_whole() -> None:
    assert split_args('a=1 b="x y" c={{ d | e }}') == ["a=1", 'b="x y"', "c={{ d | e }}"]
    assert parse_kv(r"a\=b=c x=\u00e9") == ({"a\\=b": "c", "x": "é"}, [])
    with pytest.raises(KvError):
        split_args("a='unclosed")


def test_extra_vars_beat_every_host_and_group_variable() -> None:
    inventory = load_inventory([PRECEDENCE], parse_extra_vars(["level=cli ansible_port=2999"]))
    h2 = inventory.host("h2")  # h2 sets level itself; h3 sets ansible_port itself
    assert h2.vars["level"] == "cli"
    assert inventory.host("h3").port == 2999
    assert inventory.host("h1").port == 2999


def test_extra_ansible_user_beats_herd_user_set_on_the_host(tmp_path: Path) -> None:
    source = tmp_path / "inv.ini"
    source.write_text("[web]\nweb01 user=ops\n")
    [web01] = load_inventory([str(source)], {"ansible_user": "deploy"}).select("web01")
    assert web01.user == "deploy"


def test_hosts_json_shows_the_effect_of_e(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "-i", PRECEDENCE, "hosts", "h1", "--json", "-e", "ansible_user=deploy"
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["user"] == "deploy"
    assert record["vars"]["ansible_user"] == "deploy"


def test_hosts_never_prints_a_secret_given_with_e(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "-i", PRECEDENCE, "hosts", "h1", "--json",
        "-e", "ansible_password=hunter2 ansible_become_password=s3cret",
        "-e", "login={{ ansible_user | default('root') }}:{{ ansible_password }}",
    )  # fmt: skip
    assert code == 0
    assert "hunter2" not in out and "s3cret" not in out
    variables = json.loads(out)["vars"]
    assert variables["ansible_password"] == variables["ansible_become_password"] == "********"
    assert variables["login"] == "********"  # rendered from a secret, so a secret too


def test_bad_e_exits_2_with_one_line_and_nothing_selected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "-i", PRECEDENCE, "hosts", "all", "-e", "PATH=/x")
    assert (code, out) == (2, "")
    assert err.startswith("herd: error: -e PATH=...") and err.count("\n") == 1
    code, _, err = run(capsys, "-i", PRECEDENCE, "hosts", "all", "-e", "ansible_port=99999")
    assert code == 2
    assert "herd: error: -e: ansible_port must be a port number" in err


def test_run_push_and_pull_take_e_too(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (["run", "all", "-e", "PATH=/x", "--", "true"],
                    ["push", "all", "-e", "PATH=/x", PRECEDENCE, "/tmp/"],
                    ["pull", "all", "-e", "PATH=/x", "/etc/hostname", "/tmp/x"]):  # fmt: skip
        code, _, err = run(capsys, "-i", PRECEDENCE, *command)
        assert code == 2, command
        assert "use herd run --env PATH=VALUE" in err, command


def test_secrets_given_with_e_in_any_form_stay_out_of_the_operation_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    source = tmp_path / "inv.ini"
    source.write_text("[here]\nnode1 ansible_connection=local\n")
    code, _, err = run(
        capsys, "-i", str(source), "run", "all",
        "-e", "ansible_password=hunter1",
        "-e", '{"ansible_become_password": "hunter2"}',
        "-e", "{db_token: hunter3}",
        "--", "true",
    )  # fmt: skip
    assert code == 0, err
    with AuditLog(isolated_env / "operations.db", check_writable=False) as log:
        op_id = log.last_operation_id()
        assert op_id is not None
        record = log.operation(op_id)
    assert record is not None
    assert "-e" in record.argv
    assert "hunter" not in " ".join(record.argv)
    for stored in isolated_env.glob("operations.db*"):
        assert b"hunter" not in stored.read_bytes()
