"""Post-call transcripts of Speech and Text Analytics -> phrases. Pure; never raises.

What the platform keeps of every transcribed call, served minutes after it ends (the backfill
reads it, ``backfill.py``):

* ``GET /api/v2/speechandtextanalytics/conversations/{conversationId}/communications/
  {communicationId}/transcripturls`` answers ``TranscriptUrls`` {``conversation``,
  ``communicationId``, ``urls``: [``SegmentUrl`` {``url``, ``recording``}]}, and
  ``.../transcripturl`` answers ``TranscriptUrl`` {``url``} (PureCloudPlatformClientV2
  269.0.0, ``models/transcript_urls.py``, ``segment_url.py``, ``transcript_url.py``). Each
  URL is pre-signed and "expires after 10 minutes" (developer.genesys.cloud,
  ``api/rest/v2/speechtextanalytics/transcript_url``).
* Behind a URL, the transcript document of that page's "transcript schema", which no SDK
  models: top level ``conversationId``, ``communicationId``, ``mediaType``,
  ``conversationStartTime``, ``startTime``, ``transcripts[]``, ``participants[]``; a
  transcript ``transcriptId``, ``language``, ``phrases[]``; a phrase ``phraseIndex``,
  ``participantPurpose`` (``internal`` or ``external``), ``text``, ``decoratedText``,
  ``confidence``, ``startTimeMs`` (epoch ms: "the total milliseconds since the epoch", a
  Genesys answer on developer.genesys.cloud forum t/10653), ``offset`` and ``duration`` as
  ``{"milliseconds": n}``, ``words[]``.

Only a live org can confirm the last of these (the duration's shape above all: a bare number
is read too), so everything about the document is read here and nowhere else. A phrase
without text or without a readable ``startTimeMs`` cannot be placed or stored: it is counted
in ``problems`` with its reason, never silently skipped.
"""

from __future__ import annotations

import math

import msgspec

from ..model import UNKNOWN_SPEAKER, Malformed, excerpt_of
from .frames import load_object

MAX_DOCUMENT_BYTES = 256 << 20
"""A transcript document carries every word of a call with its timings: megabytes for an
hour. The limit only refuses what no call produces."""

SPEAKER_OF_PURPOSE = {"internal": "agent", "external": "customer"}
"""``participantPurpose`` -> our speaker tag, as the live path maps INTERNAL/EXTERNAL
(``wire/genesys.py``)."""


class Phrase(msgspec.Struct, frozen=True, gc=False):
    """One phrase of a post-call transcript; times in epoch milliseconds."""

    index: int
    speaker: str
    text: str
    confidence: float | None
    start_ms: int
    duration_ms: int

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms


class PostCallTranscript(msgspec.Struct, frozen=True, gc=False):
    """Every readable phrase of one communication's transcript documents, in time order."""

    conversation_id: str
    communication_id: str
    phrases: tuple[Phrase, ...]
    problems: tuple[str, ...] = ()


def parse_transcript_urls(body: bytes | str) -> list[str] | Malformed:
    """The URLs of a ``TranscriptUrls`` or a ``TranscriptUrl`` answer."""
    value = _load(body)
    if isinstance(value, Malformed):
        return value
    url = value.get("url")
    if isinstance(url, str):
        return [url]
    urls = value.get("urls")
    if not isinstance(urls, list):
        return Malformed("neither url nor urls in the answer", excerpt_of(body))
    found = [u["url"] for u in urls if isinstance(u, dict) and isinstance(u.get("url"), str)]
    if len(found) != len(urls):
        return Malformed("an entry of urls has no url", excerpt_of(body))
    return found


def parse_transcript(
    body: bytes | str, conversation_id: str, communication_id: str, *, decorated: bool = False
) -> PostCallTranscript | Malformed:
    """One transcript document (``transcripts[].phrases[]``) as phrases in time order.

    ``conversation_id``/``communication_id`` are what was asked for; a document naming
    another conversation is malformed (a URL mixed up is worse than none). ``decorated``: a
    phrase's text is its ``decoratedText`` where it has one, as the live path's ``--text``.
    """
    value = _load(body)
    if isinstance(value, Malformed):
        return value
    named = value.get("conversationId")
    if named is not None and named != conversation_id:
        return Malformed(
            f"the transcript is of conversation {named!r}, not {conversation_id!r}",
            excerpt_of(body),
        )
    transcripts = value.get("transcripts", [])
    if not isinstance(transcripts, list):
        return Malformed("transcripts is not a list", excerpt_of(body))
    phrases: list[Phrase] = []
    problems: list[str] = []
    for t, transcript in enumerate(transcripts):
        items = transcript.get("phrases", []) if isinstance(transcript, dict) else None
        if not isinstance(items, list):
            problems.append(f"transcripts[{t}] has no list of phrases")
            continue
        for position, item in enumerate(items):
            phrase = _phrase(item, position, decorated)
            if isinstance(phrase, str):
                problems.append(f"transcripts[{t}].phrases[{position}]: {phrase}")
            else:
                phrases.append(phrase)
    phrases.sort(key=lambda p: (p.start_ms, p.index))
    return PostCallTranscript(conversation_id, communication_id, tuple(phrases), tuple(problems))


def _phrase(item: object, position: int, decorated: bool) -> Phrase | str:
    if not isinstance(item, dict):
        return "not an object"
    text = item.get("text")
    if decorated and isinstance(item.get("decoratedText"), str) and item["decoratedText"]:
        text = item["decoratedText"]
    if not isinstance(text, str) or not text:
        return "no text"
    start = item.get("startTimeMs")
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        return f"startTimeMs is not epoch milliseconds: {start!r}"
    index = item.get("phraseIndex", position)
    if not isinstance(index, int) or isinstance(index, bool):
        index = position
    confidence = item.get("confidence")
    readable = isinstance(confidence, int | float) and not isinstance(confidence, bool)
    if not readable or not math.isfinite(confidence):  # type: ignore[arg-type]
        confidence = None
    purpose = item.get("participantPurpose")
    speaker = UNKNOWN_SPEAKER
    if isinstance(purpose, str):
        speaker = SPEAKER_OF_PURPOSE.get(purpose.lower(), UNKNOWN_SPEAKER)
    return Phrase(
        index=index,
        speaker=speaker,
        text=text,
        confidence=None if confidence is None else float(confidence),
        start_ms=start,
        duration_ms=_milliseconds(item.get("duration")),
    )


def _milliseconds(value: object) -> int:
    """``{"milliseconds": n}`` (the schema's), or a bare number; 0 when neither."""
    if isinstance(value, dict):
        value = value.get("milliseconds")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return max(0, int(value))


def _load(body: bytes | str) -> dict[str, object] | Malformed:
    return load_object(body, max_bytes=MAX_DOCUMENT_BYTES)
