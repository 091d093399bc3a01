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
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from trio_transcripts.testing.influxd import Influxd, InfluxdUnavailable, start_influxd  # noqa: E402


def require_influxd(exc: Exception) -> None:
    """Skip without a server; under ``CI=true`` that skip is a failure."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI requires a real InfluxDB and none could be started: {exc}")
    pytest.skip(f"no real InfluxDB: {exc}")


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
