"""Secrets stay out of what herd records and prints: argv, commands, URLs."""

from __future__ import annotations

import pytest

from herd.core.secrets import is_secret_name, mask_argv, mask_secrets
from herd.core.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("DB_PASSWORD=hunter2", "DB_PASSWORD=***"),
        ("--env=API_TOKEN=abc", "--env=API_TOKEN=***"),
        ("-eSECRET_KEY=abc", "-eSECRET_KEY=***"),
        ("export pgpass='a b c'; run", "export pgpass=***; run"),
        ('X=1 AWS_SECRET_ACCESS_KEY="q w" deploy', "X=1 AWS_SECRET_ACCESS_KEY=*** deploy"),
        ("TOKEN=v;echo done", "TOKEN=***;echo done"),
        ("ftp://alice:s3cret@files:2121/in/", "ftp://alice:***@files:2121/in/"),
        ("PATH=/usr/bin:/bin", "PATH=/usr/bin:/bin"),
        ("uptime", "uptime"),
        ("EMPTY_PASS=", "EMPTY_PASS="),
        ('{"ansible_password": "a b", "user": "x"}', '{"ansible_password": ***, "user": "x"}'),
        ("{ansible_become_pass: s3cret, n: 1}", "{ansible_become_pass: ***, n: 1}"),
        ("{'db_token':'q'}", "{'db_token':***}"),
        ("https://host:8443/x", "https://host:8443/x"),
    ],
)
def test_values_of_secret_named_variables_and_url_passwords_are_masked(
    text: str, masked: str
) -> None:
    assert mask_secrets(text) == masked


def test_argv_is_masked_argument_by_argument() -> None:
    argv = ["herd", "run", "all", "-e", "DB_PASSWORD=hunter2", "--env", "API_TOKEN", "--", "id"]
    assert mask_argv(argv) == [
        "herd", "run", "all", "-e", "DB_PASSWORD=***", "--env", "API_TOKEN", "--", "id",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ["PASSWORD", "db_pass", "GitHub_Token", "ssh_key", "SECRET"])
def test_names_that_say_secret_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "GREETING", "LANG"])
def test_ordinary_names_are_not(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    ("text", "size"),
    [("0", 0), ("512", 512), ("64K", 65536), ("1.5M", 1572864), ("2GiB", 2 << 30), ("x", None)],
)
def test_sizes_read_as_binary_units(text: str, size: int | None) -> None:
    assert parse_size(text) == size


def test_sizes_print_as_a_person_reads_them() -> None:
    assert [format_size(n) for n in (5, 1536, 3 << 40)] == ["5 B", "1.5 KiB", "3.0 TiB"]
