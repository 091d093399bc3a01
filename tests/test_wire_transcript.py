"""Post-call transcripts and analytics details (``wire/transcript.py``, ``wire/analytics.py``),
and the simulator's post-call answers against the SDK's models."""

from __future__ import annotations

import json

import httpx
import trio
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.model import Malformed
from trio_transcripts.testing.simulator import Faults, SimConfig, Simulator
from trio_transcripts.testing.simulator.calls import make_calls
from trio_transcripts.testing.simulator.postcall import transcript_document
from trio_transcripts.wire.analytics import DetailsPage, details_query, parse_details
from trio_transcripts.wire.transcript import (
    PostCallTranscript,
    parse_transcript,
    parse_transcript_urls,
)

from .test_simulator_api import token
from .test_simulator_models import problems

(CALL,) = make_calls(1, 5, seed=3, epoch_ms=1_773_957_873_000)


def test_the_simulators_document_gives_every_utterance_as_a_phrase() -> None:
    document = json.dumps(transcript_document(CALL))
    parsed = parse_transcript(document, CALL.conversation_id, CALL.communication_id)
    assert isinstance(parsed, PostCallTranscript) and parsed.problems == ()
    assert [(p.speaker, p.text, p.start_ms, p.end_ms, p.confidence) for p in parsed.phrases] == [
        (
            u.speaker,
            u.text,
            CALL.session_start_ms + u.offset_ms,
            CALL.session_start_ms + u.offset_ms + u.duration_ms,
            u.confidence,
        )
        for u in CALL.utterances
    ]


def test_a_phrase_that_cannot_be_placed_is_a_problem_not_a_silence() -> None:
    body = {
        "conversationId": "c",
        "transcripts": [
            {
                "phrases": [
                    {"text": "kept", "startTimeMs": 10, "duration": 250, "participantPurpose": "X"},
                    {"text": "no time"},
                    {"startTimeMs": 5, "text": ""},
                    "not an object",
                ]
            },
            {"phrases": "nope"},
        ],
    }
    parsed = parse_transcript(json.dumps(body), "c", "m")
    assert isinstance(parsed, PostCallTranscript)
    (kept,) = parsed.phrases
    assert (kept.text, kept.duration_ms, kept.speaker, kept.index) == ("kept", 250, "unknown", 0)
    assert len(parsed.problems) == 4
    assert any("startTimeMs" in p for p in parsed.problems)


def test_a_document_of_another_conversation_is_refused() -> None:
    parsed = parse_transcript(json.dumps({"conversationId": "other"}), "c", "m")
    assert isinstance(parsed, Malformed) and "other" in parsed.reason


def test_transcript_urls_in_both_shapes() -> None:
    assert parse_transcript_urls(b'{"url": "https://s3/x"}') == ["https://s3/x"]
    listing = {"communicationId": "m", "urls": [{"url": "a"}, {"url": "b", "recording": {}}]}
    assert parse_transcript_urls(json.dumps(listing)) == ["a", "b"]
    assert isinstance(parse_transcript_urls(b'{"urls": [{}]}'), Malformed)
    assert isinstance(parse_transcript_urls(b"<xml/>"), Malformed)


def test_details_name_the_customers_voice_sessions() -> None:
    conversation = {
        "conversationId": "c",
        "conversationStart": "2026-03-19T22:04:48.128Z",
        "participants": [
            {"purpose": "customer", "sessions": [{"sessionId": "m1", "mediaType": "voice"}]},
            {"purpose": "agent", "sessions": [{"sessionId": "a1", "mediaType": "voice"}]},
            {"purpose": "external", "sessions": [{"sessionId": "m2", "mediaType": "chat"}]},
        ],
    }
    page = parse_details(json.dumps({"conversations": [conversation], "totalHits": 7}))
    assert isinstance(page, DetailsPage) and page.total_hits == 7
    (call,) = page.calls
    assert call.communications == ("m1",) and call.start_ms == 1773957888128
    assert call.end_ms is None
    single = parse_details(json.dumps(conversation))
    assert isinstance(single, DetailsPage) and single.calls == page.calls
    assert isinstance(parse_details(b'{"conversations": [{}]}'), Malformed)


