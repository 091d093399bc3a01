"""Card numbers, security codes and other personal data, found in text and replaced by a
label before anything is written (issue 22). Pure: no I/O, no clock (times are given).

Not ``redaction.py``, which keeps secrets out of URLs we print.

What counts (English number words; other languages' are not known here):

* ``card``: 13 to 19 digits that pass the Luhn check and start as payment cards do (2-6,
  or 1 for the 15 digits of an airline's UATP card), written (``4111 1111-1111.1111``),
  spoken (``four one one one``, ``oh`` for zero, ``double four``, ``triple one``) or mixed,
  with spaces, dashes or dots between the groups. Compound number words (``forty-one``) do
  not count: callers read cards digit by digit, and ``forty`` in a sentence is an age, a
  price or a time far more often than half of a card. A run that fails Luhn (an order
  number) is kept as it is;
* ``cvv``: 3 or 4 digits within :data:`CVV_WORDS` words after a security-code phrase
  (``CVV``, ``security code``, ``the three digits on the back``), in the same utterance or
  the speaker's next one;
* ``ssn``: 3-2-4 digits (not a number the SSA never issues), or 9 digits within a few words
  after ``social security`` or ``SSN``;
* ``email``: an address, written or spoken (``john dot smith at example dot com``).

Each match becomes its label (``[card number]``, ...); the text around it is kept exactly.

A card read out in groups can be finalised as several utterances of one speaker.
:class:`Screen` holds a speaker's final utterance while it ends in a digit run that could
still become a card (after card words, or from 4 digits that start as a card does), so the
next group is checked with it; at most :data:`HOLD_UTTERANCES` utterances and
:data:`HOLD_MS` ms. When the hold ends without a card (the bound, the session's end, a
shutdown), the trailing run that could have grown into one goes out as ``[number]``:
nothing a later group could have completed into a card is ever written in clear. Every
other utterance, and every other speaker's, goes through at once.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import re2

from .model import Utterance


class Kind(enum.Enum):
    CARD = "card"
    CVV = "cvv"
    SSN = "ssn"
    EMAIL = "email"
    PHONE = "phone"


LABELS = {
    Kind.CARD: "[card number]",
    Kind.CVV: "[security code]",
    Kind.SSN: "[social security number]",
    Kind.EMAIL: "[email address]",
    Kind.PHONE: "[phone number]",
}
MASKED = "[number]"
"""A trailing digit run held as a possible card's start, let go before a card was read."""

DEFAULT_KINDS = frozenset({Kind.CARD, Kind.CVV})
HOLD_UTTERANCES = 3
HOLD_MS = 10_000
"""A caller reading a card pauses between groups for a few seconds: the bound is that, and
what it costs the held utterances' latency (and only theirs)."""
CVV_WORDS = 8
PHONE_REGIONS = ("US",)
"""Where phone numbers are read as national ones by default (``PHONE_REGIONS``)."""


