"""The FTP request handler: the command table and the class that answers it.

One ``FtpHandler`` serves one control connection (socketserver runs it in its
own thread). The table says, per command, whether it needs a login, what
argument it takes, and its HELP text; the methods ``cmd_<VERB>`` are gathered
from the ``commands_*`` modules, one module per job.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import ClassVar

from herd.ftp.commands_files import FileCommands
from herd.ftp.commands_security import SecurityCommands
from herd.ftp.commands_session import SessionCommands
from herd.ftp.commands_transfer import TransferCommands
from herd.ftp.replies import Command

__all__ = ["COMMANDS", "FtpHandler"]

_N, _R, _O = "none", "required", "optional"


def _c(auth: bool, arg: str, help_: str) -> Command:
    return Command(auth=auth, arg=arg, help=help_)


COMMANDS: Mapping[str, Command] = MappingProxyType(
    {
        # RFC 959: access control
        "USER": _c(False, _R, "<user-name>"),
        "PASS": _c(False, _O, "<password>"),
        "ACCT": _c(False, _O, "<account-information> (not needed)"),
        "CWD": _c(True, _R, "<pathname>"),
        "XCWD": _c(True, _R, "<pathname>"),
        "CDUP": _c(True, _N, "(go to the parent directory)"),
        "XCUP": _c(True, _N, "(go to the parent directory)"),
        "REIN": _c(False, _N, "(log out, keep the connection)"),
        "QUIT": _c(False, _N, "(close the connection)"),
        # RFC 4217 (FTPS), RFC 2228
        "AUTH": _c(False, _R, "TLS"),
        "PBSZ": _c(False, _R, "0"),
        "PROT": _c(False, _R, "{P|C}"),
        # transfer parameters
        "PORT": _c(True, _R, "<h1,h2,h3,h4,p1,p2>"),
        "EPRT": _c(True, _R, "|<proto>|<address>|<port>|"),
        "PASV": _c(True, _N, "(enter passive mode)"),
        "EPSV": _c(True, _O, "[1|2|ALL]"),
        "TYPE": _c(False, _R, "{A|I|L 8}"),
        "STRU": _c(False, _R, "F"),
        "MODE": _c(False, _R, "S"),
        # service commands
        "RETR": _c(True, _R, "<pathname>"),
        "STOR": _c(True, _R, "<pathname>"),
        "STOU": _c(True, _O, "[<pathname>]"),
        "APPE": _c(True, _R, "<pathname>"),
        "ALLO": _c(True, _R, "<bytes>"),
        "REST": _c(True, _R, "<offset>"),
        "RNFR": _c(True, _R, "<pathname>"),
        "RNTO": _c(True, _R, "<pathname>"),
        "ABOR": _c(False, _N, "(abort the running transfer)"),
        "DELE": _c(True, _R, "<pathname>"),
        "RMD": _c(True, _R, "<pathname>"),
        "XRMD": _c(True, _R, "<pathname>"),
        "MKD": _c(True, _R, "<pathname>"),
        "XMKD": _c(True, _R, "<pathname>"),
        "PWD": _c(True, _N, "(print the current directory)"),
        "XPWD": _c(True, _N, "(print the current directory)"),
        "LIST": _c(True, _O, "[-la] [<pathname>]"),
        "NLST": _c(True, _O, "[<pathname>]"),
        "SITE": _c(True, _R, "QUOTA | HELP"),
        "SYST": _c(False, _N, "(the system type)"),
        "STAT": _c(False, _O, "[<pathname>]"),
        "HELP": _c(False, _O, "[<command>]"),
        "NOOP": _c(False, _N, "(do nothing)"),
        # RFC 2389, 3659, MFMT, HASH
        "FEAT": _c(False, _N, "(list the extensions)"),
        "OPTS": _c(False, _R, "UTF8 ON | MLST <facts> | HASH [<algorithm>]"),
        "SIZE": _c(True, _R, "<pathname>"),
        "MDTM": _c(True, _R, "<pathname>"),
        "MFMT": _c(True, _R, "<YYYYMMDDHHMMSS> <pathname>"),
        "MLST": _c(True, _O, "[<pathname>]"),
        "MLSD": _c(True, _O, "[<pathname>]"),
        "HASH": _c(True, _R, "<pathname>"),
        "XMD5": _c(True, _R, "<pathname>"),
        "XSHA1": _c(True, _R, "<pathname>"),
        "XSHA256": _c(True, _R, "<pathname>"),
    }
)


class FtpHandler(SessionCommands, SecurityCommands, FileCommands, TransferCommands):
    """Serves one control connection; see the command table ``COMMANDS``."""

    commands: ClassVar[Mapping[str, Command]] = COMMANDS
