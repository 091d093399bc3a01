"""Run each fuzz target for a bounded time: ``python -m fuzz.run --seconds 20 [target ...]``.

Under atheris (coverage-guided libFuzzer, where it installs) each target runs in its own
subprocess with ``-max_total_time``; elsewhere the same target runs under Hypothesis's
``fuzz_one_input`` on random bytes. Exit status is non-zero if any target crashed; a line per
target reports executions and executions per second.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import time

NAMES = ("genesys", "fragments", "coalescer", "postcall", "sensitive", "websocket")
"""The targets of ``targets.py``, named here so that this module imports none of our code
before a child has set up its instrumentation (see :func:`run_atheris_child`)."""

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
"""Where libFuzzer writes crash inputs (ignored by git): a finding becomes a named file in
``tests/fuzz_crashes/`` (``<target>-<what>.bin``), replayed by ``tests/test_fuzz_crashes.py``."""

CORPUS_SEEDS = [
    b'{"topicName":"v2.conversations.c.transcription","eventBody":{"sessionStartTimeMs":1,'
    b'"transcripts":[{"utteranceId":"u","isFinal":true,"channel":"INTERNAL",'
    b'"alternatives":[{"transcript":"hi","confidence":0.5,"offsetMs":1,"durationMs":2}]}]}}',
    b'{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}',
    b'{"result":"404","message":"gone"}',
    b'{"utteranceId":"u1","speaker":"agent","text":"Hi","confidence":0.9,'
    b'"startTime":"2026-03-19T22:04:48.128Z","endTime":1773957890000,"isFinal":true}',
    b'{"conversationId":"c","transcripts":[{"phrases":[{"phraseIndex":0,"text":"hi",'
    b'"participantPurpose":"internal","startTimeMs":1773957594383,'
    b'"duration":{"milliseconds":640},"confidence":0.9}]}]}',
    b'{"conversations":[{"conversationId":"c","participants":[{"purpose":"customer",'
    b'"sessions":[{"sessionId":"m","mediaType":"voice"}]}]}],"totalHits":1}',
    b"my card number is 4111 1111\n1111 one one one one and the cvv is 123\n"
    b"john dot smith at example dot com ssn 123-45-6789",
]


def run_atheris_child(name: str, argv: list[str]) -> None:
    import atheris

    # Only our code is instrumented: instrument_all() also rewrote every loaded module of
    # trio, httpx, hypothesis and the standard library, ~55 s a child on this machine, for
    # coverage of code that is not under test.
    with atheris.instrument_imports(include=["trio_transcripts", "fuzz"]):
        from .targets import TARGETS
    target = TARGETS[name]
    atheris.Setup([sys.argv[0], *argv], target)
    atheris.Fuzz()


def run_with_atheris(name: str, seconds: int) -> tuple[bool, int, str]:
    with_seeds = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"trio-transcripts-fuzz-{name}")
    os.makedirs(with_seeds, exist_ok=True)
    os.makedirs(ARTIFACTS, exist_ok=True)
    for i, seed in enumerate(CORPUS_SEEDS):
        with open(os.path.join(with_seeds, f"seed{i}"), "wb") as f:
            f.write(seed)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fuzz.run",
            "--child",
            name,
            f"-max_total_time={seconds}",
            f"-artifact_prefix={ARTIFACTS}/{name}-",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            with_seeds,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    runs = re.search(r"Done (\d+) runs", proc.stderr) or re.search(
        r"stat::number_of_executed_units:\s*(\d+)", proc.stderr
    )
    return proc.returncode == 0, int(runs.group(1)) if runs else 0, proc.stderr[-3000:]


def run_with_hypothesis(name: str, seconds: int) -> tuple[bool, int, str]:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from .targets import TARGETS

    target = TARGETS[name]

    @settings(database=None)
    @given(st.binary(max_size=4096))
    def test(data: bytes) -> None:
        target(data)

    rng = random.Random(0)
    deadline = time.monotonic() + seconds
    count = 0
    try:
        for seed in CORPUS_SEEDS:
            test.hypothesis.fuzz_one_input(seed)
        while time.monotonic() < deadline:
            size = rng.choice((8, 64, 512, 4096))
            test.hypothesis.fuzz_one_input(rng.randbytes(size))
            count += 1
    except Exception as exc:  # any exception from a target is the finding
        return False, count, f"{type(exc).__name__}: {exc}"
    return True, count, ""


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        run_atheris_child(sys.argv[2], sys.argv[3:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("targets", nargs="*", help=f"any of {', '.join(NAMES)} (default: all)")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    args = parser.parse_args()
    unknown = set(args.targets) - set(NAMES)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {sorted(NAMES)}")
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
        except ImportError:
            engine = "hypothesis"
        else:
            engine = "atheris"
    failed = 0
    for name in args.targets or NAMES:
        runner = run_with_atheris if engine == "atheris" else run_with_hypothesis
        ok, runs, detail = runner(name, args.seconds)
        rate = runs / args.seconds if args.seconds else 0
        print(
            f"fuzz {name}: {engine}, {runs} executions in {args.seconds}s "
            f"({rate:,.0f}/s): {'ok' if ok else 'CRASH'}"
        )
        if not ok:
            failed += 1
            print(detail, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