def parse_kinds(text: str) -> frozenset[Kind]:
    """``card,cvv`` (``REDACT``), or ``none``; a ValueError names what is not a kind."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if names == ["none"]:
        return frozenset()
    known = {k.value: k for k in Kind}
    wrong = [n for n in names if n not in known]
    if wrong or not names:
        choices = ", ".join([*known, "none"])
        raise ValueError(f"must be a comma-separated set of {choices} (got {text!r})")
    return frozenset(known[n] for n in names)


def describe_kinds(kinds: frozenset[Kind]) -> str:
    return ",".join(k.value for k in Kind if k in kinds) or "none"


# --- finding digits, written and spoken -------------------------------------------------

_DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
_REPEATS = {"double": 2, "triple": 3}
_ITEM = re.compile(  # a written number is not glued to letters ("411n", "is9" are words)
    r"(?<![^\W_])[0-9]+(?![^\W_])"
    # ASCII letters only, as the gate reads them (_words): under Unicode IGNORECASE "ſix"
    # matched, and was no key of _DIGIT_WORDS (a KeyError out of the screen).
    r"|(?ai:\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple)\b)"
)
_LABEL = re.compile(
    r"\[(?:card number|security code|social security number|email address|number)\]"
)
_SEPARATOR = re.compile(r"[\s.\-]{1,3}")
# The gate: what the screen reads at all. Words are runs of ASCII letters, lowered (every
# other byte a space, by one ``bytes.translate`` in C, then a set test: no regex, whose
# alternations cost several times this); a number needs an ASCII digit or a digit word, an
# address '@' or the word "dot", a security code's phrase one of its words. :func:`find`
# reads nothing the gate turns away, so the fast paths below say no only where it would.
_ASCII_DIGIT = re.compile(r"[0-9]")
_NUMBER_WORDS = frozenset(w.encode() for w in (*_DIGIT_WORDS, *_REPEATS))
# Every phrase of _CVV_WORDS holds one of these.
_CVV_PHRASE_WORDS = frozenset(
    {b"cvv", b"cvc", b"cid", b"security", b"verification", b"digit", b"digits"}
)
_EMAIL_WORDS = frozenset({b"dot"})
_ONLY_LETTERS = bytes(c | 32 if 65 <= c <= 90 or 97 <= c <= 122 else 32 for c in range(256))
# The same, with ASCII digits and '@' as '#' (and '#' itself a space): one test for both.
_SHAPES = bytes(35 if 48 <= c <= 57 or c == 64 else _ONLY_LETTERS[c] for c in range(256))


def _words(text: str) -> list[bytes]:
    """The words of ``text`` as the gate reads them ("voiceTranscriptionEnabled" is one
    word, and holds no "one")."""
    return text.encode("utf-8", "surrogatepass").translate(_ONLY_LETTERS).split()


def _maybe_digits(text: str) -> bool:
    return _ASCII_DIGIT.search(text) is not None or not _NUMBER_WORDS.isdisjoint(_words(text))


@functools.cache
def _gate_words(kinds: frozenset[Kind]) -> frozenset[bytes]:
    return (
        (_NUMBER_WORDS if kinds & _NUMBERS else frozenset())
        | (_CVV_PHRASE_WORDS if Kind.CVV in kinds else frozenset())
        | (_EMAIL_WORDS if Kind.EMAIL in kinds else frozenset())
    )


def _maybe_any(text: str, gate_words: frozenset[bytes]) -> bool:
    """Whether the gate lets ``text`` in, for the kinds of ``gate_words`` (a digit or '@'
    for any kind: one test covers both). An utterance with neither and none of the words
    costs one encode, one translate, one split and one set test (benchmarks/stages.py)."""
    try:
        encoded = text.encode()
    except UnicodeEncodeError:  # a lone surrogate (a JSON escape): kept as it is
        encoded = text.encode("utf-8", "surrogatepass")
    shapes = encoded.translate(_SHAPES)
    return 35 in shapes or not gate_words.isdisjoint(shapes.split())  # 35: '#', one memchr


@dataclass(frozen=True, slots=True)
class _Digits:
    start: int
    end: int
    digits: str


def _digit_items(text: str) -> list[_Digits]:
    """Each written number, digit word, or ``double``/``triple`` and its digit, in order.
    Only those are found (one scan in C), not every word of the text."""
    found = [(m.start(), m.end(), m.group()) for m in _ITEM.finditer(text)]
    items: list[_Digits] = []
    i = 0
    while i < len(found):
        start, end, token = found[i]
        lower = token.lower()
        repeat = _REPEATS.get(lower)
        if repeat is None:
            items.append(_Digits(start, end, token if token[0] <= "9" else _DIGIT_WORDS[lower]))
        elif i + 1 < len(found) and found[i + 1][0] == end + 1 and text[end] == " ":
            _, next_end, following = found[i + 1]
            digit = _DIGIT_WORDS.get(following.lower()) or (
                following if len(following) == 1 else ""
            )
            if digit and digit[0] <= "9":
                items.append(_Digits(start, next_end, digit * repeat))
                i += 1
        i += 1
    return items


def _runs(text: str, items: list[_Digits]) -> list[list[_Digits]]:
    """Items one after another with only short separators between: a number read out."""
    runs: list[list[_Digits]] = []
    for item in items:
        if runs and _SEPARATOR.fullmatch(text[runs[-1][-1].end : item.start]):
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class Match:
    kind: Kind
    start: int
    end: int


def _cards(runs: list[list[_Digits]]) -> list[Match]:
    """A run with a card in it, whole: the digits read out around a card (a stray group, a
    wrong start) are as sensitive as it, and a card found in part of a run by chance (one in
    ten digit strings passes Luhn) must not leave the rest of the real one in clear."""
    found = []
    for run in runs:
        if any(_has_card([x.digits for x in run[i:]]) for i in range(len(run))):
            found.append(Match(Kind.CARD, run[0].start, run[-1].end))
    return found


def _has_card(items: list[str]) -> bool:
    """Whether the first items, up to 19 digits, make a card (linear in the run: a text of
    a thousand digit words costs a thousand short checks, not a million joins)."""
    if not items or items[0][0] not in _CARD_FIRST_DIGITS:
        return False
    digits = ""
    for item in items:
        digits += item
        if len(digits) > 19:
            return False
        if len(digits) >= 13 and (digits[0] != "1" or len(digits) == 15) and luhn(digits):
            return True
    return False


_CARD_FIRST_DIGITS = "123456"
"""Payment cards start 2-6 (Mastercard 2 and 5, Amex, Diners and JCB 3, Visa 4, Discover
and UnionPay 6), or 1 with 15 digits (UATP, the airlines'); ISO/IEC 7812's other industries
(0, 7-9: petroleum, health, national) are not payment cards. This keeps a 13-digit epoch
time (``1700000000953``), a tenth of which pass Luhn, from being taken for one."""


def _ssn_valid(digits: str) -> bool:
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_SSN_WORDS = re.compile(r"\b(?:social security|ssn|social)\b", re.IGNORECASE)
_CVV_WORDS = re.compile(
    r"\b(?:cvv2?|cvc2?|cid|security (?:code|number)|card verification|verification code|"
    r"(?:three|3|four|4)[ -]digits?(?: code| number)?|digits on the back)\b",
    re.IGNORECASE,
)
_CARD_WORDS = re.compile(
    r"\b(?:card|visa|mastercard|master card|amex|american express|discover|credit|debit|"
    r"long number)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _words_between(text: str, start: int, end: int) -> int:
    return len(_WORD.findall(text, start, end))


def _ssns(text: str, runs: list[list[_Digits]]) -> list[Match]:
    found = []
    labels = [(m.start(), m.end()) for m in _LABEL.finditer(text)]
    phrases = [  # "[social security number]", a label of ours, is not the phrase
        m.end() for m in _SSN_WORDS.finditer(text) if not any(a <= m.start() < b for a, b in labels)
    ]
    for run in runs:
        shaped = False
        i = 0
        while i + 3 <= len(run):  # every 3-2-4 in the run, not only the first
            three = run[i : i + 3]
            digits = "".join(x.digits for x in three)
            if [len(x.digits) for x in three] == [3, 2, 4] and _ssn_valid(digits):
                found.append(Match(Kind.SSN, three[0].start, three[-1].end))
                shaped = True
                i += 3
            else:
                i += 1
        if not shaped:
            digits = "".join(x.digits for x in run)
            at = run[0].start
            walls = [m.start() for m in _LABEL.finditer(text, 0, at)]
            near = any(
                0 <= _words_between(text, p, at) <= 6 and not any(p <= w for w in walls)
                for p in phrases
                if p <= at
            )
            if len(digits) == 9 and near and _ssn_valid(digits):
                found.append(Match(Kind.SSN, run[0].start, run[-1].end))
    return found


def _outside(runs: list[list[_Digits]], others: Sequence[Match]) -> list[list[_Digits]]:
    """The runs with the items other matches took out, each split where they were: what is
    left of a run is read as the label would leave it (a second pass finds the same)."""
    pieces: list[list[_Digits]] = []
    for run in runs:
        piece: list[_Digits] = []
        for item in run:
            if any(m.start < item.end and item.start < m.end for m in others):
                if piece:
                    pieces.append(piece)
                piece = []
            else:
                piece.append(item)
        if piece:
            pieces.append(piece)
    return pieces


def _cvvs(
    text: str, runs: list[list[_Digits]], pending: bool, others: Sequence[Match]
) -> tuple[list[Match], bool]:
    """Security codes, and whether a phrase near the end still waits for its digits (the
    speaker's next utterance: ``pending`` there). Another match or a label between the
    phrase and the digits ends the phrase's reach (so a second pass finds what the first
    did: labels are shorter than what they replace)."""
    labels = [(m.start(), m.end()) for m in _LABEL.finditer(text)]
    phrases = [  # "[security code]", a label of ours, is not the phrase
        m.end() for m in _CVV_WORDS.finditer(text) if not any(a <= m.start() < b for a, b in labels)
    ]
    starts = ([0] if pending else []) + phrases
    walls = [m.start for m in others] + [a for a, _ in labels]
    found = []
    for run in _outside(runs, others):
        digits = "".join(x.digits for x in run)
        if not 3 <= len(digits) <= 4:
            continue
        at = run[0].start
        if any(
            p <= at
            and _words_between(text, p, at) <= CVV_WORDS
            and not any(p <= w < at for w in walls)
            for p in starts
        ):
            found.append(Match(Kind.CVV, run[0].start, run[-1].end))
    last = phrases[-1] if phrases else None
    waiting = (
        last is not None
        and not any(m.start >= last for m in found)
        and _words_between(text, last, len(text)) <= CVV_WORDS
    )
    return found, waiting


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SPOKEN_EMAIL = re.compile(
    r"\b[a-z0-9]+(?:\s+(?:dot|underscore|dash|hyphen)\s+[a-z0-9]+)*\s+at\s+[a-z0-9]+"
    r"(?:\s+(?:dot|dash|hyphen)\s+[a-z0-9]+)*\s+dot\s+"
    r"(?:com|net|org|edu|gov|io|co|uk|us|ca|de|fr|au|ie|info|biz|me)\b",
    re.IGNORECASE,
)


def _emails(text: str) -> list[Match]:
    return [
        Match(Kind.EMAIL, m.start(), m.end())
        for p in (_EMAIL, _SPOKEN_EMAIL)
        for m in p.finditer(text)
    ]


_NUMBERS = frozenset({Kind.CARD, Kind.CVV, Kind.SSN, Kind.PHONE})


def _phones(text: str, runs: list[list[_Digits]], regions: tuple[str, ...]) -> list[Match]:
    """Phone numbers Google's libphonenumber (``phonenumbers``) takes as valid for one of
    ``regions``, written (its matcher: ``(415) 555-2671``, ``+44 20 7946 0958``) or read
    out (a run with a digit word in it, its digits parsed). Imported on first use: only a
    screen that redacts phones pays for its metadata."""
    import phonenumbers

    found = [
        Match(Kind.PHONE, m.start, m.end)
        for region in regions
        for m in phonenumbers.PhoneNumberMatcher(text, region, phonenumbers.Leniency.VALID)
    ]
    for run in runs:
        digits = "".join(x.digits for x in run)
        spoken = any(not text[x.start].isdigit() for x in run)
        if spoken and 5 <= len(digits) <= 17 and any(_valid(digits, r) for r in regions):
            found.append(Match(Kind.PHONE, run[0].start, run[-1].end))
    return found


def _valid(digits: str, region: str) -> bool:
    import phonenumbers

    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(digits, region))
    except phonenumbers.NumberParseException:
        return False


def parse_regions(text: str) -> tuple[str, ...]:
    """``US,GB`` (``PHONE_REGIONS``): the regions whose national forms count as phone
    numbers (an international one, ``+44 ...``, counts whatever they are); a ValueError
    names a code libphonenumber does not know."""
    import phonenumbers

    codes = tuple(dict.fromkeys(c.strip().upper() for c in text.split(",") if c.strip()))
    wrong = [c for c in codes if c not in phonenumbers.SUPPORTED_REGIONS]
    if wrong or not codes:
        raise ValueError(
            f"must be a comma-separated set of ISO 3166 region codes such as US,GB (got {text!r})"
        )
    return codes


def find(
    text: str,
    kinds: frozenset[Kind],
    *,
    cvv_pending: bool = False,
    regions: tuple[str, ...] = PHONE_REGIONS,
) -> tuple[list[Match], bool]:
    """Every match of ``kinds`` in ``text``, in order and not overlapping, and whether a
    security-code phrase at its end waits for the speaker's next utterance."""
    matches, waiting = _find_once(text, kinds, cvv_pending, regions)
    if Kind.PHONE not in kinds:  # the others are read so that a second pass finds nothing
        return matches, waiting
    # libphonenumber's matcher reads the digits around a number: what the others took out
    # can leave one, and one taken out can leave a social security number. Read again what
    # the labels leave until nothing more is found (each pass takes digits out).
    while True:
        labelled = _labelled(matches)
        more, _ = _find_once(_replace(text, matches), kinds, cvv_pending, regions)
        more = [m for m in map(labelled, more) if m is not None]
        if not more:
            return matches, waiting
        matches = sorted(matches + more, key=lambda m: m.start)


def _labelled(matches: Sequence[Match]) -> Callable[[Match], Match | None]:
    """A match in the text with ``matches`` labelled, back in the text's own offsets (none
    for one that takes in a label: it is about the label's words)."""
    spans = []  # (start, end) of each label in the labelled text, and its match
    shift = 0
    for m in matches:
        start = m.start - shift
        spans.append((start, start + len(LABELS[m.kind]), m))
        shift += (m.end - m.start) - len(LABELS[m.kind])

    def back(found: Match) -> Match | None:
        moved = 0
        for start, end, m in spans:
            if found.start < end and start < found.end:
                return None
            if end <= found.start:
                moved = m.end - end
        return Match(found.kind, found.start + moved, found.end + moved)

    return back


def _find_once(
    text: str, kinds: frozenset[Kind], cvv_pending: bool, regions: tuple[str, ...]
) -> tuple[list[Match], bool]:
    found: list[Match] = []
    waiting = False
    words = _words(text)
    numbers = kinds & _NUMBERS and (
        _ASCII_DIGIT.search(text) is not None or not _NUMBER_WORDS.isdisjoint(words)
    )
    runs = _runs(text, _digit_items(text)) if numbers else []
    if runs and Kind.CARD in kinds:
        found += _cards(runs)
    if numbers and Kind.PHONE in kinds:
        found += [m for m in _phones(text, runs, regions) if not _covered((m.start, m.end), found)]
    if runs and Kind.SSN in kinds:  # in what the others left, as a second pass reads it
        found += _ssns(text, _outside(runs, found))
    if Kind.EMAIL in kinds and ("@" in text or not _EMAIL_WORDS.isdisjoint(words)):
        found += _emails(text)
    if Kind.CVV in kinds and (runs or not _CVV_PHRASE_WORDS.isdisjoint(words)):
        # A phrase alone: the digits come next. Last, as the others end a phrase's reach.
        cvvs, waiting = _cvvs(text, runs, cvv_pending, found)
        found += cvvs
    if not found:
        return found, waiting
    kept: list[Match] = []
    for match in sorted(found, key=lambda m: (m.start, -m.end)):
        if not kept or match.start >= kept[-1].end:
            kept.append(match)
    return kept, waiting


def redact(
    text: str, kinds: frozenset[Kind] = DEFAULT_KINDS, regions: tuple[str, ...] = PHONE_REGIONS
) -> tuple[str, Counter[Kind]]:
    """``text`` with each match replaced by its label, and how many of each kind."""
    matches, _ = find(text, kinds, regions=regions)
    return _replace(text, matches), Counter(m.kind for m in matches)


def _replace(text: str, matches: Sequence[Match]) -> str:
    if not matches:
        return text
    parts = []
    at = 0
    for m in matches:
        parts += [text[at : m.start], LABELS[m.kind]]
        at = m.end
    parts.append(text[at:])
    return "".join(parts)


def open_run(text: str, card_words: bool) -> tuple[int, int] | None:
    """The span of a digit run at the end of ``text`` (nothing after it but punctuation or
    space) that a next group could still make a card of (or a longer one: a card found in
    it may be the first 16 of 19)."""
    items = _digit_items(text)
    if not items:
        return None
    run = _runs(text, items)[-1]
    start, end = run[0].start, run[-1].end
    if text[end:].strip(" \t.,;:-"):
        return None
    digits = "".join(x.digits for x in run)
    if len(digits) >= 19:  # the longest card: nothing a next group adds makes one more
        return None
    starts_as_card = len(digits) >= 4 and digits[0] in "23456"
    return (start, end) if card_words or starts_as_card else None


# --- across a speaker's utterances ------------------------------------------------------


_RUN_LIKE = re.compile(r"[0-9][0-9\s.\-]{11,}[0-9]")  # greedy, no nesting: one pass
_LONG_SEPARATOR = re.compile(r"[\s.\-]{4,}")
_GROUPS = re.compile(r"[\s.\-]+")


def _written_card(text: str) -> bool:
    """Whether written digits alone (groups between spaces, dashes, dots) hold a card: the
    card rule on the groups, without the tokens (ids and times are digits everywhere)."""
    for stretch in _RUN_LIKE.findall(text):
        if stretch.isdigit():  # one group (an epoch time, an id): one window
            if _has_card([stretch]):
                return True
            continue
        for run in _LONG_SEPARATOR.split(stretch):  # 4 separators or more end a run
            groups = [g for g in _GROUPS.split(run) if g]
            if sum(map(len, groups)) >= 13 and any(
                _has_card(groups[i:]) for i in range(len(groups))
            ):
                return True
    return False


_SPACES = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""What Python's ``\\s`` matches in a str pattern (tests/test_sensitive.py holds them equal):
RE2's ``\\s`` is ASCII only."""
_STEMS = {  # each phrase of _CVV_WORDS, _CARD_WORDS and _SSN_WORDS holds one of its kind's
    Kind.CVV: ("cv", "cid", "secur", "verif", "digit"),
    Kind.CARD: ("card", "visa", "master", "amex", "american", "discover", "credit", "debit"),
    Kind.SSN: ("ssn", "social"),
}
_STEMS[Kind.CARD] += ("long",)  # "long number"


_SEP = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in _SPACES + ".-") + "]"  # RE2's syntax
_RUN_TAIL = re2.compile(rf"(?:[0-9]|{_SEP})*".encode())


