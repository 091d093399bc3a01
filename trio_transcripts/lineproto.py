"""Utterances as InfluxDB line protocol: the schema, idempotent timestamps, escaping. Pure.

Schema (default)::

    transcriptions,conversationId=<id>,origin=<live|backfill>,speaker=<who>
        utteranceId="..",text="..",confidence=<float>,duration_ms=<int>i,final=<bool>,
        fragments=<int>i[,extras] <ns>

``origin`` is a tag, so ``WHERE origin = 'backfill'`` finds what the post-call backfill added
(``backfill.py``) without a scan, at the cost of one more series per conversation and speaker.

``utteranceId`` is a field, not a tag: one series per utterance would exhaust InfluxDB 1.x's
default ``max-series-per-database`` (1,000,000) within days at a busy contact centre, after
which every write fails. ``Schema(utterance_id_as_tag=True)`` keeps the reference design's
layout for those who accept that risk.

Timestamp: ``start_ms * 1_000_000 + tiebreak(utteranceId)``, written in nanoseconds. The
millisecond stays exact (``ts // 1_000_000 == start_ms``); the tiebreak, a hash of the
utteranceId in ``[0, 999_999]``, keeps two utterances that start in the same millisecond
apart (unless they share conversation, speaker, millisecond *and* a one-in-a-million hash),
while the same utterance written twice (a retry, a re-delivery, a spool replay) lands on the
same point and overwrites itself.

Text round-trips exactly, with two documented normalisations the protocol forces on us:
CR, LF and CRLF become one space (line protocol has no newline), and a tag value that would
end in a backslash gets a trailing space (1.x cannot parse a tag value ending in ``\\``).
Empty tag values are omitted, never sent (InfluxDB rejects them).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from dataclasses import dataclass

from .model import Extras, Utterance

NS_PER_MS = 1_000_000
DEFAULT_MEASUREMENT = "transcriptions"

_NEWLINES = re.compile(r"\r\n|\r|\n")
_KEY_SPECIALS = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEASUREMENT_SPECIALS = str.maketrans({",": r"\,", " ": r"\ "})
_STRING_SPECIALS = str.maketrans({"\\": "\\\\", '"': '\\"'})


@dataclass(frozen=True, slots=True)
class Schema:
    measurement: str = DEFAULT_MEASUREMENT
    utterance_id_as_tag: bool = False


def tiebreak(utterance_id: str) -> int:
    """A deterministic value in ``[0, 999_999]`` derived from ``utterance_id``."""
    digest = hashlib.blake2b(utterance_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big") % NS_PER_MS


def timestamp_ns(utterance: Utterance) -> int:
    return utterance.start_ms * NS_PER_MS + tiebreak(utterance.utterance_id)


def normalise_text(value: str) -> str:
    """What InfluxDB will store for ``value`` in a string field (see the module docstring)."""
    return _NEWLINES.sub(" ", value) if ("\n" in value or "\r" in value) else value


def normalise_tag(value: str) -> str:
    """What InfluxDB will store for ``value`` as a tag value."""
    value = normalise_text(value)
    return value + " " if value.endswith("\\") else value


def escape_key(value: str) -> str:
    """A tag key, tag value or field key: commas, equals signs and spaces escaped."""
    return normalise_tag(value).translate(_KEY_SPECIALS)


def escape_string(value: str) -> str:
    """A string field value, with its quotes: backslashes and double quotes escaped."""
    return '"' + normalise_text(value).translate(_STRING_SPECIALS) + '"'


def render_float(value: float) -> str:
    """As influxdb-client's ``Point`` writes floats: ``repr`` without a trailing ``.0``."""
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return render_float(value)
    return escape_string(value)


def encode(utterance: Utterance, schema: Schema = Schema()) -> str:
    """One utterance as one line of line protocol (no trailing newline).

    Tags and fields are sorted by key, floats rendered as influxdb-client's ``Point`` does, so
    the line is byte-for-byte what ``Point`` would produce for the same values, except where
    ``Point`` is wrong for InfluxDB 1.x (see :func:`normalise_tag`; ``tests/test_lineproto.py``
    holds the property).

    What is the same for many utterances is rendered once and remembered: the series (the
    measurement and its tags) per conversation and speaker, and the layout of the fields per
    set of extras (their keys sorted among ours, their values rendered), so an utterance costs
    its own values only.
    """
    confidence = utterance.confidence
    has_confidence = confidence is not None and math.isfinite(confidence)
    layout = _field_layout(utterance.extras, has_confidence, schema.utterance_id_as_tag)
    if layout is None:
        return _encode_any(utterance, schema)
    series = _series(
        schema.measurement, utterance.conversation_id, utterance.origin, utterance.speaker
    )
    if schema.utterance_id_as_tag and utterance.utterance_id:
        series += ",utteranceId=" + escape_key(utterance.utterance_id)
    fields = layout.format(
        c=render_float(float(confidence)) if has_confidence else "",  # type: ignore[arg-type]
        d=utterance.end_ms - utterance.start_ms,
        f="true" if utterance.final else "false",
        n=utterance.fragments,
        t=escape_string(utterance.text),
        u=escape_string(utterance.utterance_id),
    )
    return f"{series} {fields} {timestamp_ns(utterance)}"


@functools.lru_cache(maxsize=4096)
def _series(measurement: str, conversation_id: str, origin: str, speaker: str) -> str:
    """The measurement and the tags of one conversation, origin and speaker (sorted by key,
    empty values omitted)."""
    tags = "".join(
        f",{key}={escape_key(value)}"
        for key, value in (
            ("conversationId", conversation_id),
            ("origin", origin),
            ("speaker", speaker),
        )
        if value
    )
    return measurement.translate(_MEASUREMENT_SPECIALS) + tags


