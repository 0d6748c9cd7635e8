"""herd selects the same hosts as ansible-core for every pattern form, on real-world inventories.

The reference is the ansible-core installed in the virtualenv (the dev extra):
its ``ansible --list-hosts`` command once per inventory, and its own
``InventoryManager`` (the code behind ``--list-hosts``) for the many patterns,
in one subprocess per inventory so the test stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from herd.cli.main import main

pytestmark = pytest.mark.system

DATA = Path(__file__).resolve().parents[1] / "data" / "inventories"
VENV_BIN = Path(sys.executable).parent
ANSIBLE = VENV_BIN / "ansible"

ORACLE = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.inventory.manager import InventoryManager
request = json.load(sys.stdin)
inventory = InventoryManager(loader=DataLoader(), sources=request["sources"])
answers = []
for pattern, limit in request["queries"]:
    try:
        inventory.subset(limit)
        answers.append(sorted(h.name for h in inventory.get_hosts(pattern)))
    except Exception as exc:
        answers.append({"error": str(exc)})
    finally:
        inventory.subset(None)
        inventory.clear_pattern_cache()
json.dump(answers, sys.stdout)
"""

# Pattern forms from Ansible's "Patterns: targeting hosts and groups" page, per inventory.
COMMON = ["all", "*"]
CASES: dict[str, list[tuple[str, str | None]]] = {
    "ansible_docs.ini": [
        *((p, None) for p in COMMON),
        ("webservers", None),
        ("mail.example.com", None),
        ("webservers:dbservers", None),
        ("webservers,dbservers", None),
        ("usa:!northeast", None),
        ("!northeast:usa", None),
        ("webservers:&prod", None),
        ("&prod:webservers", None),
        ("webservers:dbservers:&prod:!foo.example.com", None),
        ("!test:&prod:webservers:dbservers", None),
        ("www*", None),
        ("*.example.com", None),
        ("www0*:&northeast", None),
        ("~(foo|bar)\\.example\\.com", None),
        ("~www[0-9]+\\.example", None),
        ("one.example.com:two.example.com", None),
        ("northeast[0]", None),
        ("northeast[-1]", None),
        ("northeast[0:2]", None),
        ("northeast[2:5]", None),
        ("northeast[48:]", None),
        ("dbservers[1]:webservers[0]", None),
        ("southeast", None),
        ("ungrouped", None),
        ("southwest", None),
        ("all", "webservers"),
        ("usa", "northeast:!www1*"),
        ("all:!usa", None),
        ("&prod", None),
        ("!usa", None),
        ("web*", None),
        ("db-*", None),
        ("*.example.com[1:2]", None),
        ("usa[0:3]", None),
    ],
    "ansible_docs.yml": [
        *((p, None) for p in COMMON),
        ("prod", None),
        ("test", None),
        ("webservers:&prod", None),
        ("webservers:!east", None),
        ("usa:!southeast", None),
        ("raleigh:atlanta:&southeast", None),
        ("webservers[0]", None),
        ("dbservers[-1]", None),
        ("dbservers[0:1]", None),
        ("northeast[2:5]", None),
        ("~host[12]", None),
        ("*.example.com:!www*", None),
        ("east,west", None),
        ("all", "prod"),
    ],
    "datacenter.yml": [
        *((p, None) for p in COMMON),
        ("prod", None),
        ("web:&prod", None),
        ("web:&prod:!par_prod_web_rack1", None),
        ("site_par:!par_staging", None),
        ("web-par-*:&prod", None),
        ("web*:&prod:!web-par-0*", None),
        ("~db-(par|nyc)-.*", None),
        ("par_prod_web[0:3]", None),
        ("nyc_prod_web[-1]", None),
        ("db:&site_nyc", None),
        ("bastion.example.net", None),
        ("web", "site_nyc"),
    ],
    "kubespray.ini": [
        *((p, None) for p in COMMON),
        ("k8s_cluster", None),
        ("kube_node:!kube_control_plane", None),
        ("etcd:&kube_node", None),
        ("kube_control_plane[0]", None),
        ("kube_node[1:3]", None),
        ("node[1-3]*", None),
        ("~node[4-6]", None),
        ("all:!kube_node", None),
        ("calico_rr:kube_node[0]", None),
        ("*[0:3]", None),
        ("k8s_cluster[4:]", None),
    ],
    "ipv6.yml": [
        *((p, None) for p in COMMON),
        ("2001:db8::1", None),
        ("2001:db8::1,2001:db8::2", None),
        ("all,!2001:db8::1", None),
        ("other,2001:db8::2,&v6", None),
    ],
    "split": [
        *((p, None) for p in COMMON),
        ("backend", None),
        ("app", None),
        ("backend:!cache", None),
        ("*.internal:&monitoring", None),
        ("app[0:1]", None),
        ("app[-1]", None),
        ("cache[1]", None),
        ("all[2:5]", None),
        ("*[-1]", None),
    ],
}


