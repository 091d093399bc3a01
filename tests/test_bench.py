"""``bench`` end to end on a small stream, and its refusal to report a generator's numbers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trio_transcripts.bench import generator_limited

KEYS = {
    "frames_per_s",
    "utterances_per_s",
    "points_per_s",
    "latency_ms",
    "peak_rss_mb",
    "ceiling_frames_per_s",
    "ratio_to_ceiling",
    "generator_frames_per_s",
    "source",
    "cpu_us_per_frame",
}


@pytest.mark.parametrize("source", ["notifications", "fragments"])
def test_a_small_bench_reads_and_persists_the_whole_stream(source: str) -> None:
    command = [sys.executable, "-m", "trio_transcripts", "bench", "--source", source]
    command += ["--calls", "20", "--utterances", "5", "--repeat", "2", "--sink", "null", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result.keys() >= KEYS
    assert result["source"] == source and result["repeat"] == 2
    assert result["finals_sent"] == result["persisted"] == [100, 100]
    assert result["stream_ended_early"]  # the whole stream was read, within --duration
    assert min(result["range"]["frames_per_s"]) > 0 and result["ceiling_frames_per_s"] > 0
    assert 0 < result["ratio_to_ceiling"] < 10, "the worker against a client of the same stream"
    assert result["latency_ms"]["samples"] > 0


def run(generator: list[float], ceiling: list[float], rate: object = "max") -> dict[str, object]:
    ranges = {"generator_frames_per_s": generator, "ceiling_frames_per_s": ceiling}
    return {"rate": rate, "range": ranges}


def test_a_generator_under_three_times_the_ceiling_fails_the_run() -> None:
    assert generator_limited(run([90_000, 120_000], [20_000, 30_000])) is None
    problem = generator_limited(run([80_000, 120_000], [20_000, 30_000]))
    assert problem is not None and "80,000" in problem and "30,000" in problem
    assert generator_limited(run([2_000, 2_000], [2_000, 2_000], rate=2000.0)) is None
