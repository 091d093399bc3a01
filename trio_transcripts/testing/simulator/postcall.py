"""The simulator's post-call endpoints, sans I/O: transcripts and analytics details.

What the backfill (``trio_transcripts/backfill.py``) reads on the platform, built from the
simulator's own calls, so every utterance of the truth file is in a phrase:

* ``GET /api/v2/speechandtextanalytics/conversations/{c}/communications/{m}/transcripturls``
  answers ``TranscriptUrls`` {``conversation``: {``id``, ``selfUri``}, ``communicationId``,
  ``urls``: [``SegmentUrl`` {``url``, ``recording``}]}; ``.../transcripturl`` answers
  ``TranscriptUrl`` {``url``} (PureCloudPlatformClientV2 269.0.0 models). Before the call has
  ended and ``transcript_delay_s`` passed: 404, as for a transcript not processed yet. With
  the ``deny_transcripts`` fault: 403 ``missing.any.permissions``.
* ``GET /transcripts/{token}``, the pre-signed URL: no token needed, valid ``url_ttl_s``
  (the platform's: 10 minutes), then 403 ``AccessDenied`` "Request has expired" in S3's XML
  (the ``expired_urls`` fault hands out N already expired).
  The document follows developer.genesys.cloud's transcript schema
  (``api/rest/v2/speechtextanalytics/transcript_url``): ``transcripts[].phrases[]`` with
  ``phraseIndex``, ``participantPurpose`` ``internal``/``external``, ``text``,
  ``decoratedText``, ``confidence``, ``startTimeMs`` (epoch ms), ``offset`` and ``duration``
  as ``{"milliseconds": n}``, ``words[]``.
* ``GET /api/v2/analytics/conversations/{c}/details`` and ``POST
  /api/v2/analytics/conversations/details/query`` (``interval``, a ``queueId`` segment
  filter, ``paging``): ``AnalyticsConversationWithoutAttributes``, the customer's voice
  session's ``sessionId`` being the call's communication id, ``conversationEnd`` only once
  the call has ended (the model makes it optional; the query's page says nothing of calls in
  progress, and filtering on ``conversationEnd`` ``exists`` is how users keep only ended
  ones). The query matches as the platform documents it: a conversation that started on a
  UTC day the interval touches (developer.genesys.cloud, "Conversation detail queries") and
  was active in the interval (started before its end, not ended before its start), so a
  call that began before the interval and was still on the queue in it is found. With the
  ``deny_analytics`` fault both answer 403 naming ``analytics:conversationDetail:view``.

Times: ``now`` is the caller's clock (Trio's), as in ``api.py``; a call's end is told by the
dispatcher when its ``SESSION_ENDED`` frame goes out (sent or lost).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .calls import PROGRAM_ID, Call, iso_ms
from .config import SimConfig

Response = tuple[int, bytes, list[tuple[str, str]]]

STA_PREFIX = "/api/v2/speechandtextanalytics/conversations/"
DETAILS_PREFIX = "/api/v2/analytics/conversations/"
DETAILS_QUERY = "/api/v2/analytics/conversations/details/query"
TRANSCRIPT_PREFIX = "/transcripts/"

EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    b"<Message>Request has expired</Message></Error>"
)


@dataclass
class _Url:
    conversation_id: str
    expires_at: float


class PostCallApi:
    def __init__(
        self,
        config: SimConfig,
        calls: list[Call],
        base_url: Callable[[], str],
        json_response: Callable[[int, object], Response],
    ) -> None:
        self.config = config
        self.calls = {c.conversation_id: c for c in calls}
        self.base_url = base_url
        self.json = json_response
        self.ended_at: dict[str, float] = {}  # caller's clock
        self.ended_ms: dict[str, int] = {}  # epoch ms, for analytics
        self.urls: dict[str, _Url] = {}
        self.urls_issued = 0
        self.documents_served = 0
        self.expired_answers = 0

    def ended(self, conversation_id: str, now: float, at_ms: int) -> None:
        """The call's session ended (its ``SESSION_ENDED`` went out, or was lost)."""
        self.ended_at.setdefault(conversation_id, now)
        self.ended_ms.setdefault(conversation_id, at_ms)

    def handles(self, path: str) -> bool:
        return path.startswith((STA_PREFIX, DETAILS_PREFIX))

    def document(self, path: str, now: float) -> Response:
        """``GET /transcripts/{token}``: the pre-signed URL's document."""
        url = self.urls.get(path.removeprefix(TRANSCRIPT_PREFIX))
        if url is None or now >= url.expires_at:
            self.expired_answers += 1
            return 403, EXPIRED, [("Content-Type", "application/xml")]
        self.documents_served += 1
        body = json.dumps(transcript_document(self.calls[url.conversation_id]), ensure_ascii=False)
        return 200, body.encode(), []

    def handle(self, method: str, path: str, body: bytes, now: float) -> Response:
        """An authenticated request under the STA or analytics prefixes."""
        if path.startswith(DETAILS_PREFIX) and self.config.faults.deny_analytics:
            return self._denied("analytics:conversationDetail:view")
        if path == DETAILS_QUERY and method == "POST":
            return self._query(body)
        parts = path.removeprefix(STA_PREFIX).split("/")
        if path.startswith(STA_PREFIX) and len(parts) == 4 and parts[1] == "communications":
            return self._urls(parts[0], parts[2], parts[3], now)
        parts = path.removeprefix(DETAILS_PREFIX).split("/")
        if path.startswith(DETAILS_PREFIX) and len(parts) == 2 and parts[1] == "details":
            call = self.calls.get(parts[0])
            if call is None:
                return self._not_found(f"conversation {parts[0]} not found")
            return self.json(200, self._conversation(call))
        return self._not_found(f"no route {method} {path}")

    def _urls(
        self, conversation_id: str, communication_id: str, which: str, now: float
    ) -> Response:
        if self.config.faults.deny_transcripts:
            return self._denied("recording:recording:view, recording:recordingSegment:view")
        call = self.calls.get(conversation_id)
        ended = self.ended_at.get(conversation_id)
        if call is None or call.communication_id != communication_id:
            return self._not_found(f"no transcript of {conversation_id}/{communication_id}")
        if ended is None or now < ended + self.config.transcript_delay_s:
            return self._not_found(f"the transcript of {conversation_id} is not available yet")
        token = secrets.token_urlsafe(16)
        expired = self.urls_issued < self.config.faults.expired_urls
        self.urls_issued += 1
        self.urls[token] = _Url(conversation_id, now if expired else now + self.config.url_ttl_s)
        url = f"{self.base_url()}{TRANSCRIPT_PREFIX}{token}"
        if which == "transcripturl":
            return self.json(200, {"url": url})
        recording = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, conversation_id))}
        return self.json(
            200,
            {
                "conversation": {
                    "id": conversation_id,
                    "selfUri": f"/api/v2/conversations/{conversation_id}",
                },
                "communicationId": communication_id,
                "urls": [{"url": url, "recording": recording}],
            },
        )

    def _query(self, body: bytes) -> Response:
        try:
            query = json.loads(body)
            start_iso, end_iso = query["interval"].split("/")
            paging = query.get("paging", {})
            size, number = int(paging.get("pageSize", 25)), int(paging.get("pageNumber", 1))
        except (ValueError, TypeError, KeyError, AttributeError):
            return self.json(
                400, {"message": "interval must be start/end (ISO-8601)", "code": "bad.request"}
            )
        queues = [
            p.get("value")
            for f in query.get("segmentFilters", [])
            for p in f.get("predicates", [])
            if p.get("dimension") == "queueId"
        ]
        calls = sorted(self.calls.values(), key=lambda c: c.session_start_ms)
        now_ms = int(time.time() * 1000)
        first_day, last_day = start_iso[:10], end_iso[:10]
        found = [
            c
            for c in calls
            if first_day <= iso_ms(c.session_start_ms)[:10] <= last_day
            and iso_ms(c.session_start_ms) < end_iso
            and iso_ms(self.ended_ms.get(c.conversation_id, max(now_ms, c.session_start_ms)))
            >= start_iso
            and (not queues or self.config.queue_id in queues)
        ]
        page = found[(number - 1) * size : number * size]
        return self.json(
            200,
            {"conversations": [self._conversation(c) for c in page], "totalHits": len(found)},
        )

    def _conversation(self, call: Call) -> dict[str, object]:
        """``AnalyticsConversationWithoutAttributes``: the customer and the agent."""
        agent_session = str(uuid.uuid5(uuid.NAMESPACE_OID, call.communication_id))
        conversation: dict[str, object] = {
            "conversationId": call.conversation_id,
            "conversationStart": iso_ms(call.session_start_ms),
            "originatingDirection": "inbound",
            "participants": [
                {
                    "participantId": str(uuid.uuid5(uuid.NAMESPACE_DNS, call.conversation_id)),
                    "purpose": "customer",
                    "sessions": [
                        {
                            "sessionId": call.communication_id,
                            "mediaType": "voice",
                            "direction": "inbound",
                        }
                    ],
                },
                {
                    "participantId": str(uuid.uuid5(uuid.NAMESPACE_X500, call.conversation_id)),
                    "purpose": "agent",
                    "sessions": [
                        {"sessionId": agent_session, "mediaType": "voice", "direction": "inbound"}
                    ],
                },
            ],
        }
        end = self.ended_ms.get(call.conversation_id)
        if end is not None:
            conversation["conversationEnd"] = iso_ms(end)
        return conversation

    def _denied(self, permissions: str) -> Response:
        return self.json(
            403,
            {
                "message": "Unable to perform the requested action. You are missing the "
                f"following permission(s): [{permissions}]",
                "code": "missing.any.permissions",
                "status": 403,
            },
        )

    def _not_found(self, message: str) -> Response:
        return self.json(404, {"message": message, "code": "not.found", "status": 404})


