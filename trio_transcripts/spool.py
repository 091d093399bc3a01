"""The durable spool: batches the sink could not take, kept on disk until it can.

With ``--spool DIR``, a batch the sink has not acknowledged within ``spool_after_s`` is
appended to a spool file and fsynced before it leaves memory, so the ring keeps draining and
the reader keeps reading during a database outage, as long as the disk has room. A replay task
writes the spool back, oldest file first, and removes a file only after the sink acknowledged
every record in it; on the next start, whatever a crash left behind is replayed the same way.
Replays are safe because timestamps are idempotent: a record written twice is one point.

Records: ``b"TTSP"``, payload length and CRC-32 (little-endian u32s), then the payload, a JSON
array of utterances. Beside ``spool-N.log``, ``spool-N.acked`` says how many of its first
records the store has taken (written, fsynced and renamed after each), so a replay cut short
by a crash or a fatal error resumes after them. Reading stops at the first record that is
short (torn by a crash in the middle of a write) or fails its checksum; the records before it
are replayed, the rest of the file is moved to ``<file>.torn`` and reported, never silently
dropped.

When the spool reaches ``max_bytes``, or a write fails (a full disk), the partial record is cut
off again (no corruption) and the batch goes to the sink directly, which blocks while it
retries: backpressure, as without a spool. The replay's own writes (the ``.torn`` tail, the
``.acked`` marker) wait for space on a full disk (``diskfull.py``) instead of ending the run;
a marker not written by the shutdown means its records are replayed again at the next start,
which is harmless (idempotent timestamps) and said in the log.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import msgspec
import trio

from .config import Config
from .dirlock import DirectoryLock
from .diskfull import Disk, DiskFull, append_whole, is_full
from .errors import FatalError
from .model import Utterance
from .sinks import Pingable, Sink, WriteResult

log = logging.getLogger("trio_transcripts.spool")

MAGIC = b"TTSP"
HEADER = struct.Struct("<4sII")
DEFAULT_FILE_BYTES = 8 << 20


def spool_unusable(directory: Path, exc: OSError) -> FatalError:
    """What to say when the spool directory cannot be made, locked or written."""
    return FatalError(
        f"the spool directory {directory} (--spool) cannot be used: {exc}; name a directory "
        f"this user can create and write"
    )


MARKER_GRACE_S = 5.0
"""A replay's marker is written shielded for this long (a stop meanwhile waits for it), then
cancellably while the disk is full: inside systemd's TimeoutStopSec=45 with the drain's 30."""


class SpoolFull(Exception):
    """The spool is at its size limit, or the disk refused a write."""


@dataclass(frozen=True, slots=True)
class SpoolFileContents:
    records: list[list[Utterance]]
    problem: str | None  # a torn or corrupt tail, described; None when the file is whole


def encode_record(utterances: Sequence[Utterance]) -> bytes:
    payload = json.dumps(
        [msgspec.structs.asdict(u) for u in utterances], ensure_ascii=False
    ).encode("utf-8")
    return HEADER.pack(MAGIC, len(payload), zlib.crc32(payload)) + payload


def _utterance(value: dict[str, object]) -> Utterance:
    extras = tuple((str(k), v) for k, v in value.pop("extras", []))  # type: ignore[attr-defined]
    return Utterance(**value, extras=extras)  # type: ignore[arg-type]


def decode_records(data: bytes) -> tuple[list[list[Utterance]], int, str | None]:
    """Records from a file's bytes: (records, bytes of whole records, problem or None)."""
    records: list[list[Utterance]] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < HEADER.size:
            return records, offset, f"torn record header at byte {offset}"
        magic, length, crc = HEADER.unpack_from(data, offset)
        if magic != MAGIC:
            return records, offset, f"no record marker at byte {offset}"
        start = offset + HEADER.size
        payload = data[start : start + length]
        if len(payload) < length:
            return (
                records,
                offset,
                (f"torn record at byte {offset}: {len(payload)} of {length} bytes"),
            )
        if zlib.crc32(payload) != crc:
            return records, offset, f"checksum mismatch in the record at byte {offset}"
        records.append([_utterance(item) for item in json.loads(payload)])
        offset = start + length
    return records, offset, None


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Spool files in one directory. Synchronous; callers run it in a thread."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = Config.spool_max_bytes,
        file_bytes: int = DEFAULT_FILE_BYTES,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.file_bytes = file_bytes
        self._current: Path | None = None
        existing = self.files()
        self._next = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        # Kept as files grow and go (one listing here), so the limit check of each append
        # and the metric read at each scrape list no directory.
        self.bytes = sum(p.stat().st_size for p in existing)

    def files(self) -> list[Path]:
        return sorted(self.directory.glob("spool-*.log"))

    def append(self, utterances: Sequence[Utterance]) -> None:
        """Write one record and fsync it; raise :class:`SpoolFull` (changing nothing)."""
        record = encode_record(utterances)
        if self.bytes + len(record) > self.max_bytes:
            raise SpoolFull(
                f"spool {self.directory} would pass its limit of {self.max_bytes} bytes"
            )
        if self._current is None or self._current.stat().st_size >= self.file_bytes:
            self._current = self.directory / f"spool-{self._next:08d}.log"
            self._next += 1
        path = self._current
        new = not path.exists()
        try:
            append_whole(path, record)  # a full disk leaves no torn record behind
        except OSError as exc:
            raise SpoolFull(f"cannot write to spool {path}: {exc}") from exc
        self.bytes += len(record)
        if new:
            try:
                _fsync_directory(self.directory)
            except OSError as exc:  # the record is in the file: spooled, so not SpoolFull
                log.warning("spool %s: the new file's entry not fsynced: %s", path, exc)

    def seal(self, path: Path) -> None:
        """Stop appending to ``path`` (it is about to be replayed)."""
        if self._current == path:
            self._current = None

    def read(self, path: Path) -> SpoolFileContents:
        """The records of ``path`` not yet acknowledged (see :meth:`acknowledge`); a torn or
        corrupt tail is moved to ``<path>.torn``."""
        data = path.read_bytes()
        records, whole, problem = decode_records(data)
        if problem is not None:
            torn = path.with_suffix(".torn")
            torn.write_bytes(data[whole:])
            with open(path, "r+b") as f:
                f.truncate(whole)
                os.fsync(f.fileno())
            self.bytes -= len(data) - whole
            log.error(
                "spool file %s: %s; %d complete records kept, the %d bytes after them moved to %s",
                path,
                problem,
                len(records),
                len(data) - whole,
                torn,
            )
        return SpoolFileContents(records[self.acknowledged(path) :], problem)

    def acknowledged(self, path: Path) -> int:
        """How many of the first records of ``path`` the store has taken."""
        marker = path.with_suffix(".acked")
        try:
            count = int(marker.read_text(encoding="ascii"))
            if count < 0:
                raise ValueError(f"a negative count, {count}")
            return count
        except FileNotFoundError:
            return 0
        except (ValueError, UnicodeDecodeError):
            # Written whole and renamed (acknowledge), so only a hand or a broken disk
            # makes it unreadable: replay the whole file, which is idempotent.
            log.error("%s is unreadable: replaying every record of %s again", marker, path)
            return 0

    def acknowledge(self, path: Path, records: int) -> None:
        """Note durably that the first ``records`` records of ``path`` were taken, so a crash
        or a fatal error part-way through a file does not count (or replay) them again."""
        marker = path.with_suffix(".acked")
        partial = marker.with_suffix(".acked-new")
        with open(partial, "w", encoding="ascii") as f:
            f.write(str(records))
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, marker)
        _fsync_directory(self.directory)

    def remove(self, path: Path) -> None:
        self.seal(path)
        size = path.stat().st_size
        # The marker first: a crash between the two leaves a file replayed again (harmless),
        # never a marker that a later file of the same number would believe.
        path.with_suffix(".acked").unlink(missing_ok=True)
        path.unlink()
        self.bytes -= size
        _fsync_directory(self.directory)


