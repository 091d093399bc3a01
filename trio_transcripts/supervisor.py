"""``run --workers N``: N shard processes under one small supervisor.

A Trio nursery of child processes, each ``python -m trio_transcripts.shard_process`` with its
own settings made from the supervisor's parsed :class:`~trio_transcripts.config.Config`
(:func:`child_configs`: ``--shard I/N``; with ``--metrics-address HOST:PORT``,
``HOST:PORT+I``; with ``--spool DIR``, ``DIR/shard-I-of-N``, so each replays its own, and
likewise its own gap records and journal in ``--state-dir``), sent down its stdin
(``shard_process.py`` says why not as a command line). A child that dies is restarted with
capped backoff, logged and counted; a child that exits 1 (a fatal configuration or
credentials error, which every shard shares) stops them all, and the supervisor exits 1. A
child that exits 74 (``errors.EXIT_NOT_KEPT``: its disk was full at its shutdown and it
kept some records nowhere) is restarted like any other, and the supervisor's own exit code
is then 74 too, whatever the later runs did (``exit_code_of``). SIGINT/SIGTERM is passed
on, so each child shuts down in order; the supervisor exits 0 only when every child did.
Each child's snapshots (JSON on its stdout) are merged into one status line; its log lines
pass through, prefixed ``[I/N]``. At exit one account adds up each child's last run (a
child killed outright reports none: what it had persisted is in the database, but not in
this sum).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

from .account import Account, total
from .config import Config
from .errors import EXIT_NOT_KEPT
from .shard import Shard
from .shard_process import ACCOUNT, SNAPSHOT, Orders
from .snapshot import Snapshot

log = logging.getLogger("trio_transcripts.supervisor")

BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STEADY_S = 60.0  # a child that ran this long starts its backoff over
COMMAND = (sys.executable, "-m", "trio_transcripts.shard_process")  # the same for every child


def child_configs(config: Config, workers: int) -> list[Config]:
    """Child ``I``'s settings: ``config`` with shard ``I/N``, and a spool, a state directory
    (each replays, and fills the gaps of, its own) and a metrics port of its own."""
    configs = []
    for index in range(workers):
        own = f"shard-{index}-of-{workers}"
        metrics = config.metrics_address
        if metrics is not None:
            host, _, port = metrics.rpartition(":")
            metrics = f"{host}:{int(port) + index}"
        spool: Path | None = config.spool_dir
        configs.append(
            dataclasses.replace(
                config,
                shard=Shard(index, workers),
                spool_dir=spool / own if spool is not None else None,
                state_dir=config.state_path / own,
                metrics_address=metrics,
            )
        )
    return configs


@dataclass
class Child:
    index: int
    count: int
    orders: Orders
    restarts: int = 0
    snapshot: Snapshot | None = None  # the last one it sent
    frames_per_s: float = 0.0  # from its last two snapshots
    account: Account | None = None
    process: trio.Process | None = None
    exit_codes: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.index}/{self.count}"


def exit_code_of(runs: Sequence[Sequence[int]], *, fatal: bool) -> int:
    """The supervisor's exit code from each child's exit codes, run after run: 74 when any
    run of any child kept something nowhere (restarted or not, that data is lost: say it
    on), else 1 after a fatal error, else 0 only when every child's last run ended cleanly."""
    if any(EXIT_NOT_KEPT in codes for codes in runs):
        return EXIT_NOT_KEPT
    if fatal:
        return 1
    return 0 if all(codes and codes[-1] == 0 for codes in runs) else 1


