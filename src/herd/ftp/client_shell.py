"""``herd ftp shell URL``: an interactive FTP shell that also reads scripts from stdin.

Commands: ls, cd, pwd, get, put, mkdir, rmdir, rm, rename, lcd, lpwd, help,
quit. Each failed command prints one line and the shell goes on; the exit code
is 1 when any command failed, so ``herd ftp shell URL < script`` is checkable.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from herd.errors import HerdError
from herd.ftp.client import FileProgress, FtpClient, Transfer

__all__ = ["FtpShell"]

_HELP = {
    "ls": "ls [PATH]               list a directory (ls -l style)",
    "cd": "cd PATH                 change the remote directory",
    "pwd": "pwd                     print the remote directory",
    "get": "get [-c] REMOTE [LOCAL] download (-c resumes a partial file)",
    "put": "put [-c] LOCAL [REMOTE] upload (-c appends what the server lacks)",
    "mkdir": "mkdir PATH              make a remote directory",
    "rmdir": "rmdir PATH              remove an empty remote directory",
    "rm": "rm PATH                 delete a remote file",
    "rename": "rename FROM TO          rename or move a remote file or directory",
    "lcd": "lcd PATH                change the local directory",
    "lpwd": "lpwd                    print the local directory",
    "help": "help                    this list",
    "quit": "quit                    end the session (also exit, bye, end of input)",
}


class _ShellUsage(HerdError):
    """A shell command given the wrong arguments."""


class FtpShell:
    """Reads commands line by line and runs them on one logged-in client."""

    def __init__(
        self,
        client: FtpClient,
        *,
        stdin: TextIO,
        stdout: TextIO,
        interactive: bool,
        progress: Callable[[], FileProgress],
        local_dir: Path | None = None,
    ) -> None:
        self.client = client
        self.stdin = stdin
        self.stdout = stdout
        self.interactive = interactive
        self.progress = progress
        self.local_dir = (local_dir or Path.cwd()).absolute()
        self.failures = 0

    def say(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def run(self) -> int:
        """Run until quit or end of input; 0 when every command succeeded, else 1."""
        while True:
            line = self._next_line()
            if line is None:
                break
            if not self.execute(line):
                break
        return 1 if self.failures else 0

    def _next_line(self) -> str | None:
        """The next command line; None at end of input. Ctrl-C at the prompt clears the line."""
        if not self.interactive:
            return self.stdin.readline() or None
        while True:
            try:
                return input("ftp> ") + "\n"  # input() brings line editing and history
            except EOFError:
                self.say("")
                return None
            except KeyboardInterrupt:
                self.say("")

    def execute(self, line: str) -> bool:
        """Run one command line; False when the session should end."""
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            self._failed(f"cannot parse {line.strip()!r}: {exc}")
            return True
        if not words:
            return True
        name, args = words[0].lower(), words[1:]
        if name in {"quit", "exit", "bye"}:
            return False
        handler = getattr(self, f"do_{name}", None)
        if handler is None:
            self._failed(f"unknown command {name!r} (try help)")
            return True
        try:
            handler(args)
        except HerdError as exc:
            self._failed(str(exc))
        return True

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.say(f"error: {message}")

    @staticmethod
    def _want(args: list[str], name: str, low: int, high: int) -> None:
        if not low <= len(args) <= high:
            raise _ShellUsage(f"usage: {_HELP[name]}")

    def _local(self, text: str) -> Path:
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.local_dir / path

    def _report(self, transfer: Transfer, verb: str) -> None:
        resumed = f", resumed at {transfer.resumed_from}" if transfer.resumed_from else ""
        self.say(
            f"{verb} {transfer.remote}: {transfer.sent} bytes{resumed} ({transfer.describe()})"
        )

    # -- commands -----------------------------------------------------------------

    def do_help(self, args: list[str]) -> None:
        for text in _HELP.values():
            self.say(text)

    def do_ls(self, args: list[str]) -> None:
        self._want(args, "ls", 0, 1)
        for line in self.client.listing(args[0] if args else ""):
            self.say(line)

    def do_cd(self, args: list[str]) -> None:
        self._want(args, "cd", 1, 1)
        self.client.cd(args[0])

    def do_pwd(self, args: list[str]) -> None:
        self._want(args, "pwd", 0, 0)
        self.say(self.client.pwd())

    def do_mkdir(self, args: list[str]) -> None:
        self._want(args, "mkdir", 1, 1)
        self.client.mkdir(args[0])

    def do_rmdir(self, args: list[str]) -> None:
        self._want(args, "rmdir", 1, 1)
        self.client.rmdir(args[0])

    def do_rm(self, args: list[str]) -> None:
        self._want(args, "rm", 1, 1)
        self.client.delete(args[0])

    def do_rename(self, args: list[str]) -> None:
        self._want(args, "rename", 2, 2)
        self.client.rename(args[0], args[1])

    def do_lcd(self, args: list[str]) -> None:
        self._want(args, "lcd", 1, 1)
        target = self._local(args[0])
        if not target.is_dir():
            raise _ShellUsage(f"{target}: not a local directory")
        self.local_dir = target.resolve()

    def do_lpwd(self, args: list[str]) -> None:
        self._want(args, "lpwd", 0, 0)
        self.say(str(self.local_dir))

    def do_get(self, args: list[str]) -> None:
        resume = "-c" in args
        args = [a for a in args if a != "-c"]
        self._want(args, "get", 1, 2)
        remote = args[0]
        local = self._local(args[1] if len(args) > 1 else Path(remote).name)
        if local.is_dir():
            local /= Path(remote).name
        transfer = self.client.get(remote, local, resume=resume, progress=self.progress())
        self._report(transfer, "got")

    def do_put(self, args: list[str]) -> None:
        resume = "-c" in args
        args = [a for a in args if a != "-c"]
        self._want(args, "put", 1, 2)
        local = self._local(args[0])
        remote = args[1] if len(args) > 1 else local.name
        if remote.endswith("/") or self.client.is_directory(remote):
            remote = f"{remote.rstrip('/')}/{local.name}"
        transfer = self.client.put(local, remote, resume=resume, progress=self.progress())
        self._report(transfer, "put")
