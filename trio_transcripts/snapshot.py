"""What a running worker shows of itself: one frozen :class:`Snapshot`. Pure.

``Worker.snapshot()`` takes it; the status line (:func:`status_line`), ``/metrics`` and
``/readyz`` (``ops.py``), an embedding application and a ``--workers`` supervisor (one JSON
line from each child, :meth:`Snapshot.to_json`) all read it, and none of them reaches into
the worker's parts. Sizes in it are counters kept as things happen (the spool's bytes are
added on append and taken away on removal), so taking a snapshot lists no directory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .account import Account


@dataclass(frozen=True)
class Snapshot:
    at: float  # the Trio clock of the process that took it
    account: Account
    source: str  # "notifications" or "fragments"
    set_aside_by: dict[str, int] = field(default_factory=dict)  # by SetAside value
    reconnects: dict[str, int] = field(default_factory=dict)  # sockets replaced, by why
    token_needed: bool = False
    token_valid: bool = False
    token_renewals: int = 0
    ring_count: int = 0
    ring_capacity: int = 0
    ring_paused: bool = False
    ring_pauses: int = 0  # times the reader was held at the high-water mark
    ring_peak: int = 0
    pending: int = 0  # utterances awaiting their final in the coalescer
    sockets: int = 0  # the sockets the source should hold
    live_sockets: int = 0  # of those, connected and heard from recently
    topics: int = 0
    spool_bytes: int = 0
    since_last_frame_s: float | None = None  # None: no frame read yet
    sink: str = ""  # the sink's description
    sink_ok_age_s: float | None = None  # since it acknowledged a write or a ping; None: not yet
    last_write_s: float = 0.0
    # Post-call backfill: "off" (not configured), "probing" (asking whether the OAuth client
    # may read transcripts), "on", or "refused" (it may not: gaps are recorded only).
    backfill: str = "off"
    stopping: bool = False
    # Files a full disk refuses now, each with the error and the room left
    # (``diskfull.Refusal.describe``); and how many times writes waited for space.
    disk_full: tuple[str, ...] = ()
    disk_full_waits: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        data: dict[str, Any] = json.loads(text)
        return cls(
            account=Account.from_dict(data.pop("account")),
            disk_full=tuple(data.pop("disk_full", ())),
            **data,
        )


def status_line(snapshot: Snapshot, frames_per_s: float) -> str:
    """The worker's periodic status line."""
    s, a = snapshot, snapshot.account
    return (
        f"status: {frames_per_s:,.0f} frames/s, {a.persisted} persisted, "
        f"buffer {s.ring_count}/{s.ring_capacity}{' (paused)' if s.ring_paused else ''}, "
        f"pending {s.pending}, last write {s.last_write_s * 1000:.0f} ms, "
        f"{a.dead_lettered} dead-lettered, {a.spooled} spooled"
        + (f", {a.backfilled} backfilled" if s.backfill != "off" else "")
        + (f", DISK FULL: {'; '.join(s.disk_full)}" if s.disk_full else "")
    )


def readiness(snapshot: Snapshot, ready_sink_s: float) -> dict[str, dict[str, object]]:
    """The checks of ``/readyz``: each ``{"ok": bool, "detail": str}``; ready when all are."""
    s = snapshot
    age = s.sink_ok_age_s
    return {
        "token": {
            "ok": not s.token_needed or s.token_valid,
            "detail": "not needed"
            if not s.token_needed
            else ("valid" if s.token_valid else "none valid"),
        },
        "source": {
            "ok": s.sockets > 0 and s.live_sockets == s.sockets,
            "detail": f"{s.live_sockets} of {s.sockets} sockets connected and heard from",
        },
        "sink": {
            "ok": age is not None and age <= ready_sink_s,
            "detail": f"{s.sink}: last acknowledged {age:.0f} s ago"
            if age is not None
            else f"{s.sink}: not ready yet",
        },
        "disk": {
            "ok": not s.disk_full,
            "detail": "full: " + "; ".join(s.disk_full) if s.disk_full else "every file writable",
        },
        "running": {
            "ok": not s.stopping,
            "detail": "shutting down" if s.stopping else "running",
        },
    }
