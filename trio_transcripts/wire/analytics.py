"""Analytics conversation details -> calls and their communications. Pure; never raises.

``POST /api/v2/analytics/conversations/details/query`` answers
``AnalyticsConversationQueryResponse`` {``conversations``, ``totalHits``} and
``GET /api/v2/analytics/conversations/{conversationId}/details`` one conversation; each is
``AnalyticsConversationWithoutAttributes`` {``conversationId``, ``conversationStart``,
``conversationEnd``, ``participants``: [{``purpose``, ``sessions``: [{``sessionId``,
``mediaType``, ...}]}]} (PureCloudPlatformClientV2 269.0.0 models of those names). The query
needs ``analytics:conversationDetail:view``.

Which session is the communication the post-call transcript is filed under is not documented:
we take the voice sessions of the customer's side (``purpose`` ``customer`` or ``external``),
the side the live transcription notifications name in ``communicationId`` on our simulator.
Only a live org can confirm it; it is decided here and nowhere else.
"""

from __future__ import annotations

import msgspec

from ..model import Malformed, excerpt_of
from .frames import load_object
from .instants import parse_instant
from .transcript import MAX_DOCUMENT_BYTES

CUSTOMER_PURPOSES = frozenset({"customer", "external"})


class CallRecord(msgspec.Struct, frozen=True, gc=False):
    """A conversation as analytics has it: when, and the communications to fetch."""

    conversation_id: str
    start_ms: int | None
    end_ms: int | None  # None while it goes on
    communications: tuple[str, ...]


class DetailsPage(msgspec.Struct, frozen=True, gc=False):
    calls: tuple[CallRecord, ...]
    total_hits: int | None


def parse_details(body: bytes | str) -> DetailsPage | Malformed:
    """A details query's page, or one conversation's details (a page of one)."""
    value = load_object(body, max_bytes=MAX_DOCUMENT_BYTES)
    if isinstance(value, Malformed):
        return value
    if "conversationId" in value:
        items: object = [value]
    else:
        items = value.get("conversations", [])
    if not isinstance(items, list):
        return Malformed("conversations is not a list", excerpt_of(body))
    calls = []
    for item in items:
        call = _call(item)
        if call is None:
            return Malformed("a conversation without conversationId", excerpt_of(body))
        calls.append(call)
    hits = value.get("totalHits")
    return DetailsPage(tuple(calls), hits if isinstance(hits, int) else None)


def details_query(
    interval: str, queue_id: str | None, page_number: int, page_size: int = 100
) -> dict[str, object]:
    """The body of a details query: conversations in ``interval`` (ISO-8601 ``start/end``),
    on one queue's segments when ``queue_id`` is given, oldest first (``ConversationQuery``)."""
    body: dict[str, object] = {
        "interval": interval,
        "order": "asc",
        "orderBy": "conversationStart",
        "paging": {"pageSize": page_size, "pageNumber": page_number},
    }
    if queue_id is not None:
        body["segmentFilters"] = [
            {
                "type": "and",
                "predicates": [{"type": "dimension", "dimension": "queueId", "value": queue_id}],
            }
        ]
    return body


def _call(item: object) -> CallRecord | None:
    if not isinstance(item, dict) or not isinstance(item.get("conversationId"), str):
        return None
    communications: list[str] = []
    participants = item.get("participants")
    for participant in participants if isinstance(participants, list) else []:
        if not isinstance(participant, dict):
            continue
        purpose = participant.get("purpose")
        if not isinstance(purpose, str) or purpose not in CUSTOMER_PURPOSES:
            continue
        sessions = participant.get("sessions")
        for session in sessions if isinstance(sessions, list) else []:
            if not isinstance(session, dict) or session.get("mediaType") != "voice":
                continue
            session_id = session.get("sessionId")
            if isinstance(session_id, str) and session_id not in communications:
                communications.append(session_id)
    return CallRecord(
        item["conversationId"],
        _instant(item.get("conversationStart")),
        _instant(item.get("conversationEnd")),
        tuple(communications),
    )


def _instant(value: object) -> int | None:
    if value is None:
        return None
    parsed = parse_instant(value)
    return parsed if isinstance(parsed, int) else None
