"""`herd lab up/status/down` through the command line, in-process, with real sshd."""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path

import pytest

from herd.cli.main import main

from .conftest import need_sshd
from .test_lab_fleet import processes_mentioning

pytestmark = pytest.mark.system


def lab_up(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, int]:
    """Run `herd lab up ... --port P` on a free port (retrying collisions); (exit, port)."""
    for _ in range(20):
        port = random.randint(20000, 60000)
        code = main(["lab", "up", *args, "--port", str(port)])
        if code == 2 and "in use" in capsys.readouterr().err:
            continue
        return code, port
    raise AssertionError("no free port")


def test_lab_up_status_down_round_trip_leaves_no_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_sshd()
    lab = tmp_path / "lab"
    code, port = lab_up(capsys, "3", "--dir", str(lab), "--engine", "openssh", "--groups", "app=2")
    out = capsys.readouterr().out
    assert code == 0
    assert f"3 hosts (openssh) on 127.0.1.1..127.0.1.3 port {port}" in out
    assert "app (2), other (1)" in out
    assert (lab / "inventory.yml").exists()
    assert len((lab / "known_hosts").read_text().splitlines()) == 3

    assert main(["lab", "status", "--dir", str(lab), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["host"], r["group"], r["status"]) for r in rows] == [
        ("app01", "app", "up"),
        ("app02", "app", "up"),
        ("other01", "other", "up"),
    ]
    assert processes_mentioning(str(lab))

    assert main(["lab", "down", "--dir", str(lab)]) == 0
    assert "3 processes stopped" in capsys.readouterr().out
    assert processes_mentioning(str(lab)) == []
    assert main(["lab", "status", "--dir", str(lab)]) == 2
    assert "no lab is up" in capsys.readouterr().err


def test_lab_uses_the_home_lab_dir_by_default_and_refuses_a_second_lab(
    isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_sshd()
    code, port = lab_up(capsys, "2")
    capsys.readouterr()
    assert code == 0
    try:
        assert (isolated_env / "lab" / "lab.json").exists()
        assert main(["lab", "up", "2", "--port", str(port + 1)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("herd: error: a lab is already up in")
        assert len(err.splitlines()) == 1
    finally:
        assert main(["lab", "down", "--purge"]) == 0
    assert not (isolated_env / "lab").exists()


def test_lab_status_exits_1_when_a_host_is_down(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_sshd()
    from herd.lab import Lab

    code, _ = lab_up(capsys, "2", "--dir", str(tmp_path))
    assert code == 0
    try:
        Lab(tmp_path).stop("db01")
        capsys.readouterr()
        assert main(["lab", "status", "--dir", str(tmp_path)]) == 1
        lines = capsys.readouterr().out.splitlines()
        assert lines[-1].split()[-1] == "down"
        assert lines[-2].split()[-1] == "up"
    finally:
        main(["lab", "down", "--dir", str(tmp_path)])


def test_lab_up_refuses_a_port_in_use_on_one_host_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_sshd()
    with socket.socket() as taken:
        taken.bind(("127.0.1.2", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["lab", "up", "3", "--dir", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.1.2 (web02) is in use" in err
    assert processes_mentioning(str(tmp_path)) == []
    assert not (tmp_path / "lab.json").exists()
