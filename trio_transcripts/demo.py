"""``python -m trio_transcripts demo``: the built-in simulator, the worker, and an account.

The simulator runs in-process with a handful of calls; the worker reads them over real
sockets and persists them to InfluxDB when ``INFLUX_URL`` is set (database ``transcripts``
unless one is named), else to a line-protocol file in the working directory. It shows live
progress, a few persisted utterances and where everything went.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

import trio

from .assemble import assemble, configured_sink
from .config import Config, add_flags, load_config
from .diskfull import Disk
from .logthrottle import Repeats
from .model import Utterance
from .service import watch_signals
from .settings import given
from .show import print_transcript
from .sinks import Sink, WriteResult
from .snapshot import status_line
from .stored import read_file, read_influx
from .testing.harness import run_until_accounted
from .testing.simulator import DEFAULT_CLIENT_SECRET, SimConfig, Simulator
from .wire.instants import iso_of
from .worker import Worker


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_flags(parser, "demo")
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--rate", type=float, default=40.0, help="frames per second")
    parser.add_argument("--seed", type=int, default=7)


class _Tap:
    """A sink wrapper that keeps the last few utterances acknowledged, for the demo to show."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.samples: list[Utterance] = []

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        result = await self.inner.write(utterances)
        refused = {id(r.utterance) for r in result.rejected}
        kept = [u for u in utterances if u.final and id(u) not in refused]
        self.samples = (self.samples + kept)[-5:]
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()

    def describe(self) -> str:
        return self.inner.describe()


def _environment(info: dict[str, object], sim: Simulator) -> dict[str, str]:
    """The caller's InfluxDB settings (if any) and the simulator's Genesys ones."""
    environ = {k: v for k, v in os.environ.items() if k.startswith("INFLUX_")}
    if environ.get("INFLUX_URL") and not any(
        environ.get(k) for k in ("INFLUX_DATABASE", "INFLUX_BUCKET")
    ):
        environ["INFLUX_DATABASE"] = "transcripts"
    environ.update(
        {
            "GENESYS_CLIENT_ID": str(info["client_id"]),
            "GENESYS_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "GENESYS_LOGIN_URL": str(info["login_url"]),
            "GENESYS_API_URL": str(info["api_url"]),
            "CONVERSATION_ID": ",".join(c.conversation_id for c in sim.calls),
        }
    )
    return environ


async def _demo(args: argparse.Namespace) -> tuple[Worker, Simulator, _Tap, Config]:
    sim = Simulator(
        SimConfig(
            calls=args.calls,
            utterances=args.utterances,
            rate=args.rate,
            seed=args.seed,
            card_call=True,  # so a new user sees a card number redacted (README)
        )
    )
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        config = load_config(given(args), environ=_environment(info, sim), env_file=None)
        disk, repeats = Disk(), Repeats()  # the worker's, for the sink it is given too
        tap = _Tap(configured_sink(config, disk, repeats))
        worker = assemble(config, store=tap, disk=disk, repeats=repeats)
        print(
            f"demo: simulator at {info['api_url']} with {args.calls} calls; writing to "
            f"{tap.describe()}",
            flush=True,
        )
        nursery.start_soon(watch_signals, worker)
        nursery.start_soon(_progress, worker, sim)
        await run_until_accounted(worker, sim)
        nursery.cancel_scope.cancel()
    return worker, sim, tap, config


async def _progress(worker: Worker, sim: Simulator) -> None:
    last = worker.snapshot()
    while True:
        await trio.sleep(1)
        now = worker.snapshot()
        rate = (now.account.frames - last.account.frames) / (now.at - last.at)
        last = now
        print(
            f"  {status_line(now, rate)}; simulator sent {sim.stats.finals_sent} finals",
            flush=True,
        )


def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    worker, sim, tap, config = trio.run(_demo, args)
    elapsed = time.monotonic() - started
    print(f"\ndemo done in {elapsed:.1f} s. A few persisted utterances, by start time:")
    for u in sorted(tap.samples, key=lambda u: u.start_ms):
        confidence = f"{u.confidence:.3f}" if u.confidence is not None else "n/a"
        print(
            f"  {iso_of(u.start_ms)} [{u.conversation_id[:8]}] {u.speaker:>8} "
            f"({confidence}): {u.text}"
        )
    account = worker.account
    print(f"\naccount: {account.summary()}")
    print(
        f"the simulator finalized {len(sim.truth)} utterances; {account.persisted} persisted, "
        f"{account.dead_lettered} dead-lettered"
    )
    print(f"data: {tap.describe()}")
    dead = worker.dead_letters
    print(f"dead letters: {dead.path.resolve()} ({dead.total} records)")
    call = sim.calls[0].conversation_id
    print(f"\none call as stored, by `python -m trio_transcripts show {call}`:")
    if config.influx is not None:
        rows = read_influx(config.influx, call, None)
    else:
        rows = read_file(config.output_path, call, None)
    print_transcript(rows, "text")
    return 0 if account.persisted + account.dead_lettered >= len(sim.truth) else 1
