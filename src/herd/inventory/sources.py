"""Finding and reading inventory sources: files, directories, host lists, vars directories.

Sources are the ``-i`` values in order (else ``$HERD_INVENTORY``, else
``./inventory.yml`` then ``./inventory.ini``). A directory is read as Ansible
reads one: its files in name order, recursively, skipping hidden files, backups
and ``host_vars``/``group_vars``. A source that is not a path but holds a comma
(``-i web1,web2,``) is a list of hosts. ``group_vars/`` and ``host_vars/``
next to every inventory file add YAML variables to the groups and hosts it names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from herd.core.hostset import expand
from herd.errors import InventoryError, PatternError
from herd.inventory.data import InventoryData, Origin
from herd.inventory.ini import looks_like_ini, read_ini
from herd.inventory.yamlfile import YamlError, line_of, load_yaml, read_yaml

__all__ = ["DEFAULT_FILES", "default_sources", "read_sources"]

DEFAULT_FILES = ("inventory.yml", "inventory.yaml", "inventory.ini")
_YAML_EXTENSIONS = (".yml", ".yaml", ".json")
_VARS_EXTENSIONS = ("", *_YAML_EXTENSIONS)
# Ansible's INVENTORY_IGNORE_EXTS and its always-ignored names
_IGNORED = re.compile(
    r"^\.|^host_vars$|^group_vars$|^vars_plugins$|"
    r"(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.cfg|\.retry)$"
)


def default_sources() -> list[str]:
    """``$HERD_INVENTORY`` (comma-separated), else the first of ./inventory.yml, .yaml, .ini."""
    from_env = os.environ.get("HERD_INVENTORY", "").strip()
    if from_env:
        return [part for part in (p.strip() for p in from_env.split(",")) if part]
    for name in DEFAULT_FILES:
        if Path(name).is_file():
            return [name]
    raise InventoryError(
        "no inventory: pass -i FILE, set $HERD_INVENTORY, or create ./inventory.yml"
    )


def read_sources(sources: Sequence[str]) -> InventoryData:
    """Read every source into one ``InventoryData``, then the vars directories beside them."""
    data = InventoryData()
    bases: dict[Path, None] = {}
    for source in sources or default_sources():
        path = Path(source).expanduser()
        if path.is_dir():
            bases[path] = None
            for file in _directory_files(path):
                _read_file(file, data)
                bases[file.parent] = None
        elif path.is_file():
            _read_file(path, data)
            bases[path.parent] = None
        elif "," in source:
            _read_host_list(source, data)
        else:
            raise InventoryError(f"{source}: no such inventory file or directory")
    for base in bases:
        _read_vars_dirs(base, data)
    return data


def _directory_files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.iterdir()):
        if _IGNORED.search(path.name):
            continue
        if path.is_dir():
            yield from _directory_files(path)
        elif path.is_file():
            yield path


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InventoryError(f"not UTF-8 text ({exc.reason})", path=str(path)) from None
    except OSError as exc:
        raise InventoryError(f"cannot read: {exc.strerror}", path=str(path)) from None


def _read_file(path: Path, data: InventoryData) -> None:
    """Read one inventory file as INI or YAML, chosen by its content; the extension breaks ties."""
    text = _read_text(path)
    name = str(path)
    if text.startswith("$ANSIBLE_VAULT"):
        raise InventoryError("encrypted with ansible-vault; herd cannot read it", path=name, line=1)
    if text.startswith("#!") and os.access(path, os.X_OK):
        raise InventoryError(
            "a dynamic inventory script; herd reads INI and YAML inventories only "
            "(save its output with: ansible-inventory -i SCRIPT --list -y > inventory.yml)",
            path=name,
            line=1,
        )
    if looks_like_ini(text):
        read_ini(text, name, data)
        return
    yaml_named = path.suffix.lower() in _YAML_EXTENSIONS
    try:
        document = load_yaml(text)
    except YamlError as exc:
        if yaml_named:
            raise InventoryError(f"YAML syntax: {exc}", path=name, line=exc.line) from None
        read_ini(text, name, data)
        return
    if _is_yaml_inventory(document) or (yaml_named and document is not None):
        read_yaml(document, text, name, data)
    else:
        read_ini(text, name, data)


def _is_yaml_inventory(document: object) -> bool:
    return isinstance(document, dict) and all(
        isinstance(body, dict | None) for body in document.values()
    )


def _read_host_list(source: str, data: InventoryData) -> None:
    """``-i web1,web[2:3],`` as Ansible's host list: each name an ungrouped host."""
    origin = Origin("<-i>")
    try:
        names = expand(source)
    except PatternError as exc:
        raise InventoryError(f"-i {source}: {exc}") from None
    for name in names:
        data.add_host(name, "ungrouped", origin)


def _read_vars_dirs(base: Path, data: InventoryData) -> None:
    """Variables from ``group_vars/`` and ``host_vars/`` for the groups and hosts that exist."""
    for kind in ("group_vars", "host_vars"):
        directory = base / kind
        if not directory.is_dir():
            continue
        known = data.groups if kind == "group_vars" else data.hosts
        for entity, files in _vars_files(directory).items():
            if entity not in known:
                continue
            for file in files:
                origin = Origin(str(file))
                for key, value in _load_vars_file(file).items():
                    try:
                        data.set_file_var(kind, entity, key, value, origin)
                    except InventoryError as exc:
                        line = line_of(_read_text(file), [key])
                        message = str(exc).removeprefix(f"{file}: ")
                        raise InventoryError(message, path=str(file), line=line) from None


def _vars_files(directory: Path) -> dict[str, list[Path]]:
    """Entity name -> its vars files, as Ansible finds them: name, name/, name.yml, .yaml, .json."""
    found: dict[str, list[Path]] = {}
    for path in sorted(directory.iterdir()):
        entry, stem, ext = path.name, path.stem, path.suffix
        if entry.startswith(".") or entry.endswith("~"):
            continue
        if path.is_dir():
            found.setdefault(entry, []).extend(_vars_dir_files(path))
        elif ext in _YAML_EXTENSIONS:
            found.setdefault(stem, []).append(path)
        else:  # no extension, or a host name's own dots (web1.example.com)
            found.setdefault(entry, []).append(path)
    return found


def _vars_dir_files(directory: Path) -> list[Path]:
    files: list[Path] = []
    for path in sorted(directory.iterdir()):
        ext = path.suffix
        if path.name.startswith(".") or path.name.endswith("~"):
            continue
        if path.is_dir() and not ext:
            files.extend(_vars_dir_files(path))
        elif path.is_file() and ext in _VARS_EXTENSIONS:
            files.append(path)
    return files


def _load_vars_file(path: Path) -> dict[str, object]:
    text = _read_text(path)
    if text.startswith("$ANSIBLE_VAULT"):
        raise InventoryError("encrypted with ansible-vault; herd cannot read it", path=str(path))
    try:
        document = load_yaml(text)
    except YamlError as exc:
        raise InventoryError(f"YAML syntax: {exc}", path=str(path), line=exc.line) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InventoryError(
            f"a vars file holds a mapping of variables, not {type(document).__name__}",
            path=str(path),
            line=1,
        )
    return {str(key): value for key, value in document.items()}