def test_the_details_query_asks_for_one_queue_in_a_window() -> None:
    body = details_query("2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", "q1", 2, 50)
    assert body["paging"] == {"pageSize": 50, "pageNumber": 2}
    assert body["segmentFilters"] == [
        {
            "type": "and",
            "predicates": [{"type": "dimension", "dimension": "queueId", "value": "q1"}],
        }
    ]
    assert "segmentFilters" not in details_query("a/b", None, 1)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "conversationId",
        "transcripts",
        "phrases",
        "text",
        "startTimeMs",
        "duration",
        "url",
        "urls",
        "conversations",
        "participants",
        "sessions",
        "sessionId",
        "purpose",
        "mediaType",
    ]
)
shaped = st.recursive(
    json_values,
    lambda inner: st.dictionaries(keys, inner, max_size=5) | st.lists(inner, max_size=3),
    max_leaves=30,
)


@given(shaped)
def test_the_parsers_never_raise(value: object) -> None:
    text = json.dumps(value)
    parse_transcript(text, "c", "m")
    parse_transcript_urls(text)
    parse_details(text)


@given(st.binary(max_size=64))
def test_the_parsers_never_raise_on_bytes(data: bytes) -> None:
    parse_transcript(data, "c", "m")
    parse_transcript_urls(data)
    parse_details(data)


# --- the simulator's answers ------------------------------------------------------------


async def test_the_simulators_post_call_answers_are_the_sdks_models() -> None:
    sim = Simulator(SimConfig(calls=2, utterances=3, transcript_delay_s=5, url_ttl_s=600))
    call = sim.calls[0]
    auth = token(sim.api, trio.current_time())
    base = (
        f"/api/v2/speechandtextanalytics/conversations/{call.conversation_id}"
        f"/communications/{call.communication_id}"
    )
    status, _, _ = sim.handle_http("GET", base + "/transcripturls", auth, b"")
    assert status == 404, "not before the call ended"
    sim.api.postcall.ended(call.conversation_id, trio.current_time(), call.session_start_ms + 9_000)
    status, _, _ = sim.handle_http("GET", base + "/transcripturls", auth, b"")
    assert status == 404, "not before the transcript delay"
    sim.api.postcall.ended_at[call.conversation_id] -= 10
    status, body, _ = sim.handle_http("GET", base + "/transcripturls", auth, b"")
    assert status == 200 and problems(json.loads(body), "TranscriptUrls") == []
    status, one, _ = sim.handle_http("GET", base + "/transcripturl", auth, b"")
    assert status == 200 and problems(json.loads(one), "TranscriptUrl") == []
    url = httpx.URL(json.loads(body)["urls"][0]["url"])
    status, document, _ = sim.handle_http("GET", url.path, {}, b"")
    assert status == 200 and parse_transcript(document, call.conversation_id, call.communication_id)
    sim.api.postcall.urls[url.path.rsplit("/", 1)[1]].expires_at = trio.current_time()
    status, expired, _ = sim.handle_http("GET", url.path, {}, b"")
    assert status == 403 and b"Request has expired" in expired
    query = details_query("2000-01-01T00:00:00Z/2100-01-01T00:00:00Z", None, 1, 1)
    status, page, _ = sim.handle_http(
        "POST", "/api/v2/analytics/conversations/details/query", auth, json.dumps(query).encode()
    )
    answer = json.loads(page)
    assert status == 200 and problems(answer, "AnalyticsConversationQueryResponse") == []
    assert answer["totalHits"] == 2 and len(answer["conversations"]) == 1
    parsed = parse_details(page)
    assert isinstance(parsed, DetailsPage)
    assert parsed.calls[0].communications == (call.communication_id,)
    assert parsed.calls[0].end_ms == call.session_start_ms + 9_000


async def test_a_missing_permission_is_a_403_naming_it() -> None:
    sim = Simulator(SimConfig(calls=1, faults=Faults(deny_transcripts=True)))
    auth = token(sim.api, trio.current_time())
    path = "/api/v2/speechandtextanalytics/conversations/x/communications/y/transcripturls"
    status, body, _ = sim.handle_http("GET", path, auth, b"")
    assert status == 403 and b"recording:recording:view" in body


def test_decorated_text_where_asked_for_and_given() -> None:
    phrases = [
        {"text": "twenty five", "decoratedText": "25", "startTimeMs": 1},
        {"text": "no decoration", "startTimeMs": 2},
        {"text": "empty one", "decoratedText": "", "startTimeMs": 3},
    ]
    body = json.dumps({"transcripts": [{"phrases": phrases}]})
    raw = parse_transcript(body, "c", "m")
    decorated = parse_transcript(body, "c", "m", decorated=True)
    assert isinstance(raw, PostCallTranscript) and isinstance(decorated, PostCallTranscript)
    assert [p.text for p in raw.phrases] == ["twenty five", "no decoration", "empty one"]
    assert [p.text for p in decorated.phrases] == ["25", "no decoration", "empty one"]
