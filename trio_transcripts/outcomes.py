"""httpx answers and errors as :class:`~trio_transcripts.retry.Outcome`, for ``classify``."""

from __future__ import annotations

import httpx

from .retry import Outcome


def outcome_of(response: httpx.Response) -> Outcome:
    return Outcome(response.status_code, response.text[:500], response.headers.get("Retry-After"))


def outcome_of_error(exc: httpx.TransportError) -> Outcome:
    return Outcome(None, error=f"{type(exc).__name__}: {exc or 'no detail'}")
