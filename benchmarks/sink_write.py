"""Points/s written into a local influxd by InfluxSink, by batch size and gzip.

    python benchmarks/sink_write.py [--points 100000]

Starts a throwaway influxd (Debian's 1.6.x), writes the same synthetic utterances at batch
sizes 500 and 5,000, with gzip off and on, and reports points/s (acknowledged by the server)
and the serializer's cost per point.
"""

from __future__ import annotations

import argparse
import time
import timeit

import trio

from trio_transcripts.influx_settings import InfluxSettings
from trio_transcripts.lineproto import encode
from trio_transcripts.model import Utterance
from trio_transcripts.sinks.influx import InfluxSink
from trio_transcripts.testing.influxd import running_influxd


def utterances(n: int, offset: int) -> list[Utterance]:
    return [
        Utterance(
            f"conv-{i % 200:04d}",
            f"utt-{offset}-{i}",
            ("agent", "customer")[i % 2],
            "thanks for calling, how can I help you with your account today?",
            0.87,
            1773957873000 + i * 7,
            1773957875000 + i * 7,
            True,
            3,
            (("communicationId", "7dd98c4f"),),
        )
        for i in range(n)
    ]


async def measure(url: str, batch: int, gzip_on: bool, n: int, run: int) -> float:
    settings = InfluxSettings(
        url=url, database=f"bench{run}", max_points=batch, gzip_threshold=1 if gzip_on else 10**12
    )
    async with InfluxSink(settings) as sink:
        data = utterances(n, run)
        started = time.perf_counter()
        result = await sink.write(data)
        elapsed = time.perf_counter() - started
        assert result.acknowledged == n
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=100_000)
    args = parser.parse_args()
    sample = utterances(1, 0)[0]
    per_point = timeit.timeit(lambda: encode(sample), number=50_000) / 50_000
    print(f"serializer: {per_point * 1e6:.1f} us/point ({1 / per_point:,.0f} points/s/core)")
    with running_influxd() as server:
        run = 0
        for batch in (500, 5_000):
            for gzip_on in (False, True):
                run += 1
                rate = trio.run(measure, server.url, batch, gzip_on, args.points, run)
                gzip_label = "on " if gzip_on else "off"
                print(f"batch {batch:>5}, gzip {gzip_label}: {rate:>9,.0f} points/s")


if __name__ == "__main__":
    main()
