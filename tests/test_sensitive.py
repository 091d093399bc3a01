"""Card numbers and the rest, taken out before anything is written (``sensitive.py``)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from trio_transcripts.model import Utterance
from trio_transcripts.sensitive import (
    _SPACES,
    DEFAULT_KINDS,
    LABELS,
    Kind,
    Screen,
    _gate_words,
    _maybe_any,
    _worth_reading,
    find,
    luhn,
    parse_kinds,
    parse_regions,
    redact,
)

ALL = frozenset(Kind)
SPOKEN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
IIN = ["4", "51", "55", "2221", "2720", "34", "37", "6011", "65", "3528", "36", "62"]
"""Real prefixes: Visa, Mastercard (both ranges), Amex, Discover, JCB, Diners, UnionPay."""


def with_check_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn(body + d))


@st.composite
def cards(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(IIN))
    length = draw(st.integers(13, 19))
    body = prefix + "".join(
        draw(
            st.lists(
                st.sampled_from("0123456789"),
                min_size=length - len(prefix) - 1,
                max_size=length - len(prefix) - 1,
            )
        )
    )
    return with_check_digit(body)


@st.composite
def read_out(draw: st.DrawFn, digits: str) -> list[str]:
    """``digits`` as groups a caller reads: written, spoken, or mixed, each group with its
    own separator inside (none, one space, dashes, dots; spoken words by spaces)."""
    groups, at = [], 0
    while at < len(digits):
        size = draw(st.integers(1, 5))
        chunk = digits[at : at + size]
        at += size
        if draw(st.booleans()):
            groups.append(chunk)
        else:
            words = [("oh" if d == "0" and draw(st.booleans()) else SPOKEN[int(d)]) for d in chunk]
            groups.append(" ".join(words))
    return groups


WORDS = st.lists(
    st.sampled_from(["please", "thank you", "sure", "okay so", "right", "yes"]), max_size=3
)


def utterance(i: int, text: str, speaker: str = "customer") -> Utterance:
    return Utterance("c-1", f"u{i}", speaker, text, 0.9, i, i + 1, True, 1)


def digits_in(text: str) -> str:
    spoken = {w: str(i) for i, w in enumerate(SPOKEN)} | {"oh": "0"}
    found = re.findall(r"[0-9]+|[a-z]+", text.lower())
    return "".join(t if t.isdigit() else spoken.get(t, "") for t in found)


@given(cards(), st.data())
def test_a_card_read_out_in_up_to_three_utterances_is_never_written(
    card: str, data: st.DataObject
) -> None:
    groups = data.draw(read_out(card))
    separators = data.draw(
        st.lists(
            st.sampled_from([" ", "-", " - ", "."]), min_size=len(groups), max_size=len(groups)
        )
    )
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(groups) - 1)), max_size=2)))
    assume(all(c < len(groups) for c in cuts))
    # Where a group boundary is cut across utterances, the caller said card words first,
    # or the part before holds 4 digits or more of a card's start (``open_run``).
    parts, at = [], 0
    for cut in [*cuts, len(groups)]:
        spoken = "".join(
            g + (separators[i] if i < cut - 1 else "") for i, g in enumerate(groups[at:cut], at)
        )
        parts.append(spoken)
        at = cut
    before = data.draw(st.sampled_from(["my card number is", "it's", "the card is"]))
    if before == "it's":  # no card words: a cut comes after 4 digits or more (module doc)
        assume(all(len(digits_in(p)) >= 4 for p in parts[:-1]))
    after = " ".join(data.draw(WORDS))
    texts = [f"{before} {parts[0]}", *parts[1:]]
    texts[-1] = f"{texts[-1]} {after}".rstrip()
    screen = Screen(DEFAULT_KINDS)
    out = []
    for i, text in enumerate(texts):
        out += screen.final(utterance(i, text), i * 1000)
        if data.draw(st.booleans()):  # the other party speaks in between
            out += screen.final(utterance(100 + i, "okay", speaker="agent"), i * 1000 + 1)
    out += screen.release()
    assert sorted(u.utterance_id for u in out) == sorted(
        [f"u{i}" for i in range(len(texts))] + [u.utterance_id for u in out if u.speaker == "agent"]
    ), "each utterance once"
    written = " ".join(u.text for u in out if u.speaker == "customer")
    assert digits_in(written) == "", f"card digits went out: {written!r}"


@given(
    st.text(alphabet="abcdefgh ,.", max_size=40),
    st.integers(0, 10**12 - 1),
    st.text(alphabet="xyz .", max_size=20),
)
def test_short_numbers_and_luhn_failures_are_kept_exactly(
    before: str, number: int, after: str
) -> None:
    text = f"{before} order {number} {after}"
    assert redact(text, DEFAULT_KINDS)[0] == text, "12 digits at most: no card"
    long = with_check_digit("4" + "1" * 14)
    wrong = long[:-1] + str((int(long[-1]) + 1) % 10)
    assert not luhn(wrong)
    text = f"{before} reference {wrong} {after}"
    assert redact(text, DEFAULT_KINDS)[0] == text


@given(st.text(max_size=80))
def test_redaction_is_idempotent_and_text_without_a_match_is_unchanged(text: str) -> None:
    once, counts = redact(text, ALL)
    assert redact(once, ALL)[0] == once
    if not counts:
        assert once == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("it's 4111 1111 1111 1111 thanks", "it's [card number] thanks"),
        ("four one one one one one one one one one one one one one one one", "[card number]"),
        (
            "five five five five double five triple five five five five four four four four",
            "[card number]",
        ),
        ("the CVV is 123", "the CVV is [security code]"),
        (
            "the three digits on the back are seven oh seven",
            "the three digits on the back are [security code]",
        ),
        (
            "my social security number is 123 45 6789",
            "my social security number is [social security number]",
        ),
        ("ssn 123-45-6789", "ssn [social security number]"),
        ("write to jo.smith+tv@example.co.uk now", "write to [email address] now"),
        ("it's john dot smith at example dot com", "it's [email address]"),
        ("order 4111 1111 1111 1112 please", "order 4111 1111 1111 1112 please"),  # fails Luhn
        ("forty-one eleven", "forty-one eleven"),  # compound number words do not count
    ],
)
def test_what_counts(text: str, expected: str) -> None:
    assert redact(text, ALL)[0] == expected


def test_a_security_code_in_the_speakers_next_utterance() -> None:
    screen = Screen(DEFAULT_KINDS)
    [first] = screen.final(utterance(1, "what's the security code"), 0)
    [other] = screen.final(utterance(2, "one two three", speaker="agent"), 1)
    [second] = screen.final(utterance(3, "it's one two three"), 2)
    assert (first.text, other.text, second.text) == (
        "what's the security code",
        "one two three",
        "it's [security code]",
    ), "the other party's words are theirs; the speaker's next are the code"
    assert screen.counts["cvv"] == 1


def test_a_held_start_of_a_card_goes_out_masked_when_the_hold_ends() -> None:
    screen = Screen(DEFAULT_KINDS)
    assert screen.final(utterance(1, "my card is 4929 1234"), 0) == [], "held for the next group"
    assert screen.held == 1 and screen.due(9_999) == []
    [out] = screen.due(10_000)
    assert out.text == "my card is [number]" and screen.counts["number"] == 1


def test_an_utterance_without_digits_goes_through_as_it_is() -> None:
    screen = Screen(DEFAULT_KINDS)
    u = utterance(1, "I would like some help with my account")
    [out] = screen.final(u, 0)
    assert out is u


@pytest.mark.parametrize(
    ("text", "kinds"),
    [("card,cvv", {Kind.CARD, Kind.CVV}), ("none", set()), ("EMAIL, ssn", {Kind.EMAIL, Kind.SSN})],
)
def test_the_setting(text: str, kinds: set[Kind]) -> None:
    assert parse_kinds(text) == kinds


def test_a_wrong_setting_says_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="card, cvv, ssn, email, phone, none"):
        parse_kinds("cards")
    assert set(LABELS) == set(Kind)


# --- the frame screen's one scan, and the gate -------------------------------------------

KIND_SETS = st.sets(st.sampled_from(list(Kind))).map(frozenset)
PIECES = st.sampled_from(
    [
        " ",
        "-",
        ".",
        "--",
        "    ",
        "\u00a0",
        "\u2009",
        "\t",
        ",",
        '"',
        ":",
        "\\",
        "x",
        "é",
        "ſ",
        "1700000083000",
        "00000000-0000-4000-8000-000000000000",
        "9e163813-8972-4889-bc11",
        "4111",
        "1111",
        "411",
        "12",
        "7",
        "one",
        "Oh",
        "double",
        "SIX",
        "card",
        "CVV",
        "security code",
        "digits",
        "ssn",
        "social security",
        "123-45-6789",
        "@",
        "dot",
        "voiceTranscriptionEnabled",
        "long number",
        "phone",
        "someone",
    ]
)
WORDY = PIECES.filter(lambda p: not re.search("[0-9@]", p))  # what the gate reads as words
MIXED = st.one_of(
    st.lists(WORDY, max_size=8).map(" ".join),
    st.lists(PIECES | cards(), max_size=24).map("".join),
    st.lists(PIECES | cards(), max_size=12).map(" ".join),
    st.text(max_size=60),
)


@given(MIXED, KIND_SETS)
def test_a_frame_the_scan_passes_has_nothing_the_screen_would_change(
    text: str, kinds: frozenset[Kind]
) -> None:
    """The scan (RE2, over the frame as it came) never says no where the slow reading
    (``find``, and a trailing run after card words) would change something."""
    frame = f'{{"n": 1, "transcript": {text!r}'  # cut short: read as text, whole
    screen = Screen(kinds)
    assert screen.frame(frame) == screen._alone(frame, only_after_card_words=True)
    if "\\" not in text:
        parsed = json.dumps({"id": text, "list": [text, 4111]})
        assert screen.frame(parsed) == _strings_read_slowly(Screen(kinds), parsed)


def _strings_read_slowly(screen: Screen, frame: str) -> str:
    value = json.loads(frame)

    def walk(v: object) -> object:
        if isinstance(v, str):
            return screen._alone(v, only_after_card_words=True)
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    redacted = walk(value)
    return frame if redacted == value else json.dumps(redacted, ensure_ascii=False)


@given(MIXED, KIND_SETS)
def test_an_utterance_the_gate_turns_away_is_one_the_screen_would_not_change(
    text: str, kinds: frozenset[Kind]
) -> None:
    if not _maybe_any(text, _gate_words(kinds)):
        assert find(text, kinds) == ([], False)
        assert Screen(kinds)._alone(text, only_after_card_words=False) == text


def test_the_scans_separators_are_pythons_whitespace() -> None:
    assert set(_SPACES) == {c for c in map(chr, range(0x110000)) if re.fullmatch(r"\s", c)}


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        # a card behind JSON escapes: the frame parses, and its strings are read
        (
            '{"t": "card \\u0034111 1111 1111 1111"}',
            '{"t": "card [card number]"}',
        ),
        ('{"t": "my card is 4111 1111 1111 1111 and', '{"t": "my card is [card number] and'),
        (  # ids and times that are all digits, and a run ending a string: kept
            '{"org": "00000000-0000-4000-8000-000000000000", "ms": 1700000083000, "v": "4500"}',
            '{"org": "00000000-0000-4000-8000-000000000000", "ms": 1700000083000, "v": "4500"}',
        ),
        ('{"t": "card ending 4929', '{"t": "card ending [number]'),
    ],
)
def test_frames_set_aside(frame: str, expected: str) -> None:
    assert Screen(DEFAULT_KINDS).frame(frame) == expected


def test_a_run_that_is_no_card_is_still_read_for_the_rest() -> None:
    """Found by the fuzz target: 15 digits in groups that fail Luhn hold a 3-2-4."""
    frame = "{m&&ehe m4546-65-678-45-6767]89"
    assert Screen(ALL).frame(frame) == "{m&&ehe m4546-65-[social security number]]89"


@pytest.mark.parametrize("letter", ["ſ", "K", "İ", "ı"])
def test_letters_that_fold_to_ascii_are_not_digit_words(letter: str) -> None:
    """Unicode case folding made "ſix" a digit word to the regex and not to the table
    (a KeyError out of the screen): digit words are ASCII letters, as the gate reads them."""
    text = f"it is {letter}ix 4 five {letter}even, that's all"
    assert redact(text, ALL)[0] == text
    screen = Screen(ALL)
    assert [u.text for u in screen.final(utterance(1, text), 0) + screen.release()] == [text]


# --- phone numbers (off by default; libphonenumber's rules for the regions named) --------

PHONE = frozenset({Kind.PHONE})


@pytest.mark.parametrize(
    ("text", "regions", "expected"),
    [
        ("call me on (415) 555-2671 tomorrow", ("US",), "call me on [phone number] tomorrow"),
        ("it's four one five five five five two six seven one", ("US",), "it's [phone number]"),
        ("or +44 20 7946 0958 at work", ("US",), "or [phone number] at work"),  # international
        ("my number is 020 7946 0958", ("GB",), "my number is [phone number]"),
        ("my number is 020 7946 0958", ("US",), "my number is 020 7946 0958"),  # not a US one
        ("order 12345, 3 items", ("US", "GB"), "order 12345, 3 items"),
    ],
)
def test_phone_numbers_of_the_regions_named(
    text: str, regions: tuple[str, ...], expected: str
) -> None:
    assert redact(text, PHONE, regions)[0] == expected
    assert redact(expected, PHONE, regions)[0] == expected, "idempotent"


def test_phones_are_off_by_default_and_the_regions_setting_says_what_it_takes() -> None:
    assert Kind.PHONE not in DEFAULT_KINDS
    assert redact("call (415) 555-2671")[0] == "call (415) 555-2671"
    assert parse_regions(" us, GB,us ") == ("US", "GB")
    with pytest.raises(ValueError, match="ISO 3166 region codes"):
        parse_regions("USA")


def test_a_frame_set_aside_has_its_phone_numbers_taken_out() -> None:
    frame = '{"t": "ring me on (415) 555-2671", "id": "00000000-0000-4000-8000-000000000000"'
    assert Screen(PHONE).frame(frame) == frame.replace("(415) 555-2671", "[phone number]")


def test_digits_glued_to_an_ids_letters_are_not_read_for_a_card() -> None:
    """``65`` of ``57450e65`` is part of a word (as ``find`` reads it), so the 14 digits
    from it, which pass Luhn, send the frame to no slow reading (the flood's cost)."""
    conversation = '"conversationId": "57450e65-2001-4170-9418-f7af25b7501a"'
    assert luhn("65200141709418")
    assert not _worth_reading(conversation, DEFAULT_KINDS)
    assert Screen(DEFAULT_KINDS).frame("{" + conversation) == "{" + conversation
