"""The builtin engine's server: every lab host served by asyncssh in one process.

Run as ``python -m herd.lab.builtin DIR/builtin.json`` (see builtin_launcher).
Each host listens on its own address with its own host key and accepts only
the lab's client key. A command runs through ``/bin/sh -c`` with the host's
directory (DIR/hosts/NAME/home) as working directory and HOME; its exit status,
stdout and stderr pass through unchanged. SFTP is rooted in the same directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import asyncssh

from herd.core.daemon import detach

__all__ = ["main"]

_CHUNK = 65536


def _environment(name: str, home: str, client_env: object) -> dict[str, str]:
    """The environment: the server's PATH, the host's name and HOME, the client's extras."""
    env = {
        "HERD_LAB_HOST": name,
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": home,
        "PWD": home,
        "SHELL": "/bin/sh",
        "USER": os.environ.get("USER", ""),
        "LOGNAME": os.environ.get("LOGNAME", os.environ.get("USER", "")),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    if isinstance(client_env, dict):
        for key, value in client_env.items():
            env[str(key)] = str(value)
    return env


async def _copy_out(source: asyncio.StreamReader, sink: asyncssh.SSHWriter[bytes]) -> None:
    """Pass one output stream of the command to the client."""
    while data := await source.read(_CHUNK):
        try:
            sink.write(data)
            await sink.drain()
        except (OSError, asyncssh.Error):  # the client went away: keep draining the pipe
            continue


async def _copy_in(source: asyncssh.SSHReader[bytes], child: asyncio.subprocess.Process) -> None:
    """Pass the client's stdin to the command (closing it at end of input) and its signals."""
    sink = child.stdin
    assert sink is not None
    try:
        while True:
            try:
                data = await source.read(_CHUNK)
            except asyncssh.SignalReceived as received:
                _signal_group(child, getattr(signal, f"SIG{received.signal}", signal.SIGTERM))
                continue
            except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
                continue
            if not data:
                break
            sink.write(data)
            await sink.drain()
    except (OSError, asyncssh.Error):
        pass
    finally:
        sink.close()


def _signal_group(child: asyncio.subprocess.Process, signum: int) -> None:
    """Signal the command and whatever it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signum)


async def _run_command(name: str, home: str, process: asyncssh.SSHServerProcess[bytes]) -> None:
    """Run the client's command (or a shell) in the host's directory and report its exit.

    If the client goes away first (closed channel, herd's command timeout), the
    command and its children are killed rather than left running.
    """
    command = process.command or "exec /bin/sh -i"
    try:
        child = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            command,
            cwd=home,
            env=_environment(name, home, process.env),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        process.stderr.write(f"herd lab: cannot run /bin/sh: {exc}\n".encode())
        process.exit(127)
        return
    assert child.stdin is not None and child.stdout is not None and child.stderr is not None
    feeding = asyncio.create_task(_copy_in(process.stdin, child))
    output = asyncio.gather(
        _copy_out(child.stdout, process.stdout), _copy_out(child.stderr, process.stderr)
    )
    closed = asyncio.create_task(process.channel.wait_closed())
    try:
        waiters: set[asyncio.Future[Any]] = {output, closed}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not output.done():  # the client left: nobody waits for this command any more
            _signal_group(child, signal.SIGKILL)
        await output
        status = await child.wait()
    finally:
        feeding.cancel()
        closed.cancel()
        if child.returncode is None:
            _signal_group(child, signal.SIGKILL)
            await child.wait()
    with contextlib.suppress(OSError, asyncssh.Error):
        process.exit(status if status >= 0 else 128 - status)


def _sftp_server(root: bytes, channel: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
    return asyncssh.SFTPServer(channel, chroot=root)


async def _listen(spec: dict[str, Any], host: dict[str, Any]) -> asyncssh.SSHAcceptor:
    home = host["home"]
    process_factory: Callable[[asyncssh.SSHServerProcess[bytes]], Any] = partial(
        _run_command, host["name"], home
    )
    return await asyncssh.create_server(
        asyncssh.SSHServer,
        host["address"],
        host["port"],
        server_host_keys=[asyncssh.read_private_key(host["host_key"])],
        authorized_client_keys=asyncssh.read_authorized_keys(spec["authorized_keys"]),
        process_factory=process_factory,
        sftp_factory=partial(_sftp_server, os.fsencode(home)),
        allow_scp=True,
        encoding=None,
        reuse_address=True,
    )


async def _serve(spec: dict[str, Any], notify: int) -> None:
    """Listen on every host, report readiness through ``notify``, serve until SIGTERM."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, stopping.set)
    servers: list[asyncssh.SSHAcceptor] = []
    for host in spec["hosts"]:
        try:
            servers.append(await _listen(spec, host))
        except (OSError, asyncssh.Error, ValueError) as exc:
            where = f"{host['name']} ({host['address']}:{host['port']})"
            os.write(notify, f"{where} did not start: {exc}\n".encode())
            os.close(notify)
            return
    Path(spec["pid_file"]).write_text(f"{os.getpid()}\n", encoding="ascii")
    os.write(notify, b"ok\n")
    os.close(notify)
    await stopping.wait()
    for server in servers:
        server.close()


def _run_server(spec: dict[str, Any], notify: int) -> None:
    try:
        import uvloop

        runner: Callable[..., None] = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(_serve(spec, notify))


def main(argv: list[str] | None = None) -> int:
    """Fork the server into the background; exit 0 once it serves every host, else 1."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m herd.lab.builtin DIR/builtin.json\n")
        return 2
    try:
        spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"{args[0]}: cannot read the lab spec: {exc}\n")
        return 2
    ready_read, ready_write = os.pipe()
    if os.fork():
        os.close(ready_write)
        with os.fdopen(ready_read, "rb") as ready:
            message = ready.read().decode(errors="replace")
        if message.startswith("ok"):
            return 0
        sys.stderr.write(message or "the builtin lab server died while starting\n")
        return 1
    os.close(ready_read)
    detach(spec["log_file"])
    status = 0
    try:
        _run_server(spec, ready_write)
    except BaseException as exc:  # the daemon must never fall back into the caller's code
        sys.stderr.write(f"herd lab server: {exc!r}\n")
        status = 1
    finally:
        sys.stderr.flush()
        os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
