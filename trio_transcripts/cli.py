"""``python -m trio_transcripts``: run, demo, simulate, bench.

Exit codes: 0 clean, 1 fatal configuration or auth error (one line: what, where, what to do;
``--debug`` adds the traceback), 2 usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from . import __version__
from .auth import AuthError
from .bench import add_bench_parser, cmd_bench
from .config import Config, ConfigErrors, load_config
from .lineproto import Schema
from .model import Utterance
from .simulator.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Faults, SimConfig, Simulator
from .sinks import FatalSinkError, Sink
from .sources import SourceError
from .wire.instants import iso_of
from .worker import Worker

log = logging.getLogger("trio_transcripts")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(fmt: str, debug: bool, quiet: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    for noisy in ("httpx", "httpcore", "trio-websocket", "trio_websocket"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-format", choices=["text", "json"], default="text")
    parser.add_argument("--debug", action="store_true", help="debug logs and tracebacks")


def _worker_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("transcripts.lp"),
        help="file sink path when INFLUX_URL is not set (default: %(default)s)",
    )
    parser.add_argument(
        "--dead-letter",
        type=Path,
        default=Path("deadletter.jsonl"),
        help="where rejected and unflushable data goes (default: %(default)s)",
    )
    parser.add_argument("--shutdown-timeout", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("--buffer-capacity", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--batch-wait-ms", type=int, default=100)
    parser.add_argument("--status-interval", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument(
        "--spool",
        type=Path,
        metavar="DIR",
        help="keep batches the sink cannot take on disk here (fsynced) and replay them",
    )
    parser.add_argument("--spool-max-mb", type=int, default=1024)
    parser.add_argument(
        "--spool-after",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long a batch may wait on the sink before it is spooled",
    )
    parser.add_argument(
        "--utterance-id-as-tag",
        action="store_true",
        help="the reference design's layout: one series per utterance (risky "
        "on InfluxDB 1.x: max-series-per-database)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trio_transcripts",
        description="Persist real-time Genesys Cloud call transcripts into InfluxDB.",
    )
    parser.add_argument("--version", action="version", version=f"trio_transcripts {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="the main job: Genesys -> InfluxDB (or a file)",
        description="Read transcripts from Genesys Cloud and persist "
        "them. Settings come from the environment and .env (see README).",
    )
    _common(run)
    _worker_flags(run)
    for flag, var in (
        ("--conversation-id", "CONVERSATION_ID"),
        ("--queue-id", "GENESYS_QUEUE_ID"),
        ("--region", "GENESYS_REGION"),
        ("--stream-url", "GENESYS_STREAM_URL"),
        ("--influx-url", "INFLUX_URL"),
        ("--influx-database", "INFLUX_DATABASE"),
        ("--influx-org", "INFLUX_ORG"),
        ("--influx-bucket", "INFLUX_BUCKET"),
    ):
        run.add_argument(flag, dest=var, help=f"overrides {var}")
    run.add_argument("--env-file", type=Path, default=Path(".env"))
    run.add_argument(
        "--no-create-database",
        action="store_true",
        help="InfluxDB 1.x: fail instead of creating a missing database",
    )

    demo = commands.add_parser(
        "demo",
        help="the built-in simulator into InfluxDB or a file",
        description="Start the simulator in-process with a handful of "
        "calls, run the worker against it, and persist to InfluxDB when "
        "INFLUX_URL is set, else to a file in the working directory.",
    )
    _common(demo)
    _worker_flags(demo)
    demo.add_argument("--calls", type=int, default=5)
    demo.add_argument("--utterances", type=int, default=8)
    demo.add_argument("--rate", type=float, default=40.0, help="frames per second")
    demo.add_argument("--seed", type=int, default=7)

    sim = commands.add_parser(
        "simulate",
        help="serve the Genesys simulator",
        description="A Genesys Cloud simulator speaking the real wire "
        "formats. Prints one JSON line with its URLs, then serves.",
    )
    _common(sim)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=0)
    sim.add_argument("--calls", type=int, default=3)
    sim.add_argument("--utterances", type=int, default=6)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--rate", type=float, default=0.0, help="frames/s; 0: unpaced")
    sim.add_argument("--source", choices=["notifications", "fragments"], default="notifications")
    sim.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    sim.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    sim.add_argument("--token-lifetime", type=int, default=86_400, metavar="SECONDS")
    sim.add_argument("--channel-ttl", type=float, default=86_400.0, metavar="SECONDS")
    sim.add_argument("--heartbeat", type=float, default=30.0, metavar="SECONDS")
    sim.add_argument("--queue-id", help="announce each call on this queue's topic first")
    sim.add_argument("--truth", type=Path, help="JSON Lines of every finalized utterance")
    sim.add_argument("--replay", type=Path, help="JSON Lines of frames to send verbatim")
    sim.add_argument("--exit-when-done", action="store_true")
    faults = sim.add_argument_group("faults")
    faults.add_argument("--handshake-401", type=int, default=0, metavar="N")
    faults.add_argument("--token-429", type=int, default=0, metavar="N")
    faults.add_argument("--token-500", type=int, default=0, metavar="N")
    faults.add_argument("--drop-every", type=int, default=0, metavar="N")
    faults.add_argument("--socket-closing-after", type=int, default=0, metavar="N")
    faults.add_argument("--silent", action="store_true")
    faults.add_argument("--slow-reader", type=float, default=0.0, metavar="SECONDS")
    faults.add_argument("--malformed-every", type=int, default=0, metavar="N")
    faults.add_argument("--oversized-every", type=int, default=0, metavar="N")
    faults.add_argument("--duplicate-finals", action="store_true")
    faults.add_argument("--deny-transcription", action="store_true")
    add_bench_parser(commands, _common)
    return parser


def _tuning(args: argparse.Namespace) -> dict[str, object]:
    return {
        "output_path": args.output,
        "dead_letter_path": args.dead_letter,
        "shutdown_timeout_s": args.shutdown_timeout,
        "buffer_capacity": args.buffer_capacity,
        "batch_size": args.batch_size,
        "batch_wait_ms": args.batch_wait_ms,
        "status_interval_s": args.status_interval,
        "schema": Schema(utterance_id_as_tag=args.utterance_id_as_tag),
        "spool_dir": args.spool,
        "spool_max_bytes": args.spool_max_mb << 20,
        "spool_after_s": args.spool_after,
    }


async def _watch_signals(worker: Worker) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if worker.stopping and signum == signal.SIGINT:
                log.warning("second SIGINT: not waiting for the sink; dead-lettering the rest")
                worker.hurry()
            else:
                log.warning("%s: shutting down in order", signal.Signals(signum).name)
                worker.stop()


async def run_until_signalled(worker: Worker) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, worker)
        try:
            await worker.run()
        finally:
            nursery.cancel_scope.cancel()


def _fatal(exc: BaseException, debug: bool) -> int:
    if debug:
        log.exception("fatal error", exc_info=exc)
    print(f"trio_transcripts: error: {exc}", file=sys.stderr)
    return 1


def cmd_run(args: argparse.Namespace) -> int:
    overrides = {
        name: getattr(args, name)
        for name in (
            "CONVERSATION_ID",
            "GENESYS_QUEUE_ID",
            "GENESYS_REGION",
            "GENESYS_STREAM_URL",
            "INFLUX_URL",
            "INFLUX_DATABASE",
            "INFLUX_ORG",
            "INFLUX_BUCKET",
        )
    }
    config = load_config(overrides, env_file=args.env_file, tuning=_tuning(args))
    if args.no_create_database and config.influx is not None:
        config = dataclasses.replace(
            config, influx=dataclasses.replace(config.influx, create_database=False)
        )
    worker = Worker(config)
    trio.run(run_until_signalled, worker)
    print(f"account: {worker.account.summary()}", file=sys.stderr)
    return 0


class _Tap:
    """A sink wrapper that keeps the last few utterances written, for the demo to show."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.samples: list[Utterance] = []

    async def open(self) -> None:
        await self.inner.open()

    async def write(self, utterances: Sequence[Utterance]) -> None:
        await self.inner.write(utterances)
        self.samples = (self.samples + [u for u in utterances if u.final])[-5:]

    async def aclose(self) -> None:
        await self.inner.aclose()

    def describe(self) -> str:
        return self.inner.describe()