@functools.cache
def _frame_patterns(kinds: frozenset[Kind], digits: bool) -> tuple[Any, Any, Any]:
    """RE2 patterns for what a frame's text could hold of ``kinds`` (``None`` where there is
    nothing to look for): ``sure``, of which a match is enough; ``card``, whole groups of
    13-19 digits that start as a card (all of the card rule but the Luhn check); and the two
    as one (``card`` its group), for the one scan most frames get. ``digits``: whether the
    text holds an ASCII digit (without one only digit words and addresses can be in it).
    RE2 runs each as one DFA over the bytes, in C, where Python's ``re`` tries each
    alternative at each digit of a frame's ids and times (the cost of a flood of frames set
    aside: benchmarks/README.md)."""
    words = "|".join(sorted(w.decode() for w in _NUMBER_WORDS))
    sure = [rf"(?:^|[^A-Za-z])(?i:{words})(?:[^A-Za-z]|$)"] if kinds & _NUMBERS else []
    if Kind.EMAIL in kinds:
        sure += ["@", "(?i:dot)"]
    card = ""
    if digits:
        stems = [stem for k in Kind if k in kinds for stem in _STEMS.get(k, ())]
        sure += [f"(?i:{'|'.join(stems)})"] if stems else []
        if Kind.PHONE in kinds:  # 5 digits or more, as libphonenumber's matcher takes them
            sure.append(r"[0-9](?:[^A-Za-z]{0,4}[0-9]){4}")
        if Kind.SSN in kinds:  # 3-2-4 digits (9 alone need a phrase: a stem above)
            sure.append(rf"[0-9]{{3}}{_SEP}{{1,3}}[0-9]{{2}}{_SEP}{{1,3}}[0-9]{{4}}")
        if Kind.CARD in kinds:
            # whole groups, not glued to letters either (_ITEM: "e65" in an id is a word)
            digit = rf"{_SEP}{{0,3}}[0-9]"
            window = rf"[2-6](?:{digit}){{12,18}}|1(?:{digit}){{14}}"
            card = rf"(?:^|[^0-9A-Za-z])(?:{window})(?:[^0-9A-Za-z]|$)"
    either = "|".join(sure)
    if card:  # the sure first: at one start, leftmost-first takes the first alternative
        either = f"(?:{either})|({card})" if either else f"({card})"
    return (
        re2.compile("|".join(sure).encode()) if sure else None,
        re2.compile(card.encode()) if card else None,
        re2.compile(either.encode()) if either else None,
    )


