"""The per-event rules, as plain calls: no Trio, no sockets, no database."""

from __future__ import annotations

from trio_transcripts.coalesce import Coalescer
from trio_transcripts.model import Fragment, Malformed, Merge, SessionLost
from trio_transcripts.router import Enqueue, Router, SetAsideFragment, SetAsideFrame
from trio_transcripts.sensitive import Screen
from trio_transcripts.wire.genesys import SessionStatus, Transcription

NOW = 1_773_957_874_000


def fragment(uid: str, text: str, final: bool, conversation: str = "c1") -> Fragment:
    return Fragment(conversation, uid, "agent", text, 0.9, NOW, NOW + 500, final)


def transcription(
    *fragments: Fragment, problems: tuple[str, ...] = (), ended: bool = False
) -> Transcription:
    return Transcription(
        conversation_id="c1",
        communication_id="m1",
        session_start_ms=NOW,
        transcription_start_ms=NOW,
        status=SessionStatus.SESSION_ENDED if ended else None,
        event_time=None,
        fragments=fragments,
        problems=problems,
    )


def test_malformed_frame_is_set_aside_with_its_reason() -> None:
    router = Router(Coalescer(Merge.REVISE), Screen())
    assert router.route(Malformed("invalid JSON"), NOW, NOW) == [SetAsideFrame("invalid JSON")]
    assert (router.counts.frames, router.counts.malformed) == (1, 1)


def test_unreadable_transcript_sets_the_frame_aside_and_keeps_the_rest() -> None:
    router = Router(Coalescer(Merge.REVISE), Screen())
    actions = router.route(
        transcription(fragment("u1", "hello", True), problems=("no utteranceId",)), NOW, NOW
    )
    assert actions[0] == SetAsideFrame("no utteranceId")
    (enqueued,) = actions[1:]
    assert isinstance(enqueued, Enqueue) and enqueued.utterance.text == "hello"
    assert (router.counts.transcript_problems, router.counts.finals) == (1, 1)


def test_interim_hypotheses_enqueue_nothing_and_the_final_enqueues_once() -> None:
    router = Router(Coalescer(Merge.REVISE), Screen())
    assert router.route(transcription(fragment("u1", "hel", False)), NOW, NOW) == []
    (action,) = router.route(transcription(fragment("u1", "hello", True)), NOW, NOW)
    assert isinstance(action, Enqueue) and action.utterance.final
    assert router.counts.fragments == 2


def test_a_redelivered_final_is_counted_and_ignored() -> None:
    router = Router(Coalescer(Merge.REVISE), Screen())
    router.route(transcription(fragment("u1", "hello", True)), NOW, NOW)
    assert router.route(transcription(fragment("u1", "hello", True)), NOW, NOW) == []
    assert router.counts.duplicates == 1 and router.counts.finals == 1


def test_text_appended_after_the_final_is_set_aside() -> None:
    router = Router(Coalescer(Merge.APPEND), Screen())
    router.route(fragment("u1", "hello", True), NOW, NOW)
    late = fragment("u1", " again", False)
    (action,) = router.route(late, NOW, NOW)
    assert isinstance(action, SetAsideFragment) and action.fragment == late
    assert router.counts.duplicates == 1


def test_a_revised_hypothesis_after_the_final_is_only_counted() -> None:
    router = Router(Coalescer(Merge.REVISE), Screen())
    router.route(transcription(fragment("u1", "hello", True)), NOW, NOW)
    assert router.route(transcription(fragment("u1", "hello there", False)), NOW, NOW) == []
    assert router.counts.duplicates == 1


def test_session_end_flushes_that_conversation_as_partials() -> None:
    router = Router(Coalescer(Merge.REVISE), Screen())
    router.route(transcription(fragment("u1", "hel", False)), NOW, NOW)
    router.route(fragment("u9", "other call", False, conversation="c2"), NOW, NOW)
    (action,) = router.route(transcription(ended=True), NOW, NOW)
    assert isinstance(action, Enqueue)
    assert action.utterance.utterance_id == "u1" and not action.utterance.final
    assert router.counts.partials == 1 and router.coalescer.pending == 1


def test_a_session_lost_unseen_flushes_that_conversation_and_is_no_frame() -> None:
    router = Router(Coalescer(Merge.REVISE), Screen())
    router.route(transcription(fragment("u1", "hel", False)), NOW, NOW)
    router.route(fragment("u9", "other call", False, conversation="c2"), NOW, NOW)
    (action,) = router.route(SessionLost("c1", silent_ms=400_000), NOW, NOW)
    assert isinstance(action, Enqueue)
    assert action.utterance.utterance_id == "u1" and not action.utterance.final
    assert router.counts.sessions_lost == 1 and router.counts.partials == 1
    assert router.counts.frames == 2 and router.coalescer.pending == 1
    assert router.route(SessionLost("c1", silent_ms=1), NOW, NOW) == []


def test_flush_and_expire_count_partials() -> None:
    router = Router(Coalescer(Merge.APPEND, idle_timeout_ms=1_000), Screen())
    router.route(fragment("u1", "a", False), NOW, NOW)
    router.route(fragment("u2", "b", False), NOW + 5_000, NOW + 5_000)
    (expired,) = router.expire(NOW + 5_500)
    assert expired.utterance.utterance_id == "u1"
    (flushed,) = router.flush()
    assert flushed.utterance.utterance_id == "u2"
    assert router.counts.partials == 2 and router.counts.finals == 0
