"""Folded host sets pasted back as patterns select exactly those hosts, in the inventory at hand.

herd prints host sets folded (summaries, ``-b`` headers, ``herd groups``); an
operator pastes them into the next command. Where a group ``web`` exists,
``web[03-04]`` is Ansible's subscript on it (its hosts 3 and 4), so a fold is
checked here through the real pattern engine, and with ClusterShell's own
expansion, over generated inventories whose groups share their hosts' prefixes.
"""

from __future__ import annotations

import pytest
from ClusterShell.NodeSet import NodeSet
from hypothesis import given, settings
from hypothesis import strategies as st

from herd.core.hostset import fold
from herd.inventory import Inventory
from herd.inventory.patterns import fold_reader, select_names
from tests.unit.test_patterns import make_inventory

pytestmark = pytest.mark.timeout(60)

WEB = [f"web{n:02d}" for n in range(1, 13)]
# host names that are no plain term of a pattern: separators, operators, globs, regex, IPv6
ODD = ["a,b", "!x", "&y", "x[1", "web*", "~web1", "@3", "failed", "a:b", "a b", "[web]"]
IPV6 = ["2001:db8::1", "2001:db8::2", "::1"]


def paste(inventory: Inventory, pattern: str) -> list[str]:
    """The hosts ``pattern`` selects, sorted: what ``herd run PATTERN`` would run on."""
    return sorted(select_names(inventory, pattern, None, None))


def test_a_range_named_like_a_group_is_not_folded_into_the_groups_subscript() -> None:
    inventory = make_inventory({"web": WEB}, ())
    chosen = ["web03", "web04"]
    # ClusterShell's fold, web[03-04], reads here as the group's hosts 3 and 4
    assert paste(inventory, fold(chosen)) == ["web04", "web05"]
    folded = fold(chosen, fold_reader(inventory))
    assert folded == "web0[3-4]"
    assert paste(inventory, folded) == chosen


def test_a_whole_group_folds_into_a_list_where_no_digit_is_common() -> None:
    inventory = make_inventory({"web": WEB}, ())
    folded = fold(WEB, fold_reader(inventory))
    assert folded == "web[01-11,12]"
    assert paste(inventory, folded) == WEB


def test_without_a_group_named_like_the_prefix_the_clustershell_form_stays() -> None:
    inventory = make_inventory({"frontend": WEB}, ())
    assert fold(["web03", "web04"], fold_reader(inventory)) == "web[03-04]"


def test_the_digits_taken_out_must_not_name_a_group_either() -> None:
    inventory = make_inventory({"web": WEB, "web0": ["web01"]}, ())
    folded = fold(["web03", "web04"], fold_reader(inventory))
    assert folded == "web[03,04]"
    assert paste(inventory, folded) == ["web03", "web04"]


def test_a_host_named_like_the_prefix_is_no_subscript_base_either() -> None:
    inventory = make_inventory({}, ["web", "web1", "web2", "web3"])
    folded = fold(["web", "web1", "web2", "web3"], fold_reader(inventory))
    assert folded == "web,web[1-2,3]"
    assert paste(inventory, folded) == ["web", "web1", "web2", "web3"]


def test_a_bracket_before_the_last_is_a_glob_when_read_as_a_subscript_base() -> None:
    hosts = [f"rack{r}-node{n:02d}" for r in (1, 2) for n in range(1, 5)]
    # rack[1-2]-node[01-04] is the glob rack[1-2]-node, which matches the group rack1-node
    inventory = make_inventory({"rack1-node": ["rack1-node01"], "racks": hosts}, ())
    folded = fold(hosts, fold_reader(inventory))
    assert folded == "rack[1-2]-node0[1-4]"
    assert paste(inventory, folded) == sorted(hosts)


def test_a_name_that_is_a_group_and_a_host_selects_the_host() -> None:
    inventory = make_inventory({"db": ["db1", "db2"]}, ["db"])
    assert fold(["db"], fold_reader(inventory)) == "db"
    assert paste(inventory, "db") == ["db"]


def test_names_a_pattern_would_split_or_read_as_operators_still_select_themselves() -> None:
    inventory = make_inventory({"odd": ODD, "v6": IPV6[:2], "a,b": ["web01"]}, WEB)
    reader = fold_reader(inventory)
    folded = fold([*ODD, *IPV6[:2], "web01"], reader)
    assert paste(inventory, folded) == sorted([*ODD, *IPV6[:2], "web01"])
    terms = folded.split(",")
    assert {"2001:db8::1", "2001:db8::2", "web*", "failed", "[web]"} <= set(terms)
    assert "a?b[1]" in terms  # the glob's second match: the group a,b lists web01 first


