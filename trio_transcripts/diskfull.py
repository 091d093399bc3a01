"""A full disk is an outage of the store on it, not a fatal error.

The file sink, the spool's records and markers and the dead letters are written through
:meth:`Disk.write`: the write runs in a thread and, when it fails, leaves the file as it was
(:func:`append_whole` reserves the space first, so a full disk refuses before a byte is
visible, and cuts back whatever a write left where it cannot reserve: no reader finds half a
line). The state directory's journal and gap queue are written on their own cadence, every
flush (``completeness.py``), and tell the same :class:`Disk` of a refusal and of the room
coming back (:meth:`Disk.note_refused`, :meth:`Disk.note_written`). While it fails with
``ENOSPC`` or ``EDQUOT`` the caller waits, with full-jitter backoff (``retrying.py``), and
tries again: the writer stops taking batches, the ring fills and its backpressure reaches
the socket, as with a slow database. One line per interval names the file and the free
space; :meth:`Disk.refused` says which files wait now (the snapshot carries it to
``/readyz`` and the metrics). Any other ``OSError`` is the caller's, as before (a read-only
directory is not an outage: it says what to change).

A wait is cancellable (the write did not happen, so nothing is lost by it); the shutdown
bounds the last writes with ``deadline``, and what they could not write is reported as not
kept (``worker.py``, ``errors.DataNotKept``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import logging
import math
import os
import random
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import trio

from .retry import Action, Backoff, Decision
from .retrying import Tries, retrying

log = logging.getLogger("trio_transcripts.disk")

T = TypeVar("T")

FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# Space comes back when an operator frees it: waits grow to 10 s, not the network's 30 s,
# so the worker notices within seconds.
BACKOFF = Backoff(base_s=0.25, cap_s=10.0)
SAY_EVERY_S = 10.0


def is_full(exc: OSError) -> bool:
    """The disk (or the user's quota) has no room: an outage that ends when space is freed."""
    return exc.errno in FULL


_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_FALLOC_FL_KEEP_SIZE = 1  # linux/falloc.h: allocate the blocks, leave the size as it is


def _reserve(fd: int, offset: int, length: int) -> None:
    """Allocate ``length`` bytes at ``offset`` without changing the file's size, so the write
    that follows cannot run out of space part-way (``fallocate(2)``); a full disk raises
    here, before anything is visible. Where the filesystem cannot (``EOPNOTSUPP``: some
    network filesystems), nothing is reserved and :func:`append_whole` cuts back instead."""
    fallocate = getattr(_libc, "fallocate", None)
    if fallocate is None or not stat.S_ISREG(os.fstat(fd).st_mode):
        return
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    if fallocate(fd, _FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code))


