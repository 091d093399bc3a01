"""Retry decisions and timing: what an HTTP outcome means, backoff, ``Retry-After``. Pure.

:func:`classify` is the one table, shared by the token client, the Notifications REST calls
and the InfluxDB sink, from an outcome (a status with its headers, or a network error) to a
:class:`Decision`: use it, retry after N s, renew the token, split the batch, create the
database, or give up with a message.

Full jitter (a uniform draw in ``[0, min(cap, base * 2**attempt)]``) spreads reconnecting
workers apart instead of having them hammer a recovering server in lockstep. A server's
``Retry-After`` (delta-seconds or an HTTP-date) wins over our own guess, capped at 600 s as
Telegraf does, so a misconfigured proxy cannot park us for a day.
"""

from __future__ import annotations

import enum
import json
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


class Service(enum.Enum):
    """Whom we asked: the same status means different things from each."""

    LOGIN = "the Genesys login host"
    GENESYS_API = "the Genesys API"
    TRANSCRIPT_STORE = "the post-call transcript's pre-signed URL"
    INFLUX_V1 = "InfluxDB 1.x"
    INFLUX_V2 = "InfluxDB 2.x"
    INFLUX_V3 = "InfluxDB 3.x"


class Action(enum.Enum):
    DONE = "done"  # use the answer (404 from the Genesys API too: the caller reads it)
    RETRY = "retry"  # after ``retry_after_s``, or our own backoff when None
    RENEW_TOKEN = "renew token"  # then retry
    SPLIT = "split"  # some points refused, or the body too large: halve and resend
    CREATE_DATABASE = "create database"  # InfluxDB 1.x said the database is missing
    RENEW_URL = "renew url"  # a pre-signed URL expired: ask the API for a new one, then retry
    FATAL = "fatal"  # retrying cannot help; the caller says what to check


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came back from one HTTP request: a status, or ``error`` when nothing did."""

    status: int | None
    body: str = ""
    retry_after: str | None = None  # the raw header
    error: str | None = None  # the transport error, described

    def describe(self) -> str:
        if self.status is None:
            return self.error or "no response"
        return f"HTTP {self.status} {_said(self.body)}".strip()


def _said(body: str) -> str:
    """What an error body says: the messages of a JSON body (1.x ``error``, 2.x ``message``,
    3.x ``error`` and ``data.error_message``), else its first 200 characters."""
    try:
        value = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    if not isinstance(value, dict):
        return body.strip()[:200]
    said = [str(value[k]) for k in ("error", "message") if value.get(k)]
    data = value.get("data")
    for item in data if isinstance(data, list) else [data]:
        if isinstance(item, dict) and item.get("error_message"):
            said.append(f"line {item.get('line_number')}: {item['error_message']}")
    return "; ".join(said)[:500] if said else body.strip()[:200]


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    detail: str  # what happened, for the log line or the error message
    retry_after_s: float | None = None


def classify(service: Service, outcome: Outcome, now_epoch_s: float) -> Decision:
    """The one table of what an HTTP outcome means, for auth, the Genesys API and the sink.

    Transport errors, 429 and 5xx are retried everywhere (``Retry-After`` honoured); what a
    4xx means depends on ``service``.
    """
    status, detail = outcome.status, outcome.describe()
    if status is None:
        return Decision(Action.RETRY, detail)
    if 200 <= status < 300:
        return Decision(Action.DONE, detail)
    if status == 429 or status >= 500:
        return Decision(Action.RETRY, detail, parse_retry_after(outcome.retry_after, now_epoch_s))
    if service is Service.GENESYS_API:
        if status == 401:
            return Decision(Action.RENEW_TOKEN, detail)
        if status == 404:
            return Decision(Action.DONE, detail)
        return Decision(Action.FATAL, detail)
    if service is Service.TRANSCRIPT_STORE:
        # S3 answers an expired pre-signed URL with 403 AccessDenied "Request has expired"
        # (400 from some regions' endpoints); the API hands out a fresh one.
        if status in (400, 403):
            return Decision(Action.RENEW_URL, detail)
        if status == 404:
            return Decision(Action.DONE, detail)
        return Decision(Action.FATAL, detail)
    if service is Service.LOGIN:
        return Decision(Action.FATAL, detail)
    if status == 413:
        return Decision(Action.SPLIT, detail)
    if status in (400, 422):
        if service is Service.INFLUX_V1 and "database is required" in outcome.body:
            return Decision(Action.FATAL, detail)
        return Decision(Action.SPLIT, detail)
    if status == 404 and service is Service.INFLUX_V1 and "database not found" in outcome.body:
        return Decision(Action.CREATE_DATABASE, detail)
    return Decision(Action.FATAL, detail)
