"""Ed25519 keys for the lab, made in-process with asyncssh.

Generating keys in-process takes microseconds each, where forking ssh-keygen
200 times takes seconds; the files are in OpenSSH format, so sshd, ssh and
asyncssh all read them.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["known_hosts_line", "write_key_pair"]


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by its owner only (sshd refuses looser modes)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(data)


def write_key_pair(path: Path, comment: str, *, public_file: bool = True) -> tuple[str, str]:
    """Write a new key to ``path`` (and ``path.pub``); return its public line and fingerprint.

    Host keys skip the .pub file: known_hosts holds them, and 200 fewer files
    to write is time saved on a busy disk.
    """
    import asyncssh  # only `lab up` needs it: status and down start faster without it

    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    _write_private(path, key.export_private_key("openssh"))
    public = key.export_public_key("openssh").decode("ascii").strip()
    if public_file:
        path.with_name(path.name + ".pub").write_text(public + "\n", encoding="ascii")
    return public, str(key.get_fingerprint("sha256"))


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    """A known_hosts entry for one address and port: ``[127.0.1.1]:2222 ssh-ed25519 AAAA``."""
    key_type, key_data = public_key.split()[:2]
    where = address if port == 22 else f"[{address}]:{port}"
    return f"{where} {key_type} {key_data}"
