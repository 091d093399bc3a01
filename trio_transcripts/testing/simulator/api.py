"""The simulator's REST API, sans I/O: a request in, a response out, no sockets, no clock.

Endpoints (the platform's paths, and the shapes of the official SDKs' models, checked field
by field against ``PureCloudPlatformClientV2`` 269.0.0's ``Channel``, ``ChannelEntityListing``,
``ChannelTopic`` and ``ChannelTopicEntityListing`` by ``tests/test_simulator_models.py``: a
topic's ``state`` is ``Permitted`` or ``Rejected``; a channel is ``id``, ``connectUri`` and
``expires``, in the list as well):

* ``POST /oauth/token``: client credentials (Basic auth checked; others get 401
  ``invalid_client``), ``expires_in`` configurable; the ``token_429``/``token_500`` faults.
* ``POST /api/v2/notifications/channels``, ``GET`` (the list), ``HEAD .../channels/{id}``,
  ``GET|POST|PUT|DELETE .../channels/{id}/subscriptions``: Bearer token required; at most
  1,000 topics a channel; at most 20 channels, a 21st replacing the oldest one without a
  socket (when every one has a socket, 400: our assumption, the limit's text says nothing of
  it); the ``deny_transcription`` fault rejects transcription topics with
  ``missingPermissions``.
* The post-call transcripts (``transcripturls``, ``transcripturl``, the pre-signed URLs) and
  the analytics conversation details: ``postcall.py``.

:class:`SimApi` keeps the tokens and channels; the caller passes ``now`` (its clock) to each
request and serves the answers over HTTP (``sockets.py``). Tests drive it directly, under a
mock clock, through an ``httpx.MockTransport``.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from .calls import Call, iso_ms
from .config import Faults, SimConfig, SimStats
from .postcall import TRANSCRIPT_PREFIX, PostCallApi

MAX_TOPICS = 1000
MAX_CHANNELS = 20
"""Per OAuth client: a new channel replaces the oldest one without a connection
(developer.genesys.cloud forum t/10312, quoting the notification service's limits)."""

Response = tuple[int, bytes, list[tuple[str, str]]]
"""Status, JSON body, extra headers."""


@dataclass
class ApiChannel:
    id: str
    token: str
    expires_at: float  # the caller's clock
    connect_uri: str
    expires: str  # ISO-8601, as the platform gives it
    topics: set[str] = field(default_factory=set)

    def view(self) -> dict[str, str]:
        """The channel as the SDK's ``Channel`` model has it."""
        return {"id": self.id, "connectUri": self.connect_uri, "expires": self.expires}


def json_response(
    status: int, value: object, headers: list[tuple[str, str]] | None = None
) -> Response:
    return status, json.dumps(value).encode(), headers or []


class SimApi:
    """Tokens, channels and subscriptions; ``on_change`` is called when topics change."""

    def __init__(
        self,
        config: SimConfig,
        stats: SimStats,
        on_change: Callable[[], None] = lambda: None,
        calls: list[Call] | None = None,
    ) -> None:
        self.config = config
        self.stats = stats
        self.faults: Faults = config.faults
        self.on_change = on_change
        self.websocket_base = f"ws://{config.host}:{config.port}"  # set once listening
        self.tokens: dict[str, float] = {}
        self.channels: dict[str, ApiChannel] = {}  # oldest first
        self.connected: Callable[[str], bool] = lambda channel_id: False  # set by the server
        self._token_requests = 0
        self.postcall = PostCallApi(
            config, calls or [], lambda: f"http://{config.host}:{self.port}", json_response
        )
        self.port = config.port  # set once listening

    def bearer(self, headers: dict[str, str], now: float) -> str | None:
        """The valid token of an ``Authorization: Bearer`` header (lower-case keys), or None."""
        value = headers.get("authorization", "")
        if not value.lower().startswith("bearer "):
            return None
        token = value[7:].strip()
        expires = self.tokens.get(token)
        return token if expires is not None and now < expires else None

    def expire_channels(self, now: float) -> list[ApiChannel]:
        """Remove and return the channels whose time is up."""
        gone = [c for c in self.channels.values() if c.expires_at <= now]
        for channel in gone:
            del self.channels[channel.id]
        return gone

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, now: float
    ) -> Response:
        """Answer one request; ``headers`` with lower-case names."""
        path = urllib.parse.urlsplit(target).path
        if path == "/oauth/token" and method == "POST":
            return self._token(headers, body, now)
        if path.startswith(TRANSCRIPT_PREFIX) and method == "GET":
            return self.postcall.document(path, now)  # pre-signed: no token
        if self.postcall.handles(path):
            if self.bearer(headers, now) is None:
                return json_response(
                    401, {"message": "authentication required", "code": "bad.credentials"}
                )
            return self.postcall.handle(method, path, body, now)
        if not path.startswith("/api/v2/notifications/channels"):
            return json_response(404, {"message": f"no route {method} {path}", "code": "not.found"})
        token = self.bearer(headers, now)
        if token is None:
            return json_response(
                401, {"message": "authentication required", "code": "bad.credentials"}
            )
        parts = path.rstrip("/").split("/")[5:]  # after /api/v2/notifications/channels
        if not parts:
            if method == "POST":
                return self._create_channel(token, now)
            return json_response(200, {"entities": [c.view() for c in self.channels.values()]})
        channel = self.channels.get(parts[0])
        if channel is None:
            return json_response(
                404, {"message": f"channel {parts[0]} not found", "code": "not.found"}
            )
        if len(parts) == 1 and method == "HEAD":
            return 200, b"", []
        if len(parts) == 2 and parts[1] == "subscriptions":
            return self._subscriptions(channel, method, body)
        return json_response(404, {"message": f"no route {method} {path}", "code": "not.found"})

    def _token(self, headers: dict[str, str], body: bytes, now: float) -> Response:
        self._token_requests += 1
        if self._token_requests <= self.faults.token_429:
            return json_response(429, {"message": "rate limit exceeded"}, [("Retry-After", "1")])
        if self._token_requests <= self.faults.token_429 + self.faults.token_500:
            return json_response(500, {"message": "internal server error"})
        expected = base64.b64encode(
            f"{self.config.client_id}:{self.config.client_secret}".encode()
        ).decode()
        form = urllib.parse.parse_qs(body.decode(errors="replace"))
        if headers.get("authorization", "") != f"Basic {expected}":
            return json_response(
                401, {"error": "invalid_client", "description": "client authentication failed"}
            )
        if form.get("grant_type") != ["client_credentials"]:
            return json_response(400, {"error": "unsupported_grant_type"})
        token = secrets.token_urlsafe(24)
        self.tokens[token] = now + self.config.token_lifetime_s
        self.stats.tokens_issued += 1
        return json_response(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": self.config.token_lifetime_s,
            },
        )

    def _create_channel(self, token: str, now: float) -> Response:
        if len(self.channels) >= MAX_CHANNELS:
            idle = next((c for c in self.channels if not self.connected(c)), None)
            if idle is None:
                return json_response(
                    400,
                    {
                        "message": f"{MAX_CHANNELS} channels, each with a connection",
                        "code": "too.many.channels",
                    },
                )
            del self.channels[idle]
            self.stats.channels_replaced += 1
            self.on_change()
        channel_id = f"streaming-0-{uuid.uuid4().hex[:20]}"
        ttl = self.config.channel_ttl_s
        channel = ApiChannel(
            channel_id,
            token,
            now + ttl,
            connect_uri=f"{self.websocket_base}/channels/{channel_id}",
            expires=iso_ms(int((time.time() + ttl) * 1000)),
        )
        self.channels[channel_id] = channel
        self.stats.channels_created += 1
        return json_response(200, channel.view())

    def _subscriptions(self, channel: ApiChannel, method: str, body: bytes) -> Response:
        if method == "GET":
            listing = [{"id": t, "state": "Permitted"} for t in sorted(channel.topics)]
            return json_response(200, {"entities": listing})
        if method == "DELETE":
            channel.topics.clear()
            self.on_change()
            return 200, b"", []
        try:
            requested = [item["id"] for item in json.loads(body)]
        except (ValueError, TypeError, KeyError):
            return json_response(
                400, {"message": 'body must be a list of {"id": topic}', "code": "bad.request"}
            )
        topics = set(requested) if method == "PUT" else channel.topics | set(requested)
        self.stats.subscription_puts += method == "PUT"
        if len(topics) > MAX_TOPICS:
            return json_response(
                400,
                {
                    "message": f"channel would have {len(topics)} topics; the limit "
                    f"is {MAX_TOPICS}",
                    "code": "too.many.topics",
                },
            )
        entities: list[dict[str, object]] = []
        accepted = set()
        for topic in sorted(topics):
            if self.faults.deny_transcription and topic.endswith(".transcription"):
                entities.append(
                    {
                        "id": topic,
                        "state": "Rejected",
                        "rejectionReason": "MissingPermissions",
                        "missingPermissions": ["conversation:transcription:view"],
                    }
                )
            else:
                accepted.add(topic)
                entities.append({"id": topic, "state": "Permitted"})
        channel.topics = accepted
        self.on_change()
        return json_response(200, {"entities": entities})