def append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` and fsync, or leave the file as it was and raise.

    Under an exclusive ``flock``: ``--workers`` children share the output and dead-letter
    files, and a child cutting off its own partial record must not cut what another appended
    meanwhile. The space is reserved first (:func:`_reserve`), so a full disk refuses the
    write before any of it is in the file, where a reader (``tail -f``, ``show``) would see
    half a line; where it cannot be reserved, a regular file is truncated back to its size
    before the write. A device (a test's ``/dev/full``) has no partial record to cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        before = os.lseek(fd, 0, os.SEEK_END)
        _reserve(fd, before, len(data))
        try:
            remaining = memoryview(data)
            while remaining:  # a write may be short (the disk filling part-way)
                remaining = remaining[os.write(fd, remaining) :]
            os.fsync(fd)
        except OSError:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.ftruncate(fd, before)  # no half record for a reader, or for the retry
            raise
    finally:
        os.close(fd)  # and the lock with it


def cut_torn_tail(path: Path) -> int:
    """Cut a last line that has no newline from a file of lines (made if missing), and say
    how many bytes went: what a crash left between a write and its roll-back, never
    acknowledged, which the next append would otherwise run into. Under the appends' lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return 0
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = end = os.lseek(fd, 0, os.SEEK_END)
        keep = 0
        while end > 0:
            start = max(0, end - (1 << 16))
            at = os.pread(fd, end - start, start).rfind(b"\n")
            if at >= 0:
                keep = start + at + 1
                break
            end = start
        if keep < size:
            os.ftruncate(fd, keep)
            os.fsync(fd)
        return size - keep
    finally:
        os.close(fd)


def free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem holding ``path`` (its nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


@dataclass(frozen=True)
class Unwritten:
    """What a writer could not write by its last chance at shutdown, by kind, and whether a
    full disk was why (the run exits 74, ``errors.DataNotKept``) rather than an error that
    waiting cannot fix (exit 1)."""

    counts: Mapping[str, int] = field(default_factory=dict)
    disk_full: bool = False
    where: tuple[str, ...] = ()  # the files that refused them, in words

    def __or__(self, other: Unwritten) -> Unwritten:
        counts = dict(self.counts)
        for kind, n in other.counts.items():
            counts[kind] = counts.get(kind, 0) + n
        return Unwritten(counts, self.disk_full or other.disk_full, self.where + other.where)


class DiskFull(Exception):
    """A write still refused for a full disk when its deadline came."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"cannot write {path}: {detail}")
        self.path = path


@dataclass(frozen=True, slots=True)
class Refusal:
    """A file the disk refuses now: since when (Trio clock), why, and the room left then."""

    path: Path
    since: float
    detail: str
    free_bytes: int | None

    def describe(self) -> str:
        free = "unknown" if self.free_bytes is None else f"{self.free_bytes} bytes"
        return f"{self.path}: {self.detail} ({free} free)"


class Disk:
    """The files a worker writes, and which of them a full disk refuses. One per worker,
    passed to each part that writes (``assemble.py``)."""

    def __init__(
        self,
        *,
        backoff: Backoff = BACKOFF,
        say_every_s: float = SAY_EVERY_S,
        rng: random.Random | None = None,
    ) -> None:
        self.backoff = backoff
        self.say_every_s = say_every_s
        self.rng = rng or random.Random()
        self.waits = 0  # retries after a refusal, all files (a metric)
        self._refused: dict[Path, Refusal] = {}
        self._said_at: dict[Path, float] = {}

    def refused(self) -> tuple[Refusal, ...]:
        return tuple(self._refused.values())

    def note_refused(self, path: Path, exc: OSError, meanwhile: str) -> None:
        """A writer that does not wait here (``completeness.py`` tries again every flush,
        the spool hands its batch to the store) was refused ``path`` for a full disk:
        recorded and said as :meth:`write` does, with what it does ``meanwhile``."""
        self._refuse(path, exc)
        self._say(path, exc.strerror or str(exc), meanwhile)

    def note_written(self, path: Path) -> None:
        """That writer's ``path`` took its write: no longer refused."""
        self._recovered(path)

    def _refuse(self, path: Path, exc: OSError) -> None:
        self.waits += 1
        if path not in self._refused:
            detail = exc.strerror or str(exc)
            self._refused[path] = Refusal(path, trio.current_time(), detail, free_bytes(path))

    def _say(self, path: Path, detail: str, meanwhile: str) -> None:
        now = trio.current_time()
        if now - self._said_at.get(path, -math.inf) < self.say_every_s:
            return
        self._said_at[path] = now
        refusal = self._refused[path]
        log.error(
            "disk full: cannot write %s (%s; %s free, for %.0f s so far); %s",
            path,
            detail,
            "unknown" if (free := free_bytes(path)) is None else f"{free} bytes",
            now - refusal.since,
            meanwhile,
        )

    def _recovered(self, path: Path) -> None:
        refusal = self._refused.pop(path, None)
        self._said_at.pop(path, None)
        if refusal is not None:
            log.warning(
                "disk has room again: %s written after %.1f s",
                path,
                trio.current_time() - refusal.since,
            )

    async def write(self, path: Path, op: Callable[[], T], *, deadline: float = math.inf) -> T:
        """Run ``op`` (which writes ``path``, and undoes a partial write when it raises) in a
        thread, again while the disk is full; raise :class:`DiskFull` when a wait would end
        after ``deadline`` (the Trio clock)."""

        async def attempt() -> tuple[Decision, list[T]]:
            try:
                return Decision(Action.DONE, ""), [await trio.to_thread.run_sync(op)]
            except OSError as exc:
                if not is_full(exc):
                    raise
                self._refuse(path, exc)
                return Decision(Action.RETRY, exc.strerror or str(exc)), []

        def say(decision: Decision, _retry: int, delay_s: float) -> None:
            meanwhile = (
                f"waiting for space (the next try in {delay_s:.1f} s): what is for it waits "
                f"in memory, and holds what comes behind it"
            )
            self._say(path, decision.detail, meanwhile)

        try:
            _, value = await retrying(
                attempt,
                Tries(self.backoff, self.rng),
                say=say,
                fail=lambda decision: DiskFull(path, decision.detail),
                deadline=deadline,
            )
        except BaseException:
            self._refused.pop(path, None)  # not waiting any more: not refused now either
            self._said_at.pop(path, None)
            raise
        self._recovered(path)
        return value[0]
