"""Every input a fuzzer once crashed on, replayed through its target: none may raise again.

Files in ``tests/fuzz_crashes/`` are named ``<target>-<what it exercises>.bin``, ``<target>``
one of ``fuzz/targets.py``'s ``TARGETS``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.targets import TARGETS

CRASHES = sorted((Path(__file__).parent / "fuzz_crashes").glob("*.bin"))


def test_there_are_crash_inputs_to_replay() -> None:
    assert CRASHES, "tests/fuzz_crashes/ holds the inputs earlier fuzz runs crashed on"


@pytest.mark.parametrize("path", CRASHES, ids=[p.stem for p in CRASHES])
def test_crash_input_no_longer_crashes(path: Path) -> None:
    target = TARGETS[path.name.split("-", 1)[0]]
    target(path.read_bytes())


def test_the_runner_names_every_target() -> None:
    from fuzz.run import NAMES

    assert tuple(TARGETS) == NAMES, "fuzz/run.py's NAMES is the list CI runs"
