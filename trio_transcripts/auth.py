"""OAuth 2.0 client credentials against the Genesys login host, and a Trio refresher task.

``POST <login>/oauth/token`` with HTTP Basic auth (client id and secret) and the form body
``grant_type=client_credentials``: the request the official Genesys SDKs send (the reference
design sent the secret in the body, to the API host, which Genesys does not serve tokens
from).

:class:`TokenManager` keeps the current token. :meth:`TokenManager.run` (started in the
worker's nursery) renews it at 80 % of ``expires_in`` and never later than 60 s before
expiry, so callers of :meth:`TokenManager.get` never wait for a renewal unless the token is
already invalid. :meth:`TokenManager.invalidate` (called on any 401) wakes the refresher at
once. Transient failures (5xx, timeouts, network) retry with capped, fully jittered backoff;
429 honours ``Retry-After``; a 400/401 answer (``invalid_client``...) is fatal, with a message
that names the client id and the login host and never the secret.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field

import httpx
import trio

from .errors import AuthError
from .outcomes import outcome_of, outcome_of_error
from .pulse import Pulse
from .redaction import redact_url
from .retry import Backoff, Decision, Service, classify
from .retrying import Tries, retrying

log = logging.getLogger("trio_transcripts.auth")

RENEW_FRACTION = 0.8
RENEW_MARGIN_S = 60.0


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str = field(repr=False)
    login_url: str

    def __str__(self) -> str:
        return f"client {self.client_id} at {redact_url(self.login_url)}"


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str = field(repr=False)
    expires_at: float  # trio clock
    renew_at: float  # trio clock


def renewal_delay(expires_in: float) -> float:
    """Seconds after issue to renew: 80 % of the lifetime, and at least 60 s before expiry.

    Genesys tokens live 5 minutes at least, where both rules hold. A shorter token (a proxy,
    the simulator) is renewed at half its life, or after 10 s, rather than in a tight loop.
    """
    preferred = min(expires_in * RENEW_FRACTION, expires_in - RENEW_MARGIN_S)
    return max(preferred, min(expires_in / 2, 10.0))


class TokenManager:
    def __init__(
        self,
        credentials: Credentials,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff = Backoff(),
        rng: random.Random | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.credentials = credentials
        self.backoff = backoff
        self._rng = rng or random.Random()
        self._client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(timeout_s))
        self._token: Token | None = None
        self._changed = Pulse()  # a token was fetched, or refused for good
        self._wake = trio.Event()
        self._fatal: AuthError | None = None
        self.renewals = 0

    def __repr__(self) -> str:
        return f"TokenManager({self.credentials})"

    async def aclose(self) -> None:
        await self._client.aclose()

    def valid(self) -> bool:
        """A token is held and has not expired (for readiness)."""
        return self._valid() is not None

    def _valid(self) -> Token | None:
        token = self._token
        if token is not None and trio.current_time() < token.expires_at:
            return token
        return None

    async def get(self) -> str:
        """The current access token; waits only when there is no valid one."""
        while True:
            if self._fatal is not None:
                raise self._fatal
            token = self._valid()
            if token is not None:
                await trio.lowlevel.checkpoint()
                return token.access_token
            self._wake.set()
            await self._changed.wait()

    def invalidate(self, token: str | None = None) -> None:
        """Forget the token (a 401 said it is no good) and renew at once.

        Given the token the caller used, a stale 401 (for a token already replaced) is ignored.
        """
        if self._token is None:
            return
        if token is not None and token != self._token.access_token:
            return
        log.info("token invalidated by a 401; renewing")
        self._token = None
        self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The refresher: fetch the first token, report started, then renew forever.

        Raises :class:`AuthError` when the credentials are refused.
        """
        started = False
        while True:
            try:
                self._token = await self._fetch()
            except AuthError as exc:
                self._fatal = exc
                self._changed.fire()
                raise
            self.renewals += 1
            self._changed.fire()
            if not started:
                task_status.started()
                started = True
            self._wake = trio.Event()
            with trio.move_on_at(self._token.renew_at):
                await self._wake.wait()

    async def _fetch(self) -> Token:
        url = self.credentials.login_url.rstrip("/") + "/oauth/token"

        async def once() -> tuple[Decision, httpx.Response | None]:
            try:
                response = await self._client.post(
                    url,
                    auth=httpx.BasicAuth(
                        self.credentials.client_id, self.credentials.client_secret
                    ),
                    data={"grant_type": "client_credentials"},
                )
            except httpx.TransportError as exc:
                return classify(Service.LOGIN, outcome_of_error(exc), time.time()), None
            return classify(Service.LOGIN, outcome_of(response), time.time()), response

        def say(decision: Decision, retry: int, delay: float) -> None:
            log.warning(
                "token request to %s failed (%s); retry %d in %.2f s",
                redact_url(url),
                decision.detail,
                retry,
                delay,
            )

        def fail(decision: Decision) -> AuthError:
            return AuthError(
                f"Genesys login host {redact_url(self.credentials.login_url)} refused "
                f"client id {self.credentials.client_id!r}: {decision.detail}. Check "
                f"GENESYS_CLIENT_ID, GENESYS_CLIENT_SECRET and GENESYS_REGION (the OAuth "
                f"client must use the Client Credentials grant)"
            )

        _, response = await retrying(once, Tries(self.backoff, self._rng), say=say, fail=fail)
        assert response is not None, "DONE comes with an answer"
        return self._token_from(response)

    def _token_from(self, response: httpx.Response) -> Token:
        try:
            body = response.json()
            access_token = body["access_token"]
            expires_in = float(body.get("expires_in", 86400))
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError(
                f"token response from {redact_url(self.credentials.login_url)} is not a "
                f"token ({type(exc).__name__}); is GENESYS_LOGIN_URL right?"
            ) from exc
        if not isinstance(access_token, str) or not access_token or not math.isfinite(expires_in):
            raise AuthError(
                f"token response from {redact_url(self.credentials.login_url)} has no usable "
                f"access_token/expires_in"
            )
        now = trio.current_time()
        log.info("token for client %s valid for %.0f s", self.credentials.client_id, expires_in)
        return Token(
            access_token, expires_at=now + expires_in, renew_at=now + renewal_delay(expires_in)
        )
