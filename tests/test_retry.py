"""The one table from an HTTP outcome to a decision, for every service we call."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.retry import (
    RETRY_AFTER_CAP_S,
    Action,
    Backoff,
    Outcome,
    Service,
    classify,
    next_delay,
    parse_retry_after,
)

NOW = 1_773_957_874.0
LOGIN, API, V1, V2 = Service.LOGIN, Service.GENESYS_API, Service.INFLUX_V1, Service.INFLUX_V2
ALL = (LOGIN, API, V1, V2)

TABLE = [
    # (services, status, body, Retry-After, action, seconds)
    (ALL, None, "", None, Action.RETRY, None),
    (ALL, 200, "", None, Action.DONE, None),
    (ALL, 204, "", None, Action.DONE, None),
    (ALL, 429, "", "7", Action.RETRY, 7.0),
    (ALL, 429, "", None, Action.RETRY, None),
    (ALL, 500, "", None, Action.RETRY, None),
    (ALL, 503, "", "Thu, 19 Mar 2026 22:05:04 GMT", Action.RETRY, 30.0),
    (ALL, 502, "", "never", Action.RETRY, None),
    ((LOGIN,), 400, '{"error":"invalid_client"}', None, Action.FATAL, None),
    ((LOGIN,), 401, "", None, Action.FATAL, None),
    ((LOGIN,), 403, "", None, Action.FATAL, None),
    ((API,), 401, "", None, Action.RENEW_TOKEN, None),
    ((API,), 404, "", None, Action.DONE, None),
    ((API,), 400, "", None, Action.FATAL, None),
    ((API,), 403, "", None, Action.FATAL, None),
    ((V1, V2), 400, "partial write: field type conflict", None, Action.SPLIT, None),
    ((V1, V2), 422, "", None, Action.SPLIT, None),
    ((V1, V2), 413, "", None, Action.SPLIT, None),
    ((V1, V2), 401, "", None, Action.FATAL, None),
    ((V1, V2), 403, "", None, Action.FATAL, None),
    ((V1,), 404, '{"error":"database not found: \\"x\\""}', None, Action.CREATE_DATABASE, None),
    ((V2,), 404, '{"error":"database not found"}', None, Action.FATAL, None),
    ((V1, V2), 404, '{"code":"not found","message":"bucket not found"}', None, Action.FATAL, None),
    ((V1,), 400, '{"error":"database is required"}', None, Action.FATAL, None),
    ((V2,), 400, '{"error":"database is required"}', None, Action.SPLIT, None),
    ((V1, V2), 405, "", None, Action.FATAL, None),
]


@pytest.mark.parametrize(
    ("service", "status", "body", "retry_after", "action", "seconds"),
    [
        pytest.param(s, status, body, ra, action, secs, id=f"{s.name}-{status}-{action.name}")
        for services, status, body, ra, action, secs in TABLE
        for s in services
    ],
)
def test_classify(
    service: Service,
    status: int | None,
    body: str,
    retry_after: str | None,
    action: Action,
    seconds: float | None,
) -> None:
    outcome = Outcome(status, body, retry_after, None if status else "ConnectError: refused")
    decision = classify(service, outcome, NOW)
    assert decision.action is action
    assert decision.retry_after_s == seconds
    assert decision.detail == outcome.describe()


def test_detail_says_what_happened() -> None:
    assert Outcome(None, error="ReadTimeout: timed out").describe() == "ReadTimeout: timed out"
    assert Outcome(503, " busy \n").describe() == "HTTP 503 busy"
    assert Outcome(400, '{"error":"partial write: x"}').describe() == "HTTP 400 partial write: x"
    v3 = '{"error":"parsing failed","data":{"line_number":2,"error_message":"bad type"}}'
    assert Outcome(400, v3).describe() == "HTTP 400 parsing failed; line 2: bad type"
    v2 = '{"code":"unprocessable entity","message":"failure writing points"}'
    assert Outcome(422, v2).describe() == "HTTP 422 failure writing points"


@given(st.integers(0, 10**9))
def test_retry_after_seconds_are_capped(seconds: int) -> None:
    assert parse_retry_after(str(seconds), NOW) == min(seconds, RETRY_AFTER_CAP_S)


def test_server_word_wins_over_backoff() -> None:
    rng = random.Random(0)
    assert next_delay(5, 2.5, Backoff(), rng) == 2.5
    assert 0 <= next_delay(5, None, Backoff(0.5, 30), rng) <= 16