async def _demo(args: argparse.Namespace) -> tuple[Worker, Simulator, _Tap]:
    sim = Simulator(
        SimConfig(calls=args.calls, utterances=args.utterances, rate=args.rate, seed=args.seed)
    )
    async with trio.open_nursery() as nursery:
        info = await nursery.start(sim.run)
        import os

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
        config: Config = load_config(environ=environ, env_file=None, tuning=_tuning(args))
        worker = Worker(config)
        tap = _Tap(worker.sink)
        worker.sink = tap
        print(
            f"demo: simulator at {info['api_url']} with {args.calls} calls; writing to "
            f"{tap.describe()}",
            flush=True,
        )
        nursery.start_soon(_watch_signals, worker)
        nursery.start_soon(_progress, worker, sim)
        await run_demo_worker(worker, sim)
        nursery.cancel_scope.cancel()
    return worker, sim, tap


async def run_demo_worker(worker: Worker, sim: Simulator) -> None:
    """Run ``worker`` until the simulator has sent everything and all of it is persisted."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_stop_when_done, worker, sim)
        await worker.run()
        nursery.cancel_scope.cancel()


async def _stop_when_done(worker: Worker, sim: Simulator) -> None:
    await sim.done.wait()
    while not (
        worker.idle() and worker.account.persisted + worker.account.dead_lettered >= len(sim.truth)
    ):
        await worker.wait_progress()
    worker.stop()


async def _progress(worker: Worker, sim: Simulator) -> None:
    last, last_t = 0, trio.current_time()
    while True:
        await trio.sleep(1)
        now = trio.current_time()
        rate = (worker.account.frames - last) / (now - last_t)
        last, last_t = worker.account.frames, now
        print(
            f"  {worker.status_line(rate)}; simulator sent {sim.stats.finals_sent} finals",
            flush=True,
        )


def cmd_demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    worker, sim, tap = trio.run(_demo, args)
    elapsed = time.monotonic() - started
    print(f"\ndemo done in {elapsed:.1f} s. A few persisted utterances, by start time:")
    for u in sorted(tap.samples, key=lambda u: u.start_ms):
        confidence = f"{u.confidence:.3f}" if u.confidence is not None else "n/a"
        print(
            f"  {iso_of(u.start_ms)} [{u.conversation_id[:8]}] {u.speaker:>8} "
            f"({confidence}): {u.text}"
        )
    print(f"\naccount: {worker.account.summary()}")
    persisted = worker.account.persisted
    print(
        f"the simulator finalized {len(sim.truth)} utterances; {persisted} persisted, "
        f"{worker.account.dead_lettered} dead-lettered"
    )
    print(f"data: {tap.describe()}")
    print(f"dead letters: {worker.dead_letter.path.resolve()} ({worker.dead_letter.total} records)")
    return 0 if persisted + worker.account.dead_lettered >= len(sim.truth) else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    faults = Faults(
        handshake_401=args.handshake_401,
        token_429=args.token_429,
        token_500=args.token_500,
        drop_every=args.drop_every,
        socket_closing_after=args.socket_closing_after,
        silent=args.silent,
        slow_reader_s=args.slow_reader,
        malformed_every=args.malformed_every,
        oversized_every=args.oversized_every,
        duplicate_finals=args.duplicate_finals,
        deny_transcription=args.deny_transcription,
    )
    config = SimConfig(
        host=args.host,
        port=args.port,
        calls=args.calls,
        utterances=args.utterances,
        seed=args.seed,
        rate=args.rate,
        source=args.source,
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_lifetime_s=args.token_lifetime,
        channel_ttl_s=args.channel_ttl,
        heartbeat_s=args.heartbeat,
        queue_id=args.queue_id,
        truth_path=args.truth,
        replay_path=args.replay,
        exit_when_done=args.exit_when_done,
        faults=faults,
    )

    async def serve() -> None:
        sim = Simulator(config)

        async def run_then_stop(task_status: trio.TaskStatus[dict[str, object]]) -> None:
            await sim.run(task_status=task_status)
            nursery.cancel_scope.cancel()  # --exit-when-done: the simulator ended by itself

        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_on_signal, nursery.cancel_scope)
            info = await nursery.start(run_then_stop)
            print(json.dumps(info), flush=True)
        log.info("simulator stopped: %s", sim.stats)

    trio.run(serve)
    return 0


async def _cancel_on_signal(scope: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            scope.cancel()
            return


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    setup_logging(args.log_format, args.debug, quiet=args.command == "demo")
    handlers = {"run": cmd_run, "demo": cmd_demo, "simulate": cmd_simulate, "bench": cmd_bench}
    try:
        return handlers[args.command](args)
    except ConfigErrors as exc:
        print("trio_transcripts: configuration problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except (AuthError, SourceError, FatalSinkError) as exc:
        return _fatal(exc, args.debug)
    except BaseExceptionGroup as group:  # a nursery on the way wrapped the fatal error
        fatal = _first_fatal(group)
        if fatal is None:
            raise
        return _fatal(fatal, args.debug)


def _first_fatal(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    for exc in group.exceptions:
        if isinstance(exc, AuthError | SourceError | FatalSinkError):
            return exc
        if isinstance(exc, BaseExceptionGroup) and (found := _first_fatal(exc)) is not None:
            return found
    return None
