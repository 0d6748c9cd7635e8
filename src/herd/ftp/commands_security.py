"""FTPS commands (RFC 4217, on RFC 2228's framework): AUTH, PBSZ, PROT.

``AUTH TLS`` secures the control connection; ``PBSZ 0`` then ``PROT P``
protects the data connections too (``PROT C`` leaves them in clear). Under
``require_tls`` (the server's setting, or the user's) a login in clear is
refused at USER, before the client sends its password, and every data
connection must be ``PROT P``.
"""

from __future__ import annotations

from herd.ftp.replies import FtpReply
from herd.ftp.session import Session

__all__ = ["TLS_FEATURES", "SecurityCommands"]

TLS_FEATURES = ("AUTH TLS", "PBSZ", "PROT")
_MECHANISMS = frozenset({"TLS", "TLS-C", "SSL"})  # "SSL" is what old clients send


class SecurityCommands(Session):
    """AUTH PBSZ PROT."""

    def cmd_AUTH(self, arg: str) -> None:
        mechanism = arg.strip().upper()
        if self.server.tls is None:
            raise FtpReply(502, "AUTH not available: this server has no TLS certificate.")
        if self.secure:
            raise FtpReply(503, "The control connection is under TLS already.")
        if mechanism not in _MECHANISMS:
            raise FtpReply(504, f"AUTH {arg.strip()} not supported; use AUTH TLS.")
        self.reply(234, f"AUTH {mechanism} ok; start the TLS handshake.")
        if not self.start_tls():
            self.close_control()
            return
        if self.user is not None:  # RFC 4217 4: a login before AUTH does not carry over
            self.reset_login()

    def cmd_PBSZ(self, arg: str) -> None:
        if not self.secure:
            raise FtpReply(503, "PBSZ comes after AUTH TLS.")
        if not arg.strip().isdigit():
            raise FtpReply(501, "PBSZ needs a number (0 for TLS).")
        self.data_protection = self.data_protection or "C"
        self.reply(200, "PBSZ=0")

    def cmd_PROT(self, arg: str) -> None:
        level = arg.strip().upper()
        if not self.secure or not self.data_protection:
            raise FtpReply(503, "PROT comes after AUTH TLS and PBSZ.")
        if level == "P":
            self.data_protection = "P"
            self.reply(200, "Data connections will be protected (PROT P).")
        elif level == "C":
            if self.tls_required:
                raise FtpReply(534, "This login needs protected data connections: PROT P.")
            self.data_protection = "C"
            self.reply(200, "Data connections will be in clear (PROT C).")
        elif level in ("S", "E"):
            raise FtpReply(536, f"PROT {level} not supported; use P or C.")
        else:
            raise FtpReply(504, f"Unknown PROT level {arg.strip()}.")
