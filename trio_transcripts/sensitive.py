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
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec

from .model import Utterance


class Kind(enum.Enum):
    CARD = "card"
    CVV = "cvv"
    SSN = "ssn"
    EMAIL = "email"


LABELS = {
    Kind.CARD: "[card number]",
    Kind.CVV: "[security code]",
    Kind.SSN: "[social security number]",
    Kind.EMAIL: "[email address]",
}
MASKED = "[number]"
"""A trailing digit run held as a possible card's start, let go before a card was read."""

DEFAULT_KINDS = frozenset({Kind.CARD, Kind.CVV})
HOLD_UTTERANCES = 3
HOLD_MS = 10_000
"""A caller reading a card pauses between groups for a few seconds: the bound is that, and
what it costs the held utterances' latency (and only theirs)."""
CVV_WORDS = 8


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
    r"|\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple)\b",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"\[(?:card number|security code|social security number|email address|number)\]"
)
_SEPARATOR = re.compile(r"[\s.\-]{1,3}")
# Cheap tests first, without a false "no": an ASCII digit, or a digit word; '@' or "dot" for
# an address; a security-code phrase's stem. Python's regex alternations cost several times
# these tests.
_ASCII_DIGIT = re.compile(r"[0-9]")
_NUMBER_WORDS = frozenset(w.encode() for w in (*_DIGIT_WORDS, *_REPEATS))
_ONLY_LETTERS = bytes(c | 32 if 65 <= c <= 90 or 97 <= c <= 122 else 32 for c in range(256))


def _has_number_words(text: str) -> bool:
    """A digit word (or double, triple) as a word of its own: every byte that is not an
    ASCII letter made a space and the letters lowered, by one ``bytes.translate`` (C), then
    a set test ("voiceTranscriptionEnabled" holds "one", and is not a number)."""
    return not _NUMBER_WORDS.isdisjoint(text.encode().translate(_ONLY_LETTERS).split())


_CVV_STEMS = ("cv", "cid", "secur", "verif", "digit")


def _maybe_digits(text: str, lowered: str) -> bool:
    return _ASCII_DIGIT.search(text) is not None or _has_number_words(lowered)


def _maybe_any(text: str, kinds: frozenset[Kind]) -> bool:
    """Whether ``text`` could hold anything of ``kinds`` (no false "no")."""
    lowered = text.lower()
    return bool(
        (kinds & _NUMBERS and _maybe_digits(text, lowered))
        or (Kind.CVV in kinds and any(map(lowered.__contains__, _CVV_STEMS)))
        or (Kind.EMAIL in kinds and ("@" in text or "dot" in lowered))
    )


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


_NUMBERS = frozenset({Kind.CARD, Kind.CVV, Kind.SSN})


def find(
    text: str, kinds: frozenset[Kind], *, cvv_pending: bool = False
) -> tuple[list[Match], bool]:
    """Every match of ``kinds`` in ``text``, in order and not overlapping, and whether a
    security-code phrase at its end waits for the speaker's next utterance."""
    found: list[Match] = []
    waiting = False
    lowered = text.lower()
    numbers = kinds & _NUMBERS and _maybe_digits(text, lowered)
    runs = _runs(text, _digit_items(text)) if numbers else []
    if runs and Kind.CARD in kinds:
        found += _cards(runs)
    if runs and Kind.SSN in kinds:
        found += _ssns(text, runs)
    if Kind.EMAIL in kinds and ("@" in text or "dot" in lowered):
        found += _emails(text)
    if Kind.CVV in kinds and (runs or any(map(lowered.__contains__, _CVV_STEMS))):
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


def redact(text: str, kinds: frozenset[Kind] = DEFAULT_KINDS) -> tuple[str, Counter[Kind]]:
    """``text`` with each match replaced by its label, and how many of each kind."""
    matches, _ = find(text, kinds)
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


