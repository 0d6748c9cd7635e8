"""Target patterns: Ansible's documented examples, herd's additions, and the set algebra."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from herd.errors import NoHostsMatched, PatternError
from herd.inventory import Inventory, load_inventory
from herd.inventory.build import build
from herd.inventory.data import InventoryData, Origin

# The hosts and groups Ansible's "Patterns: targeting hosts and groups" page talks about.
DOCS_INVENTORY = """
[webservers]
cobweb
webbing
weber

[dbservers]
db1.example.com
db2.example.org

[staging]
webbing
db1.example.com

[phoenix]
weber

[atlanta]
cobweb
db2.example.org

[lan]
192.0.2.10
192.0.2.11
"""
ALL = [
    "cobweb",
    "webbing",
    "weber",
    "db1.example.com",
    "db2.example.org",
    "192.0.2.10",
    "192.0.2.11",
]


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    path = tmp_path_factory.mktemp("inventory") / "docs.ini"
    path.write_text(DOCS_INVENTORY)
    return load_inventory([str(path)])


def names(inventory: Inventory, pattern: str, **options: object) -> list[str]:
    return [host.name for host in inventory.select(pattern, **options)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("all", ALL),
        ("*", ALL),
        ("cobweb", ["cobweb"]),
        ("cobweb:weber", ["cobweb", "weber"]),
        ("cobweb,weber", ["cobweb", "weber"]),
        ("webservers", ["cobweb", "webbing", "weber"]),
        (
            "webservers:dbservers",
            ["cobweb", "webbing", "weber", "db1.example.com", "db2.example.org"],
        ),
        ("webservers:!atlanta", ["webbing", "weber"]),
        ("webservers:&staging", ["webbing"]),
        ("webservers:dbservers:&staging:!phoenix", ["webbing", "db1.example.com"]),
        ("*.example.com", ["db1.example.com"]),
        ("*.example.com,*.org", ["db1.example.com", "db2.example.org"]),
        ("192.0.*", ["192.0.2.10", "192.0.2.11"]),
        ("~(web|db).*\\.example\\.com", ["db1.example.com"]),
        ("webservers[0]", ["cobweb"]),
        ("webservers[-1]", ["weber"]),
        ("webservers[0:2]", ["cobweb", "webbing", "weber"]),  # inclusive, as ansible-core does
        ("webservers[1:]", ["webbing", "weber"]),
        ("webservers[:1]", ["cobweb", "webbing"]),
        ("webservers[0:1]:dbservers[-1]", ["cobweb", "webbing", "db2.example.org"]),
    ],
)
def test_examples_from_ansibles_patterns_page(
    docs: Inventory, pattern: str, expected: list[str]
) -> None:
    assert names(docs, pattern) == expected


def test_unions_apply_first_then_intersections_then_exclusions_wherever_written(
    docs: Inventory,
) -> None:
    reference = names(docs, "webservers:dbservers:&staging:!phoenix")
    assert names(docs, "!phoenix:&staging:dbservers:webservers") == reference
    assert names(docs, "&staging:!phoenix:webservers,dbservers") == reference


def test_only_exclusions_or_intersections_start_from_all(docs: Inventory) -> None:
    assert names(docs, "!webservers") == [
        "db1.example.com",
        "db2.example.org",
        "192.0.2.10",
        "192.0.2.11",
    ]
    assert names(docs, "&staging") == ["webbing", "db1.example.com"]


def test_results_come_in_inventory_order_without_duplicates(docs: Inventory) -> None:
    assert names(docs, "weber:staging:cobweb:webservers") == [
        "cobweb",
        "webbing",
        "weber",
        "db1.example.com",
    ]


def test_limit_keeps_only_hosts_it_also_matches(docs: Inventory) -> None:
    assert names(docs, "webservers", limit="atlanta:staging") == ["cobweb", "webbing"]


def test_limit_from_a_file_reads_one_host_per_line(docs: Inventory, tmp_path: Path) -> None:
    retry = tmp_path / "retry"
    retry.write_text("weber\n\ncobweb\n")
    assert names(docs, "all", limit=f"@{retry}") == ["cobweb", "weber"]


def test_limit_file_that_cannot_be_read_is_bad_usage(docs: Inventory, tmp_path: Path) -> None:
    with pytest.raises(PatternError, match="cannot read"):
        docs.select("all", limit=f"@{tmp_path / 'missing'}")


def test_unknown_name_is_an_error_with_a_suggestion(docs: Inventory) -> None:
    with pytest.raises(
        PatternError, match="no group or host named 'webserver'; did you mean 'webservers'"
    ):
        docs.select("webserver")


def test_unknown_name_in_an_exclusion_is_an_error_not_a_silent_no_op(docs: Inventory) -> None:
    with pytest.raises(PatternError, match="'pheonix'; did you mean 'phoenix'"):
        docs.select("webservers:!pheonix")


def test_valid_pattern_matching_nothing_is_no_hosts_matched(docs: Inventory) -> None:
    with pytest.raises(NoHostsMatched, match="matched no host") as caught:
        docs.select("phoenix:&staging")
    assert caught.value.exit_code == 1
    with pytest.raises(NoHostsMatched):
        docs.select("zz*")
    with pytest.raises(NoHostsMatched, match="--limit"):
        docs.select("phoenix", limit="staging")


@pytest.mark.parametrize(
    ("pattern", "complaint"),
    [
        ("", "empty pattern"),
        ("  ,: ", "empty pattern"),
        ("webservers:!", "needs a name"),
        ("~(unclosed", "not a valid regular expression"),
        ("webservers[7]", "outside its 3 hosts"),
        ("web[01-03]", "no group or host named 'web01'"),
    ],
)
def test_malformed_patterns_are_bad_usage(docs: Inventory, pattern: str, complaint: str) -> None:
    with pytest.raises(PatternError) as caught:
        docs.select(pattern)
    assert complaint in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_subscript_indexes_own_hosts_first_then_subgroups_level_by_level(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(
        "top:\n  hosts: {t1: , t2: }\n  children:\n"
        "    left:\n      hosts: {l1: }\n      children:\n        deep:\n          hosts: {d1: }\n"
        "    right:\n      hosts: {r1: }\n"
    )
    inventory = load_inventory([str(path)])
    assert inventory.members("top") == ["t1", "t2", "l1", "r1", "d1"]
    assert names(inventory, "top[2:3]") == ["l1", "r1"]


def test_a_subscript_on_a_glob_indexes_every_match_before_duplicates_go(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text("[web]\nw1\nw2\n[webdb]\nw2\nd1\n")
    # web* matches groups web (w1 w2) and webdb (w2 d1): [1:2] is w2, w2, as in Ansible
    assert names(load_inventory([str(path)]), "web*[1:2]") == ["w2"]


def test_a_bracket_on_an_unknown_name_is_a_host_range(tmp_path: Path) -> None:
    path = tmp_path / "inv.ini"
    path.write_text("[frontend]\nweb[01:12]\n")
    inventory = load_inventory([str(path)])
    assert names(inventory, "web[01-03,07]") == ["web01", "web02", "web03", "web07"]
    assert names(inventory, "web[10:12]") == ["web10", "web11", "web12"]
    assert names(inventory, "frontend[10:12]") == ["web11", "web12"]  # a subscript: Ansible's


def test_failed_asks_the_operation_log_for_the_last_or_a_given_operation(docs: Inventory) -> None:
    asked: list[int | None] = []

    def failed(op_id: int | None, ok: bool) -> list[str]:
        asked.append(op_id)
        assert not ok
        return ["weber", "gone-from-inventory", "db1.example.com"]

    assert names(docs, "@failed", failed=failed) == ["weber", "db1.example.com"]
    assert names(docs, "webservers:&@12:failed", failed=failed) == ["weber"]
    assert names(docs, "all:!@failed", failed=failed)[:2] == ["cobweb", "webbing"]
    assert asked == [None, 12, None]


def test_ok_asks_the_log_for_the_hosts_that_were_ok(docs: Inventory) -> None:
    def recorded(op_id: int | None, ok: bool) -> list[str]:
        return ["cobweb"] if ok and op_id == 7 else []

    assert names(docs, "@7:ok", failed=recorded) == ["cobweb"]
    assert names(docs, "all:!@7:ok", failed=recorded)[0] == "webbing"


def test_failed_without_an_operation_log_is_bad_usage(docs: Inventory) -> None:
    with pytest.raises(PatternError, match="operation log"):
        docs.select("@failed")


def test_an_ipv6_address_is_one_name_not_a_colon_union(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text("all:\n  hosts:\n    '2001:db8::1':\n    other:\n")
    assert names(load_inventory([str(path)]), "2001:db8::1") == ["2001:db8::1"]


def test_ipv6_addresses_between_commas_are_one_term_each(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text("all:\n  hosts:\n    '2001:db8::1':\n    '2001:db8::2':\n    other:\n")
    inventory = load_inventory([str(path)])
    assert names(inventory, "2001:db8::1,2001:db8::2") == ["2001:db8::1", "2001:db8::2"]
    assert names(inventory, "all,!2001:db8::1") == ["2001:db8::2", "other"]


# ---------------------------------------------------------------------------
# the pattern algebra against Python sets

HOSTS = [f"h{n}" for n in range(8)]
GROUPS = [f"g{n}" for n in range(5)]


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, list[str]]:
    return {g: draw(st.lists(st.sampled_from(HOSTS), unique=True)) for g in GROUPS}


def make_inventory(
    fleet: Mapping[str, Iterable[str]], ungrouped: Iterable[str] = HOSTS
) -> Inventory:
    """The hosts ``ungrouped``, then each group of ``fleet`` with its members, in order."""
    data = InventoryData()
    origin = Origin("<test>")
    for host in ungrouped:
        data.add_host(host, "ungrouped", origin)
    for group, members in fleet.items():
        data.group(group, origin)
        for host in members:
            data.add_host(host, group, origin)
    return build(data)


def expected_hosts(fleet: dict[str, list[str]], terms: list[tuple[str, str]]) -> list[str]:
    def members(name: str) -> set[str]:
        return set(fleet[name]) if name in fleet else {name}

    unions = [members(n) for op, n in terms if op == ""]
    selected = set().union(*unions) if unions else set(HOSTS)
    for op, name in terms:
        if op == "&":
            selected &= members(name)
        elif op == "!":
            selected -= members(name)
    return [h for h in HOSTS if h in selected]


terms_strategy = st.lists(
    st.tuples(st.sampled_from(["", "&", "!"]), st.sampled_from(HOSTS + GROUPS)),
    min_size=1,
    max_size=6,
)


@given(fleets(), terms_strategy, st.sampled_from([":", ","]))
@settings(max_examples=150, deadline=None)
def test_union_intersection_and_exclusion_follow_set_algebra(
    fleet: dict[str, list[str]], terms: list[tuple[str, str]], separator: str
) -> None:
    inventory = make_inventory(fleet)
    pattern = separator.join(op + name for op, name in terms)
    expected = expected_hosts(fleet, terms)
    try:
        got = [host.name for host in inventory.select(pattern)]
    except NoHostsMatched:
        got = []
    assert got == expected


@given(fleets(), terms_strategy, terms_strategy)
@settings(max_examples=60, deadline=None)
def test_limit_is_the_intersection_of_two_patterns(
    fleet: dict[str, list[str]], terms: list[tuple[str, str]], limit: list[tuple[str, str]]
) -> None:
    inventory = make_inventory(fleet)
    pattern = ":".join(op + name for op, name in terms)
    limit_pattern = ":".join(op + name for op, name in limit)
    allowed = set(expected_hosts(fleet, limit))
    expected = [h for h in expected_hosts(fleet, terms) if h in allowed]
    try:
        got = [host.name for host in inventory.select(pattern, limit=limit_pattern)]
    except NoHostsMatched:
        got = []
    assert got == expected


@st.composite
def globbed(draw: st.DrawFn) -> tuple[Inventory, str, set[str]]:
    """An inventory of odd names, a glob, and the hosts fnmatch says the glob selects."""
    name = st.text(alphabet="ab[]!", min_size=0, max_size=5).map(lambda text: "a" + text)
    hosts = draw(st.lists(name, min_size=1, max_size=12, unique=True))
    groups = draw(st.lists(name.filter(lambda n: n not in hosts), max_size=4, unique=True))
    fleet = {group: draw(st.lists(st.sampled_from(hosts), unique=True)) for group in groups}
    glob = "a" + draw(st.text(alphabet="ab[]!*?", min_size=1, max_size=6))
    inventory = make_inventory(fleet, hosts)
    expected = {h for h in hosts if fnmatch.fnmatchcase(h, glob)}
    for group in inventory.group_names:  # with all and ungrouped
        if fnmatch.fnmatchcase(group, glob):
            expected.update(inventory.members(group))
    return inventory, glob, expected


@given(globbed())
@settings(max_examples=150, deadline=None)
def test_a_glob_selects_what_fnmatch_matches_among_every_group_and_host(
    case: tuple[Inventory, str, set[str]],
) -> None:
    inventory, glob, expected = case
    assume(not inventory.has_host(glob) and any(c in glob for c in "*?["))
    try:
        got = set(names(inventory, glob))
    except NoHostsMatched:
        got = set()
    assert got == expected
