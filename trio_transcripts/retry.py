"""Retry timing: capped exponential backoff with full jitter, and ``Retry-After``. Pure.

Full jitter (a uniform draw in ``[0, min(cap, base * 2**attempt)]``) spreads reconnecting
workers apart instead of having them hammer a recovering server in lockstep. A server's
``Retry-After`` (delta-seconds or an HTTP-date) wins over our own guess, capped at 600 s as
Telegraf does, so a misconfigured proxy cannot park us for a day.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

RETRY_AFTER_CAP_S = 600.0


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 0.5
    cap_s: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** min(attempt, 62))
        return rng.uniform(0.0, ceiling)


def parse_retry_after(value: str | None, now_epoch_s: float) -> float | None:
    """Seconds from ``now`` that a ``Retry-After`` header asks for, capped; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), RETRY_AFTER_CAP_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - now_epoch_s), RETRY_AFTER_CAP_S)


def next_delay(
    attempt: int, retry_after: float | None, backoff: Backoff, rng: random.Random
) -> float:
    """The wait before the next attempt: the server's word if it gave one, else backoff."""
    return retry_after if retry_after is not None else backoff.delay(attempt, rng)
