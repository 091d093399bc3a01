"""Shared test setup: Hypothesis profiles.

``dev`` (the default) is quick; ``ci`` runs more examples, derandomized (so a CI failure
reproduces), without deadlines (a loaded 2-core CI machine must not make a test flaky).
Choose with ``HYPOTHESIS_PROFILE``; ``.ci/run`` sets ``ci``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# --- a real InfluxDB (Debian's influxdb 1.6.x) ------------------------------------------

import itertools  # noqa: E402
import subprocess  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from trio_transcripts.testing.influxd import Influxd, InfluxdUnavailable, start_influxd  # noqa: E402


def require(what: str, exc: Exception) -> None:
    """Skip without ``what``; under ``CI=true`` that skip is a failure."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI requires {what} and none could be had: {exc}")
    pytest.skip(f"no {what}: {exc}")


def require_influxd(exc: Exception) -> None:
    require("a real InfluxDB", exc)


def _tmpfs(mount: Path, options: str, what: str) -> Iterator[Path]:
    """A tmpfs of the test's own at ``mount`` (mounting needs root: CI runs as root)."""
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        require(f"{what} (mount needs root)", RuntimeError(done.stderr.strip()))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, to fill."""
    yield from _tmpfs(tmp_path / "disk", "size=1m,mode=0777", "a tmpfs to fill")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """An empty directory on a read-only tmpfs: even root cannot write there (EROFS), where
    ``chmod`` would not stop root."""
    yield from _tmpfs(tmp_path / "read-only", "ro,size=64k", "a read-only tmpfs")


def start_influxd_or_skip(root: Path, **kwargs: int) -> Influxd:
    """A server of the test's own (to kill, restart, or configure); skip as the fixture does."""
    try:
        return start_influxd(root, **kwargs)
    except InfluxdUnavailable as exc:
        require_influxd(exc)
        raise


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server = start_influxd_or_skip(tmp_path_factory.mktemp("influxd"))
    yield server
    server.stop()


_databases = itertools.count()


@pytest.fixture
def database(influxd: Influxd) -> str:
    """A fresh database name per test (created by the sink under test, or by the test)."""
    return f"test_{os.getpid()}_{next(_databases)}"
