"""``herd ftp cert``: a self-signed certificate and key for a first FTPS setup.

An ECDSA P-256 key (fast handshakes, small) and a certificate valid for a year,
naming the host as clients will reach it: a DNS name or an IP address in the
subjectAltName (what clients check), plus ``localhost`` and the loopback
addresses. The key is written 0600 and its directory made 0700 if herd creates
it. Clients then trust it with ``--cacert CERT`` (curl, herd) or
``ssl:ca-file`` (lftp).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from herd.errors import FtpError

__all__ = ["CERT_NAME", "KEY_NAME", "write_self_signed"]

CERT_NAME = "ftp-cert.pem"
KEY_NAME = "ftp-key.pem"
_VALID_DAYS = 365


def _alt_names(names: list[str]) -> list[x509.GeneralName]:
    found: list[x509.GeneralName] = []
    for name in [*names, "localhost", "127.0.0.1", "::1"]:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            entry = x509.DNSName(name)
        if entry not in found:
            found.append(entry)
    return found


def write_self_signed(directory: Path, names: list[str]) -> tuple[Path, Path]:
    """Write ``ftp-cert.pem`` and ``ftp-key.pem`` (0600) into ``directory``; their paths."""
    cert_path, key_path = directory / CERT_NAME, directory / KEY_NAME
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_alt_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        if not directory.exists():
            directory.mkdir(parents=True, mode=0o700)
        for path in (cert_path, key_path):
            if path.exists():
                raise FtpError(f"{path}: exists already; remove it or choose another --out")
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(key_pem)
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    except OSError as exc:
        raise FtpError(f"{directory}: cannot write the certificate: {exc.strerror or exc}") from exc
    return cert_path, key_path