_OURS = {"duration_ms": "{d}i", "final": "{f}", "fragments": "{n}i", "text": "{t}"}


@functools.lru_cache(maxsize=4096)
def _field_layout(extras: Extras, has_confidence: bool, id_as_tag: bool) -> str | None:
    """The fields as a ``str.format`` template: the extras rendered, ours as placeholders,
    all sorted by key. ``None`` when an extra's key is one of ours: then :func:`_encode_any`
    sorts the two by value as well, as ``Point`` would."""
    ours = dict(_OURS)
    if not id_as_tag:
        ours["utteranceId"] = "{u}"
    if has_confidence:
        ours["confidence"] = "{c}"
    fields = [(key, template) for key, template in ours.items()]
    for key, value in extras:
        escaped = escape_key(key)
        if escaped in ours:
            return None
        rendered = _value(value).replace("{", "{{").replace("}", "}}")
        fields.append((escaped.replace("{", "{{").replace("}", "}}"), rendered))
    fields.sort()
    return ",".join(f"{key}={template}" for key, template in fields)


def _encode_any(utterance: Utterance, schema: Schema) -> str:
    """:func:`encode` for any utterance, with nothing remembered."""
    tags = [
        ("conversationId", utterance.conversation_id),
        ("origin", utterance.origin),
        ("speaker", utterance.speaker),
    ]
    fields = [
        ("duration_ms", f"{utterance.duration_ms}i"),
        ("final", "true" if utterance.final else "false"),
        ("fragments", f"{utterance.fragments}i"),
        ("text", escape_string(utterance.text)),
    ]
    if schema.utterance_id_as_tag:
        tags.append(("utteranceId", utterance.utterance_id))
    else:
        fields.append(("utteranceId", escape_string(utterance.utterance_id)))
    confidence = utterance.confidence
    if confidence is not None and math.isfinite(confidence):
        fields.append(("confidence", render_float(float(confidence))))
    fields.extend((escape_key(key), _value(value)) for key, value in utterance.extras)
    tags.sort()
    fields.sort()
    tag_text = "".join(f",{key}={escape_key(value)}" for key, value in tags if value)
    field_text = ",".join(f"{key}={value}" for key, value in fields)
    measurement = schema.measurement.translate(_MEASUREMENT_SPECIALS)
    return f"{measurement}{tag_text} {field_text} {timestamp_ns(utterance)}"


def encode_batch(utterances: list[Utterance], schema: Schema = Schema()) -> bytes:
    """A request body: one line per utterance, newline-terminated, UTF-8."""
    return "".join(encode(u, schema) + "\n" for u in utterances).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Point:
    """One line of line protocol, read back: what InfluxDB would store."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, str | int | float | bool]
    timestamp_ns: int


class LineError(ValueError):
    """A line that is not line protocol; says where it goes wrong."""


def decode(line: str) -> Point:
    """The inverse of :func:`encode` for any line protocol line with a timestamp.

    Escapes are undone as :func:`encode` made them: a backslash before a comma, an equals
    sign or a space in the measurement, keys and tag values (any other backslash is itself),
    and before a double quote or a backslash in string fields. Integers end in ``i``;
    ``t``/``true``/``f``/``false`` are booleans. ``show`` reads the file sink's output with it.
    """
    pos = 0
    n = len(line)

    def until(stops: str, *, what: str) -> str:
        nonlocal pos
        out = []
        while pos < n and line[pos] not in stops:
            if line[pos] == "\\" and pos + 1 < n and line[pos + 1] in ",= ":
                out.append(line[pos + 1])
                pos += 2
                continue
            out.append(line[pos])
            pos += 1
        if not out:
            raise LineError(f"empty {what} at column {pos}: {line[:80]!r}")
        return "".join(out)

    measurement = until(", ", what="measurement")
    tags: dict[str, str] = {}
    while pos < n and line[pos] == ",":
        pos += 1
        key = until("=", what="tag key")
        pos += 1
        tags[key] = until(", ", what="tag value")
    if pos >= n or line[pos] != " ":
        raise LineError(f"no fields in {line[:80]!r}")
    pos += 1
    fields: dict[str, str | int | float | bool] = {}
    while True:
        key = until("=", what="field key")
        pos += 1
        if pos < n and line[pos] == '"':
            pos += 1
            out = []
            while pos < n and line[pos] != '"':
                if line[pos] == "\\" and pos + 1 < n and line[pos + 1] in '"\\':
                    pos += 1
                out.append(line[pos])
                pos += 1
            if pos >= n:
                raise LineError(f"unterminated string field {key!r} in {line[:80]!r}")
            pos += 1
            fields[key] = "".join(out)
        else:
            start = pos
            while pos < n and line[pos] not in ", ":
                pos += 1
            fields[key] = _scalar(line[start:pos], key)
        if pos < n and line[pos] == ",":
            pos += 1
            continue
        break
    if pos >= n or line[pos] != " ":
        raise LineError(f"no timestamp in {line[:80]!r}")
    try:
        timestamp = int(line[pos + 1 :])
    except ValueError:
        raise LineError(f"bad timestamp {line[pos + 1 :]!r}") from None
    return Point(measurement, tags, fields, timestamp)


def _scalar(text: str, key: str) -> int | float | bool:
    if text in ("t", "T", "true", "True", "TRUE"):
        return True
    if text in ("f", "F", "false", "False", "FALSE"):
        return False
    try:
        return int(text[:-1]) if text.endswith(("i", "u")) else float(text)
    except ValueError:
        raise LineError(f"field {key!r} has no valid value: {text!r}") from None
