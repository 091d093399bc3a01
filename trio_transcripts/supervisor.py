"""``run --workers N``: N shard processes (``--shard I/N``) under one small supervisor.

A Trio nursery of child processes, each ``python -m trio_transcripts run`` with the
supervisor's own arguments plus ``--shard I/N`` (and, with ``--metrics-address HOST:PORT``,
``HOST:PORT+I``; with ``--spool DIR``, ``DIR/shard-I-of-N``, so each replays its own, and
likewise its own gap records and journal in ``--state-dir``). A child
that dies is restarted with capped backoff, logged and counted; a child that exits 1 (a fatal
configuration or credentials error, which every shard shares) stops them all, and the
supervisor exits 1. SIGINT/SIGTERM is passed on, so each child
shuts down in order; the supervisor exits 0 only when every child did. The children's status
lines are merged into one; their other lines pass through, prefixed ``[I/N]``. At exit one
account adds up each child's last run (a child killed outright reports none: what it had
persisted is in the database, but not in this sum).
"""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from .account import Account, total

log = logging.getLogger("trio_transcripts.supervisor")

ACCOUNT_LINE = "account-json: "
STATUS = re.compile(
    r"status: ([\d,]+) frames/s, (\d+) persisted, .* (\d+) dead-lettered, (\d+) spooled"
)
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
STEADY_S = 60.0  # a child that ran this long starts its backoff over


@dataclass
class Child:
    index: int
    count: int
    restarts: int = 0
    status: tuple[float, int, int, int] = (0.0, 0, 0, 0)  # frames/s, persisted, dead, spooled
    account: Account | None = None
    process: trio.Process | None = None
    exit_codes: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.index}/{self.count}"


class Supervisor:
    def __init__(
        self,
        arguments: Sequence[str],
        workers: int,
        *,
        metrics_address: str | None = None,
        status_interval_s: float = 10.0,
    ) -> None:
        self.arguments = list(arguments)
        self.children = [Child(i, workers) for i in range(workers)]
        self.metrics_address = metrics_address
        self.status_interval_s = status_interval_s
        self.stopping = False
        self.fatal = False
        self._stopped = trio.Event()

    def command(self, child: Child) -> list[str]:
        arguments = list(self.arguments)
        own = f"shard-{child.index}-of-{child.count}"
        # A spool and a state directory each: each replays, and fills the gaps of, its own.
        state: str | None = None
        spool: str | None = None
        for i, argument in enumerate(arguments):
            for flag in ("--spool", "--state-dir"):
                if argument == flag and i + 1 < len(arguments):
                    value = arguments[i + 1]
                    arguments[i + 1] = f"{value}/{own}"
                elif argument.startswith(f"{flag}="):
                    value = argument.split("=", 1)[1]
                    arguments[i] = f"{flag}={value}/{own}"
                else:
                    continue
                state, spool = (value, spool) if flag == "--state-dir" else (state, value)
        if state is None:  # the default, beside the spool's directory, shared: made per child
            base = f"{spool.rstrip('/')}/.." if spool is not None else "."
            arguments += ["--state-dir", f"{base}/state/{own}"]
        command = [sys.executable, "-m", "trio_transcripts", "run", *arguments]
        command += ["--shard", child.name, "--account-json"]
        if self.metrics_address is not None:
            host, _, port = self.metrics_address.rpartition(":")
            command += ["--metrics-address", f"{host}:{int(port) + child.index}"]
        return command

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
        if self.fatal:
            return 1
        clean = all(c.exit_codes and c.exit_codes[-1] == 0 for c in self.children)
        return 0 if clean else 1

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
        process = await trio.lowlevel.open_process(self.command(child), stderr=subprocess.PIPE)
        child.process = process
        log.info("worker %s started (pid %d)", child.name, process.pid)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read, child, process)
                await process.wait()
        finally:
            child.process = None
        code = process.returncode
        assert code is not None, "wait() returned"
        return code

    async def _read(self, child: Child, process: trio.Process) -> None:
        assert process.stderr is not None
        pending = b""
        async for data in process.stderr:
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self._line(child, line.decode("utf-8", "replace"))
        if pending:
            self._line(child, pending.decode("utf-8", "replace"))

    def _line(self, child: Child, line: str) -> None:
        if line.startswith(ACCOUNT_LINE):
            child.account = Account(**json.loads(line[len(ACCOUNT_LINE) :]))
            return
        status = STATUS.search(line)
        if status is not None:
            rate, persisted, dead, spooled = status.groups()
            child.status = (float(rate.replace(",", "")), int(persisted), int(dead), int(spooled))
            return
        if line.startswith("account: "):
            return  # the supervisor prints the sum
        print(f"[{child.name}] {line}", file=sys.stderr, flush=True)

    async def _status(self) -> None:
        while True:
            await trio.sleep(self.status_interval_s)
            rate = sum(c.status[0] for c in self.children)
            persisted, dead, spooled = (sum(c.status[i] for c in self.children) for i in (1, 2, 3))
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