def test_the_implicit_localhost_is_written_as_itself() -> None:
    inventory = make_inventory({"web": WEB}, ())
    folded = fold(["localhost", "127.0.0.1", "::1"], fold_reader(inventory))
    assert paste(inventory, folded) == ["127.0.0.1", "::1", "localhost"]


def test_without_an_inventory_no_term_ends_in_a_subscript() -> None:
    reader = fold_reader(None)
    assert fold(["web03", "web04"], reader) == "web[03,04]"
    assert fold(WEB, reader) == "web[01-11,12]"
    assert fold(["web01", "web02", "web05"], reader) == "web[01-02,05]"
    assert fold(["web01.lan", "web02.lan"], reader) == "web[01-02].lan"
    assert fold(["a,b", "2001:db8::1"], reader) == "2001:db8::1,~a\\x2cb\\Z"
    # a glob or a regex selects other hosts wherever no host bears that name
    assert (
        fold(["web*", "~h1", "@failed", "@3"], reader)
        == "@3,~\\x40failed\\Z,~web\\x2a\\Z,~\\x7eh1\\Z"
    )
    inventory = make_inventory({"web": WEB, "web0": WEB[:1]}, ["a,b"])
    assert paste(inventory, "web[03,04],web[01-11,12],~a\\x2cb\\Z") == sorted(["a,b", *WEB])


# ---------------------------------------------------------------------------
# properties over generated inventories whose groups share their hosts' prefixes

PREFIXES = ["web", "web0", "db", "node-", "rack1-node"]


def _number(prefix: str, number: int, width: int, suffix: str) -> str:
    return f"{prefix}{str(number).zfill(width)}{suffix}"


host_names = st.one_of(
    st.builds(
        _number,
        st.sampled_from(PREFIXES),
        st.integers(0, 120),
        st.sampled_from([0, 0, 1, 2, 3]),  # unpadded, padded, and mixed in one set
        st.sampled_from(["", "", ".lan"]),
    ),
    st.builds(
        lambda rack, node: f"rack{rack}-node{node:02d}", st.integers(1, 3), st.integers(1, 12)
    ),
    st.sampled_from(["web", "db", "node-", *ODD, *IPV6]),
)


@st.composite
def fleets(draw: st.DrawFn, odd_groups: bool = True) -> tuple[Inventory, list[str]]:
    """An inventory of generated hosts and groups, and a subset of its hosts."""
    hosts = draw(st.lists(host_names, min_size=1, max_size=30, unique=True))
    group_names = ["web", "web0", "db", "node-", "rack1-node", "rack[12]-node", "web1"]
    if odd_groups:
        group_names += hosts  # a name both a group and a host
    chosen = draw(st.lists(st.sampled_from(group_names), unique=True, max_size=6))
    groups = {name: draw(st.lists(st.sampled_from(hosts), unique=True)) for name in chosen}
    inventory = make_inventory(groups, draw(st.permutations(hosts)))
    subset = draw(st.lists(st.sampled_from(hosts), min_size=1, unique=True))
    return inventory, subset


@given(fleets())
@settings(max_examples=150, deadline=None)
def test_a_folded_subset_pasted_back_selects_exactly_that_subset(
    fleet: tuple[Inventory, list[str]],
) -> None:
    inventory, subset = fleet
    folded = fold(subset, fold_reader(inventory))
    assert paste(inventory, folded) == sorted(subset), folded


@given(fleets(odd_groups=False))
@settings(max_examples=100, deadline=None)
def test_a_subset_folded_without_the_inventory_selects_it_in_that_inventory(
    fleet: tuple[Inventory, list[str]],
) -> None:
    inventory, subset = fleet
    folded = fold(subset, fold_reader(None))
    assert paste(inventory, folded) == sorted(subset), folded


@given(fleets())
@settings(max_examples=100, deadline=None)
def test_clustershell_reads_a_fold_for_an_inventory_as_the_same_hosts(
    fleet: tuple[Inventory, list[str]],
) -> None:
    inventory, subset = fleet
    plain = [name for name in subset if name not in ODD and name not in IPV6]
    folded = fold(plain, fold_reader(inventory))
    assert set(NodeSet(folded)) == set(plain), folded
