"""The InfluxDB sink against a real InfluxDB 1.6 (and a 2.x endpoint in front of it).

Every claim is checked by reading the real server back with InfluxQL (``epoch=ns``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_transcripts.errors import ConfigError
from trio_transcripts.influx_settings import InfluxSettings
from trio_transcripts.lineproto import NS_PER_MS, normalise_tag, normalise_text, timestamp_ns
from trio_transcripts.logthrottle import Repeats
from trio_transcripts.model import Utterance
from trio_transcripts.retry import Backoff
from trio_transcripts.sensitive import Screen
from trio_transcripts.sinks import FatalSinkError, WriteResult
from trio_transcripts.sinks.deadletter import DeadLetters, frame_line, read_dead_letters
from trio_transcripts.sinks.file import FileSink
from trio_transcripts.sinks.influx import InfluxSink
from trio_transcripts.testing.influxd import Influxd

from .conftest import start_influxd_or_skip
from .influxfront import Fault, InfluxFront

FAST = Backoff(base_s=0.01, cap_s=0.05)


def utterance(i: int, **changes: object) -> Utterance:
    values: dict[str, object] = dict(
        conversation_id="conv-1",
        utterance_id=f"utt-{i}",
        speaker="agent",
        text=f"utterance number {i}",
        confidence=0.5 + i / 1000,
        start_ms=1773957873000 + i,
        end_ms=1773957874000 + i,
        final=True,
        fragments=2,
    )
    values.update(changes)
    return Utterance(**values)  # type: ignore[arg-type]


def v1_sink(influxd: Influxd, database: str, tmp_path: Path, **settings: object) -> InfluxSink:
    config = InfluxSettings(url=influxd.url, database=database, backoff=FAST, **settings)  # type: ignore[arg-type]
    return InfluxSink(config)


def rows(influxd: Influxd, database: str) -> list[dict[str, object]]:
    return influxd.query("SELECT * FROM transcriptions", db=database)


async def test_schema_round_trip(influxd: Influxd, database: str, tmp_path: Path) -> None:
    genesys = utterance(
        1,
        speaker="customer",
        final=False,
        extras=(
            ("communicationId", "7dd98c4f"),
            ("engineProvider", "GENESYS"),
            ("sessionStartTimeMs", 1773957594383),
        ),
    )
    async with v1_sink(influxd, database, tmp_path) as sink:
        result = await sink.write([utterance(0), genesys])
        assert result == WriteResult(acknowledged=2) and sink.stats.persisted == 2
        stored = {r["utteranceId"]: r for r in rows(influxd, database)}
        first = stored["utt-0"]
        assert first["conversationId"] == "conv-1" and first["speaker"] == "agent"
        assert first["text"] == "utterance number 0" and first["confidence"] == 0.5
        assert first["duration_ms"] == 1000 and first["fragments"] == 2 and first["final"] is True
        assert first["time"] == timestamp_ns(utterance(0))
        assert first["time"] // NS_PER_MS == 1773957873000  # type: ignore[operator]
        second = stored["utt-1"]
        assert second["final"] is False and second["communicationId"] == "7dd98c4f"
        assert second["sessionStartTimeMs"] == 1773957594383
        tags = influxd.query("SHOW TAG KEYS FROM transcriptions", db=database)
        assert {t["tagKey"] for t in tags} == {"conversationId", "origin", "speaker"}, (
            "utteranceId is a field"
        )
        assert first["origin"] == "live"


async def test_utterance_id_as_tag_keeps_the_reference_layout(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    from trio_transcripts.lineproto import Schema

    async with v1_sink(
        influxd, database, tmp_path, schema=Schema(utterance_id_as_tag=True)
    ) as sink:
        await sink.write([utterance(0)])
        tags = influxd.query("SHOW TAG KEYS FROM transcriptions", db=database)
        assert {t["tagKey"] for t in tags} == {"conversationId", "origin", "speaker", "utteranceId"}


async def test_same_utterance_twice_is_one_point(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    async with v1_sink(influxd, database, tmp_path) as sink:
        await sink.write([utterance(0), utterance(1)])
        await sink.write([utterance(0), utterance(1)])  # a retry or a re-delivery
        assert sorted(r["utteranceId"] for r in rows(influxd, database)) == ["utt-0", "utt-1"]


async def test_distinct_utterances_in_the_same_millisecond_both_stay(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    same_ms = [utterance(i, start_ms=1773957873000, text=f"t{i}") for i in range(50)]
    async with v1_sink(influxd, database, tmp_path) as sink:
        await sink.write(same_ms)
        stored = rows(influxd, database)
        assert len(stored) == 50
        assert {r["time"] // NS_PER_MS for r in stored} == {1773957873000}  # type: ignore[operator]
        assert {r["text"] for r in stored} == {f"t{i}" for i in range(50)}


text = st.text(st.characters(codec="utf-8"), max_size=200)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)
@given(st.lists(st.tuples(text, text.filter(bool)), min_size=1, max_size=20))
async def test_arbitrary_unicode_round_trips(
    influxd: Influxd, database: str, tmp_path: Path, cases: list[tuple[str, str]]
) -> None:
    batch = [utterance(i, text=t, speaker=s) for i, (t, s) in enumerate(cases)]
    async with v1_sink(influxd, database, tmp_path) as sink:
        await sink.write(batch)
        assert sink.stats.dead_lettered == 0
        stored = {r["utteranceId"]: r for r in rows(influxd, database)}
        for u in batch:
            row = stored.pop(u.utterance_id)
            assert row["text"] == normalise_text(u.text)
            assert row["speaker"] == normalise_tag(u.speaker)
            assert row["time"] == timestamp_ns(u)
        influxd.query('DROP MEASUREMENT "transcriptions"', db=database)


async def test_missing_database_is_created_mid_stream(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    async with v1_sink(influxd, database, tmp_path) as sink:
        influxd.query(f'DROP DATABASE "{database}"')
        await sink.write([utterance(0)])
        assert [r["utteranceId"] for r in rows(influxd, database)] == ["utt-0"]


async def test_missing_database_without_creation_is_fatal_and_keeps_the_batch(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    async with v1_sink(influxd, database, tmp_path, create_database=False) as sink:
        with pytest.raises(FatalSinkError, match="not found") as caught:
            await sink.write([utterance(0), utterance(1)])
        assert [u.utterance_id for u in caught.value.unwritten] == ["utt-0", "utt-1"]


async def test_partial_write_keeps_the_good_and_dead_letters_the_rejected(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    async with v1_sink(influxd, database, tmp_path) as sink:
        # An earlier writer made `confidence` an integer field: our float conflicts with it.
        other = b"transcriptions,conversationId=old confidence=1i 1773957872000000000\n"
        assert influxd.write(database, other) == 204  # another writer's point
        batch = [
            utterance(0, confidence=None),
            utterance(1),
            utterance(2, confidence=None),
            utterance(3, confidence=None),
        ]
        result = await sink.write(batch)
        stored = sorted(r["utteranceId"] for r in rows(influxd, database) if r["utteranceId"])
        assert stored == ["utt-0", "utt-2", "utt-3"]
        (rejected,) = result.rejected
        assert rejected.utterance == batch[1] and "field type conflict" in rejected.reason
        assert result.acknowledged == 3 and result.total == len(batch)
        assert sink.stats.persisted == 3 and sink.stats.dead_lettered == 1
        assert sink.stats.requests <= 2 * len(batch) + 1, "the batch is not retried forever"


async def test_413_splits_and_dead_letters_a_point_too_large(tmp_path: Path) -> None:
    small = start_influxd_or_skip(tmp_path / "small", max_body_size=3000)
    try:
        batch = [utterance(i) for i in range(30)] + [utterance(99, text="x" * 5000)]
        async with v1_sink(small, "big", tmp_path, gzip_threshold=10**9) as sink:
            result = await sink.write(batch)
            assert len(rows(small, "big")) == 30 and result.acknowledged == 30
            (rejected,) = result.rejected
            assert rejected.utterance.utterance_id == "utt-99" and "413" in rejected.reason
            assert sink.stats.splits >= 2
    finally:
        small.stop()


async def test_database_down_then_up_loses_nothing(tmp_path: Path) -> None:
    from trio_transcripts.testing.influxd import free_port

    port = free_port()
    sink = InfluxSink(
        InfluxSettings(url=f"http://127.0.0.1:{port}", database="db", backoff=Backoff(0.01, 0.2))
    )
    server: list[Influxd] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink.write, [utterance(i) for i in range(10)])
        await trio.testing.wait_all_tasks_blocked()  # the first attempt was refused
        server.append(
            await trio.to_thread.run_sync(
                lambda: start_influxd_or_skip(tmp_path / "late", http_port=port)
            )
        )
    await sink.aclose()
    try:
        assert len(rows(server[0], "db")) == 10
        assert sink.stats.retries >= 1 and sink.stats.dead_lettered == 0
    finally:
        server[0].stop()


async def test_ready_check_gives_up_with_a_clear_error(
    tmp_path: Path, autojump_clock: object
) -> None:
    from trio_transcripts.testing.influxd import free_port

    url = f"http://127.0.0.1:{free_port()}"
    sink = InfluxSink(InfluxSettings(url=url, database="db", startup_timeout_s=5))
    with pytest.raises(FatalSinkError, match=f"InfluxDB at {url} is not answering /ping"):
        await sink.open()
    await sink.aclose()


def test_ambiguous_or_incomplete_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="ambiguous"):
        InfluxSettings(url="http://x", database="d", bucket="b").api()
    with pytest.raises(ConfigError, match="missing: INFLUX_TOKEN"):
        InfluxSettings(url="http://x", org="o", bucket="b").api()
    assert "t0ken" not in repr(InfluxSettings(url="http://x", org="o", bucket="b", token="t0ken"))


# --- the 2.x API, through a test endpoint that stores into the real 1.6 server -------------


@pytest.fixture
def v2(influxd: Influxd, database: str) -> InfluxFront:
    influxd.query(f'CREATE DATABASE "{database}"')
    with InfluxFront(influxd.url, buckets={database}) as server:
        yield server  # type: ignore[misc]


def v2_sink(v2: InfluxFront, database: str, tmp_path: Path, **settings: object) -> InfluxSink:
    config = InfluxSettings(
        url=v2.url, org="acme", bucket=database, token="t0ken", backoff=FAST, **settings
    )  # type: ignore[arg-type]
    return InfluxSink(config)


async def test_v2_write(v2: InfluxFront, influxd: Influxd, database: str, tmp_path: Path) -> None:
    async with v2_sink(v2, database, tmp_path, gzip_threshold=1) as sink:
        await sink.write([utterance(i) for i in range(100)])
        assert len(rows(influxd, database)) == 100 and sink.stats.persisted == 100


@pytest.mark.parametrize(
    ("faults", "expected_delay"),
    [
        ([Fault(429, {"Retry-After": "1"})], 1.0),
        ([Fault(503, {"Retry-After": "1"}), Fault(503)], None),
        ([Fault(500, body="internal error"), Fault(502)], None),
        ([Fault(reset=True), Fault(reset=True)], None),
        ([Fault(slow_s=1.5)], None),
    ],
    ids=["429-retry-after", "503", "500-502", "connection-reset", "slow-timeout"],
)
async def test_v2_transient_failures_are_retried_and_lose_nothing(
    v2: InfluxFront,
    influxd: Influxd,
    database: str,
    tmp_path: Path,
    faults: list[Fault],
    expected_delay: float | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with v2_sink(v2, database, tmp_path, timeout_s=0.5) as sink:
        v2.faults.extend(faults)
        await sink.write([utterance(i) for i in range(20)])
        assert len(rows(influxd, database)) == 20
        assert sink.stats.retries == len(faults) and sink.stats.dead_lettered == 0
        if expected_delay is not None:
            assert f"retry 1 in {expected_delay:.2f} s" in caplog.text, "the server's word"


async def test_v2_413_splits(
    v2: InfluxFront, influxd: Influxd, database: str, tmp_path: Path
) -> None:
    async with v2_sink(v2, database, tmp_path) as sink:
        v2.faults.extend([Fault(413, body='{"code":"request too large"}')])
        await sink.write([utterance(i) for i in range(20)])
        assert len(rows(influxd, database)) == 20 and sink.stats.splits == 1


async def test_v2_422_partial_write(
    v2: InfluxFront, influxd: Influxd, database: str, tmp_path: Path
) -> None:
    async with v2_sink(v2, database, tmp_path) as sink:
        other = b"transcriptions,conversationId=old fragments=1.5 1773957872000000000\n"
        assert influxd.write(database, other) == 204  # another writer's point
        # fragments is an int: all conflict
        result = await sink.write([utterance(i) for i in range(4)])
        assert rows(influxd, database)[0]["conversationId"] == "old"
        assert result.acknowledged == 0
        assert sorted(r.utterance.utterance_id for r in result.rejected) == [
            f"utt-{i}" for i in range(4)
        ]
        assert all("422" in r.reason for r in result.rejected)


@pytest.mark.parametrize(
    ("api", "change", "message"),
    [
        ("v2", {"token": "wrong"}, "refused to let us write \\(HTTP 401.*with INFLUX_TOKEN"),
        ("v2", {"bucket": "nope"}, "404 for org 'acme' or bucket 'nope'"),
        ("v3", {"token": "wrong"}, "refused to let us write \\(HTTP 401.*with INFLUX_TOKEN"),
        ("v3", {"database": "nope"}, "404 for database 'nope'.*INFLUX_DATABASE"),
    ],
)
async def test_fatal_answers_keep_the_batch(
    v2: InfluxFront, database: str, api: str, change: dict[str, str], message: str
) -> None:
    where = {"org": "acme", "bucket": database} if api == "v2" else {"database": database}
    config = InfluxSettings(
        **{"url": v2.url, "token": "t0ken", "api_version": api, **where, **change}
    )  # type: ignore[arg-type]
    async with InfluxSink(config) as sink:
        with pytest.raises(FatalSinkError, match=message) as caught:
            await sink.write([utterance(0)])
    assert len(caught.value.unwritten) == 1 and "wrong" not in str(caught.value)


# --- the file sink ---------------------------------------------------------------------


async def test_file_sink_is_importable_into_influxdb(
    influxd: Influxd, database: str, tmp_path: Path
) -> None:
    sink = FileSink(tmp_path / "out" / "transcripts.lp")
    await sink.open()
    await sink.write([utterance(0), utterance(1)])
    await sink.write([utterance(1)])  # written twice: still one point once imported
    await sink.aclose()
    body = (tmp_path / "out" / "transcripts.lp").read_bytes()
    assert body.count(b"\n") == 3
    influxd.query(f'CREATE DATABASE "{database}"')
    assert influxd.write(database, body) == 204
    assert sorted(r["utteranceId"] for r in rows(influxd, database)) == ["utt-0", "utt-1"]


async def test_dead_letter_records_are_complete(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path / "d.jsonl")
    await dead.utterances([utterance(0)], "HTTP 400 partial write: field type conflict")
    broken = frame_line(b'{"broken', "invalid JSON: Unterminated string", "genesys", Screen())
    await dead.put("frame", broken)
    assert read_dead_letters(tmp_path / "d.jsonl") == [], "queued, not yet written"
    await dead.flush()
    records = read_dead_letters(tmp_path / "d.jsonl")
    assert [r["kind"] for r in records] == ["utterance", "frame"]
    assert records[0]["utterance"]["text"] == "utterance number 0" and records[0]["time"]
    assert records[1]["frame"] == '{"broken' and records[1]["source"] == "genesys"
    assert dead.counts == {"utterance": 1, "frame": 1}
    json.dumps(records)


async def test_a_file_sink_on_a_directory_is_fatal_and_names_the_setting(tmp_path: Path) -> None:
    # A full disk is an outage, not this (tests/test_diskfull.py).
    with pytest.raises(FatalSinkError, match=r"cannot open .*Is a directory.*--output"):
        await FileSink(tmp_path).open()


# --- InfluxDB 3 (/api/v3/write_lp), through the test front to the real 1.6 -------------


def v3_sink(
    front: InfluxFront, database: str, repeats: Repeats | None = None, **settings: object
) -> InfluxSink:
    config = InfluxSettings(
        url=front.url, database=database, token="t0ken", api_version="v3", backoff=FAST, **settings
    )  # type: ignore[arg-type]
    return InfluxSink(config, repeats=repeats)


@pytest.mark.parametrize("no_sync", [False, True])
async def test_v3_write(v2: InfluxFront, influxd: Influxd, database: str, no_sync: bool) -> None:
    async with v3_sink(v2, database, no_sync=no_sync, gzip_threshold=1) as sink:
        result = await sink.write([utterance(i) for i in range(50)])
    assert result.acknowledged == 50 and len(rows(influxd, database)) == 50
    assert sink.describe().startswith("InfluxDB 3.x /api/v3/write_lp at")
    (query,) = v2.v3_queries
    assert query == {
        "db": database,
        "precision": "nanosecond",
        "accept_partial": "false",
        "no_sync": "true" if no_sync else "false",
    }


async def test_v3_refused_points_are_isolated_by_splitting(
    v2: InfluxFront, influxd: Influxd, database: str
) -> None:
    async with v3_sink(v2, database) as sink:
        other = b"transcriptions,conversationId=old fragments=1.5 1773957872000000000\n"
        assert influxd.write(database, other) == 204  # another writer's point
        batch = [utterance(0, fragments=2), utterance(1, fragments=3)]
        result = await sink.write(batch)
    assert result.acknowledged == 0 and len(result.rejected) == 2
    assert all("parsing failed for write_lp endpoint" in r.reason for r in result.rejected)
    assert all("line 1: partial write: field type conflict" in r.reason for r in result.rejected)


async def test_v3_retries_429_and_503_honouring_retry_after(
    v2: InfluxFront, influxd: Influxd, database: str, caplog: pytest.LogCaptureFixture
) -> None:
    v2.faults.extend([Fault(503), Fault(429, {"Retry-After": "0"})])
    repeats = Repeats()
    async with v3_sink(v2, database, repeats=repeats) as sink:
        result = await sink.write([utterance(0)])
    assert result.acknowledged == 1 and sink.stats.retries == 2
    assert "(HTTP 503); retry 1 in" in caplog.text
    assert "retry 2" not in caplog.text, "a second retry within 10 s is counted, not logged"
    repeats.flush()
    assert (
        "1 more InfluxDB write retries in the last 0 s; first: InfluxDB write of 1 points "
        "failed (HTTP 429); retry 2 in 0.00 s" in caplog.text
    ), "the server's word, not our backoff"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"api_version": "v4", "database": "d"}, "INFLUX_API must be v1, v2 or v3"),
        ({"api_version": "v3", "database": "d"}, "INFLUX_API=v3 needs .*missing: INFLUX_TOKEN"),
        ({"api_version": "v2", "token": "t"}, "missing: INFLUX_ORG, INFLUX_BUCKET"),
        ({"database": "d", "token": "t"}, "set INFLUX_API=v3"),
    ],
)
def test_api_choice_errors_say_what_is_missing(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        InfluxSettings(url="http://x", **settings).api()  # type: ignore[arg-type]
