"""The coalescer: exactly once, in order, nothing lost, under any interleaving."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.coalesce import Coalescer, Duplicate
from trio_transcripts.model import Fragment, Merge, Utterance


@dataclass
class Plan:
    """Utterances to send, and an interleaving of their fragments across conversations."""

    utterances: dict[tuple[str, str], list[Fragment]]
    order: list[tuple[str, str]]

    def fragments(self) -> list[Fragment]:
        cursor = dict.fromkeys(self.utterances, 0)
        out = []
        for key in self.order:
            out.append(self.utterances[key][cursor[key]])
            cursor[key] += 1
        return out


@st.composite
def plans(draw: st.DrawFn, max_utterances: int = 8) -> Plan:
    utterances: dict[tuple[str, str], list[Fragment]] = {}
    for _ in range(draw(st.integers(0, max_utterances))):
        key = (draw(st.sampled_from(["c1", "c2", "c3"])), draw(st.sampled_from("uvwxyz")))
        if key in utterances:
            continue
        count = draw(st.integers(1, 5))
        ends_final = draw(st.booleans())
        fragments = []
        for i in range(count):
            start = draw(st.none() | st.integers(0, 10_000))
            length = draw(st.none() | st.integers(0, 500))
            fragments.append(
                Fragment(
                    conversation_id=key[0],
                    utterance_id=key[1],
                    speaker=draw(st.sampled_from(["agent", "customer"])),
                    text=draw(st.text(max_size=6)),
                    confidence=draw(st.none() | st.floats(0, 1)),
                    start_ms=start,
                    end_ms=None if start is None or length is None else start + length,
                    is_final=ends_final and i == count - 1,
                )
            )
        utterances[key] = fragments
    slots = [key for key, frags in utterances.items() for _ in frags]
    return Plan(utterances, draw(st.permutations(slots)))


def run(coalescer: Coalescer, fragments: list[Fragment]) -> tuple[list[Utterance], list[Duplicate]]:
    emitted: list[Utterance] = []
    duplicates: list[Duplicate] = []
    for now, fragment in enumerate(fragments):
        for event in coalescer.feed(fragment, now_ms=1_000_000 + now, tick_ms=1_000_000 + now):
            (emitted if isinstance(event, Utterance) else duplicates).append(event)
    emitted.extend(coalescer.flush())
    return emitted, duplicates


@given(plans(), st.sampled_from(Merge))
def test_every_utterance_exactly_once_final_or_partial(plan: Plan, merge: Merge) -> None:
    coalescer = Coalescer(merge)
    emitted, duplicates = run(coalescer, plan.fragments())
    assert duplicates == []
    assert sorted(u.key for u in emitted) == sorted(plan.utterances)
    assert coalescer.pending == 0
    for u in emitted:
        fragments = plan.utterances[u.key]
        assert u.final == fragments[-1].is_final
        assert u.fragments == len(fragments)
        assert u.start_ms <= u.end_ms
        starts = [f.start_ms for f in fragments if f.start_ms is not None]
        confidences = [f.confidence for f in fragments if f.confidence is not None]
        if merge is Merge.APPEND:
            assert u.text == "".join(f.text for f in fragments)
            assert u.confidence == (max(confidences) if confidences else None)
            if starts:
                assert u.start_ms == min(starts)
        else:
            assert u.text == fragments[-1].text
            assert u.confidence == (confidences[-1] if confidences else None)
            if starts:
                assert u.start_ms == starts[-1]


@given(plans())
def test_finals_come_out_in_the_order_they_completed(plan: Plan) -> None:
    fragments = plan.fragments()
    emitted, _ = run(Coalescer(Merge.APPEND), fragments)
    finals = [u.key for u in emitted if u.final]
    assert finals == [(f.conversation_id, f.utterance_id) for f in fragments if f.is_final]


@given(plans(), st.data())
def test_redelivered_finals_are_recognised_not_emitted_twice(
    plan: Plan, data: st.DataObject
) -> None:
    fragments = plan.fragments()
    finals = [f for f in fragments if f.is_final]
    redeliveries = data.draw(
        st.lists(st.sampled_from(finals), max_size=5) if finals else st.just([])
    )
    emitted, duplicates = run(Coalescer(Merge.REVISE), fragments + redeliveries)
    assert len(duplicates) == len(redeliveries)
    assert sorted(u.key for u in emitted) == sorted(plan.utterances)


@given(plans(max_utterances=12), st.integers(1, 4), st.sampled_from(Merge))
def test_bounded_pending_flushes_oldest_as_partial_and_loses_no_text(
    plan: Plan, bound: int, merge: Merge
) -> None:
    coalescer = Coalescer(merge, max_pending=bound)
    emitted: list[Utterance] = []
    for now, fragment in enumerate(plan.fragments()):
        emitted += [e for e in coalescer.feed(fragment, now, now) if isinstance(e, Utterance)]
        assert coalescer.pending <= bound
    emitted += coalescer.flush()
    if merge is Merge.APPEND:
        for key, fragments in plan.utterances.items():
            pieces = "".join(u.text for u in emitted if u.key == key)
            assert pieces == "".join(f.text for f in fragments)
    assert {u.key for u in emitted} == set(plan.utterances)


@given(plans(max_utterances=12), st.integers(1, 12), st.data())
def test_a_conversations_flush_is_its_pending_utterances_least_recently_touched_first(
    plan: Plan, bound: int, data: st.DataObject
) -> None:
    coalescer = Coalescer(Merge.APPEND, max_pending=bound)
    touched: dict[tuple[str, str], None] = {}  # the model: pending keys, last touched last
    for now, fragment in enumerate(plan.fragments()):
        for event in coalescer.feed(fragment, now, now):
            if isinstance(event, Utterance):
                touched.pop(event.key, None)
        if not fragment.is_final:
            key = (fragment.conversation_id, fragment.utterance_id)
            touched.pop(key, None)
            touched[key] = None
    assert coalescer.pending_conversations() == {c for c, _ in touched}
    conversation = data.draw(st.sampled_from(["c1", "c2", "c3"]))
    flushed = coalescer.flush(conversation)
    assert [u.key for u in flushed] == [k for k in touched if k[0] == conversation]
    assert not any(u.final for u in flushed)
    assert conversation not in coalescer.pending_conversations()
    assert [u.key for u in coalescer.flush()] == [k for k in touched if k[0] != conversation]
    assert coalescer.pending_conversations() == set()


@given(st.text(max_size=30), st.lists(st.integers(0, 30), max_size=6))
def test_append_text_does_not_depend_on_how_it_was_split(text: str, cuts: list[int]) -> None:
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)] or [""]
    coalescer = Coalescer(Merge.APPEND)
    events = []
    for i, piece in enumerate(pieces):
        events += coalescer.feed(
            Fragment("c", "u", "agent", piece, None, 5, 9, i == len(pieces) - 1), 0, 0
        )
    (utterance,) = events
    assert isinstance(utterance, Utterance)
    assert utterance.text == text


def fragment(
    utterance: str, text: str, *, final: bool = False, conversation: str = "c"
) -> Fragment:
    return Fragment(conversation, utterance, "agent", text, 0.5, None, None, final)


def test_expire_flushes_only_idle_utterances() -> None:
    coalescer = Coalescer(Merge.APPEND, idle_timeout_ms=60_000)
    coalescer.feed(fragment("old", "a"), now_ms=0, tick_ms=0)
    coalescer.feed(fragment("new", "b"), now_ms=50_000, tick_ms=50_000)
    assert coalescer.expire(tick_ms=59_999) == []
    (partial,) = coalescer.expire(tick_ms=60_000)
    assert (partial.utterance_id, partial.final, partial.text) == ("old", False, "a")
    assert partial.start_ms == 0, "no times given: starts when its first fragment arrived"
    assert coalescer.pending == 1


def test_flush_one_conversation_at_session_end() -> None:
    coalescer = Coalescer(Merge.REVISE)
    coalescer.feed(fragment("u1", "x", conversation="a"), 0, 0)
    coalescer.feed(fragment("u2", "y", conversation="b"), 0, 0)
    assert [u.conversation_id for u in coalescer.flush("a")] == ["a"]
    assert coalescer.pending_conversations() == {"b"}


def test_late_fragment_after_final_is_a_duplicate_with_a_reason() -> None:
    coalescer = Coalescer(Merge.APPEND)
    coalescer.feed(fragment("u", "done", final=True), 0, 0)
    (event,) = coalescer.feed(fragment("u", "late"), 1, 1)
    assert isinstance(event, Duplicate)
    assert "already emitted" in event.reason
    assert event.fragment.text == "late"
    assert coalescer.statistics().duplicates == 1


def test_remember_window_is_bounded() -> None:
    coalescer = Coalescer(Merge.APPEND, remember=2)
    for u in "abc":
        coalescer.feed(fragment(u, u, final=True), 0, 0)
    (again,) = coalescer.feed(fragment("a", "a", final=True), 0, 0)
    assert isinstance(again, Utterance), "beyond the window a key is forgotten, by design"


def test_end_is_never_before_start() -> None:
    coalescer = Coalescer(Merge.REVISE)
    (u,) = coalescer.feed(
        msgspec.structs.replace(fragment("u", "t", final=True), start_ms=100, end_ms=50), 0, 0
    )
    assert isinstance(u, Utterance)
    assert (u.start_ms, u.end_ms) == (100, 100)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_pending"):
        Coalescer(Merge.APPEND, max_pending=0)


def test_idleness_is_on_the_monotonic_tick_and_a_missing_start_on_the_wall_clock() -> None:
    # NTP steps the wall clock: an hour forward must not flush every pending utterance at
    # once, nor an hour back hold them for an hour; the start given is the wall clock's.
    coalescer = Coalescer(Merge.APPEND, idle_timeout_ms=60_000)
    coalescer.feed(fragment("u", "a"), now_ms=1_773_957_874_000, tick_ms=0)
    coalescer.feed(fragment("u", "b"), now_ms=1_773_957_874_000 + 3_600_000, tick_ms=1_000)
    assert coalescer.expire(tick_ms=60_999) == []
    (partial,) = coalescer.expire(tick_ms=61_000)
    assert (partial.text, partial.start_ms) == ("ab", 1_773_957_874_000)
