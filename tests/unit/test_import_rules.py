"""DESIGN.md's dependency rule, enforced on the source tree."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "herd"
STDLIB = sys.stdlib_module_names

# package -> the herd packages it may import
ALLOWED_HERD = {
    "core": {"core", "errors"},
    "operation": {"core", "errors", "operation"},
    "inventory": {"core", "errors", "operation", "inventory"},
    "hosts": {"core", "errors", "operation", "hosts"},
    "lab": {"core", "errors", "operation", "lab"},
    "ftp": {"core", "errors", "operation", "ftp"},
    "ui": {"core", "errors", "operation", "ui"},
}
THIRD_PARTY_ONLY_IN = {"asyncssh": {"hosts", "lab"}, "rich": {"ui"}}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def package_files(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED_HERD))
def test_package_imports_only_what_the_design_allows(package: str) -> None:
    for path in package_files(package):
        for name in imports_of(path):
            top = name.split(".")[0]
            if top == "herd":
                sub = name.split(".")[1] if "." in name else ""
                assert sub in ALLOWED_HERD[package], f"{path}: imports {name}"
            elif package in ("core", "operation"):
                assert top in STDLIB or top == "__future__", f"{path}: imports {name}"


@pytest.mark.parametrize("library", sorted(THIRD_PARTY_ONLY_IN))
def test_heavy_libraries_stay_in_their_packages(library: str) -> None:
    allowed = THIRD_PARTY_ONLY_IN[library]
    for path in SRC.rglob("*.py"):
        package = path.relative_to(SRC).parts[0]
        if package in allowed:
            continue
        for name in imports_of(path):
            assert name.split(".")[0] != library, f"{path}: imports {name}"


def test_the_operation_layer_loads_neither_asyncssh_nor_rich() -> None:
    import subprocess

    probe = (
        "import sys, herd.operation.driver, herd.operation.recorder, herd.core.events;"
        " print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'asyncssh', 'rich', 'cryptography'}))"
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", probe],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]"