def _ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOME=env.get("HERD_HOME", "/tmp"),
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def run_ansible(argv: list[str], cwd: Path, stdin: str | None = None) -> str:
    """Run an ansible-core command (bounded in time); its standard output."""
    done = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        env=_ansible_env(),
        cwd=cwd,
        check=True,
    )
    return done.stdout


def ansible_answers(source: Path, queries: list[tuple[str, str | None]]) -> list[object]:
    request = json.dumps({"sources": [str(source)], "queries": queries})
    answers: list[object] = json.loads(
        run_ansible([sys.executable, "-c", ORACLE], source.parent, request)
    )
    return answers


def herd_hosts(
    capsys: pytest.CaptureFixture[str], source: Path, pattern: str, limit: str | None
) -> list[str]:
    argv = ["-i", str(source), "hosts", pattern, "--json"]
    if limit is not None:
        argv += ["--limit", limit]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, f"herd {' '.join(argv)} exited {code}: {err}"
    return sorted(json.loads(line)["host"] for line in out.splitlines())


@pytest.mark.parametrize("inventory", sorted(CASES))
def test_every_pattern_form_selects_the_same_hosts_as_ansible(
    inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = DATA / inventory
    queries = CASES[inventory]
    expected = ansible_answers(source, queries)
    for (pattern, limit), reference in zip(queries, expected, strict=True):
        assert isinstance(reference, list), f"ansible failed on {pattern!r}: {reference}"
        assert reference, f"pick patterns ansible matches: {pattern!r} matched nothing"
        got = herd_hosts(capsys, source, pattern, limit)
        assert got == reference, f"{inventory}: pattern {pattern!r} limit {limit!r}"


def test_ansible_list_hosts_command_agrees_with_herd_hosts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = DATA / "datacenter.yml"
    pattern = "web*:&prod:!web-par-0*"
    out = run_ansible([str(ANSIBLE), "-i", str(source), pattern, "--list-hosts"], source.parent)
    listed = sorted(line.strip() for line in out.splitlines()[1:] if line.strip())
    assert listed == herd_hosts(capsys, source, pattern, None)


def test_limit_from_a_file_matches_ansible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = DATA / "ansible_docs.ini"
    limit_file = tmp_path / "retry"
    limit_file.write_text("foo.example.com\none.example.com\nwww03.example.com\n")
    limit = f"@{limit_file}"
    [reference] = ansible_answers(source, [("prod", limit)])
    assert herd_hosts(capsys, source, "prod", limit) == reference


@pytest.mark.parametrize(
    "inventory", ["ansible_docs.ini", "datacenter.yml", "precedence.ini", "split"]
)
def test_resolved_variables_match_ansible_inventory_list(
    inventory: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = DATA / inventory
    out = run_ansible(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(source), "--list"], source.parent
    )
    reference = json.loads(out)["_meta"]["hostvars"]
    assert main(["-i", str(source), "hosts", "all", "--json"]) == 0
    for line in capsys.readouterr().out.splitlines():
        record = json.loads(line)
        assert record["vars"] == reference.get(record["host"], {}), record["host"]
