"""Become another user on the host (Ansible's ``become``): sudo, su or doas.

What each host does comes from, most specific first: the inventory's
``ansible_become``, ``ansible_become_user``, ``ansible_become_method`` and
``ansible_become_password`` (or ``_pass``) for that host, then herd's command
line (``--become``/``--sudo``, ``--become-user``, ``--become-method``, ``-K``),
then Ansible's defaults (sudo to root), as Ansible reads them.

The command runs in the target user's login shell, as it would without become
in the login user's. A password never appears in a command line: the host's
shell reads it from stdin and hands it to ``sudo -S -v`` through a builtin.
su and doas read passwords only from a terminal, which herd's commands do not
have: with a password they are refused, clearly, rather than left to hang or
fail obscurely; without one (a root login, a ``nopass`` rule) they work.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from herd.core.model import Host
from herd.errors import ConfigError

__all__ = ["METHODS", "Become", "become_for"]

METHODS = ("sudo", "su", "doas")
_TRUE = frozenset({"true", "yes", "on", "1", "y", "t"})
_FALSE = frozenset({"false", "no", "off", "0", "n", "f"})

# The target user's login shell (sudo and doas set $SHELL to it), or sh for an
# account that has none; the command is the inner shell's first argument.
_TARGET_SHELL = 'case "$SHELL" in ""|*/nologin|*/false) SHELL=/bin/sh;; esac; exec "$SHELL" -c "$1"'

# The shell reads the password line from stdin itself (``read`` takes exactly one
# line from a pipe) and hands it to ``sudo -v`` through printf, a builtin, so it
# is in no process's argv and never reaches the command's stdin, whether or not
# sudo asks for it; the command then runs under the cached credentials.
_VALIDATE = (
    "IFS= read -r herd_p; "
    "printf '%s\\n' \"$herd_p\" | sudo -S -p '' -v; herd_sudo=$?; unset herd_p; "
    '[ "$herd_sudo" -eq 0 ] || { echo "herd: sudo did not accept the password" >&2; exit 1; }; '
)


@dataclass(frozen=True, slots=True)
class Become:
    """Whom to become on a host, how, and with which password (never shown)."""

    method: str = "sudo"
    user: str = "root"
    password: str | None = field(default=None, repr=False)

    def wrap(self, inner: str, command: str) -> str:
        """The host's command line: ``inner`` (shell code ending in running ``$1``) as the
        target user, with ``command`` as ``$1``.

        The last sudo is not the shell's last command, so the shell forks it rather
        than exec it: sudo remembers a password per parent process when there is no
        terminal, and the parent must stay the one ``sudo -v`` had.
        """
        script = shlex.quote(inner + _TARGET_SHELL)
        user = shlex.quote(self.user)
        if self.method == "su":
            # su runs the target's own login shell on -c, with the words after as $0 and $1
            return f"su {user} -c {script} herd {shlex.quote(command)}; exit $?"
        if self.method == "doas":
            return f"doas -n -u {user} sh -c {script} herd {shlex.quote(command)}; exit $?"
        run = f"sudo -n -u {user} -- sh -c {script} herd {shlex.quote(command)}; exit $?"
        # -n: fail at once rather than wait for a password nobody will type
        return run if self.password is None else _VALIDATE + run

    def password_line(self) -> list[str]:
        """What goes first on stdin: the password line ``sudo -v`` reads, if any."""
        return [self.password] if self.password is not None and self.method == "sudo" else []


def become_for(host: Host, given: Become | None) -> Become | None:
    """The become of ``host``: its inventory variables over ``given`` (the command line's).

    Raises ConfigError naming the host and the variable for a value herd cannot use.
    """
    values = host.vars
    enabled = _flag(values, "ansible_become", host.name)
    if enabled is False or (enabled is None and given is None):
        return None
    become = given or Become()
    method = _text(values, "ansible_become_method", host.name)
    if method is not None:
        become = replace(become, method=method)
    user = _text(values, "ansible_become_user", host.name)
    if user is not None:
        become = replace(become, user=user)
    for name in ("ansible_become_password", "ansible_become_pass"):
        password = _text(values, name, host.name)
        if password is not None:
            become = replace(become, password=password)
            break
    check(become, host.name)
    return become


def check(become: Become, where: str) -> None:
    """Refuse what cannot work: an unknown method, or a password su or doas cannot read."""
    if become.method not in METHODS:
        raise ConfigError(
            f"{where}: become method {become.method!r} is not one herd runs"
            f" (choose {', '.join(METHODS)})"
        )
    if become.password is not None and become.method != "sudo":
        raise ConfigError(
            f"{where}: {become.method} reads a password only from a terminal, and herd runs"
            f" commands without one: use sudo, or a rule that needs no password"
        )


def _flag(values: Mapping[str, object], name: str, host: str) -> bool | None:
    value = values.get(name)
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigError(f"{host}: {name} must be true or false, not {value!r}")


def _text(values: Mapping[str, object], name: str, host: str) -> str | None:
    value = values.get(name)
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{host}: {name} is empty")
    return text
