"""The dead-letter file: what could not be persisted, and why. JSON Lines, fsynced.

Every record says when, what kind of thing (an ``utterance`` the store rejected or could not
take before shutdown, a ``frame`` that could not be parsed, a ``fragment`` that arrived after
its utterance was final), the reason in words, and the thing itself, complete: a dead letter
is somewhere data went, not a place it vanished. Writes are synchronous on purpose: the last
ones happen during shutdown, when nothing else may be scheduled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..lineproto import Schema, encode
from ..model import Fragment, Utterance
from ..wire.instants import iso_of

MAX_FRAME_CHARS = 1 << 20


class DeadLetter:
    """Appends records to ``path``; counts them by kind."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()  # writes may come from worker threads (to_thread)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _append(self, kind: str, reason: str, payload: dict[str, Any]) -> None:
        record = {
            "time": iso_of(int(time.time() * 1000)),
            "kind": kind,
            "reason": reason,
            **payload,
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def utterance(self, utterance: Utterance, reason: str, schema: Schema = Schema()) -> None:
        self._append(
            "utterance",
            reason,
            {"utterance": dataclasses.asdict(utterance), "line": encode(utterance, schema)},
        )

    def utterances(self, utterances: list[Utterance], reason: str) -> None:
        for u in utterances:
            self.utterance(u, reason)

    def frame(self, frame: str | bytes, reason: str, source: str) -> None:
        if isinstance(frame, bytes):
            frame = frame.decode("utf-8", "backslashreplace")
        payload = {"source": source, "size": len(frame), "frame": frame[:MAX_FRAME_CHARS]}
        self._append("frame", reason, payload)

    def fragment(self, fragment: Fragment, reason: str) -> None:
        self._append("fragment", reason, {"fragment": dataclasses.asdict(fragment)})


def read_dead_letters(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a dead-letter file (for tests and for the account at exit)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
