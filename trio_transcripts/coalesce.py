"""Fragments -> complete utterances, keyed by (conversationId, utteranceId). Sans-I/O.

Like h11's connection object this holds state and no sockets: callers :meth:`~Coalescer.feed`
fragments with the current wall-clock time and get back what is ready. Time is an argument,
never read here, so tests can drive it freely.

Rules:

* **Append** (fragment stream): text is concatenated in arrival order, exactly as sent;
  confidence is the maximum seen; start is the earliest, end the latest.
* **Revise** (Genesys): each fragment is a whole new hypothesis and replaces text, times and
  confidence; the final one locks it. Confidence is the final hypothesis's own, not the
  maximum: a higher score belonged to text that was since replaced.
* An utterance is emitted exactly once when its final fragment arrives. Its key is then
  remembered (the last ``remember`` keys) and any later fragment for it, typically a final
  re-delivered after a reconnect or a channel rotation, comes back as :class:`Duplicate`
  instead of a second utterance.
* :meth:`~Coalescer.flush` and :meth:`~Coalescer.expire` emit pending utterances as partials
  (``final=False``). Pending state is bounded by ``max_pending``: opening one more utterance
  first flushes the least recently active one as a partial. Nothing is ever dropped.
* An utterance whose fragments carried no times starts at the wall-clock time its first
  fragment arrived; ``end`` is never before ``start``.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from .model import UNKNOWN_SPEAKER, Extras, Fragment, Merge, Utterance

DEFAULT_IDLE_TIMEOUT_MS = 60_000
DEFAULT_MAX_PENDING = 10_000
DEFAULT_REMEMBER = 100_000

Key = tuple[str, str]


class Duplicate(msgspec.Struct, frozen=True, gc=False):
    """A fragment for an utterance that was already emitted as final; it was not used."""

    fragment: Fragment
    reason: str


CoalescerEvent = Utterance | Duplicate


@dataclass(frozen=True, slots=True)
class CoalescerStatistics:
    fed: int
    finals: int
    partials: int
    forced_partials: int
    duplicates: int
    pending: int
    peak_pending: int


@dataclass(slots=True)
class _Pending:
    conversation_id: str
    utterance_id: str
    speaker: str
    parts: list[str]
    confidence: float | None
    start_ms: int | None
    end_ms: int | None
    first_seen_ms: int  # epoch ms (the wall clock): a start for a fragment that had none
    last_seen_tick_ms: int  # the monotonic clock: idleness, which a wall-clock step must not move
    fragments: int = 0
    extras: Extras = ()

    def to_utterance(self, *, final: bool) -> Utterance:
        start = self.start_ms if self.start_ms is not None else self.first_seen_ms
        end = start if self.end_ms is None else max(self.end_ms, start)
        return Utterance(
            conversation_id=self.conversation_id,
            utterance_id=self.utterance_id,
            speaker=self.speaker,
            text="".join(self.parts),
            confidence=self.confidence,
            start_ms=start,
            end_ms=end,
            final=final,
            fragments=self.fragments,
            extras=self.extras,
        )


class Coalescer:
    """Turns a stream of fragments into utterances; see the module docstring for the rules."""

    def __init__(
        self,
        merge: Merge,
        *,
        idle_timeout_ms: int = DEFAULT_IDLE_TIMEOUT_MS,
        max_pending: int = DEFAULT_MAX_PENDING,
        remember: int = DEFAULT_REMEMBER,
    ) -> None:
        if max_pending < 1 or remember < 1 or idle_timeout_ms < 0:
            raise ValueError("max_pending and remember must be >= 1, idle_timeout_ms >= 0")
        self.merge = merge
        self.idle_timeout_ms = idle_timeout_ms
        self.max_pending = max_pending
        self.remember = remember
        # Both dicts are kept in least-recently-touched order: re-inserting on each update
        # makes the first entry the one to evict, in O(1).
        self._pending: dict[Key, _Pending] = {}
        self._emitted: dict[Key, None] = {}
        # The same keys by conversation, in the same order, so that a session's end flushes
        # its own utterances without a scan of 20,000 calls' (issue 23).
        self._by_conversation: dict[str, dict[Key, None]] = {}
        self._fed = 0
        self._finals = 0
        self._partials = 0
        self._forced = 0
        self._duplicates = 0
        self._peak = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def pending_conversations(self) -> set[str]:
        return set(self._by_conversation)

    def statistics(self) -> CoalescerStatistics:
        return CoalescerStatistics(
            fed=self._fed,
            finals=self._finals,
            partials=self._partials,
            forced_partials=self._forced,
            duplicates=self._duplicates,
            pending=len(self._pending),
            peak_pending=self._peak,
        )

    def feed(self, fragment: Fragment, now_ms: int, tick_ms: int) -> list[CoalescerEvent]:
        """Take one fragment at epoch ``now_ms`` (``tick_ms`` on the monotonic clock, which
        :meth:`expire` measures idleness on); return what became ready (at most two)."""
        self._fed += 1
        key = (fragment.conversation_id, fragment.utterance_id)
        if key in self._emitted:
            self._duplicates += 1
            kind = "final" if fragment.is_final else "fragment"
            return [Duplicate(fragment, f"{kind} for an utterance already emitted as final")]

        events: list[CoalescerEvent] = []
        state = self._pending.pop(key, None)
        if state is None:
            if len(self._pending) >= self.max_pending:
                oldest = next(iter(self._pending))
                self._forced += 1
                events.append(self._emit(oldest, final=False))
            state = _Pending(
                conversation_id=fragment.conversation_id,
                utterance_id=fragment.utterance_id,
                speaker=fragment.speaker,
                parts=[],
                confidence=None,
                start_ms=None,
                end_ms=None,
                first_seen_ms=now_ms,
                last_seen_tick_ms=tick_ms,
            )
        self._apply(state, fragment, tick_ms)
        self._pending[key] = state
        of_conversation = self._by_conversation.setdefault(key[0], {})
        of_conversation.pop(key, None)
        of_conversation[key] = None
        self._peak = max(self._peak, len(self._pending))
        if fragment.is_final:
            events.append(self._emit(key, final=True))
        return events

    def _apply(self, state: _Pending, fragment: Fragment, tick_ms: int) -> None:
        state.fragments += 1
        state.last_seen_tick_ms = tick_ms
        if fragment.speaker != UNKNOWN_SPEAKER:
            state.speaker = fragment.speaker
        extras = fragment.extras
        if extras and extras is not state.extras:
            # Later values win and new keys are appended, as dict.update would have them; the
            # usual case (every fragment of a call shares one tuple) costs one comparison.
            state.extras = (
                extras
                if not state.extras
                else tuple({**dict(state.extras), **dict(extras)}.items())
            )
        if self.merge is Merge.APPEND:
            state.parts.append(fragment.text)
            if fragment.confidence is not None:
                state.confidence = (
                    fragment.confidence
                    if state.confidence is None
                    else max(state.confidence, fragment.confidence)
                )
            if fragment.start_ms is not None:
                state.start_ms = (
                    fragment.start_ms
                    if state.start_ms is None
                    else min(state.start_ms, fragment.start_ms)
                )
            if fragment.end_ms is not None:
                state.end_ms = (
                    fragment.end_ms if state.end_ms is None else max(state.end_ms, fragment.end_ms)
                )
        else:
            state.parts = [fragment.text]
            if fragment.confidence is not None:
                state.confidence = fragment.confidence
            if fragment.start_ms is not None:
                state.start_ms = fragment.start_ms
            if fragment.end_ms is not None:
                state.end_ms = fragment.end_ms

    def _emit(self, key: Key, *, final: bool) -> Utterance:
        state = self._pending.pop(key)
        of_conversation = self._by_conversation[key[0]]
        del of_conversation[key]
        if not of_conversation:
            del self._by_conversation[key[0]]
        if final:
            self._finals += 1
            self._emitted[key] = None
            if len(self._emitted) > self.remember:
                del self._emitted[next(iter(self._emitted))]
        else:
            self._partials += 1
        return state.to_utterance(final=final)

    def flush(self, conversation_id: str | None = None) -> list[Utterance]:
        """Emit every pending utterance (of one conversation, if given) as a partial."""
        if conversation_id is None:
            keys = list(self._pending)
        else:
            keys = list(self._by_conversation.get(conversation_id, ()))
        return [self._emit(key, final=False) for key in keys]

    def expire(self, tick_ms: int) -> list[Utterance]:
        """Emit, as partials, utterances with no fragment for ``idle_timeout_ms``."""
        cutoff = tick_ms - self.idle_timeout_ms
        keys = [k for k, s in self._pending.items() if s.last_seen_tick_ms <= cutoff]
        return [self._emit(key, final=False) for key in keys]
