"""Which gateways reach a host (``herd_gateway``), and the one-line errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from herd.core.model import Host
from herd.errors import ConfigError
from herd.hosts.gateways import gateway_chain, gateway_names, known_lines

pytestmark = pytest.mark.timeout(10)


def _host(name: str, gateway: object = None, *, local: bool = False) -> Host:
    variables = {} if gateway is None else {"herd_gateway": gateway}
    return Host(name, name, vars=variables, local=local)


def test_a_chain_lists_the_first_hop_first() -> None:
    gateways = {"gw1": _host("gw1"), "gw2": _host("gw2", "gw1")}
    assert gateway_chain(_host("web01", "gw2"), gateways) == (gateways["gw1"], gateways["gw2"])
    assert gateway_chain(_host("web02", "gw1"), gateways) == (gateways["gw1"],)
    assert gateway_chain(_host("web03"), gateways) == ()
    assert gateway_names([_host("a", "gw2"), _host("b"), _host("c", "gw1")]) == {"gw1", "gw2"}


@pytest.mark.parametrize(
    ("gateways", "gateway", "message"),
    [
        ({}, "gw9", "web01: herd_gateway 'gw9' is no inventory host"),
        ({}, 3, "web01: herd_gateway must name a host, not 3"),
        ({"gw1": _host("gw1", "gw2"), "gw2": _host("gw2", "gw1")}, "gw1",
         "web01: its herd_gateway chain loops through gw1"),
        ({"web01": _host("web01")}, "web01", "web01: its herd_gateway chain loops through web01"),
        ({"gw1": _host("gw1", local=True)}, "gw1",
         "web01: gateway gw1 is a local host, not an SSH one"),
    ],
)  # fmt: skip
def test_a_gateway_that_cannot_be_used_is_one_line(
    gateways: dict[str, Host], gateway: object, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        gateway_chain(_host("web01", gateway), gateways)
    assert str(caught.value) == message


def test_the_known_hosts_lines_a_gateway_gets(tmp_path: Path) -> None:
    first, second = tmp_path / "known_hosts", tmp_path / "more"
    first.write_text("# a comment\n[127.0.1.1]:22 ssh-ed25519 AAAA\n\n127.0.1.2 ssh-ed25519 BBBB\n")
    second.write_text("127.0.1.2 ssh-ed25519 BBBB\n|1|c2FsdA==|aGFzaA== ssh-ed25519 CCCC")
    lines = known_lines([first, second, tmp_path / "missing"])
    assert lines == [
        "[127.0.1.1]:22 ssh-ed25519 AAAA",
        "127.0.1.2 ssh-ed25519 BBBB",
        "|1|c2FsdA==|aGFzaA== ssh-ed25519 CCCC",
    ]