_SSN_SHAPE = re.compile(r"[0-9]{3}[\s\-]{1,3}[0-9]{2}[\s\-]{1,3}[0-9]{4}|[0-9]{9}")
_THREE_DIGITS = re.compile(r"[0-9][^0-9]*[0-9][^0-9]*[0-9]")
_CARD_STEMS = ("card", "visa", "master", "amex", "american", "discover", "credit", "debit")


def _worth_reading(text: str, kinds: frozenset[Kind]) -> bool:
    """For a frame set aside and its strings (ids, times, versions: digits everywhere, no
    card): whether one could hold a match, in a few scans in C. Written digits alone must
    make 13 in groups for a card, or the shape of an SSN; a code needs its phrase; spoken
    digits need their words. Unlike a speaker's utterance, nothing follows a frame's
    string, so a short run alone is nothing (:meth:`Screen.text` masks a trailing run
    after card words only)."""
    lowered = text.lower()
    if kinds & _NUMBERS and (
        _has_number_words(lowered)
        or (Kind.CARD in kinds and _written_card(text))
        or (Kind.SSN in kinds and _SSN_SHAPE.search(text) is not None)
    ):
        return True
    has_digits = _THREE_DIGITS.search(text) is not None
    if has_digits and Kind.CVV in kinds and any(map(lowered.__contains__, _CVV_STEMS)):
        return True
    if has_digits and Kind.CARD in kinds and any(map(lowered.__contains__, _CARD_STEMS)):
        return True
    if Kind.SSN in kinds and ("ssn" in lowered or "social" in lowered):
        return True
    return Kind.EMAIL in kinds and ("@" in text or "dot" in lowered)


@dataclass
class _Held:
    utterances: list[Utterance]
    since_tick_ms: int


@dataclass
class Screen:
    """What :data:`kinds` finds, taken out of every utterance before the ring, with the
    holding the module docstring describes. Counts what it replaced, by kind."""

    kinds: frozenset[Kind] = DEFAULT_KINDS
    hold_ms: int = HOLD_MS
    hold_utterances: int = HOLD_UTTERANCES
    counts: Counter[str] = field(default_factory=Counter)
    _held: dict[tuple[str, str], _Held] = field(default_factory=dict)
    _cvv_pending: set[tuple[str, str]] = field(default_factory=set)

    @property
    def held(self) -> int:
        return sum(len(h.utterances) for h in self._held.values())

    def final(self, utterance: Utterance, tick_ms: int) -> list[Utterance]:
        """A final utterance: what may go out now, redacted, in order (the held ones of its
        speaker first); nothing while it ends in a run that may still become a card."""
        if not self.kinds:
            return [utterance]
        key = (utterance.conversation_id, utterance.speaker)
        quiet = key not in self._held and key not in self._cvv_pending
        if quiet and not _maybe_any(utterance.text, self.kinds):  # most utterances: one test
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
        """A text on its own (a fragment set aside), redacted, its trailing run masked."""
        matches, _ = find(text, self.kinds)
        spans = [(m.start, m.end, LABELS[m.kind]) for m in matches]
        if Kind.CARD in self.kinds and _maybe_digits(text, text.lower()):
            trailing = open_run(text, bool(_CARD_WORDS.search(text)))
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
        nothing to find, and pay only that."""
        text = frame.decode("utf-8", "backslashreplace") if isinstance(frame, bytes) else frame
        if not self.kinds or not _worth_reading(text, self.kinds):
            return text
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return self.text(text)
        redacted = self._strings(value)
        return text if redacted == value else json.dumps(redacted, ensure_ascii=False)

    def _strings(self, value: object) -> object:
        if isinstance(value, str):
            return self.text(value) if _worth_reading(value, self.kinds) else value
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
        matches, waiting = find(joined, self.kinds, cvv_pending=pending)
        trailing = None
        if Kind.CARD in self.kinds and _maybe_digits(joined, joined.lower()):
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
