"""``herd run --script FILE -- ARGS``: a local script, run on every host, and gone after.

The script travels on the command's stdin (the last line of the preamble, read
by the shell's ``read`` builtin), so it needs no SFTP server and never appears
in a command line. On the host it is written to a private file (umask 077,
created exclusively: ``set -C`` refuses a name someone planted), made
executable, and run with its arguments through its own shebang interpreter,
with stdout and stderr apart (no terminal). The file is removed whatever
happens: when the script ends, and on TERM, HUP or INT (a timeout, Ctrl-C), the
shell's traps remove it before herd's follow-up KILL; the script runs in the
background while the shell waits, so a trap is not held up by it. Under
``--become`` the file is the target user's.
"""

from __future__ import annotations

import hashlib
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

from herd.errors import SourceError

__all__ = ["LocalScript"]


@dataclass(frozen=True, slots=True)
class LocalScript:
    """A script read once on the controller, ready to send."""

    name: str
    text: str  # CRLF line endings turned into LF: a shebang line must not end in \r
    sha256: str  # of the file as it is on the controller
    token: str  # names the file on the hosts: herd-script-TOKEN.PID (hosts may share a /tmp)

    @classmethod
    def read(cls, path: Path) -> LocalScript:
        """Read ``path``; SourceError (exit 2) if it cannot be a script."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceError(f"{path}: cannot read the script: {exc.strerror or exc}") from exc
        if b"\0" in data:
            raise SourceError(f"{path}: holds NUL bytes: not a script")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{path}: not UTF-8 text: {exc.reason}") from None
        return cls(
            name=path.name,
            text=text.replace("\r\n", "\n"),
            sha256=hashlib.sha256(data).hexdigest(),
            token=secrets.token_hex(8),
        )

    def command(self, args: tuple[str, ...]) -> str:
        """The shell code that writes the script from its stdin line, runs it, removes it."""
        run = '"$herd_f"' + "".join(" " + shlex.quote(arg) for arg in args)
        return (
            "IFS= read -r herd_s; "
            f'herd_f="${{TMPDIR:-/tmp}}/herd-script-{self.token}.$$"; '
            '(umask 077; set -C; printf "%b" "$herd_s" > "$herd_f") || '
            '{ echo "herd: cannot write the script to $herd_f" >&2; exit 126; }; '
            'unset herd_s; chmod 700 "$herd_f"; '
            "trap 'rm -f \"$herd_f\"' EXIT; "
            "trap 'rm -f \"$herd_f\"; exit 129' HUP; "
            "trap 'rm -f \"$herd_f\"; exit 130' INT; "
            "trap 'rm -f \"$herd_f\"; exit 143' TERM; "
            f"{run} & wait $!"
        )

    def describe(self, args: tuple[str, ...]) -> str:
        """The command as the log and the summary name it."""
        shown = " ".join(shlex.quote(a) for a in args)
        return f"--script {self.name} (sha256 {self.sha256}){' ' + shown if shown else ''}"
