"""Fuzz targets: each takes arbitrary bytes and raises only when an invariant breaks.

The parsers must never raise on any input, and their fast paths (the msgspec decoders) must
give either nothing or exactly what the tolerant parsers give. The coalescer is driven by a
tiny instruction set decoded from the bytes (feed a fragment, expire, flush one conversation),
and checked against the promises it makes: no utterance emitted twice as final, pending
state within its bound, and in append mode no text lost or reordered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from trio_transcripts.coalesce import Coalescer, Duplicate
from trio_transcripts.gapfill import plan
from trio_transcripts.model import Fragment, Malformed, Merge, Utterance
from trio_transcripts.sensitive import Kind, Screen, redact
from trio_transcripts.wire.analytics import parse_details
from trio_transcripts.wire.fragments import parse_fragment, read_fragment, strict_fragment
from trio_transcripts.wire.genesys import (
    parse_notification,
    read_notification,
    strict_transcription,
)
from trio_transcripts.wire.transcript import (
    PostCallTranscript,
    parse_transcript,
    parse_transcript_urls,
)
from trio_transcripts.wire.websocket import FrameSplitter

ALL_KINDS = frozenset(Kind)

JSON_LIMITS = ("overflows a double", "digits", "nests too deeply")
"""The tolerant parser's refusals of valid JSON for Python's reasons, in fields the fast path
does not read (see ``trio_transcripts/wire/schema.py``): the one place the two may differ."""


def fast_path_agrees(fast: object, tolerant: object) -> bool:
    """The fast path gave nothing, or the tolerant parser's event (or JSON_LIMITS held)."""
    if fast is None or fast == tolerant:
        return True
    return isinstance(tolerant, Malformed) and any(w in tolerant.reason for w in JSON_LIMITS)


def genesys(data: bytes) -> None:
    for frame in (data, data.decode("utf-8", errors="replace")):
        for decorated in (False, True):
            event = parse_notification(frame, decorated=decorated)
            fast = strict_transcription(frame, decorated=decorated)
            assert fast is None or fast == event, "parse_notification ignored its fast path"
            tolerant = read_notification(frame, decorated=decorated)
            assert fast_path_agrees(fast, tolerant), "fast and tolerant differ"


def fragments(data: bytes) -> None:
    for frame in (data, data.decode("latin-1")):
        event = parse_fragment(frame, conversation_id="fuzz")
        fast = strict_fragment(frame, conversation_id="fuzz")
        assert fast is None or fast == event, "parse_fragment ignored its fast path"
        tolerant = read_fragment(frame, conversation_id="fuzz")
        assert fast_path_agrees(fast, tolerant), "fast and tolerant differ"


def coalescer(data: bytes) -> None:
    coalescer = Coalescer(Merge.APPEND, max_pending=3, idle_timeout_ms=5)
    sent: dict[tuple[str, str], str] = {}
    got: dict[tuple[str, str], str] = {}
    finals: set[tuple[str, str]] = set()
    now = 0

    def take(events: list[Utterance] | list[Utterance | Duplicate]) -> None:
        for event in events:
            if isinstance(event, Duplicate):
                continue
            if event.final:
                assert event.key not in finals, f"{event.key} emitted twice as final"
                finals.add(event.key)
            got[event.key] = got.get(event.key, "") + event.text

    for i in range(0, len(data) - 1, 2):
        op, arg = data[i], data[i + 1]
        now += op & 3
        if op >> 6 == 3:
            take(coalescer.expire(now))
        elif op >> 6 == 2 and op & 4:
            take(coalescer.flush(f"c{arg % 3}"))
        else:
            key = (f"c{arg % 3}", f"u{(arg >> 2) % 5}")
            fragment = Fragment(
                key[0], key[1], "agent", chr(0x20 + (op & 0x3F)), None, None, None, bool(op & 0x80)
            )
            events = coalescer.feed(fragment, now, now)
            if not any(isinstance(e, Duplicate) for e in events):
                sent[key] = sent.get(key, "") + fragment.text
            take(events)
        assert coalescer.pending <= 3
    take(coalescer.flush())
    assert got == sent, "append text lost or reordered"


def postcall(data: bytes) -> None:
    """The post-call answers (transcript documents, URL listings, analytics details) never
    raise, and every phrase read is either written by a backfill with nothing stored or
    accounted for, once."""
    for body in (data, data.decode("utf-8", errors="replace")):
        parse_transcript_urls(body)
        parse_details(body)
        transcript = parse_transcript(body, "c", "m")
        if isinstance(transcript, PostCallTranscript):
            for phrase in transcript.phrases:
                assert phrase.text and phrase.start_ms >= 0 and phrase.duration_ms >= 0
            planned = plan(transcript, None, [])
            assert len(planned.utterances) == len(transcript.phrases), "a phrase not written"


