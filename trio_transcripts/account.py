"""The account: where every utterance went, added up from results, never inferred. Pure.

:class:`Ledger` is kept by the worker: the router's counts say what entered the ring; each
:class:`~trio_transcripts.sinks.WriteResult` a sink returns (and each the spool's replay
returns) says what the store acknowledged, refused, or left in the spool; the worker adds what
it set aside itself (the batch in flight at the deadline, a fatal error's batch). Nothing is
derived from counters read back afterwards, so ``persisted`` is what the store acknowledged.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .router import RouterCounts
from .sinks import WriteResult
from .sources import Gap


@dataclass(frozen=True)
class Account:
    """Where everything went. ``persisted`` counts only what the sink acknowledged;
    ``spooled - replayed`` is what the spool still holds of this run."""

    frames: int = 0
    malformed: int = 0
    transcript_problems: int = 0
    fragments: int = 0
    duplicates: int = 0
    finals: int = 0
    partials: int = 0
    persisted: int = 0
    backfilled: int = 0
    dead_lettered: int = 0
    spooled: int = 0
    replayed: int = 0
    gaps: int = 0
    gap_ms: int = 0
    sessions_lost: int = 0
    # Gaps queued for backfill, by why (``coverage.py``'s ``Why``: one per conversation).
    gaps_by_reason: dict[str, int] = field(default_factory=dict)
    absences_uncovered: tuple[str, ...] = ()  # a queue's absence no catch-up could look at
    # Records the dead-letter file did not take by the end (its disk still full), by kind
    # (``utterance``, ``frame``, ``fragment``, ``backfill``): kept nowhere. ``dead_lettered``
    # counts only the utterances it took.
    not_kept: dict[str, int] = field(default_factory=dict)
    # What the screen replaced in texts before they were written, by kind (``sensitive.py``:
    # ``card``, ``cvv``, ...; ``number``: a run held as a possible card, let go unfinished).
    redacted: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Account:
        """From ``dataclasses.asdict`` gone through JSON (a list back to a tuple)."""
        fields = {**fields, "absences_uncovered": tuple(fields.get("absences_uncovered", ()))}
        return cls(**fields)

    def summary(self) -> str:
        return (
            f"{self.frames} frames read ({self.malformed} malformed, "
            f"{self.transcript_problems} unreadable transcripts), {self.fragments} "
            f"fragments, {self.duplicates} duplicates ignored; {self.finals} final and "
            f"{self.partials} partial utterances; {self.persisted} persisted"
            + (f" ({self.backfilled} of them backfilled)" if self.backfilled else "")
            + ", "
            f"{self.dead_lettered} dead-lettered, {self.spooled} spooled to disk "
            f"({self.replayed} replayed from it); {self.gaps} gaps ({self.gap_ms} ms)"
            + (
                f"; {self.sessions_lost} sessions ended unseen (silent past the keepalive)"
                if self.sessions_lost
                else ""
            )
            + (
                "; gaps queued for backfill: "
                + ", ".join(f"{n} {why}" for why, n in sorted(self.gaps_by_reason.items()))
                if self.gaps_by_reason
                else ""
            )
            + (
                "; queue absences not looked at (the details query refused): "
                + "; ".join(self.absences_uncovered)
                if self.absences_uncovered
                else ""
            )
            + (
                "; redacted: " + ", ".join(f"{n} {k}" for k, n in sorted(self.redacted.items()))
                if self.redacted
                else ""
            )
            + (f"; NOT KEPT anywhere: {not_kept_words(self.not_kept)}" if self.not_kept else "")
        )


def not_kept_words(not_kept: Mapping[str, int]) -> str:
    """``{"utterance": 3, "frame": 1}`` as ``3 utterance(s), 1 frame(s)``."""
    return ", ".join(f"{n} {kind}(s)" for kind, n in sorted(not_kept.items()))


def total(accounts: Sequence[Account]) -> Account:
    """Several runs' accounts added up (the supervisor's children): counts summed, gaps by
    reason merged, uncovered absences listed."""
    sums: dict[str, object] = {}
    for name in Account.__dataclass_fields__:
        values = [getattr(a, name) for a in accounts]
        if name in ("gaps_by_reason", "not_kept", "redacted"):
            merged: dict[str, int] = {}
            for value in values:
                for why, n in value.items():
                    merged[why] = merged.get(why, 0) + n
            sums[name] = merged
        elif name == "absences_uncovered":
            sums[name] = tuple(span for value in values for span in value)
        else:
            sums[name] = sum(values)
    return Account(**sums)  # type: ignore[arg-type]


class SetAside(enum.Enum):
    """Why utterances went to the dead-letter file (a metric label: few, fixed values)."""

    REJECTED = "rejected"  # the store refused them for good
    SINK_FAILED = "sink_failed"  # a fatal sink error; the batch in hand
    DEADLINE = "shutdown_deadline"  # not taken before the shutdown deadline
    RING_FULL = "ring_full"  # pending at shutdown with no room left in the ring


class Ledger:
    """What became of the utterances that left the ring: results, added up."""

    def __init__(self) -> None:
        self.persisted = 0
        self.backfilled = 0  # of persisted: from post-call transcripts (``backfill.py``)
        self.spooled = 0
        self.replayed = 0  # resolved from the spool: acknowledged or refused
        self.set_aside_by = dict.fromkeys(SetAside, 0)
        self.not_kept: dict[str, int] = {}  # what the dead-letter file did not take at the end

    @property
    def dead_lettered(self) -> int:
        """Utterances set aside that the dead-letter file took (or holds queued)."""
        return sum(self.set_aside_by.values()) - self.not_kept.get("utterance", 0)

    def left_unwritten(self, not_kept: Mapping[str, int]) -> None:
        """What ``DeadLetters.close`` returned: set aside, but written nowhere."""
        self.not_kept = dict(not_kept)

    @staticmethod
    def problem(result: object, batch_size: int) -> str | None:
        """Why ``result`` cannot be a sink's answer for a batch of ``batch_size``, if so."""
        if not isinstance(result, WriteResult):
            return f"returned {result!r} from write(), not a WriteResult"
        if result.total != batch_size:
            return (
                f"accounted for {result.total} of the {batch_size} utterances it was given "
                f"(acknowledged {result.acknowledged}, rejected {len(result.rejected)}, "
                f"spooled {result.spooled})"
            )
        return None

    def written(self, result: WriteResult, *, backfill: bool = False) -> None:
        """A batch's result; its rejections are counted by :meth:`set_aside` as written."""
        self.persisted += result.acknowledged
        if backfill:
            self.backfilled += result.acknowledged
        self.spooled += result.spooled

    def replayed_from_spool(self, result: WriteResult) -> None:
        self.persisted += result.acknowledged
        self.replayed += result.acknowledged + len(result.rejected)

    def set_aside(self, count: int, why: SetAside) -> None:
        self.set_aside_by[why] += count

    def account(
        self,
        counts: RouterCounts,
        gaps: Sequence[Gap],
        queued: Mapping[str, int] | None = None,
        uncovered: Sequence[str] = (),
        redacted: Mapping[str, int] | None = None,
    ) -> Account:
        """The account; ``queued`` and ``uncovered`` are the completeness side's,
        ``redacted`` the screen's."""
        return Account(
            gaps_by_reason=dict(queued or {}),
            redacted=dict(redacted or {}),
            absences_uncovered=tuple(uncovered),
            **asdict(counts),
            persisted=self.persisted,
            backfilled=self.backfilled,
            dead_lettered=self.dead_lettered,
            spooled=self.spooled,
            replayed=self.replayed,
            gaps=len(gaps),
            gap_ms=sum(g.duration_ms for g in gaps),
            not_kept=dict(self.not_kept),
        )
