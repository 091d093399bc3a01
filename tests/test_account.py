"""The account is a promise: built from what sinks return, each utterance counted once.

A worker runs against a source that emits final fragments and a scripted store, under a
mock clock: the store acknowledges, rejects some points, stalls past ``spool_after``, raises
a fatal error, in any order, and the worker is stopped at any moment. Whatever happened,
every utterance that entered the ring is exactly once persisted, dead-lettered or still in
the spool on disk, no counter is negative, and ``persisted`` is what the store acknowledged.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.account import Account, Ledger
from trio_transcripts.config import WorkerSettings
from trio_transcripts.errors import FatalSinkError
from trio_transcripts.model import Fragment, Merge, Utterance
from trio_transcripts.router import RouterCounts, SourceEvent
from trio_transcripts.sinks import Rejected, WriteResult
from trio_transcripts.sinks.deadletter import DeadLetters, read_dead_letters
from trio_transcripts.sources import Emit, Gap
from trio_transcripts.spool import Spool
from trio_transcripts.worker import Worker

from .pipeline import spool_pending

SPOOL_AFTER_S = 5.0
FAST_DISK = "/dev/shm" if Path("/dev/shm").is_dir() else None  # fsync is free on tmpfs
STALL_S = 60.0  # longer than the spool's patience (5 s) and the shutdown deadline (10 s)


class ListSource:
    """Emits the given fragments at once, then waits to be cancelled."""

    kind = "fragments"
    merge = Merge.APPEND

    def __init__(self, fragments: Sequence[Fragment]) -> None:
        self.fragments = fragments

    @property
    def gaps(self) -> list[Gap]:
        return []

    async def run(
        self, emit: Emit, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        for fragment in self.fragments:
            event: SourceEvent = fragment
            await emit(event, f"frame of {fragment.utterance_id}")
        await trio.sleep_forever()


@dataclass(frozen=True)
class Step:
    """What the store does with one write: reject the first ``reject`` points, then stall
    (or not), then acknowledge the rest; or fail for good."""

    reject: int = 0
    stall: bool = False
    fatal: bool = False


@dataclass
class ScriptedStore:
    steps: list[Step]
    acknowledged: list[Utterance] = field(default_factory=list)

    async def open(self) -> None:
        await trio.lowlevel.checkpoint()

    async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
        step = self.steps.pop(0) if self.steps else Step()
        if step.fatal:
            raise FatalSinkError("the scripted store gave up", utterances)
        rejected = tuple(Rejected(u, "scripted rejection") for u in utterances[: step.reject])
        if step.stall:
            await trio.sleep(STALL_S)  # the rejections above are then never reported
        else:
            await trio.lowlevel.checkpoint()
        taken = list(utterances[step.reject :])
        self.acknowledged.extend(taken)
        return WriteResult(acknowledged=len(taken), rejected=rejected)

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    def describe(self) -> str:
        return "a scripted store"


def fragments(count: int) -> list[Fragment]:
    return [
        Fragment("conv", f"u{i}", "agent", f"text {i}", 0.9, 1_000 * i, 1_000 * i + 500, True)
        for i in range(count)
    ]


@dataclass
class Outcome:
    account: Account
    acknowledged: list[Utterance]
    on_disk: int
    dead_letter_records: int
    fatal: bool


def run_worker(
    count: int, steps: list[Step], *, spool: bool, stop_after_s: float | None, batch_size: int
) -> Outcome:
    """Run a worker over ``count`` utterances until idle (or ``stop_after_s``), then stop."""
    tmp = Path(tempfile.mkdtemp(prefix="trio-transcripts-account-", dir=FAST_DISK))
    try:
        store = ScriptedStore(list(steps))
        worker = Worker(
            source=ListSource(fragments(count)),
            sink=store,
            spool=Spool(tmp / "spool") if spool else None,
            dead_letters=DeadLetters(tmp / "dead.jsonl"),
            settings=WorkerSettings(
                buffer_capacity=8,
                batch_size=batch_size,
                shutdown_timeout_s=10.0,
                spool_after_s=SPOOL_AFTER_S,
            ),
        )
        fatal = False

        async def main() -> None:
            nonlocal fatal
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(worker.run)
                    if stop_after_s is not None:
                        await trio.sleep(stop_after_s)
                    else:
                        while not (worker.idle() and worker.account.finals == count):
                            await worker.wait_progress()
                    worker.stop()
            except* FatalSinkError:
                fatal = True

        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
        on_disk = spool_pending(Spool(tmp / "spool")) if spool else 0
        letters = [r for r in read_dead_letters(tmp / "dead.jsonl") if r["kind"] == "utterance"]
        return Outcome(worker.account, store.acknowledged, on_disk, len(letters), fatal)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def assert_each_counted_once(outcome: Outcome) -> None:
    account = outcome.account
    entered = account.finals + account.partials
    for name, value in vars(account).items():
        assert not isinstance(value, int) or value >= 0, f"{name} is {value}"
    assert account.persisted == len(outcome.acknowledged), "persisted is what was acknowledged"
    assert account.dead_lettered == outcome.dead_letter_records, "each dead letter is on disk"
    assert account.spooled - account.replayed == outcome.on_disk, "the spool holds the rest"
    assert account.persisted + account.dead_lettered + outcome.on_disk == entered


def test_rejected_then_stalled_past_spool_after_is_counted_once() -> None:
    # The sequence that drove ``persisted`` to -1: the store rejects one point of a batch,
    # then stalls past spool_after; the batch is spooled, and the replay meets the same
    # rejection. The rejection of the abandoned write was never reported, so the point is
    # dead-lettered once (at replay), not also counted as replayed and persisted.
    outcome = run_worker(
        3,
        [Step(reject=1, stall=True), Step(reject=1)],
        spool=True,
        stop_after_s=None,
        batch_size=10,
    )
    account = outcome.account
    assert (account.persisted, account.dead_lettered) == (2, 1)
    assert (account.spooled, account.replayed, outcome.on_disk) == (3, 3, 0)
    assert_each_counted_once(outcome)


@given(
    count=st.integers(1, 20),
    script=st.lists(
        st.one_of(
            st.builds(Step, reject=st.integers(0, 3), stall=st.booleans()),
            st.just(Step(fatal=True)),
        ),
        max_size=8,
    ),
    spool=st.booleans(),
    stop_after_s=st.none() | st.floats(0, 40),
    batch_size=st.integers(1, 6),
)
def test_every_utterance_is_counted_exactly_once(
    count: int, script: list[Step], spool: bool, stop_after_s: float | None, batch_size: int
) -> None:
    outcome = run_worker(
        count, script, spool=spool, stop_after_s=stop_after_s, batch_size=batch_size
    )
    assert_each_counted_once(outcome)
    if not outcome.fatal and stop_after_s is None:
        assert outcome.account.finals == count


def test_a_store_that_answers_for_part_of_a_batch_is_a_clear_fatal_error() -> None:
    class Forgetful(ScriptedStore):
        async def write(self, utterances: Sequence[Utterance]) -> WriteResult:
            await trio.lowlevel.checkpoint()
            return WriteResult(acknowledged=len(utterances) - 1)

    tmp = Path(tempfile.mkdtemp(dir=FAST_DISK))
    try:
        worker = Worker(
            source=ListSource(fragments(3)),
            sink=Forgetful([]),
            dead_letters=DeadLetters(tmp / "dead.jsonl"),
        )
        with pytest.raises(FatalSinkError, match="accounted for 2 of the 3 utterances"):
            trio.run(worker.run, clock=trio.testing.MockClock(autojump_threshold=0))
        assert worker.account.dead_lettered == 3 and worker.account.persisted == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_backfilled_utterances_are_persisted_and_counted_apart() -> None:
    ledger = Ledger()
    ledger.written(WriteResult(acknowledged=5))
    ledger.written(WriteResult(acknowledged=2), backfill=True)
    account = ledger.account(RouterCounts(finals=5), [])
    assert (account.persisted, account.backfilled) == (7, 2)
    assert "7 persisted (2 of them backfilled)" in account.summary()
    assert "backfilled" not in Ledger().account(RouterCounts(), []).summary()
