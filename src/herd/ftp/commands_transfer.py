"""Data connections and transfers: PASV EPSV PORT EPRT REST RETR STOR STOU APPE LIST NLST MLSD.

Binary downloads go out with ``os.sendfile`` (zero copy). Plain binary uploads
come in with ``os.splice`` (``herd.ftp.spliced``), the others (TLS, ASCII)
through ``recv_into`` buffers of ``FtpSettings.buffer_size`` (1 MiB by
default); a helper thread hashes either (``herd.ftp.upload``). STOR writes to a
temporary file in the same directory and renames it into place when complete,
so a failed upload never replaces a good file; REST+STOR and APPE write in
place to resume. The quota rule for an upload that
hits the limit is in ``herd.ftp.quota``.

What counts as a failed upload: ABOR, a reset connection, a stalled one (data
idle timeout), the quota, a local write error. A client that simply closes the
data connection has, in stream mode, ended the file: what came is stored, and
the client resumes it with SIZE + APPE (curl -C -) or REST + STOR (lftp put -c).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import socket
import ssl
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass

from herd.ftp.datachannel import (
    ActiveTarget,
    PassiveListener,
    parse_eprt,
    parse_port,
    receive_timeout,
    send_timeout,
)
from herd.ftp.events import TransferEvent
from herd.ftp.listing import facts_line, list_lines
from herd.ftp.replies import Aborted, FtpReply
from herd.ftp.session import DataTransfer, Session
from herd.ftp.spliced import Pipe, write_all
from herd.ftp.transfers import INLINE_BYTES
from herd.ftp.upload import FileDigest, UploadDigest

__all__ = ["TransferCommands"]

_SENDFILE_SLICE = 16 * 1024 * 1024


@dataclass(slots=True)
class _Upload:
    """Where an upload goes and how it ends."""

    verb: str
    path: str
    fd: int
    offset: int  # where writing starts
    size_before: int  # the file's size before (bytes below it are not charged again)
    temp: str | None = None  # STOR: the temporary file, renamed onto final when complete
    final: str | None = None
    remove_on_failure: bool = False  # STOU: the new file goes if the upload fails
    charged: int = 0  # bytes charged to the quota so far


class TransferCommands(Session):
    """Passive and active data connections, downloads, uploads and listings."""

    # -- data connections ------------------------------------------------------------------

    def cmd_PASV(self, arg: str) -> None:
        if self.epsv_all:
            raise FtpReply(503, "EPSV ALL in effect: use EPSV.")
        local = self.local_address
        announce = self.settings.masquerade_address or local
        if ":" in announce:
            raise FtpReply(425, "PASV is for IPv4; use EPSV.")
        self.drop_data_source()
        listener = PassiveListener(local, self.client, self.settings.passive_ports)
        self.data_source = listener
        numbers = announce.replace(".", ",")
        self.reply(
            227, f"Entering Passive Mode ({numbers},{listener.port >> 8},{listener.port & 255})."
        )

    def cmd_EPSV(self, arg: str) -> None:
        value = arg.strip().upper()
        if value == "ALL":
            self.epsv_all = True
            self.reply(200, "EPSV ALL ok.")
            return
        local = self.local_address
        family = "2" if ":" in local else "1"
        if value and value != family:
            raise FtpReply(522, f"Network protocol not supported, use ({family}).")
        self.drop_data_source()
        listener = PassiveListener(local, self.client, self.settings.passive_ports)
        self.data_source = listener
        self.reply(229, f"Entering Extended Passive Mode (|||{listener.port}|).")

    def cmd_PORT(self, arg: str) -> None:
        self._active(*parse_port(arg))

    def cmd_EPRT(self, arg: str) -> None:
        self._active(*parse_eprt(arg.strip()))

    def _active(self, address: str, port: int) -> None:
        if self.epsv_all:
            raise FtpReply(503, "EPSV ALL in effect: use EPSV.")
        target = ActiveTarget(address, port, self.client)
        self.drop_data_source()
        self.data_source = target
        self.reply(200, "PORT command successful.")

    def cmd_REST(self, arg: str) -> None:
        value = arg.strip()
        if not value.isdigit():
            raise FtpReply(501, "REST needs a byte offset.")
        if self.ascii and value != "0":
            # In TYPE A the marker would count transfer octets (CRLF), not file bytes
            # (RFC 3659 5): refused rather than resumed at the wrong place.
            raise FtpReply(504, "REST is not supported in ASCII mode; use TYPE I.")
        self.rest = int(value)
        self.reply(350, f"Restarting at {self.rest}. Send STORE or RETRIEVE.")

    def _need_data_source(self) -> None:
        if self.tls_required and self.data_protection != "P":  # RFC 4217 9
            raise FtpReply(521, "Data connections must be protected: send PBSZ 0 and PROT P.")
        if self.data_source is None:
            raise FtpReply(425, "Use PASV, EPSV, PORT or EPRT first.")

    # -- downloads -------------------------------------------------------------------------

    def cmd_RETR(self, arg: str) -> None:
        self.need("read")
        target = self.path(arg)
        self._need_data_source()
        assert self.jail is not None
        fd = self.jail.open_read(target)
        size = os.fstat(fd).st_size
        offset = self.rest
        if offset > size:
            os.close(fd)
            raise FtpReply(
                554, f"Invalid REST parameter: {offset} is beyond the end ({size} bytes)."
            )
        mode = "ASCII" if self.ascii else "BINARY"
        ascii_mode = self.ascii
        started = time.time()

        def send(sock: socket.socket, job: DataTransfer) -> tuple[int, str]:
            try:
                sent = self._send_file(sock, job, fd, offset, size, ascii_mode=ascii_mode)
            except Exception as exc:  # Aborted, OSError, Reply or a bug: logged as failed
                self._transfer_event("RETR", target, job.bytes, "", started, error=_why(exc))
                raise
            finally:
                os.close(fd)
            self._transfer_event("RETR", target, sent, "", started)
            return 226, "Transfer complete."

        self.start_transfer(
            f"Opening {mode} mode data connection for {target} ({size} bytes).",
            send,
            unused=lambda: os.close(fd),
            outgoing=True,
            small=not ascii_mode and size - offset <= INLINE_BYTES,
        )

    def _send_file(
        self,
        sock: socket.socket,
        job: DataTransfer,
        fd: int,
        offset: int,
        size: int,
        *,
        ascii_mode: bool,
    ) -> int:
        if not ascii_mode and isinstance(sock, ssl.SSLSocket):
            return self._send_encrypted(sock, job, fd, offset, size)
        if not ascii_mode and size - offset <= INLINE_BYTES:
            # A small file: one read and one send cost less than setting up sendfile.
            data = os.pread(fd, size - offset, offset)
            if len(data) < size - offset:
                raise OSError(0, "file shrank during the download")
            sock.sendall(data)
            job.bytes = len(data)
            return job.bytes
        if not ascii_mode:
            return self._sendfile(sock, job, fd, offset, size)
        with os.fdopen(os.dup(fd), "rb") as file:
            file.seek(offset)
            previous = b""  # the last byte of the previous chunk: is a LF there already CRLF?
            while chunk := file.read(self.settings.buffer_size):
                if job.abort.is_set():
                    raise Aborted
                sock.sendall(_to_crlf(chunk, previous))
                previous = chunk[-1:]
                job.bytes += len(chunk)
            return job.bytes

    def _sendfile(
        self, sock: socket.socket, job: DataTransfer, fd: int, offset: int, size: int
    ) -> int:
        """A binary download with sendfile: zero copy, in slices so that STAT reports
        progress and ABOR (which shuts the connection down) is seen between them.

        Blocking, with the data idle timeout as the kernel's send timeout: one call
        moves a slice. ``socket.sendfile`` under a Python timeout polls before every
        call and each call moves only what fits in the socket's buffer.
        """
        send_timeout(sock, self.settings.data_idle_timeout)
        out = sock.fileno()
        while offset + job.bytes < size:
            position = offset + job.bytes
            try:
                sent = os.sendfile(out, fd, position, min(_SENDFILE_SLICE, size - position))
            except BlockingIOError:  # nothing moved for the idle timeout
                raise TimeoutError("data connection idle") from None
            if job.abort.is_set():
                raise Aborted
            if sent == 0:
                raise OSError(0, "file shrank during the download")
            job.bytes += sent
        return job.bytes

    def _send_encrypted(
        self, sock: ssl.SSLSocket, job: DataTransfer, fd: int, offset: int, size: int
    ) -> int:
        """A binary download under TLS: large reads, each written whole (TLS cannot sendfile).

        ``SSLSocket.sendfile`` falls back to 8 KiB writes: small TLS records and a
        system call for each, half the throughput of large ones.
        """
        buffer = bytearray(self.settings.buffer_size)
        with memoryview(buffer) as view:
            while offset + job.bytes < size:
                count = os.preadv(fd, [view], offset + job.bytes)
                if count == 0:
                    raise OSError(0, "file shrank during the download")
                sock.sendall(view[:count])
                job.bytes += count
                if job.abort.is_set():
                    raise Aborted
        return job.bytes

    # -- uploads ---------------------------------------------------------------------------

    def cmd_STOR(self, arg: str) -> None:
        self.need("write")
        target = self.path(arg)
        self._need_data_source()
        assert self.jail is not None
        if self.rest:
            if not self.jail.exists(target):
                raise FtpReply(554, f"Invalid REST parameter: {target} does not exist yet.")
            fd = self.jail.open_write(target, create=False)
            size = os.fstat(fd).st_size
            if self.rest > size:
                os.close(fd)
                raise FtpReply(
                    554, f"Invalid REST parameter: {self.rest} is beyond the end ({size} bytes)."
                )
            self._upload(_Upload("STOR", target, fd, self.rest, size))
            return
        fd, temp, final = self.jail.create_temp(target)
        self._upload(_Upload("STOR", target, fd, 0, 0, temp=temp, final=final))

    def cmd_APPE(self, arg: str) -> None:
        self.need("append")
        target = self.path(arg)
        self._need_data_source()
        assert self.jail is not None
        if self.rest and not self.jail.exists(target):
            raise FtpReply(554, f"Invalid REST parameter: {target} does not exist yet.")
        fd = self.jail.open_write(target)
        size = os.fstat(fd).st_size
        # RFC 3659 5.3: after REST the data goes at the marker, not at the end.
        offset = size if not self.rest else self.rest
        if offset > size:
            os.close(fd)
            raise FtpReply(
                554, f"Invalid REST parameter: {offset} is beyond the end ({size} bytes)."
            )
        self._upload(_Upload("APPE", target, fd, offset, size))

    def cmd_STOU(self, arg: str) -> None:
        self.need("write")
        self._need_data_source()
        assert self.jail is not None
        fd, target = self.jail.create_unique(self.path(arg.strip() or "upload"))
        self._upload(_Upload("STOU", target, fd, 0, 0, remove_on_failure=True), f"FILE: {target}")

    def _upload(self, upload: _Upload, opening: str | None = None) -> None:
        started = time.time()
        ascii_mode = self.ascii

        def receive(sock: socket.socket, job: DataTransfer) -> tuple[int, str]:
            try:
                sha256 = self._receive(sock, job, upload, ascii_mode)
                self._finish_upload(upload)
            except Exception as exc:  # Aborted, OSError, Reply (552, 451...) or a bug
                self._fail_upload(upload)
                self._transfer_event(
                    upload.verb, upload.path, job.bytes, "", started, error=_why(exc)
                )
                raise
            finally:
                self._persist_usage()
            self._transfer_event(upload.verb, upload.path, job.bytes, sha256, started)
            return 226, "Transfer complete."

        self.start_transfer(
            opening or f"Ok to send data for {upload.path}.",
            receive,
            unused=lambda: self._fail_upload(upload),
        )

    def _receive(
        self, sock: socket.socket, job: DataTransfer, upload: _Upload, ascii_mode: bool
    ) -> str:
        """Copy the data connection into the file; the sha256 of what was written."""
        pipe = None if ascii_mode else Pipe.open_for(sock, self.settings.buffer_size)
        if pipe is not None:
            digest = FileDigest(upload.fd, upload.offset, self.settings.buffer_size)
            with contextlib.closing(pipe), contextlib.closing(digest):
                self._receive_spliced(sock, job, upload, pipe, digest)
                try:
                    return digest.hexdigest()
                except OSError as exc:  # e.g. someone truncated the file meanwhile
                    raise FtpReply(451, f"Local error hashing the file: {exc.strerror}.") from None
        buffers = UploadDigest(self.settings.buffer_size)
        try:
            self._receive_buffered(sock, job, upload, buffers, ascii_mode)
            return buffers.hexdigest()
        finally:
            buffers.close()

    def _receive_spliced(
        self,
        sock: socket.socket,
        job: DataTransfer,
        upload: _Upload,
        pipe: Pipe,
        digest: FileDigest,
    ) -> None:
        """A plain binary upload, moved by the kernel (``herd.ftp.spliced``)."""
        position = upload.offset
        high = max(upload.size_before, upload.offset)  # bytes below this are already charged
        receive_timeout(sock, self.settings.data_idle_timeout)
        while count := pipe.fill_from(sock):
            job.bytes += count
            fits = self._charge(upload, position, count, high)
            pipe.empty_into(upload.fd, position, fits)
            position += fits
            high = max(high, position)
            digest.written(position)
            if fits < count:
                raise FtpReply(552, "Quota exceeded: transfer stopped. " + self._quota_left())
        if job.abort.is_set():
            raise Aborted

    def _receive_buffered(
        self,
        sock: socket.socket,
        job: DataTransfer,
        upload: _Upload,
        digest: UploadDigest,
        ascii_mode: bool,
    ) -> None:
        """Copy the data connection into the file through buffers, charging the quota."""
        position = upload.offset
        high = max(upload.size_before, upload.offset)  # bytes below this are already charged
        pending_cr = b""
        os.lseek(upload.fd, upload.offset, os.SEEK_SET)
        receive = _receiver(sock, reserve=1 if ascii_mode else 0)  # room for a held CR
        while True:
            buffer = digest.buffer()
            n = receive(buffer)
            if n == 0:
                break
            job.bytes += n
            if ascii_mode:
                text = pending_cr + bytes(memoryview(buffer)[:n])
                pending_cr = b"\r" if text.endswith(b"\r") else b""
                converted = text[: len(text) - len(pending_cr)].replace(b"\r\n", b"\n")
                n = len(converted)
                buffer[:n] = converted
            fits = self._charge(upload, position, n, high)
            with memoryview(buffer) as view:
                write_all(upload.fd, view[:fits])
            digest.update(buffer, fits)
            position += fits
            high = max(high, position)
            if fits < n:
                raise FtpReply(552, "Quota exceeded: transfer stopped. " + self._quota_left())
        if job.abort.is_set():
            raise Aborted
        if pending_cr:
            fits = self._charge(upload, position, 1, high)
            if not fits:
                raise FtpReply(552, "Quota exceeded: transfer stopped. " + self._quota_left())
            write_all(upload.fd, pending_cr)
            last = digest.buffer()
            last[:1] = pending_cr
            digest.update(last, 1)

    def _charge(self, upload: _Upload, position: int, length: int, high: int) -> int:
        """Charge the bytes past ``high``; returns how many of ``length`` fit."""
        billable = max(0, position + length - high)
        if self.account is None or billable == 0:
            return length
        granted = self.account.charge(billable)
        upload.charged += granted
        return length - (billable - granted)

    def _quota_left(self) -> str:
        account = self.account
        return "" if account is None else f"Used {account.used} of {account.limit} bytes."

    def _finish_upload(self, upload: _Upload) -> None:
        os.close(upload.fd)
        upload.fd = -1
        if upload.temp is not None and upload.final is not None:
            assert self.jail is not None
            try:
                replaced = self.jail.replace(upload.temp, upload.final)
            except OSError as exc:  # e.g. a directory appeared under that name meanwhile
                raise FtpReply(451, f"Cannot put the file in place: {exc.strerror}.") from None
            if self.account is not None:
                self.account.credit(replaced)

    def _fail_upload(self, upload: _Upload) -> None:
        """Clean up after a failed upload: remove what the quota rule says goes."""
        if upload.fd >= 0:
            os.close(upload.fd)
            upload.fd = -1
        doomed = upload.temp
        if upload.remove_on_failure:
            assert self.jail is not None
            doomed = self.jail.real(upload.path, follow=False)
        if doomed is not None:
            with contextlib.suppress(OSError):
                os.unlink(doomed)  # noqa: PTH108 (the jail works in str paths)
            if self.account is not None:
                self.account.credit(upload.charged)

    def _persist_usage(self) -> None:
        if self.account is not None:
            self.account.persist()

    def _transfer_event(
        self, verb: str, path: str, size: int, sha256: str, started: float, *, error: str = ""
    ) -> None:
        self.report(
            TransferEvent,
            verb=verb,
            path=path,
            size=size,
            sha256=sha256,
            ok=not error,
            error=error,
            started=started,
            duration=time.time() - started,
        )

    # -- listings --------------------------------------------------------------------------

    def _listing_target(self, arg: str) -> str:
        words = arg.split(" ")
        while words and words[0].startswith("-"):
            words.pop(0)  # ls options (-a, -l, -la): we always list everything, long
        return self.path(" ".join(words).strip() or ".")

    def _entries(self, target: str) -> list[tuple[str, os.stat_result]]:
        """The entries a listing of ``target`` shows: a directory's, a file, or a glob's."""
        assert self.jail is not None
        parent, _, pattern = target.rpartition("/")
        if any(c in pattern for c in "*?[") and not self.jail.exists(target):
            entries = self.jail.entries(parent or "/", self.settings.max_listing_entries)
            return [(e.name, e.stat) for e in entries if fnmatch.fnmatchcase(e.name, pattern)]
        info = self.jail.stat(target)
        if not stat.S_ISDIR(info.st_mode):
            return [(target.rsplit("/", 1)[-1], info)]
        return [
            (e.name, e.stat) for e in self.jail.entries(target, self.settings.max_listing_entries)
        ]

    def cmd_LIST(self, arg: str) -> None:
        self.need("list")
        self._need_data_source()
        lines = list_lines(self._entries(self._listing_target(arg)), self.user_name)
        self._send_listing(lines)

    def cmd_NLST(self, arg: str) -> None:
        self.need("list")
        self._need_data_source()
        self._send_listing([name for name, _info in self._entries(self._listing_target(arg))])

    def cmd_MLSD(self, arg: str) -> None:
        self.need("list")
        self._need_data_source()
        target = self.path(arg.strip() or ".")
        assert self.jail is not None and self.user is not None
        if not self.jail.is_dir(target):
            if not self.jail.exists(target):  # RFC 3659 7.2.1: a missing path is 550
                raise FtpReply(550, f"{target}: no such directory.")
            raise FtpReply(501, f"{target}: not a directory.")
        perms = self.user.perms
        lines = [
            facts_line(name, info, perms, self.mlst_facts) for name, info in self._entries(target)
        ]
        self._send_listing(lines)

    def _send_listing(self, lines: list[str]) -> None:
        data = "".join(line + "\r\n" for line in lines).encode("utf-8", "surrogateescape")

        def send(sock: socket.socket, job: DataTransfer) -> tuple[int, str]:
            sock.sendall(data)
            job.bytes = len(data)
            return 226, "Directory send OK."

        small = len(data) <= INLINE_BYTES
        self.start_transfer("Here comes the directory listing.", send, outgoing=True, small=small)

    def stat_path(self, arg: str) -> None:
        self.need("list")
        lines = list_lines(self._entries(self._listing_target(arg)), self.user_name)
        self.reply(
            213, "Status follows:\n" + "\n".join(lines) + ("\n" if lines else "") + "End of status."
        )


_BARE_LF = re.compile(rb"(?<!\r)\n")


def _to_crlf(chunk: bytes, previous: bytes) -> bytes:
    """ASCII mode: bare LF becomes CRLF; a CRLF already there stays as it is."""
    converted = _BARE_LF.sub(b"\r\n", chunk)
    if previous == b"\r" and chunk.startswith(b"\n"):
        converted = converted[1:]  # that LF ended a CRLF split across two reads
    return converted


def _receiver(sock: socket.socket, reserve: int) -> Callable[[bytearray], int]:
    """How to fill a buffer from the data connection, leaving ``reserve`` bytes free.

    Reads are collected until the buffer is half full (or the data ends): a
    plain read returns what the socket holds, a TLS read one 16 KiB record, and
    the work per chunk (quota, write, hand-off to the hash) pays off on large ones.
    """

    def fill(buffer: bytearray) -> int:
        end = len(buffer) - reserve
        with memoryview(buffer) as view:
            filled = 0
            while filled < end // 2:
                count = sock.recv_into(view[filled:end])
                if count == 0:
                    break
                filled += count
            return filled

    return fill


def _why(exc: BaseException) -> str:
    if isinstance(exc, Aborted):
        return "aborted"
    if isinstance(exc, FtpReply):
        return exc.text
    return str(exc) or type(exc).__name__
