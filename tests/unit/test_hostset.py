"""Host ranges: Ansible and ClusterShell spellings expand; folding gives them back."""

from __future__ import annotations

import pytest
from ClusterShell.NodeSet import NodeSet
from hypothesis import given, settings
from hypothesis import strategies as st

from herd.core.hostset import expand, fold, sort_key
from herd.errors import PatternError
from herd.inventory.patterns import fold_reader


def test_ansible_numeric_range_keeps_zero_padding() -> None:
    assert expand("web[01:03].example.com") == [
        "web01.example.com",
        "web02.example.com",
        "web03.example.com",
    ]


def test_ansible_letter_range_expands_letters() -> None:
    assert expand("db-[a:f]") == ["db-a", "db-b", "db-c", "db-d", "db-e", "db-f"]


def test_ansible_range_with_step_takes_every_nth() -> None:
    assert expand("node[1:100:25]") == ["node1", "node26", "node51", "node76"]


def test_ansible_range_without_start_begins_at_zero() -> None:
    assert expand("h[:2]") == ["h0", "h1", "h2"]


def test_clustershell_range_and_list_expand() -> None:
    assert expand("web[01-03,07]") == ["web01", "web02", "web03", "web07"]
    assert expand("n[1-9/4]") == ["n1", "n5", "n9"]


def test_several_brackets_vary_the_first_slowest() -> None:
    assert expand("rack[1-2]-node[1:2]") == [
        "rack1-node1",
        "rack1-node2",
        "rack2-node1",
        "rack2-node2",
    ]


def test_commas_outside_brackets_list_several_names_without_duplicates() -> None:
    assert expand("web[1-2],db1,web2") == ["web1", "web2", "db1"]


def test_plain_name_expands_to_itself() -> None:
    assert expand("db.example.com") == ["db.example.com"]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("web[10:01]", "starts after it ends"),
        ("web[a:1]", "mixes a letter and a number"),
        ("web[1:10:0]", "step must be a positive number"),
        ("web[01:1]", "same width"),
        ("web[1:", "without its ']'"),
        ("web1]", "without its '['"),
        ("web[]", "empty"),
        ("web[1:2:3:4]", "[start:end]"),
        ("web[x-y-z]", "neither"),
        ("web[1:100000000]", "more than"),
    ],
)
def test_malformed_range_is_a_one_line_pattern_error(text: str, complaint: str) -> None:
    with pytest.raises(PatternError, match=r"^[^\n]*$") as caught:
        expand(text)
    assert complaint in str(caught.value)
    assert text in str(caught.value)


def test_fold_writes_the_clustershell_form_in_a_stable_order() -> None:
    names = ["web10", "db1", "web02", "web01", "web03", "web08", "web04", "web05", "web06", "web07"]
    assert fold(names) == "db1,web[01-08,10]"
    assert fold(reversed(names)) == fold(names)


def test_fold_folds_a_full_product_into_one_term() -> None:
    assert fold(expand("rack[1-2]-node[01-04]")) == "rack[1-2]-node[01-04]"


def test_fold_of_nothing_is_empty() -> None:
    assert fold([]) == ""


def test_fold_keeps_padded_and_unpadded_names_apart() -> None:
    assert sorted(expand(fold(["web1", "web01", "web2"]))) == ["web01", "web1", "web2"]


def test_mixed_padding_folds_into_one_run_per_padding() -> None:
    names = ["web1", "web01", "web2", "web02", "web3", "web03"]
    assert fold(names) == "web[1-3,01-03]"


def test_a_zero_padded_run_ends_where_it_outgrows_its_width() -> None:
    # ClusterShell rejects node[01-100]: "padding length mismatch"
    assert fold(f"node{n:02d}" for n in range(1, 101)) == "node[01-99,100]"
    assert fold(["web08", "web09", "web10", "web11"]) == "web[08-11]"


