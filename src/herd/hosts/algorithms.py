"""Which ciphers and host key algorithms herd asks an SSH server for, in OpenSSH's order."""

from __future__ import annotations

import functools

import asyncssh

__all__ = ["first_contact_host_key_algs", "openssh_host_key_order", "preferred_ciphers"]


@functools.cache
def preferred_ciphers() -> tuple[str, ...]:
    """OpenSSH's default ciphers with AES-GCM first when the CPU has AES instructions.

    asyncssh prefers chacha20-poly1305, which it computes packet by packet in
    Python; AES-GCM with AES-NI costs the controller (and sshd) about a fifth
    less CPU per host. Elsewhere asyncssh's own order stands.
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:  # noqa: PTH123 (one read, no pathlib cost)
            flags = next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        return ()
    if " aes" not in flags:
        return ()
    return (
        "aes128-gcm@openssh.com",
        "aes256-gcm@openssh.com",
        "chacha20-poly1305@openssh.com",
        "aes128-ctr",
        "aes192-ctr",
        "aes256-ctr",
    )


# OpenSSH 9.2's default HostKeyAlgorithms, in its order (`ssh -G x -F /dev/null`)
_OPENSSH_HOST_KEY_ALGS = (
    "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "sk-ssh-ed25519-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com",
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    "rsa-sha2-512", "rsa-sha2-256",
)  # fmt: skip


@functools.cache
def openssh_host_key_order() -> tuple[str, ...]:
    """OpenSSH's host key algorithms that asyncssh supports, then asyncssh's other defaults.

    The tail (ssh-rsa among them: OpenSSH 9.2 dropped it) keeps every host herd
    reached before reachable; a server offering anything better never gets to it.
    """
    from asyncssh.public_key import (
        get_certificate_algs,
        get_default_certificate_algs,
        get_default_public_key_algs,
        get_public_key_algs,
    )

    supported = {alg.decode() for alg in get_certificate_algs() + get_public_key_algs()}
    order = [alg for alg in _OPENSSH_HOST_KEY_ALGS if alg in supported]
    defaults = get_default_certificate_algs() + get_default_public_key_algs()
    order += [alg.decode() for alg in defaults if alg.decode() not in order]
    return tuple(order)


def first_contact_host_key_algs(
    name: str, port: int, known_hosts: asyncssh.SSHKnownHosts | None
) -> tuple[str, ...]:
    """OpenSSH's host key order for a host known_hosts does not list; () to leave it to asyncssh.

    asyncssh asks only for the key types known_hosts records for a host (``name``
    at ``port``); otherwise it asks for rsa-sha2-256 first, which Dropbear 2022.83
    advertises beside a lone ed25519 key and then crashes on. OpenSSH's client
    asks for ed25519 first: so does herd, wherever ssh would.
    """
    if known_hosts is not None and any(
        known_hosts.match(name, "", None if port == 22 else port)[:3]
    ):
        return ()  # keys, CAs or revocations recorded: asyncssh prefers those types
    return openssh_host_key_order()
