"""What the live stream may have missed of each followed conversation. Pure.

The Notifications source *reports* what it saw (:data:`Seen`: a conversation followed, its
topic listening, a message heard, a socket gap closed, a session ended or gone silent); this
module turns those reports into the gaps the backfill must fill (:class:`Gap`, with a
:class:`Why`) and into the journal's records (``journal.py``), so that a restart knows what
was followed and since when it was not listened to. ``completeness.py`` carries it out
(fsyncs, queues the gaps); the rules are all here:

* **A head.** A conversation's first message carries ``sessionStartTimeMs`` (S). If its topic
  began listening (subscribed ``Permitted``, with a live socket: P) later than
  ``S - CLOCK_SLACK_MS`` (the platform's clock may run that far ahead of ours), what was said
  before P may be gone: a gap from ``S - CLOCK_SLACK_MS`` to P. One listening before its
  session began has none: every call is first heard a little after its start, and that alone
  is no gap. (An earlier ``conversationStart`` from analytics needs no extra rule: a
  whole-call or absence gap reaches back to it.)
* **An open gap** (the worker away, a call found on a queue after the fact) lasts from its
  start until the conversation is first heard in this run (its end is P), or until it is
  found ended unheard (then it reaches past now: the rest of the call).
* **A socket gap** (``sources/__init__.py``'s ``Gap``): a drop, or an outage when the
  reconnect was refused at least once.
* **Silence** (``liveness.py``): a conversation heard and then silent past the keepalive
  lost its session: a gap from its last message onwards. One never heard at all in this run
  and silent as long is let go too, its open gap (or, if none, the whole call) recorded;
  the backfill then asks analytics whether and when it ended.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import msgspec

from .gapfill import CLOCK_SLACK_MS

UNHEARD_AFTER_MS = 86_400_000
"""How far past now the gap of a conversation no longer followed reaches: the rest of the
call, were it to go on (a day is longer than any call)."""


class Why(enum.Enum):
    """Why a gap exists (a log word and a metric label: few, fixed values)."""

    HEAD = "head"  # listening began after the session did
    WORKER_AWAY = "worker_away"  # the worker was not running
    DROP = "drop"  # a socket was lost and came back at the first try
    OUTAGE = "outage"  # a socket was lost and reconnecting was refused at least once
    SILENCE = "silence"  # heard, then silent past the keepalive: the session ended unseen
    NEVER_HEARD = "never_heard"  # followed, never heard, let go: the whole call
    QUEUE_ABSENCE = "queue_absence"  # on a followed queue while the worker was away


class Ended(enum.Enum):
    """How a followed conversation stopped being followed."""

    SESSION_ENDED = "session_ended"  # its SESSION_ENDED message
    SILENT = "silent"  # silent past the keepalive (heard or not)
    FOUND_ENDED = "found_ended"  # analytics says it ended (the queue catch-up)
    REMOVED = "removed"  # the caller stopped following it


# --- what the source reports ------------------------------------------------------------


class Followed(msgspec.Struct, frozen=True, gc=False):
    """A conversation is followed (configured, announced on a queue, added at run time)."""

    conversation_id: str
    at_ms: int


class Listening(msgspec.Struct, frozen=True, gc=False):
    """These conversations' topics are subscribed on a channel with a live socket."""

    conversations: tuple[str, ...]
    at_ms: int


class Heard(msgspec.Struct, frozen=True, gc=False):
    """A transcription message of the conversation arrived (any: a keepalive counts)."""

    conversation_id: str
    communication_id: str | None
    session_start_ms: int | None
    at_ms: int


class SocketGap(msgspec.Struct, frozen=True, gc=False):
    """A socket was lost from ``start_ms`` to ``end_ms`` with these conversations on it."""

    conversations: tuple[str, ...]
    start_ms: int
    end_ms: int
    refused: bool  # a reconnect was refused at least once: an outage, not a drop


class Unfollowed(msgspec.Struct, frozen=True, gc=False):
    """The conversation is followed no more; ``silent_ms`` when it went silent."""

    conversation_id: str
    how: Ended
    at_ms: int
    silent_ms: int = 0


Seen = Followed | Listening | Heard | SocketGap | Unfollowed
"""Everything a source reports to the completeness side."""


class Gap(msgspec.Struct, frozen=True, gc=False):
    """A stretch of our clock (epoch ms) when one conversation's messages could not reach us."""

    conversation_id: str
    start_ms: int
    end_ms: int
    why: Why
    communications: tuple[str, ...] = ()


