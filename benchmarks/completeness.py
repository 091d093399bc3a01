"""Completeness under loss: how much the live path stored, how much the backfill added, and
whether the two together equal the simulator's truth (issues 13 and 19's acceptance runs).

``--situation`` picks what goes wrong: ``loss`` (socket drops, issue 13), ``mid-call`` (the
worker starts, with a fresh state directory, once ``--join-at`` of the finals went to
nobody), ``kill`` (SIGKILL ``--kill-after`` seconds after its start, started again
``--away`` seconds later), ``queue-restart`` (the worker follows the simulator's queue, is
stopped cleanly with SIGTERM once ``--join-at`` of the finals went out, and starts again
``--away`` seconds later while calls start and end). Calls start before any socket, as real
calls do (``--start-after-sockets 0``), except under ``loss``.

The simulator plays ``--calls`` calls in real time (``--speech-time``: each frame goes out
when its moment in the call comes), loses what no socket could take (``--no-redelivery``),
drops each socket after every ``--drop-every`` frames, and serves post-call transcripts
``--transcript-delay`` seconds after each call. The worker is ``python -m trio_transcripts
run`` in its own process, as deployed, with its default settings (the platform's 5-minute
keepalive, a first backfill retry after 30 s), writing to a throwaway influxd 1.6. When every
utterance of the truth file is in the database (or ``--patience`` runs out) the worker is
stopped with SIGTERM and the numbers are printed as JSON.

    python benchmarks/completeness.py --calls 100 --minutes 5 --drop-every 200
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import trio

from trio_transcripts.lineproto import NS_PER_MS
from trio_transcripts.testing.influxd import Influxd, start_influxd
from trio_transcripts.testing.simulator import Faults, SimConfig, Simulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=5.0, help="when the last call ends")
    parser.add_argument("--drop-every", type=int, default=200)
    parser.add_argument("--transcript-delay", type=float, default=60.0)
    parser.add_argument(
        "--batch", type=float, default=0.3, help="how often transcripts share a message"
    )
    parser.add_argument("--patience", type=float, default=900.0, help="seconds after the calls")
    parser.add_argument(
        "--situation", choices=["loss", "mid-call", "kill", "queue-restart"], default="loss"
    )
    parser.add_argument("--join-at", type=float, default=0.4, help="share of the finals sent")
    parser.add_argument("--kill-after", type=float, default=3.0)
    parser.add_argument("--away", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(trio.run(measure, args, Path(tmp)), indent=2))


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, object]:
    influxd = start_influxd(tmp / "influxd")
    try:
        return await _measure(args, tmp, influxd)
    finally:
        influxd.stop()


async def _measure(args: argparse.Namespace, tmp: Path, influxd: Influxd) -> dict[str, object]:
    call_s = args.utterances * 4.2  # the simulator's mean utterance plus pause
    spacing = max(0.1, (args.minutes * 60 - call_s) / max(1, args.calls - 1))
    situation = args.situation
    config = SimConfig(
        calls=args.calls,
        utterances=args.utterances,
        speech_time=True,
        call_spacing_s=spacing,
        transcript_delay_s=args.transcript_delay,
        batch_transcripts=args.batch,
        truth_path=tmp / "truth.jsonl",
        start_after_sockets=1 if situation == "loss" else 0,
        queue_id="q-bench" if situation == "queue-restart" else None,
        faults=Faults(no_redelivery=True, drop_every=args.drop_every if situation == "loss" else 0),
    )
    sim = Simulator(config)
    database = "completeness"
    started = time.monotonic()
    log = open(tmp / "worker.log", "wb")  # noqa: SIM115, ASYNC230 - closed below
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GENESYS_", "INFLUX_"))},
            "GENESYS_CLIENT_ID": "sim-client",
            "GENESYS_CLIENT_SECRET": "sim-secret",
            "GENESYS_LOGIN_URL": str(info["login_url"]),
            "GENESYS_API_URL": str(info["api_url"]),
            "INFLUX_URL": influxd.url,
            "INFLUX_DATABASE": database,
        }
        if situation == "queue-restart":
            env["GENESYS_QUEUE_ID"] = "q-bench"
        else:
            env["CONVERSATION_ID"] = ",".join(info["conversation_ids"])

        async def worker() -> trio.Process:
            command = [sys.executable, "-m", "trio_transcripts", "run"]
            return await trio.lowlevel.open_process(
                [*command, "--state-dir", str(tmp / "state")], env=env, cwd=tmp, stderr=log
            )

        total = args.calls * args.utterances
        if situation == "mid-call":
            await sent(sim, int(total * args.join_at))
        process = await worker()
        if situation == "kill":
            await trio.sleep(args.kill_after)
            process.kill()
            await process.wait()
            await trio.sleep(args.away)
            process = await worker()
        elif situation == "queue-restart":
            await sent(sim, int(total * args.join_at))
            process.send_signal(signal.SIGTERM)
            await process.wait()
            await trio.sleep(args.away)
            process = await worker()
        await sim.done.wait()
        calls_done = time.monotonic() - started
        complete_after = None
        with trio.move_on_after(args.patience):
            while True:
                rows = finals(influxd, database)
                if len(rows) >= len(sim.truth):
                    complete_after = time.monotonic() - started - calls_done
                    break
                await trio.sleep(5)
        process.send_signal(signal.SIGTERM)
        await process.wait()
        log.close()
        nursery.cancel_scope.cancel()
    rows = finals(influxd, database)
    truth = sim.truth
    stored = {
        (str(r["conversationId"]), int(str(r["time"])) // NS_PER_MS, str(r["speaker"])): r
        for r in rows
    }
    exact = 0
    keys = set()
    for t in truth:
        key = (str(t["conversationId"]), int(str(t["startMs"])), str(t["speaker"]))
        keys.add(key)
        row = stored.get(key)
        exact += row is not None and row["text"] == t["text"]
    account = [line for line in (tmp / "worker.log").read_text().splitlines() if "account:" in line]
    return {
        "situation": situation,
        "calls": args.calls,
        "batch": args.batch,
        "truth_utterances": len(truth),
        "lost_at_send": sum(1 for t in truth if t.get("lost")),
        "frames_sent": sim.stats.frames_sent,
        "frames_lost": sim.stats.frames_lost,
        "drops": sim.stats.drops,
        "stored_finals": len(rows),
        "stored_live": sum(1 for r in rows if r["origin"] == "live"),
        "stored_backfill": sum(1 for r in rows if r["origin"] == "backfill"),
        "partials_stored": len(
            influxd.query("SELECT * FROM transcriptions WHERE final = false", db=database)
        ),
        "exact_matches": exact,
        "missing": len(truth) - exact,
        "duplicated_or_extra": len(rows) - len(set(stored) & keys),
        "equals_truth": exact == len(truth) == len(rows),
        "calls_took_s": round(calls_done, 1),
        "complete_after_calls_s": None if complete_after is None else round(complete_after, 1),
        "transcripts_served": sim.api.postcall.documents_served,
        "worker_account": account[-1].split("account: ", 1)[-1] if account else None,
    }


async def sent(sim: Simulator, count: int) -> None:
    """Until ``count`` finals went out (or were lost): the calls' own pace."""
    while len(sim.truth) < count and not sim.done.is_set():  # noqa: ASYNC110 - paced by time
        await trio.sleep(0.1)


def finals(influxd: Influxd, database: str) -> list[dict[str, object]]:
    try:
        return influxd.query("SELECT * FROM transcriptions WHERE final = true", db=database)
    except (OSError, KeyError, ValueError):  # no database before the first write
        return []


if __name__ == "__main__":
    main()
