"""A followed queue's calls while nobody listened: found through the analytics details query.

The platform does not replay a queue's announcements (``../shared/genesys-api.md``, "Calls
in progress"), so a call that reached a followed queue while the worker was away is never
announced to it. At start the backfill asks ``POST /api/v2/analytics/conversations/details/
query`` for each followed queue's conversations from a look-back before the last time the
worker was alive (or, on a first start, before now) until now, page by page
(:func:`queue_calls`, which the ``backfill --queue`` command uses too), and :func:`sort`
decides what becomes of each (pure): another shard's, one followed already, or one settled
(its end seen by the last run) is left alone; one still in progress (no
``conversationEnd``) is followed, its gap open since it started; one that has ended is
queued for backfill as a whole call.

What the query matches: conversations that *started on a day the interval touches*
(developer.genesys.cloud, "Conversation detail queries": "The interval will filter based on
the conversation start timestamp ... on a day that the interval touches"), with activity in
the interval (the SDK's earlier ``ConversationQuery.interval`` text); the look-back covers a
call that began before the worker was last alive and reached the queue later. An interval is
at most 31 days with a filter (same page): a longer absence is cut to that, with a line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection, Mapping

import msgspec

from .postcall import NotYet, PostCallClient, Refused
from .wire.analytics import CallRecord, DetailsPage, details_query
from .wire.instants import iso_of

log = logging.getLogger("trio_transcripts.backfill")

PAGE_SIZE = 100
MAX_INTERVAL_MS = 31 * 86_400_000
DETAILS_PERMISSION = "analytics:conversationDetail:view"


def interval(start_ms: int, end_ms: int) -> str:
    """An ISO-8601 ``start/end``, cut to the query's 31 days (the later ones kept)."""
    return f"{iso_of(max(start_ms, end_ms - MAX_INTERVAL_MS))}/{iso_of(end_ms)}"


Wait = Callable[[NotYet, int], Awaitable[None]]
"""Wait out a fault before asking again (the caller's rate-limit rule; ``int``: attempts)."""


async def queue_calls(
    client: PostCallClient,
    queue_id: str,
    start_ms: int,
    end_ms: int,
    wait: Wait | None = None,
    on_page: Callable[[int, int], None] | None = None,
) -> list[CallRecord] | NotYet | Refused:
    """Every conversation of ``queue_id`` in the window, every page. A fault is waited out
    with ``wait`` and the page asked again; without ``wait`` it is returned."""
    found: list[CallRecord] = []
    page_number = attempts = 0
    window = interval(start_ms, end_ms)
    while True:
        body = details_query(window, queue_id, page_number + 1, PAGE_SIZE)
        page = await client.query(body)
        if isinstance(page, NotYet):
            if wait is None:
                return page
            await wait(page, attempts)
            attempts += 1
            continue
        if not isinstance(page, DetailsPage):
            return page
        attempts = 0
        page_number += 1
        found += page.calls
        total = page.total_hits if page.total_hits is not None else len(found)
        if on_page is not None:
            on_page(len(found), total)
        if len(page.calls) < PAGE_SIZE or len(found) >= total:
            return found


class Sorted(msgspec.Struct, frozen=True, gc=False):
    """What becomes of the calls a catch-up found (:func:`sort`)."""

    follow: tuple[CallRecord, ...]  # in progress: follow live, the gap open since the start
    backfill: tuple[CallRecord, ...]  # ended: the whole call from its transcript
    found_ended: tuple[CallRecord, ...]  # followed, never heard, and ended: let go
    skipped: int  # another shard's, followed and heard or in progress, or settled


def sort(
    calls: Collection[CallRecord],
    owns: Callable[[str], bool],
    followed: Mapping[str, bool],
    settled: Collection[str],
    queued: Collection[str],
) -> Sorted:
    """Each call once: ``followed`` maps a followed conversation to whether it was heard in
    this run; ``settled`` have ended before; ``queued`` are in the backfill queue already."""
    follow: dict[str, CallRecord] = {}
    backfill: dict[str, CallRecord] = {}
    ended: dict[str, CallRecord] = {}
    skipped = 0
    for call in calls:
        c = call.conversation_id
        if c in follow or c in backfill or c in ended:
            continue
        if not owns(c) or c in settled or c in queued:
            skipped += 1
        elif c in followed:
            if call.end_ms is not None and not followed[c]:
                ended[c] = call
            else:
                skipped += 1
        elif call.end_ms is None:
            follow[c] = call
        else:
            backfill[c] = call
    return Sorted(tuple(follow.values()), tuple(backfill.values()), tuple(ended.values()), skipped)