# --- the state ----------------------------------------------------------------------------


@dataclass
class Conversation:
    """What is known of one followed conversation."""

    followed_at: int
    open_since: int | None = None  # a gap open since then (worker away, queue absence)
    open_why: Why | None = None
    heard_before: bool = False  # heard in an earlier run: its head was not missed now
    listening_at: int | None = None  # this run: subscribed with a live socket
    heard: bool = False  # this run
    communications: list[str] = field(default_factory=list)


@dataclass
class Changes:
    """What one report leads to: gaps to queue, journal records to append."""

    gaps: list[Gap] = field(default_factory=list)
    records: list[dict[str, object]] = field(default_factory=list)


class Coverage:
    """The followed conversations and the gap rules (module docstring)."""

    def __init__(self) -> None:
        self.followed: dict[str, Conversation] = {}
        self.settled: dict[str, int] = {}  # followed no more, since (epoch ms)

    def communications(self, conversation_id: str) -> tuple[str, ...]:
        known = self.followed.get(conversation_id)
        return tuple(known.communications) if known is not None else ()

    def carry(
        self,
        conversation_id: str,
        at_ms: int,
        open_since: int | None,
        why: Why | None,
        *,
        heard_before: bool = False,
        communications: Iterable[str] = (),
    ) -> Changes:
        """Follow a conversation with what is known of it: a gap open since ``open_since``
        (carried over from the last run, found on a queue after the fact)."""
        changes = Changes()
        if conversation_id in self.followed:
            return changes
        self.settled.pop(conversation_id, None)
        state = Conversation(at_ms, open_since, why, heard_before, None, False, [])
        self.followed[conversation_id] = state
        changes.records.append(follow_record(conversation_id, state))
        for communication in communications:
            self._know(conversation_id, state, communication, changes)
        return changes

    def see(self, seen: Seen) -> Changes:
        """One report of the source's."""
        changes = Changes()
        if isinstance(seen, Followed):
            return self.carry(seen.conversation_id, seen.at_ms, None, None)
        if isinstance(seen, Listening):
            for conversation_id in seen.conversations:
                state = self.followed.get(conversation_id)
                if state is not None and state.listening_at is None:
                    state.listening_at = seen.at_ms
        elif isinstance(seen, Heard):
            self._heard(seen, changes)
        elif isinstance(seen, SocketGap):
            why = Why.OUTAGE if seen.refused else Why.DROP
            changes.gaps.extend(
                Gap(c, seen.start_ms, seen.end_ms, why, self.communications(c))
                for c in seen.conversations
                if c in self.followed
            )
        else:
            self._unfollowed(seen, changes)
        return changes

    def _heard(self, seen: Heard, changes: Changes) -> None:
        conversation_id = seen.conversation_id
        state = self.followed.get(conversation_id)
        if state is None:  # a late frame of one let go: nothing to record
            return
        if seen.communication_id is not None:
            self._know(conversation_id, state, seen.communication_id, changes)
        if state.heard:
            return
        state.heard = True
        listening = state.listening_at if state.listening_at is not None else seen.at_ms
        starts: list[tuple[int, Why]] = []
        if state.open_since is not None:
            starts.append((state.open_since, state.open_why or Why.WORKER_AWAY))
        session = seen.session_start_ms
        if not state.heard_before and session is not None:
            head = session - CLOCK_SLACK_MS
            if listening > head:
                starts.append((head, Why.HEAD))
        if starts:
            # The earliest start; the open gap's reason where there is one (it says more).
            start, why = min(s for s, _ in starts), starts[0][1]
            if start < listening:
                changes.gaps.append(
                    Gap(conversation_id, start, listening, why, tuple(state.communications))
                )
        state.open_since = state.open_why = None
        if not state.heard_before:
            state.heard_before = True
            changes.records.append({"type": "heard", "conversationId": conversation_id})

    def _unfollowed(self, seen: Unfollowed, changes: Changes) -> None:
        conversation_id = seen.conversation_id
        state = self.followed.pop(conversation_id, None)
        if state is None:
            return
        self.settled[conversation_id] = seen.at_ms
        changes.records.append(
            {"type": "unfollow", "conversationId": conversation_id, "atMs": seen.at_ms}
        )
        if seen.how in (Ended.SESSION_ENDED, Ended.REMOVED):
            return
        end = seen.at_ms + UNHEARD_AFTER_MS
        comms = tuple(state.communications)
        if state.heard:
            start, why = seen.at_ms - seen.silent_ms, Why.SILENCE
        elif state.open_since is not None and state.heard_before:
            start, why = state.open_since, state.open_why or Why.WORKER_AWAY
        elif state.open_since is not None:  # never heard in any run: its head too
            start, why = 0, state.open_why or Why.WORKER_AWAY
        else:
            start, why = 0, Why.NEVER_HEARD  # the whole call: nothing of it was heard
        if state.open_since is not None:
            start = min(start, state.open_since)
        changes.gaps.append(Gap(conversation_id, start, end, why, comms))

    def _know(
        self, conversation_id: str, state: Conversation, communication: str, changes: Changes
    ) -> None:
        if communication in state.communications:
            return
        state.communications.append(communication)
        changes.records.append(
            {"type": "comm", "conversationId": conversation_id, "communicationId": communication}
        )

    def snapshot(self, queues: Iterable[str], alive_ms: int) -> list[dict[str, object]]:
        """The journal's records that say all this state (its compaction)."""
        records: list[dict[str, object]] = [{"type": "alive", "atMs": alive_ms}]
        records += [{"type": "queue", "queueId": q} for q in queues]
        for conversation_id, state in self.followed.items():
            record = follow_record(conversation_id, state)
            if state.heard_before:  # not a ``heard`` record: that would close its open gap
                record["heardBefore"] = True
            records.append(record)
            records += [
                {"type": "comm", "conversationId": conversation_id, "communicationId": m}
                for m in state.communications
            ]
        records += [
            {"type": "unfollow", "conversationId": c, "atMs": at} for c, at in self.settled.items()
        ]
        return records

    def forget_settled_before(self, at_ms: int) -> None:
        """Settled conversations older than ``at_ms`` need not be remembered: no catch-up
        reaches back that far (``absence.py``)."""
        for conversation_id in [c for c, at in self.settled.items() if at < at_ms]:
            del self.settled[conversation_id]


