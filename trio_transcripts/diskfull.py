"""A full disk is an outage of the store on it, not a fatal error.

Every file the worker writes (the file sink, the spool's records and markers, the dead
letters, the state directory's journal and gap queue) is written through :meth:`Disk.write`:
the write runs in a thread and, when it fails, leaves the file as it was (each caller cuts
off its partial record: no reader finds half a line). While it fails with ``ENOSPC`` or
``EDQUOT`` the caller waits, with full-jitter backoff (``retrying.py``), and tries again: the
writer stops taking batches, the ring fills and its backpressure reaches the socket, as with
a slow database. One line per interval names the file and the free space; :meth:`Disk.refused`
says which files wait now (the snapshot carries it to ``/readyz`` and the metrics). Any other
``OSError`` is the caller's, as before (a read-only directory is not an outage: it says what
to change).

A wait is cancellable (the write did not happen, so nothing is lost by it); the shutdown
bounds the last writes with ``deadline``, and what they could not write is reported as not
kept (``worker.py``, ``errors.DataNotKept``).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import math
import os
import random
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
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


def append_whole(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` and fsync, or leave the file as it was and raise.

    Under an exclusive ``flock``: ``--workers`` children share the output and dead-letter
    files, and a child cutting off its own partial record must not cut what another appended
    meanwhile. A regular file is truncated back to its size before the write; a device (a
    test's ``/dev/full``) cannot be, and has no partial record to cut."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        before = os.lseek(fd, 0, os.SEEK_END)
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


def free_bytes(path: Path) -> int | None:
    """Free bytes on the filesystem holding ``path`` (its nearest existing parent)."""
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


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
                detail = exc.strerror or str(exc)
                if path not in self._refused:
                    self._refused[path] = Refusal(
                        path, trio.current_time(), detail, free_bytes(path)
                    )
                return Decision(Action.RETRY, detail), []

        def say(decision: Decision, retry: int, delay_s: float) -> None:
            self.waits += 1
            now = trio.current_time()
            if now - self._said_at.get(path, -math.inf) < self.say_every_s:
                return
            self._said_at[path] = now
            refusal = self._refused[path]
            log.error(
                "disk full: cannot write %s (%s; %s free); waiting for space (%d tries "
                "in %.0f s, the next in %.1f s); what is for it waits in memory, and holds "
                "what comes behind it",
                path,
                decision.detail,
                "unknown" if (free := free_bytes(path)) is None else f"{free} bytes",
                retry,
                now - refusal.since,
                delay_s,
            )

        try:
            _, value = await retrying(
                attempt,
                Tries(self.backoff, self.rng),
                say=say,
                fail=lambda decision: DiskFull(path, decision.detail),
                deadline=deadline,
            )
        finally:
            refusal = self._refused.pop(path, None)
            self._said_at.pop(path, None)
        if refusal is not None:
            log.warning(
                "disk has room again: %s written after %.1f s",
                path,
                trio.current_time() - refusal.since,
            )
        return value[0]
