"""What a push sends: the local sources walked, checked and hashed before any host is touched.

Walking and hashing every source first means a missing or unreadable file stops
the push with one line and exit 2 before anything is sent, and every host can
compare its copy against one known sha256 (the idempotency check and the
verification after the transfer).

Where a source lands is rsync's rule (and Ansible copy's), which never depends
on what already exists: a directory ``src/tree`` lands as ``DEST/tree``;
``src/tree/`` (a trailing slash, or ``.``) puts its contents in ``DEST``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

from herd.errors import SourceError
from herd.hosts.become import Become

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_CACHE_BUDGET",
    "DEFAULT_REQUESTS",
    "LocalDir",
    "LocalFile",
    "LocalLink",
    "NoProgress",
    "PushPlan",
    "SourceTree",
    "TransferOptions",
    "TransferProgress",
    "names_contents",
    "plan_push",
    "requests_per_host",
]

# Bytes per SFTP read or write request: OpenSSH's largest (its limits@openssh.com
# answer); half as many requests as 128 KiB costs the controller about a fifth less
# CPU per byte. Servers that announce smaller limits get smaller requests (sftp_ops).
DEFAULT_BLOCK_SIZE = 255 * 1024
DEFAULT_REQUESTS = 4  # SFTP requests in flight per host: block size x this = memory per host
# SFTP bytes in flight per process, shared out among the hosts it carries at once
# (requests_per_host). Each byte in flight costs about two in memory (the request,
# then its encrypted packets): at most 32 MB, until the hosts are so many that each
# is down to MIN_REQUESTS (32 of them), then 1 MB for each host past that.
PROCESS_IN_FLIGHT = 16 * 1024 * 1024
MIN_REQUESTS = 2  # one on the wire while the host answers the other: enough on a LAN
# A few hosts: 1 MiB in flight each. Sixteen requests for a lone host took 1.15x
# the time of four on loopback, and no long-round-trip link was at hand to show a gain.
MAX_REQUESTS = 4
# Source blocks a process keeps for its hosts that lag behind the first; a host
# further behind reads its blocks again (from the page cache, usually).
DEFAULT_CACHE_BUDGET = 8 * 1024 * 1024
_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TransferOptions:
    """How a push or pull behaves, from the command line."""

    mkdir: bool = False  # create a missing remote destination directory
    mode: int | None = None  # permissions for every file sent, instead of the source's
    follow_symlinks: bool = False  # -L: send what links point to instead of the links
    verify: bool = True  # check the sha256 of what landed
    block_size: int = DEFAULT_BLOCK_SIZE
    requests: int = DEFAULT_REQUESTS
    files_in_flight: int = 16  # files one host transfers at once (hides round trips)
    cache_budget: int = DEFAULT_CACHE_BUDGET  # bytes of source blocks a process keeps for its hosts
    stall_timeout: float = 60.0  # a host that makes no progress for this long fails
    become: Become | None = None  # --become: the command line's; a host's inventory may differ
    # the operator's umask, for the directories a pull makes where it lands (the agent and
    # the workers have their own); None: this process's
    umask: int | None = None


def requests_per_host(hosts: int, block_size: int = DEFAULT_BLOCK_SIZE) -> int:
    """SFTP requests in flight for each of ``hosts`` carried at once by one process.

    Up to 16 hosts get ``MAX_REQUESTS`` each; more share ``PROCESS_IN_FLIGHT``,
    each keeping at least ``MIN_REQUESTS`` going.
    """
    share = PROCESS_IN_FLIGHT // (max(1, block_size) * max(1, hosts))
    return max(MIN_REQUESTS, min(MAX_REQUESTS, share))


class TransferProgress(Protocol):
    """Where push and pull report bytes as they move (the progress bar, or nothing)."""

    def expect(self, host: str, nbytes: int) -> None:
        """``nbytes`` more are due to or from ``host``."""

    def advance(self, host: str, nbytes: int) -> None:
        """``nbytes`` moved (or were found already in place and skipped)."""


class NoProgress:
    """Progress that goes nowhere: for tests, --json and pipes."""

    def expect(self, host: str, nbytes: int) -> None:
        pass

    def advance(self, host: str, nbytes: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A regular file to send: where it is, where it goes under its source, and its hash."""

    path: Path
    relative: PurePosixPath  # below the source's landing point; "." for a lone file
    size: int
    mode: int  # permission bits only
    mtime: float
    sha256: str


@dataclass(frozen=True, slots=True)
class LocalLink:
    """A symbolic link to recreate as a link (the default; -L follows links instead)."""

    relative: PurePosixPath
    target: str

    @property
    def sha256(self) -> str:
        """The hash the operation log keeps for a link: that of its target text."""
        return hashlib.sha256(os.fsencode(self.target)).hexdigest()


@dataclass(frozen=True, slots=True)
class LocalDir:
    """A directory inside a source tree (the tree's own top is ``relative == "."``)."""

    relative: PurePosixPath
    mode: int
    mtime: float