def follow_record(conversation_id: str, state: Conversation) -> dict[str, object]:
    record: dict[str, object] = {
        "type": "follow",
        "conversationId": conversation_id,
        "atMs": state.followed_at,
    }
    if state.open_since is not None:
        record["openSinceMs"] = state.open_since
        record["why"] = (state.open_why or Why.WORKER_AWAY).value
    return record


# --- the journal, read back -------------------------------------------------------------


@dataclass
class Carried:
    """A conversation the last run followed and did not see end."""

    open_since: int | None
    why: Why | None
    heard: bool
    communications: list[str]


@dataclass
class Resumed:
    """What the journal says of the last run (:func:`fold`)."""

    alive_ms: int | None = None  # when the last run was last known to be alive
    followed: dict[str, Carried] = field(default_factory=dict)
    settled: dict[str, int] = field(default_factory=dict)
    queues: list[str] = field(default_factory=list)


def fold(records: Iterable[Mapping[str, object]]) -> Resumed:
    """The journal's records, oldest first, folded into what they say. Records of a kind or
    shape not known are passed over (the caller logged unreadable lines)."""
    out = Resumed()
    for record in records:
        kind, conversation = record.get("type"), record.get("conversationId")
        at = record.get("atMs")
        if kind in ("alive", "start") and isinstance(at, int):
            out.alive_ms = at if out.alive_ms is None else max(out.alive_ms, at)
        elif kind == "queue" and isinstance(record.get("queueId"), str):
            if record["queueId"] not in out.queues:
                out.queues.append(str(record["queueId"]))
        elif not isinstance(conversation, str):
            continue
        elif kind == "follow":
            since = record.get("openSinceMs")
            why = _why(record.get("why"))
            known = out.followed.get(conversation)
            if known is None:
                out.settled.pop(conversation, None)
                out.followed[conversation] = Carried(
                    since if isinstance(since, int) else None,
                    why,
                    record.get("heardBefore") is True,
                    [],
                )
        elif kind == "heard" and conversation in out.followed:
            carried = out.followed[conversation]
            carried.heard = True
            carried.open_since = carried.why = None  # heard: that open gap was closed
        elif kind == "comm" and conversation in out.followed:
            communication = record.get("communicationId")
            comms = out.followed[conversation].communications
            if isinstance(communication, str) and communication not in comms:
                comms.append(communication)
        elif kind == "unfollow" and isinstance(at, int):
            out.followed.pop(conversation, None)
            out.settled[conversation] = at
    return out


def _why(value: object) -> Why | None:
    try:
        return Why(value)
    except ValueError:
        return None
