"""The simulator's REST core, called directly: requests in, responses out, no sockets."""

from __future__ import annotations

import base64
import json

from trio_transcripts.testing.simulator import Faults, SimConfig, SimStats
from trio_transcripts.testing.simulator.api import MAX_TOPICS, SimApi

BASIC = "Basic " + base64.b64encode(b"sim-client:sim-secret").decode()
FORM = b"grant_type=client_credentials"


def api(**faults: object) -> SimApi:
    return SimApi(SimConfig(token_lifetime_s=60, faults=Faults(**faults)), SimStats())  # type: ignore[arg-type]


def token(sim: SimApi, now: float = 0.0) -> dict[str, str]:
    status, body, _ = sim.handle("POST", "/oauth/token", {"authorization": BASIC}, FORM, now)
    assert status == 200
    return {"authorization": f"Bearer {json.loads(body)['access_token']}"}


def test_client_credentials_and_their_faults() -> None:
    sim = api(token_429=1, token_500=1)
    status, _, headers = sim.handle("POST", "/oauth/token", {"authorization": BASIC}, FORM, 0)
    assert status == 429 and ("Retry-After", "1") in headers
    assert sim.handle("POST", "/oauth/token", {"authorization": BASIC}, FORM, 0)[0] == 500
    wrong = {"authorization": "Basic " + base64.b64encode(b"sim-client:nope").decode()}
    status, body, _ = sim.handle("POST", "/oauth/token", wrong, FORM, 0)
    assert status == 401 and json.loads(body)["error"] == "invalid_client"
    assert sim.handle("POST", "/oauth/token", {"authorization": BASIC}, b"", 0)[0] == 400
    token(sim)
    assert sim.stats.tokens_issued == 1


def test_a_token_expires() -> None:
    sim = api()
    auth = token(sim, now=0.0)
    path = "/api/v2/notifications/channels"
    assert sim.handle("POST", path, auth, b"", 59.0)[0] == 200
    assert sim.handle("POST", path, auth, b"", 60.0)[0] == 401


def test_channel_subscriptions_post_put_and_limits() -> None:
    sim = api()
    auth = token(sim)
    status, body, _ = sim.handle("POST", "/api/v2/notifications/channels", auth, b"", 0)
    channel = json.loads(body)
    assert status == 200 and channel["connectUri"].endswith(f"/channels/{channel['id']}")
    path = f"/api/v2/notifications/channels/{channel['id']}/subscriptions"
    topics = [{"id": "v2.conversations.a.transcription"}]
    assert sim.handle("POST", path, auth, json.dumps(topics).encode(), 0)[0] == 200
    more = [{"id": "v2.conversations.b.transcription"}]
    sim.handle("POST", path, auth, json.dumps(more).encode(), 0)
    assert sim.channels[channel["id"]].topics == {t["id"] for t in topics + more}
    sim.handle("PUT", path, auth, json.dumps(more).encode(), 0)
    assert sim.channels[channel["id"]].topics == {more[0]["id"]}
    too_many = [{"id": f"v2.conversations.{i}.transcription"} for i in range(MAX_TOPICS + 1)]
    status, body, _ = sim.handle("PUT", path, auth, json.dumps(too_many).encode(), 0)
    assert status == 400 and json.loads(body)["code"] == "too.many.topics"
    assert (
        sim.handle("HEAD", f"/api/v2/notifications/channels/{channel['id']}", auth, b"", 0)[0]
        == 200
    )
    assert sim.handle("HEAD", "/api/v2/notifications/channels/nope", auth, b"", 0)[0] == 404


def test_missing_permission_rejects_transcription_topics() -> None:
    sim = api(deny_transcription=True)
    auth = token(sim)
    _, body, _ = sim.handle("POST", "/api/v2/notifications/channels", auth, b"", 0)
    path = f"/api/v2/notifications/channels/{json.loads(body)['id']}/subscriptions"
    topics = [{"id": "v2.conversations.a.transcription"}]
    _, body, _ = sim.handle("POST", path, auth, json.dumps(topics).encode(), 0)
    (entity,) = json.loads(body)["entities"]
    assert entity["rejectionReason"] == "MissingPermissions"
    assert entity["missingPermissions"] == ["conversation:transcription:view"]


def test_channels_expire_on_the_callers_clock() -> None:
    sim = SimApi(SimConfig(channel_ttl_s=10), SimStats())
    auth = token(sim)
    sim.handle("POST", "/api/v2/notifications/channels", auth, b"", 0)
    assert sim.expire_channels(9.9) == []
    (gone,) = sim.expire_channels(10.0)
    assert sim.channels == {} and gone.expires_at == 10.0


def test_a_21st_channel_replaces_the_oldest_without_a_socket() -> None:
    sim = api()
    auth = token(sim)
    made = [
        json.loads(sim.handle("POST", "/api/v2/notifications/channels", auth, b"", 0)[1])["id"]
        for _ in range(20)
    ]
    sim.connected = lambda channel_id: channel_id in made[:3]
    status, body, _ = sim.handle("POST", "/api/v2/notifications/channels", auth, b"", 0)
    assert status == 200 and len(sim.channels) == 20
    assert made[3] not in sim.channels and made[0] in sim.channels
    assert json.loads(body)["id"] in sim.channels and sim.stats.channels_replaced == 1
    sim.connected = lambda channel_id: True
    status, body, _ = sim.handle("POST", "/api/v2/notifications/channels", auth, b"", 0)
    assert status == 400 and b"too.many.channels" in body