@dataclass(frozen=True, slots=True)
class SourceTree:
    """One SRC argument: its name on the remote side and everything below it."""

    name: str  # the basename it lands under in a destination directory
    is_dir: bool
    contents: bool = False  # SRC ended in "/" (or is "."): its contents land in DEST itself
    dirs: tuple[LocalDir, ...] = ()  # parents before children
    files: tuple[LocalFile, ...] = ()
    links: tuple[LocalLink, ...] = ()


@dataclass(frozen=True, slots=True)
class PushPlan:
    """Every source of one push, walked and hashed."""

    sources: tuple[SourceTree, ...] = field(default_factory=tuple)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for s in self.sources for f in s.files)

    @property
    def file_count(self) -> int:
        return sum(len(s.files) + len(s.links) for s in self.sources)


def hash_file(path: Path) -> str:
    """The sha256 of a local file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _file(path: Path, relative: PurePosixPath, info: os.stat_result) -> LocalFile:
    try:
        sha256 = hash_file(path)
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return LocalFile(
        path=path,
        relative=relative,
        size=info.st_size,
        mode=stat.S_IMODE(info.st_mode),
        mtime=info.st_mtime,
        sha256=sha256,
    )


def _stat(path: Path, follow: bool) -> os.stat_result:
    try:
        return path.stat() if follow else path.lstat()
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc


class _Walker:
    """Collects one source tree; remembers directories seen so -L cannot loop forever."""

    def __init__(self, follow: bool) -> None:
        self.follow = follow
        self.dirs: list[LocalDir] = []
        self.files: list[LocalFile] = []
        self.links: list[LocalLink] = []
        self._seen: set[tuple[int, int]] = set()

    def add(self, path: Path, relative: PurePosixPath, info: os.stat_result) -> None:
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(path)  # noqa: PTH115 (the exact text, not a normalised Path)
            self.links.append(LocalLink(relative, target))
        elif stat.S_ISDIR(info.st_mode):
            self._dir(path, relative, info)
        elif stat.S_ISREG(info.st_mode):
            self.files.append(_file(path, relative, info))
        else:
            raise SourceError(f"{path}: not a regular file, directory or link")

    def _dir(self, path: Path, relative: PurePosixPath, info: os.stat_result) -> None:
        key = (info.st_dev, info.st_ino)
        if key in self._seen:
            raise SourceError(f"{path}: a link loop (the directory contains itself)")
        self._seen.add(key)
        self.dirs.append(LocalDir(relative, stat.S_IMODE(info.st_mode), info.st_mtime))
        try:
            names = sorted(child.name for child in path.iterdir())
        except OSError as exc:
            raise SourceError(f"{path}: cannot list: {exc.strerror or exc}") from exc
        for name in names:
            child = path / name
            self.add(child, relative / name, _stat(child, self.follow))
        self._seen.discard(key)


def names_contents(source: str) -> bool:
    """Whether SRC, as typed, means a directory's contents: ``tree/``, ``tree/.``, ``.``, ``..``."""
    return source.endswith("/") or source.rsplit("/", 1)[-1] in (".", "..")


def _landing_paths(tree: SourceTree) -> tuple[list[str], list[str]]:
    """Where ``tree``'s directories and its files and links land, relative to DEST."""
    top = PurePosixPath("" if tree.contents else tree.name)

    def under(relative: PurePosixPath) -> str:
        return str(top / relative)

    dirs = [under(d.relative) for d in tree.dirs]
    return dirs, [under(f.relative) for f in tree.files] + [under(k.relative) for k in tree.links]


def _check_overlaps(trees: list[SourceTree], given: list[str]) -> None:
    """Refuse two sources that would put two things under one remote name."""
    kinds: dict[str, bool] = {}  # landing path -> is a directory
    for tree, source in zip(trees, given, strict=True):
        dirs, others = _landing_paths(tree)
        for path, is_dir in [(d, True) for d in dirs] + [(o, False) for o in others]:
            if path in kinds and not (is_dir and kinds[path]):
                raise SourceError(f"{source}: two sources would land under the same name {path!r}")
            kinds[path] = is_dir


def plan_push(sources: Sequence[str | Path], *, follow_symlinks: bool = False) -> PushPlan:
    """Walk and hash every source; raise ``SourceError`` (exit 2) on the first bad one.

    A source given as text ending in ``/`` (or naming ``.``) sends its contents.
    """
    if not sources:
        raise SourceError("nothing to send: give at least one SRC")
    trees: list[SourceTree] = []
    for given in sources:
        source = Path(given)
        contents = isinstance(given, str) and names_contents(given)
        # rsync follows a link named with a trailing slash: the directory it points to
        info = _stat(source, follow_symlinks or contents)
        if contents and not stat.S_ISDIR(info.st_mode):
            raise SourceError(f"{given}: not a directory (a trailing / sends its contents)")
        name = source.resolve().name if source.name in ("", ".", "..") else source.name
        walker = _Walker(follow_symlinks)
        walker.add(source, PurePosixPath("."), info)
        trees.append(
            SourceTree(
                name=name,
                is_dir=stat.S_ISDIR(info.st_mode),
                contents=contents,
                dirs=tuple(walker.dirs),
                files=tuple(walker.files),
                links=tuple(walker.links),
            )
        )
    _check_overlaps(trees, [str(s) for s in sources])
    return PushPlan(tuple(trees))
