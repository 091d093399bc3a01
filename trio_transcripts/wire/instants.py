"""Instants as UTC epoch milliseconds, exactly: no float rounding, no local time.

The fragment stream of our reference design sends ``startTime``/``endTime`` either as
ISO-8601 strings (any UTC offset) or as epoch milliseconds (a JSON integer or a numeric
string). Both become an ``int`` of milliseconds. Sub-millisecond digits are floored, so an
instant never moves into the next millisecond. An ISO string without an offset is read as
UTC, never as the machine's local time (the reference design's ``new Date(s)`` did the latter).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)

MAX_EPOCH_MS = (2**63 - 1) // 1_000_000 - 1
"""The last millisecond InfluxDB can store: its timestamps are int64 nanoseconds."""
MIN_EPOCH_MS = -(2**63) // 1_000_000 + 1

_NUMERIC = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


def out_of_range(ms: int) -> str | None:
    """Why ``ms`` cannot be stored in InfluxDB, or None when it can."""
    if MIN_EPOCH_MS <= ms <= MAX_EPOCH_MS:
        return None
    shown = str(ms) if -(10**24) < ms < 10**24 else f"of {len(str(abs(ms)))} digits"
    return f"time {shown} ms is outside InfluxDB's range (years 1677 to 2262)"


def parse_instant(value: object) -> int | str:
    """``value`` as epoch ms, or a short reason it is not an instant.

    The common forms (a JSON integer, ``YYYY-MM-DDTHH:MM:SSZ`` with or without three
    fraction digits, a string of ASCII digits) directly; anything else by
    :func:`exact_instant`, which gives the same answer for the common forms too
    (``tests/test_wire_fragments.py`` holds the property).
    """
    if type(value) is int:
        return out_of_range(value) or value
    if type(value) is str:
        ms = _common_form(value)
        if ms is not None:
            return out_of_range(ms) or ms
    return exact_instant(value)


def _common_form(text: str) -> int | None:
    """Epoch ms of ``text`` in one of the common forms, or ``None`` (not one of them).

    The common forms skip what makes :func:`exact_instant` general (stripping, the numeric
    pattern, Decimal): ``datetime.fromisoformat``, in C, reads ``...Z`` forms in ~0.5 us.
    """
    if not text.isascii():
        return None
    if text.isdigit():
        # Longer ones are beyond InfluxDB's range anyway, and ``int`` refuses > 4300 digits.
        return int(text) if len(text) <= 19 else None
    if len(text) not in (20, 24) or text[-1] != "Z" or text[10] != "T":
        return None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (instant - EPOCH) // ONE_MS


def exact_instant(value: object) -> int | str:
    """``value`` as epoch ms by the general converter (any ISO-8601 form ``datetime``
    reads, numbers and numeric strings with decimals), or a short reason it is not one."""
    if isinstance(value, bool):
        return f"expected a time, got {value!r}"
    if isinstance(value, int):
        ms = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            return f"expected a time, got {value!r}"
        ms = int(Decimal(value).to_integral_value(ROUND_FLOOR))
    elif isinstance(value, str):
        text = value.strip()
        if _NUMERIC.match(text):
            ms = int(Decimal(text).to_integral_value(ROUND_FLOOR))
        else:
            try:
                instant = datetime.fromisoformat(text)
            except ValueError:
                return f"time {value[:40]!r} is neither ISO-8601 nor epoch milliseconds"
            if instant.tzinfo is None:
                instant = instant.replace(tzinfo=UTC)
            ms = (instant - EPOCH) // ONE_MS
    else:
        return f"expected a time, got {type(value).__name__}"
    return out_of_range(ms) or ms


def iso_of(ms: int) -> str:
    """The ISO-8601 UTC form of ``ms`` with millisecond digits (for logs and the simulator)."""
    return (EPOCH + ms * ONE_MS).isoformat(timespec="milliseconds").replace("+00:00", "Z")