class SpoolingSink:
    """Wraps a sink: what it does not take in ``spool_after_s`` goes to the spool instead.

    ``write`` reports such a batch as ``spooled``; ``replay(report, emptied)`` must run as a
    task beside the writer: it writes the spool back and calls ``report(result)`` with the
    inner sink's result for each record (before its next checkpoint, so a result is never
    lost to a cancellation), and calls ``emptied()`` when the backlog is gone.
    A write the inner sink did not finish in time reports nothing of it (its points may have
    reached the store; the replay writes them again, which is idempotent), so every
    utterance is reported once: by ``write``, or spooled and then by the replay.
    """

    def __init__(
        self,
        inner: Sink,
        spool: Spool,
        *,
        spool_after_s: float = Config.spool_after_s,
        disk: Disk | None = None,
    ) -> None:
        self.inner = inner
        self.spool = spool
        self.spool_after_s = spool_after_s
        self.disk = disk or Disk()
        self._lock = DirectoryLock(spool.directory, "spool", "--spool")
        self._backlog = trio.Event()
        # Appends, reads and removals run in threads: without this, the replay could read
        # (and set aside as torn) a record the writer is still appending, or remove a file
        # an append is sizing.
        self._files = trio.Lock()

    async def open(self) -> None:
        try:
            self._lock.acquire()  # before anything is read: one worker to a spool
        except OSError as exc:
            raise spool_unusable(self.spool.directory, exc) from exc
        await self.inner.open()
        if await trio.to_thread.run_sync(self.spool.files):
            log.info("spool %s holds batches from before; replaying them", self.spool.directory)
            self._backlog.set()

    async def aclose(self) -> None:
        self._lock.release()
        await self.inner.aclose()

    def describe(self) -> str:
        return f"{self.inner.describe()} (spool {self.spool.directory})"

    async def ping(self) -> bool:
        if isinstance(self.inner, Pingable):
            return await self.inner.ping()
        await trio.lowlevel.checkpoint()
        return True

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        if not self._backlog.is_set():
            with trio.move_on_after(self.spool_after_s):
                return await self.inner.write(utterances)
            log.warning(
                "sink did not take %d utterances within %.1f s; spooling them",
                len(utterances),
                self.spool_after_s,
            )
        try:
            async with self._files:
                await trio.to_thread.run_sync(self.spool.append, list(utterances))
        except SpoolFull as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and is_full(cause):  # for readiness and metrics
                meanwhile = "batches go to the store directly (backpressure) until it has room"
                self.disk.note_refused(self.spool.directory, cause, meanwhile)
            log.error("%s; writing to the sink directly (backpressure)", exc)
            return await self.inner.write(utterances)
        self.disk.note_written(self.spool.directory)
        self._backlog.set()
        return WriteResult(spooled=len(utterances))

    @property
    def bytes(self) -> int:
        """Bytes in the spool's files (a counter, no listing)."""
        return self.spool.bytes

    @property
    def backlog(self) -> bool:
        """Batches wait on disk (or are being replayed)."""
        return self._backlog.is_set()

    async def replay(
        self, report: Callable[[WriteResult], None], emptied: Callable[[], None]
    ) -> None:
        """Forever: when there is a backlog, write it back oldest first, then remove it."""
        while True:
            await self._backlog.wait()
            files = await trio.to_thread.run_sync(self.spool.files)
            if not files:
                self._backlog = trio.Event()
                emptied()
                continue
            path = files[0]
            async with self._files:
                self.spool.seal(path)
                # Moving a torn tail aside writes: a full disk waits here.
                contents = await self.disk.write(path, partial(self.spool.read, path))
            done = await trio.to_thread.run_sync(self.spool.acknowledged, path)
            for record in contents.records:
                result = await self.inner.write(record)  # retries while the sink is down
                done += 1
                report(result)  # before any checkpoint: the store took it, whatever follows
                marker = path.with_suffix(".acked")
                mark = partial(self.spool.acknowledge, path, done)
                try:  # shielded: a shutdown that comes now must not cost the marker
                    with trio.CancelScope(shield=True):
                        grace = trio.current_time() + MARKER_GRACE_S
                        await self.disk.write(marker, mark, deadline=grace)
                except DiskFull:
                    try:  # the disk is full: wait for it, as long as no one stops us
                        await self.disk.write(marker, mark)
                    except trio.Cancelled:
                        log.warning(
                            "%s not brought to %d records before the shutdown (the disk is "
                            "full): the next start writes those records again (idempotent)",
                            marker,
                            done,
                        )
                        raise
            async with self._files:  # an append in its thread lists and sizes the files
                await trio.to_thread.run_sync(self.spool.remove, path)
            log.info(
                "spool file %s replayed (%d records) and removed", path.name, len(contents.records)
            )
