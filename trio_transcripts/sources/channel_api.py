"""The Notifications REST client: create a channel, put and read its subscriptions, ask
whether it still exists. Every call carries a fresh token and runs under the one retry
driver (``retrying.py``): a 401 renews the token, 429 and 5xx wait (``Retry-After`` first),
anything else the platform refuses is a :class:`~trio_transcripts.sources.SourceError` that
names it.

The platform's shapes (the SDK's ``Channel``, ``ChannelTopic`` and ``ChannelTopicEntityListing``
models; ``../shared/genesys-api.md``): ``POST /api/v2/notifications/channels`` answers
``{id, connectUri, expires}``; ``POST``/``PUT .../channels/{id}/subscriptions`` take a list
of ``{id: topic}`` and answer ``{entities: [...]}``, where a topic refused carries
``rejectionReason`` and ``missingPermissions``; ``HEAD .../channels/{id}`` is 404 once the
channel is gone. ``sources/notifications.py`` decides what to call and when; the bench opens
its ceiling's channel with it too.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx

from ..auth import TokenManager
from ..outcomes import outcome_of, outcome_of_error
from ..redaction import redact_url
from ..retry import Action, Backoff, Decision, Service, classify
from ..retrying import Tries, retrying
from . import SourceError

log = logging.getLogger("trio_transcripts.source.notifications")

TRANSCRIPTION_PERMISSION = "conversation:transcription:view"
TIMEOUT_S = 10.0  # a REST call that has not answered by then is retried


class ChannelLost(Exception):
    """This channel cannot be used any more; make a new one."""


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: str
    connect_uri: str
    expires_epoch_s: float | None  # None: no expiry given, or unreadable


class ChannelApi:
    def __init__(
        self,
        api_url: str,
        tokens: TokenManager,
        *,
        backoff: Backoff = Backoff(),
        rng: random.Random | None = None,
        timeout_s: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_url = api_url
        self.tokens = tokens
        self.backoff = backoff
        self._rng = rng or random.Random()
        self._client = httpx.AsyncClient(
            base_url=api_url.rstrip("/"), transport=transport, timeout=httpx.Timeout(timeout_s)
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(self, method: str, path: str, json: object = None) -> httpx.Response:
        """A REST call with a fresh token, renewing it on 401 and retrying transient faults;
        the answer once it is one to read (2xx, or 404: the caller says what that means)."""

        async def once() -> tuple[Decision, httpx.Response | None]:
            token = await self.tokens.get()
            try:
                response = await self._client.request(
                    method, path, json=json, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.TransportError as exc:
                return classify(Service.GENESYS_API, outcome_of_error(exc), time.time()), None
            decision = classify(Service.GENESYS_API, outcome_of(response), time.time())
            if decision.action is Action.RENEW_TOKEN:
                self.tokens.invalidate(token)
            return decision, response

        def say(decision: Decision, _retry: int, delay: float) -> None:
            log.warning("%s %s failed (%s); retry in %.2f s", method, path, decision.detail, delay)

        def fail(decision: Decision) -> SourceError:
            return SourceError(
                f"Genesys API {method} {redact_url(self.api_url)}{path} failed: {decision.detail}"
            )

        _, response = await retrying(
            once,
            Tries(self.backoff, self._rng),
            say=say,
            fail=fail,
            again=(Action.RETRY, Action.RENEW_TOKEN),
        )
        assert response is not None, "DONE comes with an answer"
        return response

    async def create_channel(self) -> ChannelInfo:
        response = await self.request("POST", "/api/v2/notifications/channels")
        if response.status_code == 404:
            raise SourceError(
                f"{redact_url(self.api_url)} has no notifications API (404): "
                f"check GENESYS_REGION or GENESYS_API_URL"
            )
        body = response.json()
        expires: float | None = None
        if isinstance(body.get("expires"), str):
            try:
                expires = datetime.fromisoformat(body["expires"]).timestamp()
            except ValueError:
                log.warning("channel expiry %r unreadable; not rotating", body["expires"])
        return ChannelInfo(body["id"], body["connectUri"], expires)

    async def subscribe(self, channel_id: str, method: str, topics: Sequence[str]) -> None:
        """``POST`` (add) or ``PUT`` (exactly these) the channel's topics; raises
        :class:`ChannelLost` when the channel is gone, :class:`SourceError` when a topic is
        refused (with the permissions the platform says are missing)."""
        path = f"/api/v2/notifications/channels/{channel_id}/subscriptions"
        response = await self.request(method, path, [{"id": t} for t in topics])
        if response.status_code == 404:
            raise ChannelLost(f"channel {channel_id} vanished while subscribing")
        rejected = [
            e
            for e in response.json().get("entities", [])
            if isinstance(e, dict) and e.get("rejectionReason")
        ]
        if rejected:
            first = rejected[0]
            missing = ", ".join(first.get("missingPermissions") or []) or "unknown"
            raise SourceError(
                f"Genesys rejected {len(rejected)} subscription(s), e.g. {first.get('id')}: "
                f"{first.get('rejectionReason')} (missing permissions: {missing}). The OAuth "
                f"client's role needs {TRANSCRIPTION_PERMISSION}"
            )

    async def channel_exists(self, channel_id: str) -> bool:
        """Whether the channel still exists (a refusal to say counts as no)."""
        try:
            response = await self.request("HEAD", f"/api/v2/notifications/channels/{channel_id}")
        except SourceError:
            return False
        return response.status_code != 404