def sensitive(data: bytes) -> None:
    """The screen never raises; redaction is idempotent; what it lets out of a speaker's
    finals (split at each newline of the input) is each of them once; a frame set aside
    comes back as text, whatever it holds, and one that is not JSON as the slow reading
    would have it (the one scan says no only where that changes nothing)."""
    text = data.decode("utf-8", errors="replace")
    once, _ = redact(text, ALL_KINDS)
    assert redact(once, ALL_KINDS)[0] == once, "redaction is not idempotent"
    screen = Screen(ALL_KINDS)
    parts = text.split("\n")[:5]
    out = []
    for i, part in enumerate(parts):
        out += screen.final(Utterance("c", f"u{i}", "customer", part, None, i, i, True, 1), i)
    out += screen.release()
    assert sorted(u.utterance_id for u in out) == sorted(f"u{i}" for i in range(len(parts)))
    assert isinstance(screen.frame(data), str)
    cut = "{" + text
    if "\\" not in cut and not _parses(cut):
        assert screen.frame(cut) == screen._alone(cut, only_after_card_words=True), "scan said no"


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


@dataclass
class WsprotoClient:
    """A wsproto client past its handshake, acting on events as trio-websocket does (its
    ``max_message_size``, nothing after a close): the frame splitter's oracle."""

    max_message_size: int
    ws: Connection = field(default_factory=lambda: Connection(ConnectionType.CLIENT))
    messages: list[str | bytes] = field(default_factory=list)
    controls: list[tuple[str, object]] = field(default_factory=list)
    coming: str | bytes | None = None  # a message's data so far, however wsproto cut it
    closed: bool = False

    def receive(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, TextMessage | BytesMessage):
                got = event.data
                part: str | bytes = got if isinstance(got, str) else bytes(got)
                coming: str | bytes
                if isinstance(part, str):  # wsproto keeps a message's parts of one type
                    coming = (self.coming if isinstance(self.coming, str) else "") + part
                else:
                    coming = (self.coming if isinstance(self.coming, bytes) else b"") + part
                self.coming = coming
                if len(coming) > self.max_message_size:
                    self.controls.append(("close", 1009))
                    self.closed = True
                    return
                if event.message_finished:
                    self.messages.append(coming)
                    self.coming = None
            elif isinstance(event, CloseConnection):
                self.controls.append(("close", event.code))
                self.closed = True  # trio-websocket acts on no event after a close
                return
            elif isinstance(event, Ping | Pong):
                self.controls.append((type(event).__name__, bytes(event.payload)))


def splitter_agrees(reads: list[bytes], max_message_size: int) -> None:
    """A stream after an accepted handshake, read in ``reads``: the frame splitter with
    wsproto under it sees what wsproto alone sees, after every read (a message is given as
    soon as it is whole), and wsproto's messages only ever follow the splitter's."""
    oracle = WsprotoClient(max_message_size)
    rest = WsprotoClient(max_message_size)
    splitter = FrameSplitter(max_message_size)
    messages: list[str | bytes] = []
    assert splitter.feed(ACCEPTED) == ([], ACCEPTED), "the handshake is wsproto's"
    for chunk in reads:
        oracle.receive(chunk)
        taken, through = splitter.feed(chunk)
        assert not (taken and rest.messages), "a message split off after one of wsproto's"
        messages.extend(taken)
        rest.receive(through)
        assert messages + rest.messages == oracle.messages, "messages differ"
        # wsproto may refuse a frame from its first bytes, which the splitter holds until
        # it is whole (a text frame's UTF-8, say): its verdict may come a read later.
        assert rest.controls == oracle.controls[: len(rest.controls)], "controls differ"
    rest.receive(splitter.pass_rest())
    assert messages + rest.messages == oracle.messages, "messages differ at the end"
    assert rest.controls == oracle.controls, "controls differ at the end"
    if not oracle.closed:  # after a close trio-websocket drops a message part-way
        assert rest.coming == oracle.coming, "a message still coming differs"


ACCEPTED = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)
"""A server's acceptance of the handshake (the splitter reads only its status line)."""


def websocket(data: bytes) -> None:
    """Any bytes a server might send after its handshake, cut into reads at the sizes the
    first bytes give: the frame splitter agrees with wsproto (``wire/websocket.py``)."""
    cuts, stream = data[:8], data[8:]
    reads = []
    for size in cuts:
        if stream:
            reads.append(stream[: size + 1])
            stream = stream[size + 1 :]
    splitter_agrees([*reads, stream] if stream else reads, max_message_size=200)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "genesys": genesys,
    "fragments": fragments,
    "coalescer": coalescer,
    "postcall": postcall,
    "sensitive": sensitive,
    "websocket": websocket,
}
