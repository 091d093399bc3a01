"""The platform's post-call endpoints: transcript URLs, transcript documents, call details.

Each request carries a fresh token (renewed once on 401). What an answer means is
``retry.py``'s table: for the API a 404 is "not available yet", for a pre-signed URL a 403 is
"expired" (``RENEW_URL``). Transient faults come back as :class:`NotYet` for the caller's
schedule to retry, not retried here: the backfill has hours, and other conversations to get
on with. Shapes: ``wire/transcript.py`` and ``wire/analytics.py``.
"""

from __future__ import annotations

import time

import httpx
import msgspec

from .auth import TokenManager
from .model import Malformed
from .outcomes import outcome_of, outcome_of_error
from .redaction import redact_url
from .retry import Action, Service, classify
from .wire.analytics import CallRecord, DetailsPage, parse_details
from .wire.transcript import parse_transcript_urls

NO_CONVERSATION = "00000000-0000-4000-8000-000000000000"
"""The permission probe's conversation: a valid id no conversation has."""


class NotYet(msgspec.Struct, frozen=True, gc=False):
    """Not available yet (404), or a fault worth waiting out (429, 5xx, no answer)."""

    reason: str
    retry_after_s: float | None = None


class Refused(msgspec.Struct, frozen=True, gc=False):
    """Retrying cannot help (403 on this conversation, an answer we cannot read)."""

    reason: str


class PostCallClient:
    """The platform's post-call endpoints (module docstring)."""

    def __init__(
        self,
        api_url: str,
        tokens: TokenManager,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.tokens = tokens
        self._client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout_s))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def transcript_urls(
        self, conversation_id: str, communication_id: str
    ) -> list[str] | NotYet | Refused:
        path = (
            f"/api/v2/speechandtextanalytics/conversations/{conversation_id}"
            f"/communications/{communication_id}/transcripturls"
        )
        response = await self._api("GET", path)
        if not isinstance(response, httpx.Response):
            return response
        urls = parse_transcript_urls(response.content)
        return Refused(f"transcripturls: {urls.reason}") if isinstance(urls, Malformed) else urls

    async def document(self, url: str) -> bytes | NotYet | Refused | None:
        """A transcript document; ``None`` when its URL expired (ask for new ones)."""
        try:
            response = await self._client.get(url)
        except httpx.TransportError as exc:
            return NotYet(outcome_of_error(exc).describe())
        decision = classify(Service.TRANSCRIPT_STORE, outcome_of(response), time.time())
        if decision.action is Action.RENEW_URL:
            return None
        if response.status_code == 404:
            return NotYet(f"transcript document not there yet: {decision.detail}")
        if decision.action is Action.RETRY:
            return NotYet(decision.detail, decision.retry_after_s)
        if decision.action is Action.DONE:
            return response.content
        return Refused(f"{redact_url(url)}: {decision.detail}")

    async def call(self, conversation_id: str) -> CallRecord | NotYet | Refused:
        """One conversation's details (for its communication ids)."""
        response = await self._api(
            "GET", f"/api/v2/analytics/conversations/{conversation_id}/details"
        )
        if not isinstance(response, httpx.Response):
            return response
        page = parse_details(response.content)
        if isinstance(page, Malformed) or not page.calls:
            reason = page.reason if isinstance(page, Malformed) else "no conversation in it"
            return Refused(f"conversation details: {reason}")
        return page.calls[0]

    async def query(self, body: dict[str, object]) -> DetailsPage | NotYet | Refused:
        """One page of ``POST /api/v2/analytics/conversations/details/query``."""
        response = await self._api("POST", "/api/v2/analytics/conversations/details/query", body)
        if not isinstance(response, httpx.Response):
            return response
        page = parse_details(response.content)
        return Refused(f"details query: {page.reason}") if isinstance(page, Malformed) else page

    async def may_read_transcripts(self) -> Refused | None:
        """The permission probe (module docstring): ``None`` when allowed."""
        answer = await self.transcript_urls(NO_CONVERSATION, NO_CONVERSATION)
        return answer if isinstance(answer, Refused) and "HTTP 403" in answer.reason else None

    async def _api(
        self, method: str, path: str, body: object = None
    ) -> httpx.Response | NotYet | Refused:
        for _ in range(2):  # once more with a new token after a 401
            token = await self.tokens.get()
            try:
                response = await self._client.request(
                    method,
                    self.api_url + path,
                    json=body,
                    headers={"Authorization": f"Bearer {token}"},
                )
            except httpx.TransportError as exc:
                return NotYet(outcome_of_error(exc).describe())
            decision = classify(Service.GENESYS_API, outcome_of(response), time.time())
            if decision.action is Action.RENEW_TOKEN:
                self.tokens.invalidate(token)
                continue
            if response.status_code == 404:
                return NotYet(f"not available yet ({decision.detail})")
            if decision.action is Action.DONE:
                return response
            if decision.action is Action.RETRY:
                return NotYet(decision.detail, decision.retry_after_s)
            return Refused(f"{method} {path}: {decision.detail}")
        return NotYet("HTTP 401 twice: the token was refused")
