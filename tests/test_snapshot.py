"""A worker's snapshot: what every reader of it sees, and its JSON round trip (the
``--workers`` supervisor reads each child's from a pipe). No Trio."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trio_transcripts.account import Account
from trio_transcripts.snapshot import Snapshot, readiness, status_line

counts = st.integers(min_value=0, max_value=2**53)
accounts = st.builds(
    Account,
    frames=counts,
    persisted=counts,
    dead_lettered=counts,
    spooled=counts,
    gaps_by_reason=st.dictionaries(st.sampled_from(["head", "drop", "outage"]), counts),
    absences_uncovered=st.lists(st.text(max_size=8), max_size=3).map(tuple),
)
snapshots = st.builds(
    Snapshot,
    at=st.floats(allow_nan=False, allow_infinity=False),
    account=accounts,
    source=st.sampled_from(["notifications", "fragments"]),
    set_aside_by=st.dictionaries(st.text(max_size=10), counts),
    reconnects=st.dictionaries(st.text(max_size=10), counts),
    since_last_frame_s=st.none() | st.floats(min_value=0, max_value=1e9),
    sink_ok_age_s=st.none() | st.floats(min_value=0, max_value=1e9),
    sink=st.text(max_size=30),
)


@given(snapshots)
def test_a_snapshot_comes_back_from_json_as_it_was(snapshot: Snapshot) -> None:
    assert Snapshot.from_json(snapshot.to_json()) == snapshot


def test_the_status_line_reads_the_snapshot() -> None:
    snapshot = Snapshot(
        at=0.0,
        account=Account(persisted=12, dead_lettered=1, spooled=3, backfilled=2),
        source="notifications",
        ring_count=5,
        ring_capacity=10,
        ring_paused=True,
        pending=4,
        last_write_s=0.0125,
        backfill="on",
    )
    assert status_line(snapshot, 1234.4) == (
        "status: 1,234 frames/s, 12 persisted, buffer 5/10 (paused), pending 4, last write "
        "12 ms, 1 dead-lettered, 3 spooled, 2 backfilled"
    )


def test_ready_only_when_every_part_is() -> None:
    ready = Snapshot(
        at=0.0,
        account=Account(),
        source="notifications",
        token_needed=True,
        token_valid=True,
        sockets=2,
        live_sockets=2,
        sink="influx",
        sink_ok_age_s=3.0,
    )
    assert all(check["ok"] for check in readiness(ready, 60.0).values())
    for broken, failing in [
        ({"token_valid": False}, "token"),
        ({"live_sockets": 1}, "source"),
        ({"sink_ok_age_s": 61.0}, "sink"),
        ({"sink_ok_age_s": None}, "sink"),
        ({"stopping": True}, "running"),
    ]:
        checks = readiness(Snapshot(**{**ready.__dict__, **broken}), 60.0)
        assert [name for name, c in checks.items() if not c["ok"]] == [failing], broken
