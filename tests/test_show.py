"""``show`` prints a stored call exactly, from a real InfluxDB 1.x and from the file sink."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio

from trio_transcripts.cli import main
from trio_transcripts.influx_settings import InfluxSettings
from trio_transcripts.lineproto import normalise_text
from trio_transcripts.model import Utterance
from trio_transcripts.sinks.file import FileSink
from trio_transcripts.sinks.influx import InfluxSink
from trio_transcripts.testing.influxd import Influxd

NOW_MS = int(time.time() * 1000)
TEXTS = [
    'She said "the bill is wrong" twice, \\ and C:\\Users\\x',
    "お問い合わせありがとうございます。 👍 a=b, c d",
    "line one\nline two",
    "",
]


def stored_call() -> list[Utterance]:
    return [
        Utterance(
            "conv,1 x=y",
            f"u{i}",
            ("agent", "customer")[i % 2],
            text,
            0.5 + i / 10,
            NOW_MS - 60_000 + i * 1_000,
            NOW_MS - 60_000 + i * 1_000 + 500,
            i != 3,
            2,
        )
        for i, text in enumerate(TEXTS)
    ] + [Utterance("other", "o1", "agent", "elsewhere", None, NOW_MS - 30_000, NOW_MS, True, 1)]


def shown(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    assert main(["show", *args, "--format", "jsonl", "--env-file", "/nonexistent"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def assert_exact(rows: list[dict[str, object]]) -> None:
    expected = [u for u in stored_call() if u.conversation_id == "conv,1 x=y"]
    assert [r["utteranceId"] for r in rows] == [u.utterance_id for u in expected]
    for row, u in zip(rows, expected, strict=True):
        assert row["text"] == normalise_text(u.text)
        assert row["speaker"] == u.speaker and row["final"] is u.final
        assert row["confidence"] == u.confidence


def test_show_from_influxdb_1x(
    influxd: Influxd,
    database: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def store() -> None:
        async with InfluxSink(InfluxSettings(url=influxd.url, database=database)) as sink:
            await sink.write(stored_call())

    trio.run(store)
    for name in ("GENESYS_CLIENT_ID", "INFLUX_ORG", "INFLUX_BUCKET", "INFLUX_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INFLUX_URL", influxd.url)
    monkeypatch.setenv("INFLUX_DATABASE", database)
    assert_exact(shown(capsys, "conv,1 x=y"))
    listed = shown(capsys, "--since", "1h")
    assert [(c["conversationId"], c["utterances"]) for c in listed] == [
        ("conv,1 x=y", 4),
        ("other", 1),
    ]


def test_show_from_the_file_sink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def store() -> None:
        sink = FileSink(tmp_path / "transcripts.lp")
        await sink.open()
        await sink.write(stored_call())
        await sink.write(stored_call()[:2])  # written twice: still one point each
        await sink.aclose()

    trio.run(store)
    monkeypatch.delenv("INFLUX_URL", raising=False)
    output = str(tmp_path / "transcripts.lp")
    assert_exact(shown(capsys, "conv,1 x=y", "--output", output))
    assert main(["show", "conv,1 x=y", "--output", output, "--env-file", "/nonexistent"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[3].endswith("  [partial]") and "(0.800)" in text[3]
    assert "customer" in text[1] and 'She said "the bill is wrong"' in text[0]
