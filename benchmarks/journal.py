"""The journal's cost as the followed set grows (issue 19: it must grow with changes, not
with the calls followed; 20,000 is the target).

For each size, a state directory with that many conversations followed is started
(``Completeness.start``: fold, compact, fsync), then 2,000 changes are reported (a call
followed, listening, heard, ended: the journal's four kinds) with a flush (one fsync) after
every 20 of them, as a busy second would bring. Reported per size: the median of ``--runs``
runs (and the range) of the microseconds a change costs (its report plus its share of the
flushes) and of the start; the ratio of the largest size's change cost to the smallest's,
measured in the same run, is the figure that matters.

    python benchmarks/journal.py --sizes 100,20000 --runs 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from trio_transcripts.completeness import Completeness
from trio_transcripts.coverage import Ended, Followed, Heard, Listening, Unfollowed
from trio_transcripts.gaprecords import BackfillQueue
from trio_transcripts.journal import Journal

CHANGES = 2_000
FLUSH_EVERY = 20


def one_run(size: int, tmp: Path) -> tuple[float, float]:
    """(µs per change, ms to start) for ``size`` conversations followed."""
    state = tmp / f"state-{size}"
    Completeness(BackfillQueue(state), Journal(state)).start([], [f"c{i}" for i in range(size)], 0)
    side = Completeness(BackfillQueue(state), Journal(state))
    began = time.perf_counter()
    side.start([], [], 3_600_000)  # the restart: fold and compact what is followed
    start_ms = (time.perf_counter() - began) * 1000
    now = int(time.time() * 1000)
    began = time.perf_counter()
    for i in range(CHANGES // 4):
        c = f"n{i}"
        side.report(Followed(c, now))
        side.report(Listening((c,), now))
        side.report(Heard(c, "m", now + 20_000, now))
        side.report(Unfollowed(c, Ended.SESSION_ENDED, now))
        if (i * 4) % FLUSH_EVERY == 0:
            side.flush(3_600_000)
    side.flush(3_600_000)
    per_change_us = (time.perf_counter() - began) / CHANGES * 1e6
    return per_change_us, start_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,20000")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[int, list[tuple[float, float]]] = {s: [] for s in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for size in sizes:
                results[size].append(one_run(size, Path(tmp) / str(run)))
    out: dict[str, object] = {}
    for size, runs in results.items():
        change = [r[0] for r in runs]
        start = [r[1] for r in runs]
        out[str(size)] = {
            "us_per_change": round(statistics.median(change), 1),
            "us_per_change_range": [round(min(change), 1), round(max(change), 1)],
            "start_ms": round(statistics.median(start), 1),
            "start_ms_range": [round(min(start), 1), round(max(start), 1)],
        }
    ratios = [results[sizes[-1]][i][0] / results[sizes[0]][i][0] for i in range(args.runs)]
    out["change_cost_ratio_largest_to_smallest"] = {
        "median": round(statistics.median(ratios), 2),
        "range": [round(min(ratios), 2), round(max(ratios), 2)],
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
