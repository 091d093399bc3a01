"""The simulator's frames and REST answers, checked field by field against the official SDK's
models (``PureCloudPlatformClientV2`` 269.0.0; the field lists are in
``fixtures/genesys_models.json``, with where they came from)."""

from __future__ import annotations

import json
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from trio_transcripts.testing.simulator import Faults, SimConfig, SimStats
from trio_transcripts.testing.simulator.api import SimApi
from trio_transcripts.testing.simulator.calls import genesys_frames, make_calls

from .test_simulator_api import token

MODELS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "genesys_models.json").read_text()
)["models"]


def problems(value: Any, kind: str, where: str = "$") -> list[str]:
    """What in ``value`` the SDK's model ``kind`` does not allow: unknown fields, wrong types,
    values outside an enum."""
    if value is None:
        return []
    if kind.startswith("list["):
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [
            p for i, item in enumerate(value) for p in problems(item, kind[5:-1], f"{where}[{i}]")
        ]
    if kind in MODELS:
        if not isinstance(value, dict):
            return [f"{where}: expected an object ({kind})"]
        model = MODELS[kind]
        found = [f"{where}.{key}: not in {kind}" for key in value if key not in model["fields"]]
        for key, item in value.items():
            if key in model["fields"]:
                found += problems(item, model["fields"][key], f"{where}.{key}")
                allowed = model["enums"].get(key)
                if allowed is not None and item not in allowed:
                    found.append(f"{where}.{key}: {item!r} not one of {allowed}")
        return found
    checks = {
        "str": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "datetime": lambda v: isinstance(v, str) and _is_iso(v),
    }
    return [] if checks[kind](value) else [f"{where}: {value!r} is not {kind}"]


def _is_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def bodies() -> list[dict[str, Any]]:
    calls = make_calls(3, 6, seed=4, epoch_ms=1_773_957_873_000)
    rng = random.Random(1)
    return [
        json.loads(frame.text)["eventBody"] for call in calls for frame in genesys_frames(call, rng)
    ]


def test_every_transcription_message_is_the_sdks_model() -> None:
    for body in bodies():
        assert problems(body, "TranscriptionTopicTranscriptionMessage") == []


def test_the_messages_carry_what_the_platform_sends() -> None:
    messages = bodies()
    assert len({m["eventTime"] for m in messages}) > len(messages) // 2, "eventTime moves"
    assert any(m["status"]["offsetMs"] > 0 for m in messages)
    results = [t for m in messages for t in m["transcripts"]]
    assert all(t["agentAssistantId"] and t["speechTextAnalyticsProgramId"] for t in results)
    for t in results:
        alternative = t["alternatives"][0]
        assert [w["word"] for w in alternative["words"]] == alternative["transcript"].split(" ")
        assert alternative["decoratedWords"]
    by_utterance: dict[str, list[dict[str, Any]]] = {}
    for t in results:
        by_utterance.setdefault(t["utteranceId"], []).append(t)
    for hypotheses in by_utterance.values():
        *interims, final = hypotheses
        assert final["isFinal"] and not any(i["isFinal"] for i in interims)
        final_ms = final["alternatives"][0]["durationMs"]
        assert all(i["alternatives"][0]["durationMs"] <= final_ms for i in interims)
    assert any(
        i["alternatives"][0]["durationMs"] < f["alternatives"][0]["durationMs"]
        for *interims, f in by_utterance.values()
        for i in interims
    ), "an interim's duration is the part heard so far, not the final's"


@pytest.mark.parametrize("deny", [False, True])
def test_channel_and_subscription_answers_are_the_sdks_models(deny: bool) -> None:
    sim = SimApi(SimConfig(faults=Faults(deny_transcription=deny)), SimStats())
    auth = token(sim)
    status, body, _ = sim.handle("POST", "/api/v2/notifications/channels", auth, b"", 0)
    channel = json.loads(body)
    assert status == 200 and problems(channel, "Channel") == []
    assert set(channel) == {"id", "connectUri", "expires"}
    listing = json.loads(sim.handle("GET", "/api/v2/notifications/channels", auth, b"", 0)[1])
    assert problems(listing, "ChannelEntityListing") == []
    assert listing["entities"] == [channel]
    path = f"/api/v2/notifications/channels/{channel['id']}/subscriptions"
    topics = json.dumps([{"id": "v2.conversations.c.transcription"}]).encode()
    for method in ("PUT", "POST", "GET"):
        answer = json.loads(sim.handle(method, path, auth, topics, 0)[1])
        assert problems(answer, "ChannelTopicEntityListing") == []
        states = {e["state"] for e in answer["entities"]}
        assert states <= ({"Rejected"} if deny else {"Permitted"})


def test_the_checker_finds_what_the_models_do_not_allow() -> None:
    assert problems({"id": "t", "state": "Subscribed"}, "ChannelTopic") == [
        "$.state: 'Subscribed' not one of ['Permitted', 'Rejected']"
    ]
    assert problems({"entities": [{"id": 1}]}, "ChannelTopicEntityListing") == [
        "$.entities[0].id: 1 is not str"
    ]
    assert problems({"eventTime": "x", "extra": 1}, "TranscriptionTopicTranscriptionMessage") == [
        "$.extra: not in TranscriptionTopicTranscriptionMessage",
        "$.eventTime: 'x' is not datetime",
    ]


def test_a_keepalive_opens_each_session_and_follows_every_five_minutes() -> None:
    (call,) = make_calls(1, 120, seed=4, epoch_ms=1_773_957_873_000)  # ~9 minutes of talk
    own = [json.loads(f.text)["eventBody"] for f in genesys_frames(call, random.Random(1))]
    keepalives = [m["status"]["offsetMs"] for m in own if not m["transcripts"]]
    *ongoing, ended = keepalives
    assert ongoing == [0, 300_000]
    assert ended > 300_000 and own[-1]["status"]["status"] == "SESSION_ENDED"
    assert problems(own[1], "TranscriptionTopicTranscriptionMessage") == []


def test_batched_messages_carry_several_transcripts_and_lose_none() -> None:
    (call,) = make_calls(1, 12, seed=5, epoch_ms=1_773_957_873_000)
    frames = list(genesys_frames(call, random.Random(2), batch=0.5))
    messages = [json.loads(f.text)["eventBody"] for f in frames]
    assert all(problems(m, "TranscriptionTopicTranscriptionMessage") == [] for m in messages)
    assert max(len(m["transcripts"]) for m in messages) >= 2, "the platform groups them"
    finals = [u for f in frames for u in f.finals]
    assert finals == list(call.utterances), "every utterance finalized once, in order"
    for frame, message in zip(frames, messages, strict=True):
        ids = [t["utteranceId"] for t in message["transcripts"] if t["isFinal"]]
        assert ids == [u.utterance_id for u in frame.finals]
    times = [f.at_ms for f in frames]
    assert times == sorted(times)
    unbatched = [f.text for f in genesys_frames(call, random.Random(2))]
    assert all(len(json.loads(t)["eventBody"]["transcripts"]) <= 1 for t in unbatched)
