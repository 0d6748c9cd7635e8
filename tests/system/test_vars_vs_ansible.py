"""herd's variables match ansible-core's: Jinja in inventory values, and ``-e`` extra variables.

The references are the ansible-core installed in the virtualenv (the dev extra):
``ansible-inventory --list`` (which lists values as written, templates
unrendered, and applies ``-e``), and ansible-core's own rendering of a host's
variables, the ``hostvars`` view a play reads, with the command line parsed
by ansible's own ``ansible`` CLI class, in one subprocess per inventory.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from herd.cli.main import main
from herd.inventory.kv import KvError, parse_kv

from .test_inventory_vs_ansible import DATA, VENV_BIN, run_ansible

pytestmark = pytest.mark.system

RENDERED = """
import json, sys, warnings
warnings.simplefilter("ignore")
from ansible import context
from ansible.cli.adhoc import AdHocCLI
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.hostvars import HostVars
from ansible.vars.manager import VariableManager
AdHocCLI(["ansible", *sys.argv[1:]]).parse()
loader = DataLoader()
inventory = InventoryManager(loader=loader, sources=context.CLIARGS["inventory"])
manager = VariableManager(loader=loader, inventory=inventory)
hostvars = HostVars(inventory=inventory, variable_manager=manager, loader=loader)
names = json.loads(sys.stdin.read())
answers = {}
for host, keys in names.items():
    view = hostvars[host]
    answers[host] = {}
    for key in keys:
        try:
            answers[host][key] = view[key]
        except Exception as exc:
            answers[host][key] = {"error": str(exc)}
json.dump(answers, sys.stdout)
"""

KV_ORACLE = """
import json, sys, warnings
warnings.simplefilter("ignore")
from ansible.parsing.splitter import parse_kv
answers = []
for text in json.load(sys.stdin):
    try:
        answers.append({str(k): str(v) for k, v in parse_kv(text).items()})
    except Exception as exc:
        answers.append({"error": type(exc).__name__})
json.dump(answers, sys.stdout)
"""


def herd_vars(
    capsys: pytest.CaptureFixture[str], source: Path, extra: list[str]
) -> dict[str, dict[str, object]]:
    argv = ["-i", str(source), "hosts", "all", "--json"]
    for option in extra:
        argv += ["-e", option]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return {record["host"]: record["vars"] for record in map(json.loads, out.splitlines())}


def ansible_listed(source: Path, extra: list[str]) -> dict[str, dict[str, object]]:
    argv = [str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"]
    for option in extra:
        argv += ["-e", option]
    listed: dict[str, dict[str, object]] = json.loads(run_ansible(argv, source.parent))
    return listed["_meta"]["hostvars"]  # type: ignore[return-value]


def ansible_rendered(
    source: Path, extra: list[str], names: dict[str, list[str]]
) -> dict[str, dict[str, object]]:
    argv = [sys.executable, "-c", RENDERED, "-i", str(source), "all"]
    for option in extra:
        argv += ["-e", option]
    rendered: dict[str, dict[str, object]] = json.loads(
        run_ansible(argv, source.parent, json.dumps(names))
    )
    return rendered


@pytest.mark.parametrize(
    ("inventory", "extra"),
    [
        ("templated", []),
        ("templated", ["net=10.99 dc=nyc", '{"port_base": 3000}']),
        ("templated.ini", []),
        ("templated.ini", ["subnet=192.168.9", '{"idx": 7}']),
    ],
)
def test_jinja_values_render_as_ansible_renders_them(
    inventory: str, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    source = DATA / inventory
    herd = herd_vars(capsys, source, extra)
    listed = ansible_listed(source, extra)
    # the same variables as ansible-inventory --list, whose values are the unrendered sources
    assert {h: sorted(v) for h, v in herd.items()} == {h: sorted(v) for h, v in listed.items()}
    rendered = ansible_rendered(source, extra, {h: sorted(v) for h, v in listed.items()})
    templates = 0
    for host, variables in herd.items():
        for key, value in variables.items():
            assert rendered[host][key] == value, f"{inventory} {extra}: {host} {key}"
            templates += rendered[host][key] != listed[host][key]
    assert templates >= 5  # the inventory does hold templates that rendered


EXTRA_CASES = [
    ["level=cli"],
    ["level=cli ansible_port=2999", "level=later"],
    ['msg="two words" path=/srv/app', "region_only=no"],
    ['{"level": {"nested": [1, 2]}, "ntp": "time.example.net"}'],
    ["{level: yaml, sibling: 3}"],
]


@pytest.mark.parametrize("extra", EXTRA_CASES)
@pytest.mark.parametrize("inventory", ["precedence.ini", "datacenter.yml"])
def test_extra_vars_beat_the_inventory_as_in_ansible(
    inventory: str, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    source = DATA / inventory
    assert herd_vars(capsys, source, extra) == ansible_listed(source, extra)


def test_extra_vars_from_a_file_beat_the_inventory_as_in_ansible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = DATA / "precedence.ini"
    yml = tmp_path / "extra.yml"
    yml.write_text("level: from_file\nports: [22, 2222]\nansible_user: deploy\n")
    js = tmp_path / "extra.json"
    js.write_text('{"ansible_user": "json", "sibling": null}')
    extra = [f"@{yml}", f"@{js}", "sibling=last"]
    assert herd_vars(capsys, source, extra) == ansible_listed(source, extra)


KV_SAMPLES = [
    "a=1 b=2",
    "a=\"x y\" b='p q'",
    "a={{ b }} c={% if x %}y{% endif %}",
    "a=x\\ty b=\\u00e9\\x41",
    "a=1  b=2\nc=3",
    'msg="line one\nline two"',
    "a=b=c",
    'a="quoted \\" inside"',
    "k= v ",
    "a=1 \\\nb=2",
    "a={{ 'x y' }}",
    "a='it''s'",
    "x=[1, 2] y={'k': 'v'}",
]


def _random_kv_strings(count: int) -> list[str]:
    pieces = ["a", "b", "=", " ", "  ", "\n", '"', "'", "\\", "{{", "}}", "{%", "%}", "x", "é"]
    chooser = random.Random(13)
    return [
        "".join(chooser.choice(pieces) for _ in range(chooser.randint(1, 10))) for _ in range(count)
    ]


def test_key_value_splitting_matches_ansible_parse_kv() -> None:
    texts = KV_SAMPLES + _random_kv_strings(1500)
    answers = json.loads(run_ansible([sys.executable, "-c", KV_ORACLE], DATA, json.dumps(texts)))
    for text, reference in zip(texts, answers, strict=True):
        try:
            pairs, free = parse_kv(text)
        except KvError:
            assert "error" in reference, text
            continue
        assert "error" not in reference, text
        assert ("_raw_params" in reference) == bool(free), text
        reference.pop("_raw_params", None)
        assert pairs == reference, text