class Supervisor:
    def __init__(
        self,
        configs: Sequence[Config],
        *,
        log_format: str,
        debug: bool,
        status_interval_s: float,
    ) -> None:
        self.children = [
            Child(i, len(configs), Orders(c, log_format, debug)) for i, c in enumerate(configs)
        ]
        self.status_interval_s = status_interval_s
        self.stopping = False
        self.fatal = False
        self._stopped = trio.Event()

    async def run(self) -> int:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_signals)
            nursery.start_soon(self._status)
            async with trio.open_nursery() as children:
                for child in self.children:
                    children.start_soon(self._keep, child)
            nursery.cancel_scope.cancel()
        total = self.account()
        restarts = sum(c.restarts for c in self.children)
        print(f"account: {total.summary()}; {restarts} restart(s)", file=sys.stderr)
        return exit_code_of([c.exit_codes for c in self.children], fatal=self.fatal)

    def account(self) -> Account:
        return total([c.account for c in self.children if c.account is not None])

    async def _keep(self, child: Child) -> None:
        failures = 0
        while not self.stopping:
            started = trio.current_time()
            code = await self._run_child(child)
            child.exit_codes.append(code)
            if self.stopping:
                return
            if code == 1:
                log.error("worker %s stopped on a fatal error; stopping every worker", child.name)
                self.fatal = True
                self.stop(signal.SIGTERM)
                return
            failures = 0 if trio.current_time() - started >= STEADY_S else failures + 1
            delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
            child.restarts += 1
            log.warning(
                "worker %s exited (%s); restart %d in %.1f s",
                child.name,
                f"signal {-code}" if code < 0 else f"code {code}",
                child.restarts,
                delay,
            )
            with trio.move_on_after(delay):
                await self._stopped.wait()

    async def _run_child(self, child: Child) -> int:
        process = await trio.lowlevel.open_process(
            list(COMMAND), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        child.process = process
        child.snapshot, child.frames_per_s = None, 0.0
        log.info("worker %s started (pid %d)", child.name, process.pid)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send_orders, child, process)
                nursery.start_soon(self._lines, process.stdout, self._report, child)
                nursery.start_soon(self._lines, process.stderr, self._log_line, child)
                await process.wait()
        finally:
            child.process = None
        code = process.returncode
        assert code is not None, "wait() returned"
        return code

    @staticmethod
    async def _send_orders(child: Child, process: trio.Process) -> None:
        assert process.stdin is not None
        # It died first, if the pipe broke: its exit code says so.
        with contextlib.suppress(trio.BrokenResourceError):
            async with process.stdin:
                await process.stdin.send_all(pickle.dumps(child.orders))

    @staticmethod
    async def _lines(
        stream: trio.abc.ReceiveStream | None,
        handle: Callable[[Child, str], None],
        child: Child,
    ) -> None:
        assert stream is not None
        pending = b""
        async for data in stream:
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                handle(child, line.decode("utf-8", "replace"))
        if pending:
            handle(child, pending.decode("utf-8", "replace"))

    @staticmethod
    def _report(child: Child, line: str) -> None:
        """A line of a child's stdout: a snapshot, or its account at the end. Anything else
        (a library printing, a child of another version) passes through, said as such: a
        line the supervisor cannot read must not end it and orphan the other children."""
        try:
            if line.startswith(SNAPSHOT):
                snapshot = Snapshot.from_json(line[len(SNAPSHOT) :])
                last = child.snapshot
                if last is not None and snapshot.at > last.at:
                    frames = snapshot.account.frames - last.account.frames
                    child.frames_per_s = frames / (snapshot.at - last.at)
                child.snapshot = snapshot
                return
            if line.startswith(ACCOUNT):
                child.account = Account.from_dict(json.loads(line[len(ACCOUNT) :]))
                return
        except (ValueError, TypeError) as exc:
            log.warning("worker %s: unreadable report (%s): %.200s", child.name, exc, line)
            return
        print(f"[{child.name}] {line}", file=sys.stderr, flush=True)

    @staticmethod
    def _log_line(child: Child, line: str) -> None:
        if line.startswith("account: "):
            return  # the supervisor prints the sum
        print(f"[{child.name}] {line}", file=sys.stderr, flush=True)

    async def _status(self) -> None:
        while True:
            await trio.sleep(self.status_interval_s)
            snapshots = [c.snapshot for c in self.children if c.snapshot is not None]
            rate = sum(c.frames_per_s for c in self.children if c.process is not None)
            persisted = sum(s.account.persisted for s in snapshots)
            dead = sum(s.account.dead_lettered for s in snapshots)
            spooled = sum(s.account.spooled for s in snapshots)
            live = sum(1 for c in self.children if c.process is not None)
            restarts = sum(c.restarts for c in self.children)
            log.info(
                "status: %d of %d workers up, %s frames/s, %d persisted, %d dead-lettered, "
                "%d spooled, %d restart(s)",
                live,
                len(self.children),
                f"{rate:,.0f}",
                persisted,
                dead,
                spooled,
                restarts,
            )

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                second = self.stopping and signum == signal.SIGINT
                log.warning(
                    "%s: %s",
                    signal.Signals(signum).name,
                    "hurrying every worker" if second else "stopping every worker in order",
                )
                self.stop(signal.SIGINT if second else signal.SIGTERM)

    def stop(self, signum: signal.Signals) -> None:
        self.stopping = True
        self._stopped.set()
        for child in self.children:
            if child.process is not None and child.process.returncode is None:
                child.process.send_signal(signum)