def _worth_reading(text: str, kinds: frozenset[Kind]) -> bool:
    """For a frame set aside and its strings (ids, times, versions: digits everywhere, no
    card): whether the screen could change ``text`` (no false "no"), in one scan in C for
    most frames. Where it first finds what may be a card, nothing sure came before it; the
    rest is scanned for the sure, and each possible card's run read by
    :func:`_written_card` (the Luhn check, on every window of it from there)."""
    sure, card, either = _frame_patterns(kinds, _ASCII_DIGIT.search(text) is not None)
    if either is None:
        return False
    encoded = text.encode("utf-8", "surrogatepass")
    first = either.search(encoded)
    if first is None:
        return False
    if card is None or first.start(1) < 0:
        return True
    if sure is not None and sure.search(encoded, first.start() + 1) is not None:
        return True
    at = first.start()
    while (m := card.search(encoded, at)) is not None:
        end = _RUN_TAIL.match(encoded, m.end()).end()
        if _written_card(encoded[m.start() : end].decode("utf-8", "surrogatepass")):
            return True
        at = end
    return False


@dataclass
class _Held:
    utterances: list[Utterance]
    since_tick_ms: int


@dataclass
class Screen:
    """What :data:`kinds` finds, taken out of every utterance before the ring, with the
    holding the module docstring describes. Counts what it replaced, by kind."""

    kinds: frozenset[Kind] = DEFAULT_KINDS
    phone_regions: tuple[str, ...] = PHONE_REGIONS
    hold_ms: int = HOLD_MS
    hold_utterances: int = HOLD_UTTERANCES
    counts: Counter[str] = field(default_factory=Counter)
    _held: dict[tuple[str, str], _Held] = field(default_factory=dict)
    _cvv_pending: set[tuple[str, str]] = field(default_factory=set)
    _gate: frozenset[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self._gate = _gate_words(self.kinds)

    @property
    def held(self) -> int:
        return sum(len(h.utterances) for h in self._held.values())

    def final(self, utterance: Utterance, tick_ms: int) -> list[Utterance]:
        """A final utterance: what may go out now, redacted, in order (the held ones of its
        speaker first); nothing while it ends in a run that may still become a card."""
        if not self.kinds:
            return [utterance]
        plain = not _maybe_any(utterance.text, self._gate)
        if plain and not self._held and not self._cvv_pending:  # most utterances: this alone
            return [utterance]
        key = (utterance.conversation_id, utterance.speaker)
        if plain and key not in self._held and key not in self._cvv_pending:
            return [utterance]
        held = self._held.pop(key, None)
        group = (held.utterances if held else []) + [utterance]
        since = held.since_tick_ms if held else tick_ms
        hold = len(group) < self.hold_utterances and tick_ms - since < self.hold_ms
        return self._let_go(key, group, since, hold=hold)

    def partial(self, utterance: Utterance) -> Utterance:
        """A partial goes out at once (a flush: nothing follows it in time to be checked
        with it), redacted, its trailing possible card masked."""
        if not self.kinds:
            return utterance
        key = (utterance.conversation_id, utterance.speaker)
        [out] = self._let_go(key, [utterance], 0, hold=False, consume_cvv=False)
        return out

    def text(self, text: str) -> str:
        """A fragment set aside, redacted, its trailing run masked as a final's would be
        when its hold ends (a fragment is part of what a speaker goes on saying)."""
        return self._alone(text, only_after_card_words=False)

    def _alone(self, text: str, *, only_after_card_words: bool) -> str:
        matches, _ = find(text, self.kinds, regions=self.phone_regions)
        spans = [(m.start, m.end, LABELS[m.kind]) for m in matches]
        if Kind.CARD in self.kinds and _maybe_digits(text):
            card_words = bool(_CARD_WORDS.search(text))
            trailing = open_run(text, card_words)
            if only_after_card_words and not card_words:
                trailing = None
            if trailing is not None and not _covered(trailing, matches):
                spans.append((trailing[0], trailing[1], MASKED))
                self.counts["number"] += 1
        for m in matches:
            self.counts[m.kind.value] += 1
        return _apply(text, sorted(spans))

    def frame(self, frame: str | bytes) -> str:
        """A frame set aside, as it goes into the dead-letter file: a frame that parses as
        JSON with each of its strings redacted (and written again only if one was); one
        that does not (cut short, not JSON) redacted as text, whole. A frame with nothing
        to redact is kept exactly as it came; bytes that are not UTF-8 are escaped
        (``\\xff``). One check of the whole frame first: most frames of a flood have
        nothing to find, and pay only that. It reads the frame as it came: a frame with a
        backslash that parses (a JSON escape: ``\\u0034`` is a 4) has its strings read.

        A frame's trailing digit run is masked only after card words: its end is where a
        string ended or where the frame was cut, and nothing the speaker said next is in
        it; an id or a version ending in four digits is kept as it is."""
        text = frame.decode("utf-8", "backslashreplace") if isinstance(frame, bytes) else frame
        if not self.kinds:
            return text
        clean = not _worth_reading(text, self.kinds)
        if clean and "\\" not in text:
            return text
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return text if clean else self._alone(text, only_after_card_words=True)
        redacted = self._strings(value)
        return text if redacted == value else json.dumps(redacted, ensure_ascii=False)

    def _strings(self, value: object) -> object:
        if isinstance(value, str):
            if not _worth_reading(value, self.kinds):
                return value
            return self._alone(value, only_after_card_words=True)
        if isinstance(value, list):
            return [self._strings(v) for v in value]
        if isinstance(value, dict):
            return {k: self._strings(v) for k, v in value.items()}
        return value

    def batch(self, utterances: Sequence[Utterance]) -> list[Utterance]:
        """A whole batch at once (the backfill's phrases): each speaker's consecutive finals
        checked together, nothing held past the batch. As many out as in."""
        out = [u for utterance in utterances for u in self.final(utterance, 0)]
        return out + self.release()

    def due(self, tick_ms: int) -> list[Utterance]:
        """The groups held past :attr:`hold_ms`, let go (their trailing run masked)."""
        over = [k for k, h in self._held.items() if tick_ms - h.since_tick_ms >= self.hold_ms]
        return [
            u for k in over for u in self._let_go(k, self._held.pop(k).utterances, 0, hold=False)
        ]

    def release(self, conversation_id: str | None = None) -> list[Utterance]:
        """Every group held (of one conversation: its session ended), let go."""
        keys = [k for k in self._held if conversation_id is None or k[0] == conversation_id]
        return [
            u for k in keys for u in self._let_go(k, self._held.pop(k).utterances, 0, hold=False)
        ]

    def _let_go(
        self,
        key: tuple[str, str],
        group: list[Utterance],
        since: int,
        *,
        hold: bool,
        consume_cvv: bool = True,
    ) -> list[Utterance]:
        texts = [u.text for u in group]
        joined = " ".join(texts)
        pending = key in self._cvv_pending
        matches, waiting = find(joined, self.kinds, cvv_pending=pending, regions=self.phone_regions)
        trailing = None
        if Kind.CARD in self.kinds and _maybe_digits(joined):
            trailing = open_run(joined, bool(_CARD_WORDS.search(joined)))
        if hold and trailing is not None:
            self._held[key] = _Held(group, since)
            return []
        if consume_cvv:
            self._cvv_pending.discard(key)
            if waiting:
                self._cvv_pending.add(key)
        spans = [(m.start, m.end, LABELS[m.kind]) for m in matches]
        if trailing is not None and not _covered(trailing, matches):
            spans.append((trailing[0], trailing[1], MASKED))
            self.counts["number"] += 1
        for m in matches:
            self.counts[m.kind.value] += 1
        return _split_back(group, texts, sorted(spans))


def _covered(span: tuple[int, int], matches: Sequence[Match]) -> bool:
    return any(m.start < span[1] and span[0] < m.end for m in matches)


def _apply(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
    parts = []
    at = 0
    for start, end, label in spans:
        parts += [text[at:start], label]
        at = end
    parts.append(text[at:])
    return "".join(parts)


def _split_back(
    group: list[Utterance], texts: list[str], spans: Iterable[tuple[int, int, str]]
) -> list[Utterance]:
    """Apply ``spans`` of the texts joined by one space to each text: a span that crosses
    from one utterance into the next leaves its label in each part it covered."""
    spans = list(spans)
    if not spans:
        return group
    out = []
    offset = 0
    for utterance, text in zip(group, texts, strict=True):
        lo, hi = offset, offset + len(text)
        parts = []
        at = lo
        for start, end, label in spans:
            if end <= lo or start >= hi:
                continue
            s, e = max(start, lo), min(end, hi)
            parts += [text[at - lo : s - lo], label]
            at = e
        parts.append(text[at - lo :])
        new = "".join(parts)
        out.append(utterance if new == text else msgspec.structs.replace(utterance, text=new))
        offset = hi + 1
    return out