def transcript_document(call: Call) -> dict[str, object]:
    """The post-call transcript of ``call``: one phrase per utterance, its words."""
    start = call.session_start_ms
    last = call.utterances[-1] if call.utterances else None
    length = last.offset_ms + last.duration_ms if last is not None else 0
    phrases = []
    for index, u in enumerate(call.utterances):
        words = u.text.split(" ")
        step = u.duration_ms // len(words)
        phrases.append(
            {
                "phraseIndex": index,
                "participantPurpose": "internal" if u.channel == "INTERNAL" else "external",
                "text": u.text,
                "decoratedText": u.text,
                "stability": 1.0,
                "confidence": u.confidence,
                "offset": {"milliseconds": u.offset_ms},
                "startTimeMs": start + u.offset_ms,
                "duration": {"milliseconds": u.duration_ms},
                "words": [
                    {
                        "word": word,
                        "confidence": u.confidence,
                        "offset": {"milliseconds": u.offset_ms + i * step},
                        "startTimeMs": start + u.offset_ms + i * step,
                        "duration": {"milliseconds": step},
                    }
                    for i, word in enumerate(words)
                ],
                "type": "transcript",
            }
        )
    return {
        "organizationId": "00000000-0000-4000-8000-000000000000",
        "conversationId": call.conversation_id,
        "communicationId": call.communication_id,
        "mediaType": "call",
        "conversationStartTime": start,
        "startTime": start,
        "duration": {"milliseconds": length},
        "transcripts": [
            {
                "transcriptId": str(uuid.uuid5(uuid.NAMESPACE_URL, call.communication_id)),
                "language": "en-US",
                "programId": PROGRAM_ID,
                "engineId": "sim",
                "startTime": start,
                "duration": {"milliseconds": length},
                "phrases": phrases,
                "analytics": {"sentiment": [], "topics": [], "acoustic": []},
            }
        ],
        "participants": [
            {"participantPurpose": "internal", "startTimeMs": start},
            {"participantPurpose": "external", "startTimeMs": start},
        ],
        "uri": f"/api/v2/conversations/{call.conversation_id}",
    }
