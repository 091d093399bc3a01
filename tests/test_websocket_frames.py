"""The frame splitter against wsproto itself: the same messages, pings, pongs and close, in
the same order, however the bytes are cut and whatever the server sends."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fuzz.targets import ACCEPTED, splitter_agrees
from trio_transcripts.wire.websocket import FrameSplitter

MAX = 300  # small, so frames over the limit are cheap to draw


def frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = False,
    wide: int = 0,
) -> bytes:
    """One frame as a server (or a broken one) would send it; ``wide`` forces a 16 or 64 bit
    length where 7 bits would do (wsproto's view of that is the test's oracle)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    size = len(payload)
    if wide == 2 or (size > 0xFFFF and wide == 0):
        length = bytes([127]) + size.to_bytes(8, "big")
    elif wide == 1 or size > 125:
        length = bytes([126]) + size.to_bytes(2, "big")
    else:
        length = bytes([size])
    if masked:
        key = b"\x01\x02\x03\x04"
        length = bytes([length[0] | 0x80]) + length[1:]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return bytes([first]) + length + key + payload
    return bytes([first]) + length + payload


texts = st.text(max_size=40)
whole = st.one_of(
    st.builds(lambda t, w: frame(0x1, t.encode(), wide=w), texts, st.sampled_from([0, 0, 1, 2])),
    st.builds(lambda b: frame(0x2, b), st.binary(max_size=40)),
    st.builds(lambda b: frame(0x9, b), st.binary(max_size=10)),
    st.builds(lambda b: frame(0xA, b), st.binary(max_size=10)),
    st.builds(lambda c: frame(0x8, c.to_bytes(2, "big") + b"bye"), st.sampled_from([1000, 5])),
)
"""What a server sends: messages, pings, pongs, a close."""
broken = st.one_of(
    st.builds(lambda t: frame(0x1, t.encode(), fin=False) + frame(0x0, b"!"), texts),
    st.just(frame(0x1, b"\xff\xfe")),  # not UTF-8
    st.just(frame(0x1, "é".encode()[:1])),  # cut inside a character
    st.just(frame(0x1, b"x" * (MAX + 1))),  # over the limit
    st.just(frame(0x1, b"", masked=True) + frame(0x1, b"y" * 130)),
    st.just(frame(0x1, b"rsv", rsv=4)),
    st.just(frame(0x3, b"reserved")),
    st.just(frame(0xB, b"reserved")),
    st.just(frame(0x9, b"p" * 126)),  # a control frame too long
    st.just(frame(0x0, b"continuation")),
    st.binary(min_size=1, max_size=6),  # junk
)
"""What wsproto must judge: a fragmented message, and frames it refuses."""
frames = st.one_of(whole, whole, whole, broken)


REFUSAL = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\n\x81\x02no"


def split(stream: bytes, cuts: list[int]) -> tuple[list[str | bytes], bytes, FrameSplitter]:
    """What the splitter took out of ``stream`` fed in ``cuts``-sized reads, and what it let
    through, held-back bytes last (``pass_rest``), as trio-websocket would be given them."""
    splitter = FrameSplitter(MAX)
    messages: list[str | bytes] = []
    through: list[bytes] = []
    for chunk in reads(stream, cuts):
        taken, passed = splitter.feed(chunk)
        messages.extend(taken)
        through.append(passed)
    through.append(splitter.pass_rest())
    return messages, b"".join(through), splitter


def reads(stream: bytes, cuts: list[int]) -> list[bytes]:
    """``stream`` cut after each of ``cuts`` bytes, the rest in one read."""
    out = []
    for size in cuts:
        if not stream:
            break
        out.append(stream[:size])
        stream = stream[size:]
    return [*out, stream] if stream else out


@given(st.lists(frames, max_size=16), st.lists(st.integers(1, 40), max_size=30))
def test_the_splitter_and_wsproto_see_what_wsproto_alone_sees(
    sent: list[bytes], cuts: list[int]
) -> None:
    splitter_agrees(reads(b"".join(sent), cuts), MAX)


def test_the_handshake_goes_to_wsproto_however_it_is_cut() -> None:
    stream = ACCEPTED + frame(0x1, b"a")
    for cut in range(1, len(stream)):
        messages, through, _ = split(stream, [cut])
        assert (messages, through) == (["a"], ACCEPTED)


@given(st.lists(frames, max_size=4), st.lists(st.integers(1, 40), max_size=10))
def test_a_refused_handshake_and_its_body_all_go_to_wsproto(
    sent: list[bytes], cuts: list[int]
) -> None:
    stream = REFUSAL + b"".join(sent)
    messages, through, splitter = split(stream, cuts)
    assert (messages, through, splitter.passing) == ([], stream, True)


def test_messages_before_wsproto_s_first_are_split_off_in_one_read() -> None:
    """One read with many frames gives all of them at once (the point of the splitter),
    and a ping among them goes on to trio-websocket, which answers it."""
    stream = ACCEPTED + frame(0x1, b"a") + frame(0x9, b"hi") + frame(0x2, b"b")
    messages, through = FrameSplitter(MAX).feed(stream)
    assert (messages, through) == (["a", b"b"], ACCEPTED + frame(0x9, b"hi"))


def test_a_frame_is_held_until_whole_and_then_given() -> None:
    splitter = FrameSplitter(MAX)
    assert splitter.feed(ACCEPTED) == ([], ACCEPTED)
    whole = frame(0x1, b"x" * 200)  # a 16-bit length
    assert splitter.feed(whole[:1]) == ([], b"")
    assert splitter.feed(whole[1:3]) == ([], b"")
    assert splitter.feed(whole[3:-1]) == ([], b"")
    assert splitter.feed(whole[-1:]) == (["x" * 200], b"")


def test_a_head_with_bare_newlines_ends_where_h11_ends_it() -> None:
    head = ACCEPTED.replace(b"\r\n", b"\n")
    messages, through, _ = split(head + frame(0x1, b"a"), [7])
    assert (messages, through) == (["a"], head)
