"""Commands about the session itself: login, transfer parameters, features, status, help.

Every USER gets 331 whether the name exists or not (no user enumeration);
failed logins are answered only after a delay, and an address with too many
recent failures is locked out for a while (``FtpSettings.lockout_*``).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, NoReturn

from herd.ftp.commands_security import TLS_FEATURES
from herd.ftp.events import LoginEvent
from herd.ftp.jail import Jail, PathRefused
from herd.ftp.listing import ALL_FACTS
from herd.ftp.replies import FtpReply
from herd.ftp.session import Session
from herd.ftp.users import READ_ONLY, FtpUser, format_size

if TYPE_CHECKING:
    from herd.ftp.quota import QuotaAccount

__all__ = ["ANONYMOUS_NAMES", "SessionCommands"]

ANONYMOUS_NAMES = frozenset({"anonymous", "ftp"})
HASH_NAMES = ("SHA-256", "SHA-1", "MD5")
FEATURES = (
    "EPRT",
    "EPSV",
    "MDTM",
    "MFMT",
    "REST STREAM",
    "SIZE",
    "TVFS",
    "UTF8",
)


_FACT_NAME = re.compile(r"[A-Za-z0-9.-]+")


def _mlst_facts(value: str) -> tuple[str, ...]:
    """RFC 3659 7.9: ``fact;fact;...`` -> the known facts asked for, in our order.

    Unknown but well-formed names are ignored, as the RFC says; a malformed list
    (no closing ``;``, odd characters) is refused with 501 and changes nothing.
    """
    if not value:
        return ()
    names = value.split(";")
    if names[-1] != "" or not all(_FACT_NAME.fullmatch(n) for n in names[:-1]):
        raise FtpReply(501, f"Bad fact list {value!r}: use OPTS MLST type;size;modify;")
    asked = {n.lower() for n in names[:-1]}
    return tuple(f for f in ALL_FACTS if f in asked)


class SessionCommands(Session):
    """USER PASS ACCT REIN QUIT SYST NOOP HELP FEAT OPTS TYPE MODE STRU ALLO SITE STAT ABOR."""

    # -- login ---------------------------------------------------------------------------

    def cmd_USER(self, arg: str) -> None:
        if self.user is not None:
            self.wait_transfer()
            self.reset_login()
        name = arg.strip()
        if not self.secure and self._needs_tls(name):
            # Refused here, before the client sends its password in clear.
            if self.server.tls is None:
                raise FtpReply(530, f"TLS required for {name}, and this server has no TLS set up.")
            raise FtpReply(530, f"TLS required for {name}: use AUTH TLS (ftpes://) or ftps://.")
        self.pending_user = name
        if self.anonymous_allowed(self.pending_user):
            self.reply(331, "Anonymous login ok, send your e-mail address as password.")
        else:
            self.reply(331, f"Password required for {self.pending_user}.")

    def _needs_tls(self, name: str) -> bool:
        if self.settings.require_tls:
            return True
        if self.server.tls is None:
            return False  # no TLS to offer: PASS refuses such a user (the password is moot)
        return self.server.on_helper(self.server.users.requires_tls, name)

    def anonymous_allowed(self, name: str) -> bool:
        return self.settings.anonymous_root is not None and name.lower() in ANONYMOUS_NAMES

    def cmd_PASS(self, arg: str) -> None:
        if self.user is not None:
            raise FtpReply(503, "Already logged in.")
        name = self.pending_user
        if name is None:
            raise FtpReply(503, "Log in with USER first.")
        self.pending_user = None
        started = time.time()
        if self.server.logins.locked_out(self.client):
            self.report(LoginEvent, user=name, ok=False, error="address locked out")
            self.reply(421, "Too many failed logins from your address; try again later.")
            self.close_control()
            return
        user, jail, account = self.check_password(name, arg)
        if user is None:
            self._login_failed(name, started)
        self.account = account  # released at logout, or by reset_login if refused below
        user = self.server.known_user(user)
        if user.require_tls and not self.secure:  # only when the server has no TLS at all
            self.report(LoginEvent, user=name, ok=False, error="TLS required")
            self.release_account()
            raise FtpReply(530, f"TLS required for {name}, and this server has no TLS set up.")
        if jail is None:
            self.report(LoginEvent, user=name, ok=False, error="home missing")
            self.release_account()
            raise FtpReply(530, "Login incorrect: your home directory is missing.")
        self.user, self.user_name, self.jail, self.cwd = user, user.name, jail, "/"
        self.tls_required = self.settings.require_tls or user.require_tls
        self.report(LoginEvent, user=user.name, started=started, duration=time.time() - started)
        self.reply(230, f"User {user.name} logged in.")

    def _login_failed(self, name: str, started: float) -> NoReturn:
        """Count the failure against the address, wait the delay, log it, answer 530."""
        self.server.logins.failed(self.client)
        time.sleep(self.settings.login_failure_delay)
        self.report(
            LoginEvent,
            user=name,
            ok=False,
            error="bad user name or password",
            started=started,
            duration=time.time() - started,
        )
        raise FtpReply(530, "Login incorrect.")

    def check_password(
        self, name: str, password: str
    ) -> tuple[FtpUser | None, Jail | None, QuotaAccount | None]:
        """The user if the password is right, their jail (None: no home) and quota account.

        All on one helper thread, in one hand-off: the password check (argon2 or its
        cache, a database read), then the account (its usage, read or measured once).
        Anonymous sessions are read-only: no account.
        """
        if self.anonymous_allowed(name):
            root = self.settings.anonymous_root
            assert root is not None
            user = FtpUser(name="anonymous", home=root, quota=None, perms=READ_ONLY, locked=False)
            return user, self._jail_or_none(user), None
        return self.server.on_helper(self._check_account, name, password)

    def _check_account(
        self, name: str, password: str
    ) -> tuple[FtpUser | None, Jail | None, QuotaAccount | None]:
        user = self.server.users.authenticate(name, password)
        if user is None or (user.require_tls and not self.secure):
            return user, None, None
        jail = self._jail_or_none(user)
        if jail is None:
            return user, None, None
        quota = self.server.quota
        account = quota.known(user.name, user.quota) or quota.account(
            user.name, user.quota, jail.walk_size
        )
        return user, jail, account

    def _jail_or_none(self, user: FtpUser) -> Jail | None:
        try:
            return self.server.jail_for(user)
        except PathRefused:
            return None

    def cmd_ACCT(self, arg: str) -> None:
        self.reply(202, "ACCT not needed on this server.")

    def cmd_REIN(self, arg: str) -> None:
        self.drop_data_source()
        self.reset_login()
        self.reply(220, "Session reset; log in again.")

    def cmd_QUIT(self, arg: str) -> None:
        self.reply(221, "Goodbye.")
        self.closing = True

    # -- transfer parameters ---------------------------------------------------------------

    def cmd_TYPE(self, arg: str) -> None:
        words = arg.upper().split()
        if words in (["A"], ["A", "N"]):
            self.ascii = True
            self.reply(200, "Type set to A.")
        elif words in (["I"], ["L", "8"]):
            self.ascii = False
            self.reply(200, "Type set to I.")
        elif words and words[0] in ("A", "E", "L"):
            raise FtpReply(504, f"Type {arg} not supported.")
        else:
            raise FtpReply(501, f"Unknown type {arg}.")

    def cmd_MODE(self, arg: str) -> None:
        self._one_of("MODE", arg, "S", "BC")

    def cmd_STRU(self, arg: str) -> None:
        self._one_of("STRU", arg, "F", "RP")

    def _one_of(self, verb: str, arg: str, supported: str, known: str) -> None:
        value = arg.strip().upper()
        if value == supported:
            self.reply(200, f"{verb} set to {value}.")
        elif len(value) == 1 and value in known:
            raise FtpReply(504, f"{verb} {value} not supported.")
        else:
            raise FtpReply(501, f"Unknown {verb} {arg}.")

    def cmd_ALLO(self, arg: str) -> None:
        words = arg.split()
        if not words or not words[0].isdigit():
            raise FtpReply(501, "ALLO needs a byte count.")
        available = None if self.account is None else self.account.available
        if available is not None and int(words[0]) > available:
            raise FtpReply(552, f"Not enough quota left: {available} bytes available.")
        self.reply(202, "No storage allocation necessary.")

    # -- information -----------------------------------------------------------------------

    def cmd_SYST(self, arg: str) -> None:
        self.reply(215, "UNIX Type: L8")

    def cmd_NOOP(self, arg: str) -> None:
        self.reply(200, "NOOP ok.")

    def cmd_FEAT(self, arg: str) -> None:
        hashes = ";".join(n + ("*" if n == self.hash_name else "") for n in HASH_NAMES)
        facts = "".join(f"{f}{'*' if f in self.mlst_facts else ''};" for f in ALL_FACTS)
        lines = [*FEATURES, f"HASH {hashes}", f"MLST {facts}"]
        if self.server.tls is not None:
            lines += TLS_FEATURES
        self.reply(211, "Features:\n" + "".join(f" {line}\n" for line in sorted(lines)) + "End")

    def cmd_OPTS(self, arg: str) -> None:
        option, _, value = arg.strip().partition(" ")
        option = option.upper()
        if option == "UTF8":
            self.reply(200, "Always in UTF8 mode.")
        elif option == "MLST":
            self.mlst_facts = _mlst_facts(value.strip())
            self.reply(200, "MLST OPTS " + "".join(f"{f};" for f in self.mlst_facts))
        elif option == "HASH":
            if value:
                chosen = value.strip().upper()
                if chosen not in HASH_NAMES:
                    raise FtpReply(
                        501,
                        f"Unknown algorithm {value.strip()}; use one of {', '.join(HASH_NAMES)}.",
                    )
                self.hash_name = chosen
            self.reply(200, self.hash_name)
        else:
            raise FtpReply(501, f"Option {option} not understood.")

    def cmd_HELP(self, arg: str) -> None:
        verb = arg.strip().upper()
        if verb:
            command = self.commands.get(verb)
            if command is None:
                raise FtpReply(501, f"Unknown command {verb}.")
            self.reply(214, f"Syntax: {verb} {command.help}")
            return
        names = sorted(self.commands)
        rows = [
            " " + " ".join(f"{n:<5}" for n in names[i : i + 10]) for i in range(0, len(names), 10)
        ]
        self.reply(214, "The following commands are recognized:\n" + "\n".join(rows) + "\nHelp OK.")

    def cmd_STAT(self, arg: str) -> None:
        if arg.strip():
            self.stat_path(arg)
            return
        job = self.transfer
        lines = [
            "herd FTP server status:",
            f" Connected to {self.client}",
            f" Logged in as {self.user_name}" if self.user else " Not logged in",
            f" TYPE: {'ASCII' if self.ascii else 'BINARY'}, STRUcture: File, MODE: Stream",
            f" Transfer in progress: {job.description} ({job.bytes} bytes so far)"
            if job is not None
            else " No data connection",
        ]
        self.reply(211, "\n".join(lines) + "\nEnd of status.")

    def cmd_SITE(self, arg: str) -> None:
        word, _, _rest = arg.strip().partition(" ")
        word = word.upper()
        if word == "QUOTA":
            self.reply(200, self.quota_report())
        elif word == "HELP":
            self.reply(214, "SITE commands:\n QUOTA  your disk usage against your quota\nEnd.")
        else:
            raise FtpReply(501, f"Unknown SITE command {word}.")

    def quota_report(self) -> str:
        account = self.account
        if account is None:
            return "Quota: none (read-only session)."
        used = account.used
        if account.limit is None:
            return f"Quota: used {used} bytes ({format_size(used)}) of unlimited."
        percent = 100.0 * used / account.limit if account.limit else 100.0
        return (
            f"Quota: used {used} bytes of {account.limit} ({format_size(used)} of "
            f"{format_size(account.limit)}, {percent:.1f}%);"
            f" {max(0, account.limit - used)} bytes left."
        )

    def cmd_ABOR(self, arg: str) -> None:
        if self.abort_transfer():
            self.reply(226, "ABOR command successful.")
            return
        self.drop_data_source()
        self.reply(226, "No transfer to abort.")