def test_a_padded_run_takes_the_unpadded_numbers_of_its_width_as_clustershell_does() -> None:
    assert fold(["web8", "web08", "web9", "web09", "web10"]) == "web[8-9,08-10]"


def test_names_with_characters_other_tools_read_are_never_put_in_brackets() -> None:
    names = ["x:1", "x:2", "a b1", "a b2", "w*1", "w*2", "web\u0661"]
    assert sorted(fold(names).split(",")) == sorted(names)


# ---------------------------------------------------------------------------
# properties

_text = st.text(alphabet="abcdefghxyz-.", min_size=1, max_size=4)


@st.composite
def rangesets(draw: st.DrawFn) -> str:
    """A canonical ClusterShell range set of two or more values: ``01-03,07``."""
    width = draw(st.sampled_from([0, 2, 3]))
    numbers = sorted(draw(st.sets(st.integers(0, 60), min_size=2, max_size=12)))
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    fmt = (lambda n: str(n).zfill(width)) if width else str
    return ",".join(fmt(r[0]) if len(r) == 1 else f"{fmt(r[0])}-{fmt(r[-1])}" for r in runs)


@st.composite
def folded_terms(draw: st.DrawFn) -> str:
    """A canonical folded name with one to three brackets between letter texts."""
    brackets = draw(st.integers(1, 3 if draw(st.booleans()) else 1))
    pieces = [draw(st.text(alphabet="abcxyz-.", max_size=4))]
    for _ in range(brackets):
        pieces.append(f"[{draw(rangesets())}]")
        pieces.append(draw(_text))
    return "".join(pieces)


@given(folded_terms())
@settings(max_examples=150, deadline=None)
def test_fold_of_expand_round_trips(term: str) -> None:
    assert fold(expand(term)) == term


_names = st.lists(
    st.builds(
        lambda prefix, number, width, suffix: f"{prefix}{str(number).zfill(width)}{suffix}",
        st.sampled_from(["web", "db", "node-", "x"]),
        st.integers(0, 120),
        st.sampled_from([0, 0, 2, 3]),
        st.sampled_from(["", ".example.com", "-a"]),
    ),
    max_size=40,
)


@given(_names)
@settings(max_examples=150, deadline=None)
def test_expand_of_fold_gives_each_name_once(names: list[str]) -> None:
    expanded = expand(fold(names))
    assert sorted(expanded, key=sort_key) == sorted(set(names), key=sort_key)


@given(
    st.lists(st.from_regex(r"[a-c]{1,2}[0-9]{1,2}[a-b]?[0-9]{0,2}", fullmatch=True), max_size=30)
)
@settings(max_examples=150, deadline=None)
def test_expand_of_fold_gives_the_same_set_for_many_numeric_positions(names: list[str]) -> None:
    expanded = expand(fold(names))
    assert len(expanded) == len(set(expanded))
    assert set(expanded) == set(names)


# ClusterShell reads herd's folds: nodeset -e and clush get the same names

_plain_names = st.lists(
    st.one_of(
        st.builds(
            lambda prefix, number, width, suffix: f"{prefix}{str(number).zfill(width)}{suffix}",
            st.sampled_from(["web", "n", "a.b-", "x_", ""]),
            st.integers(0, 1100),
            st.integers(0, 4),
            st.sampled_from(["", ".lan", "-b", "-7"]),
        ),
        st.builds(
            lambda rack, width, node: f"rack{rack}-node{str(node).zfill(width)}",
            st.integers(1, 12),
            st.sampled_from([0, 2, 3]),
            st.integers(0, 120),
        ),
    ),
    max_size=60,
)


@pytest.mark.timeout(60)
@given(_plain_names)
@settings(max_examples=120, deadline=None)
def test_clustershell_expands_herds_fold_into_the_same_names(names: list[str]) -> None:
    for folded in (fold(names), fold(names, fold_reader(None))):
        assert set(NodeSet(folded)) == set(names), folded
        assert sorted(expand(folded)) == sorted(set(names))
