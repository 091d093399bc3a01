"""``journal.jsonl``: what the worker follows and when it was last alive, append-only.

One JSON record a line (``coverage.py`` makes them and folds them back): ``follow``,
``heard``, ``comm`` (a communication id), ``unfollow``, ``queue``, and ``alive`` (when the
worker last knew itself running). Appends are buffered and written with an ``alive`` record
and one fsync every ``flush_s`` (``completeness.py``), so a change costs one line, whatever
the number of conversations followed; the journal is rewritten whole (compacted) only at
start and when it has grown to several times what it says. Everything appended before an
``alive`` record is on disk with it: a SIGKILL loses at most the last ``flush_s`` of changes,
and what those were (a conversation announced on a queue) the next start's catch-up finds
from before that ``alive`` (``absence.py``).

The writes are synchronous on purpose, as the backfill queue's (``gaprecords.py``): small,
and a start must not read its first frame before its record is on disk.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from .diskfull import append_whole

log = logging.getLogger("trio_transcripts.backfill")

JOURNAL_FILE = "journal.jsonl"
COMPACT_AT_LEAST = 10_000
"""Appended lines after which a compaction is considered (and done when they are also
``COMPACT_RATIO`` times what the last compaction wrote)."""
COMPACT_RATIO = 4


def read_records(path: Path) -> list[dict[str, object]]:
    """Every readable JSON-object line of ``path``, oldest first (none if it is missing). A
    torn line (a crash mid-append) is skipped with a log line: what it held was never
    relied on, as it was not yet fsynced (this journal, the backfill queue)."""
    records: list[dict[str, object]] = []
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, 1):
                try:
                    value = json.loads(line)  # bytes: invalid UTF-8 is a ValueError too
                except ValueError:
                    log.warning("%s:%d: unreadable record skipped", path, number)
                    continue
                if isinstance(value, dict):
                    records.append(value)
    except FileNotFoundError:
        pass
    return records


def _lines(records: Iterable[dict[str, object]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def append_records(path: Path, records: Iterable[dict[str, object]]) -> None:
    """Append ``records`` to ``path`` and fsync, whole or not at all (``diskfull.py``): a
    full disk leaves no torn line to swallow the next record."""
    append_whole(path, _lines(records).encode("utf-8"))


def replace_records(path: Path, records: Iterable[dict[str, object]]) -> None:
    """Replace ``path`` with ``records``, atomically and durably (the rename too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = path.with_suffix(".tmp")
    try:
        with open(fresh, "w", encoding="utf-8") as f:
            f.write(_lines(records))
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        fresh.unlink(missing_ok=True)  # a full disk: the old file stands, and no stray copy
        raise
    os.replace(fresh, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a power cut
    finally:
        os.close(directory)


class Journal:
    """The journal file in ``state_dir`` (module docstring)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / JOURNAL_FILE
        self._pending: list[dict[str, object]] = []
        self._appended = 0  # lines since the last compaction
        self._compacted = 0  # lines the last compaction wrote

    def read(self) -> list[dict[str, object]]:
        return read_records(self.path)

    def add(self, records: Iterable[dict[str, object]]) -> None:
        """Buffer records for the next :meth:`flush`."""
        self._pending.extend(records)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self, alive_ms: int) -> None:
        """Append what is buffered and an ``alive`` record, then fsync (``OSError`` leaves
        the records buffered for the next try)."""
        records = [*self._pending, {"type": "alive", "atMs": alive_ms}]
        append_records(self.path, records)
        self._pending.clear()
        self._appended += len(records)

    def wants_compaction(self) -> bool:
        return self._appended >= max(COMPACT_AT_LEAST, COMPACT_RATIO * self._compacted)

    def rewrite(self, records: list[dict[str, object]]) -> None:
        """Replace the journal with ``records`` (what it says now), atomically; what is
        buffered is dropped: ``records`` says it."""
        replace_records(self.path, records)
        self._pending.clear()
        self._appended = 0
        self._compacted = len(records)
